"""Walking the batches of a segment file without reading their bodies.

A segment is a sequence of record batches; the only way through it is from one batch's
length field to the next. These walkers read the file in chunks with ``pread`` and unpack
just the fields each purpose needs:

* :func:`find_batch` — the first batch whose last offset reaches an offset (fetch, index
  lookups): base offset, length, magic, last offset delta per batch.
* :func:`find_boundary` — the last batch boundary before a byte limit (``max_bytes``).
* :func:`iter_headers` — full headers, for the rarer walks (tail scan, producer-state
  replay, timestamps).
* :func:`iter_valid_batches` — whole batches with their CRC checked, for recovery.

All but the last raise InvalidBatchError on broken framing; recovery instead stops quietly
at the first bad batch, since that is where the valid log ends.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from moldau.log.slices import SegmentFile
from moldau.protocol.record_batch import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC_V2,
    BatchHeader,
    InvalidBatchError,
    compute_crc,
    read_header,
)

_HEADER_CHUNK = 8 * 1024
"""Bytes read at a time when walking batch headers (batches are skipped, not read): about
one index interval, so a lookup usually costs a single ``pread``."""
_RECOVERY_CHUNK = 8 * 1024 * 1024
"""Bytes read at a time when recovery reads whole batches to check their CRC."""
_MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD
_OFFSETS = struct.Struct(">qi4xb6xi")
"""baseOffset, batchLength, magic, lastOffsetDelta: what a walk to an offset needs."""
_LENGTH = struct.Struct(">8xi4xb")
"""batchLength, magic: what a walk to a byte limit needs."""


def iter_headers(file: SegmentFile, start: int, end: int) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` for the batches in ``[start, end)`` of ``file``.

    Reads only headers, in chunks, jumping over batch bodies. Raises InvalidBatchError at a
    batch whose framing is broken (bad magic, impossible length, overrunning ``end``).
    """
    pos = start
    chunk = b""
    chunk_start = start
    while pos < end:
        rel = pos - chunk_start
        if rel < 0 or rel + HEADER_SIZE > len(chunk):
            chunk = file.pread(min(_HEADER_CHUNK, end - pos), pos)
            chunk_start, rel = pos, 0
            if len(chunk) < HEADER_SIZE:
                raise InvalidBatchError(f"{file.path}: truncated batch header at {pos}")
        header = read_header(chunk, rel)
        if header.magic != MAGIC_V2 or header.batch_length < _MIN_BATCH_LENGTH:
            raise InvalidBatchError(f"{file.path}: invalid batch at {pos}")
        if pos + header.size > end:
            raise InvalidBatchError(f"{file.path}: batch at {pos} overruns {end}")
        yield pos, header
        pos += header.size


def find_batch(
    file: SegmentFile, start: int, end: int, offset: int
) -> tuple[int, BatchHeader] | None:
    """Position and header of the first batch in ``[start, end)`` whose last offset is ≥
    ``offset``, or None. The walk unpacks four fields per batch; only the batch found gets a
    full header. Raises InvalidBatchError at broken framing."""
    pos = start
    chunk = b""
    chunk_start = start
    unpack = _OFFSETS.unpack_from
    while pos < end:
        rel = pos - chunk_start
        if rel < 0 or rel + HEADER_SIZE > len(chunk):
            chunk = file.pread(min(_HEADER_CHUNK, end - pos), pos)
            chunk_start, rel = pos, 0
            if len(chunk) < HEADER_SIZE:
                raise InvalidBatchError(f"{file.path}: truncated batch header at {pos}")
        base_offset, batch_length, magic, last_offset_delta = unpack(chunk, rel)
        if magic != MAGIC_V2 or batch_length < _MIN_BATCH_LENGTH:
            raise InvalidBatchError(f"{file.path}: invalid batch at {pos}")
        if base_offset + last_offset_delta >= offset:
            return pos, read_header(chunk, rel)
        pos += batch_length + LOG_OVERHEAD
    return None


def find_boundary(file: SegmentFile, start: int, limit: int, target: int) -> int:
    """The greatest batch boundary ≤ ``target`` reached walking from ``start`` (a boundary)
    without passing ``limit``."""
    pos = start
    chunk = b""
    chunk_start = start
    unpack = _LENGTH.unpack_from
    while pos < limit:
        rel = pos - chunk_start
        if rel < 0 or rel + HEADER_SIZE > len(chunk):
            chunk = file.pread(min(_HEADER_CHUNK, limit - pos), pos)
            chunk_start, rel = pos, 0
            if len(chunk) < HEADER_SIZE:
                raise InvalidBatchError(f"{file.path}: truncated batch header at {pos}")
        batch_length, magic = unpack(chunk, rel)
        if magic != MAGIC_V2 or batch_length < _MIN_BATCH_LENGTH:
            raise InvalidBatchError(f"{file.path}: invalid batch at {pos}")
        following = pos + batch_length + LOG_OVERHEAD
        if following > target or following > limit:
            break
        pos = following
    return pos


def iter_valid_batches(
    file: SegmentFile, start: int, end: int, min_offset: int
) -> Iterator[tuple[int, BatchHeader]]:
    """Yield the batches of ``[start, end)`` that are whole, CRC-valid and in offset order.

    Stops silently at the first one that is not: everything from there is a torn or corrupt
    tail. ``min_offset`` is the least base offset the first batch may have.
    """
    pos = start
    chunk = b""
    chunk_start = start
    next_offset = min_offset
    while end - pos >= HEADER_SIZE:
        rel = pos - chunk_start
        if rel < 0 or rel + HEADER_SIZE > len(chunk):
            chunk = file.pread(min(_RECOVERY_CHUNK, end - pos), pos)
            chunk_start, rel = pos, 0
            if len(chunk) < HEADER_SIZE:
                return
        header = read_header(chunk, rel)
        size = header.size
        if (
            header.magic != MAGIC_V2
            or header.batch_length < _MIN_BATCH_LENGTH
            or pos + size > end
            or header.base_offset < next_offset
            or header.last_offset_delta < 0
        ):
            return
        if rel + size > len(chunk):
            chunk = file.pread(max(_RECOVERY_CHUNK, size), pos)
            chunk_start, rel = pos, 0
            if len(chunk) < size:
                return
        if compute_crc(chunk, rel, size) != header.crc:
            return
        yield pos, header
        next_offset = header.next_offset
        pos += size
