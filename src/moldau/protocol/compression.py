"""Kafka's record compression codecs, byte-compatible with what real clients write and read.

A compressed v2 batch keeps its 61-byte header in the clear and compresses only the records
section. The codec id sits in attributes bits 0-2 (see ``record_batch``). All four codecs run
on cramjam (Rust, releases the GIL); what this module adds is Kafka's dialect of each format
and a guard against decompression bombs:

* **gzip (1)** — a standard gzip stream. Concatenated members are accepted, as Java's
  ``GZIPInputStream`` does.
* **snappy (2)** — Java clients wrap raw snappy blocks in the *xerial* framing of
  snappy-java: the 8-byte magic ``\\x82SNAPPY\\x00``, int32 version, int32 compatible version,
  then ``[int32 compressed length, raw snappy block]*``. librdkafka reads xerial but may write
  a single raw snappy block. We read both and write xerial with 32 KiB blocks, as the Java
  producer does; every client reads that.
* **lz4 (3)** — the standard LZ4 *frame* format (KIP-57 fixed the old header-checksum bug).
  Java's reader decompresses each block on its own, so we must write *independent* blocks
  (cramjam's one-shot ``compress`` links them; we use its ``Compressor`` with linking off).
* **zstd (4)** — a standard zstd frame; frames without a content size (Java's streaming
  writer) are fine because cramjam decodes as a stream.

Decompression bombs: a hostile producer can send a few KiB that inflate to gigabytes. With
``max_bytes`` the output is written into a lazily-committed anonymous mapping of
``max_bytes`` and the decoder stops when it is full, so memory stays bounded by the limit,
whatever the input claims. Snappy declares its exact output size up front, so it is checked
before decoding. Every decoder failure surfaces as :class:`CompressionError`.
"""

from __future__ import annotations

import mmap
import struct
from types import ModuleType

import cramjam

from moldau.protocol.record_batch import (
    CODEC_GZIP,
    CODEC_LZ4,
    CODEC_NAMES,
    CODEC_NONE,
    CODEC_SNAPPY,
    CODEC_ZSTD,
)

Buffer = bytes | bytearray | memoryview

XERIAL_MAGIC = b"\x82SNAPPY\x00"
"""The first 8 bytes of a snappy-java (xerial) stream."""
XERIAL_HEADER = XERIAL_MAGIC + struct.pack(">ii", 1, 1)
"""Magic, version 1, minimum compatible version 1: what snappy-java writes."""
XERIAL_BLOCK_BYTES = 32 * 1024
"""Uncompressed bytes per xerial block; snappy-java's default, used by the Java producer."""

DEFAULT_LEVELS = {CODEC_GZIP: 6, CODEC_LZ4: 9, CODEC_ZSTD: 3}
"""Kafka's defaults for ``compression.{gzip,lz4,zstd}.level`` (KIP-390)."""

_SNAPPY_MAX_EXPANSION = 22
"""A raw snappy block cannot inflate more than ~21.3x (a 3-byte tag copies at most 64 bytes);
a declared length beyond this is a lie we refuse before allocating for it."""

_INT32 = struct.Struct(">i")
_OUTPUT_FULL = "failed to write whole buffer"
"""cramjam's message when the decoder produced more than the output buffer holds."""


class CompressionError(ValueError):
    """Compressed data that cannot be decoded (corrupt, truncated, unknown codec)."""


class DecompressionLimitError(CompressionError):
    """The decompressed data would exceed the caller's ``max_bytes``."""


def compress(codec: int, data: Buffer, *, level: int | None = None) -> bytes:
    """Compress ``data`` with Kafka codec ``codec`` (0 returns the bytes unchanged).

    ``level`` is the codec's compression level (ignored by snappy); None means Kafka's
    default for the codec.
    """
    if codec == CODEC_NONE:
        return bytes(data)
    if level is None:
        level = DEFAULT_LEVELS.get(codec)
    try:
        if codec == CODEC_GZIP:
            return bytes(cramjam.gzip.compress(data, level=level))
        if codec == CODEC_SNAPPY:
            return _xerial_compress(data)
        if codec == CODEC_LZ4:
            compressor = cramjam.lz4.Compressor(
                level=level, content_checksum=False, block_linked=False
            )
            # The streaming compressor takes only bytes.
            compressor.compress(data if isinstance(data, bytes) else bytes(data))
            return bytes(compressor.finish())
        if codec == CODEC_ZSTD:
            return bytes(cramjam.zstd.compress(data, level=level))
    except cramjam.CompressionError as e:
        raise CompressionError(f"{CODEC_NAMES[codec]} compression failed: {e}") from e
    raise CompressionError(f"unknown compression codec {codec}")


def decompress(codec: int, data: Buffer, max_bytes: int | None = None) -> bytes:
    """Decompress ``data`` written with Kafka codec ``codec``.

    Raises :class:`DecompressionLimitError` if the output would exceed ``max_bytes`` (None:
    no limit — only for data we wrote ourselves) and :class:`CompressionError` for anything
    that does not decode.
    """
    if codec == CODEC_NONE:
        if max_bytes is not None and len(data) > max_bytes:
            raise DecompressionLimitError(f"{len(data)} bytes exceed the limit of {max_bytes}")
        return bytes(data)
    if codec == CODEC_SNAPPY:
        return _snappy_decompress(data, max_bytes)
    module: ModuleType
    if codec == CODEC_GZIP:
        module = cramjam.gzip
    elif codec == CODEC_LZ4:
        module = cramjam.lz4
    elif codec == CODEC_ZSTD:
        module = cramjam.zstd
    else:
        raise CompressionError(f"unknown compression codec {codec}")
    try:
        if max_bytes is None:
            return bytes(module.decompress(data))
        return _decompress_bounded(module, data, max_bytes)
    except cramjam.DecompressionError as e:
        if max_bytes is not None and _OUTPUT_FULL in str(e):
            raise DecompressionLimitError(
                f"{CODEC_NAMES[codec]} data inflates past the limit of {max_bytes} bytes"
            ) from e
        raise CompressionError(f"corrupt {CODEC_NAMES[codec]} data: {e}") from e


def _decompress_bounded(module: ModuleType, data: Buffer, max_bytes: int) -> bytes:
    """Decode into a buffer one byte larger than ``max_bytes``; cramjam stops once it is full.

    An anonymous mapping commits pages only as the decoder writes them, so a generous limit
    costs nothing for small outputs (a bytearray would be zero-filled up front).
    """
    with mmap.mmap(-1, max_bytes + 1) as out_map:
        n = int(module.decompress_into(data, out_map))
        if n > max_bytes:
            raise DecompressionLimitError(f"data inflates past the limit of {max_bytes} bytes")
        return out_map[:n]


def _xerial_compress(data: Buffer) -> bytes:
    view = memoryview(data)
    parts = [XERIAL_HEADER]
    pack = _INT32.pack
    for start in range(0, len(view), XERIAL_BLOCK_BYTES):
        block = bytes(cramjam.snappy.compress_raw(view[start : start + XERIAL_BLOCK_BYTES]))
        parts.append(pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _snappy_decompress(data: Buffer, max_bytes: int | None) -> bytes:
    view = memoryview(data)
    try:
        if view[: len(XERIAL_MAGIC)] != XERIAL_MAGIC:
            return _snappy_raw_block(view, 0, max_bytes)
        if len(view) < len(XERIAL_HEADER):
            raise CompressionError("xerial snappy header truncated")
        parts: list[bytes] = []
        total = 0
        pos = len(XERIAL_HEADER)
        end = len(view)
        while pos < end:
            if end - pos < 4:
                raise CompressionError(f"xerial snappy block length truncated at {pos}")
            (length,) = _INT32.unpack_from(view, pos)
            pos += 4
            if length < 0 or pos + length > end:
                raise CompressionError(f"xerial snappy block of {length} bytes overruns the data")
            remaining = None if max_bytes is None else max_bytes - total
            block = _snappy_raw_block(view[pos : pos + length], total, remaining)
            parts.append(block)
            total += len(block)
            pos += length
        return b"".join(parts)
    finally:
        view.release()


def _snappy_raw_block(block: memoryview, already: int, max_bytes: int | None) -> bytes:
    """Decode one raw snappy block, checking its declared size before allocating."""
    try:
        declared = int(cramjam.snappy.decompress_raw_len(block))
    except cramjam.DecompressionError as e:
        raise CompressionError(f"corrupt snappy data: {e}") from e
    if max_bytes is not None and declared > max_bytes:
        raise DecompressionLimitError(
            f"snappy data inflates to {already + declared} bytes, past the limit of "
            f"{already + max_bytes}"
        )
    if declared > _SNAPPY_MAX_EXPANSION * len(block):
        raise CompressionError(f"snappy block of {len(block)} bytes claims {declared} bytes")
    try:
        return bytes(cramjam.snappy.decompress_raw(block))
    except cramjam.DecompressionError as e:
        raise CompressionError(f"corrupt snappy data: {e}") from e
