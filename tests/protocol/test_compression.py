"""Kafka's four codecs: round trips, interop with independent implementations (stdlib gzip,
python-lz4, zstandard, kafka-python's xerial framing), corrupt input and decompression bombs."""

from __future__ import annotations

import gzip
import os
import struct
import warnings

import cramjam
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moldau.protocol.compression import (
    XERIAL_BLOCK_BYTES,
    XERIAL_HEADER,
    XERIAL_MAGIC,
    CompressionError,
    DecompressionLimitError,
    compress,
    decompress,
)
from moldau.protocol.record_batch import (
    CODEC_GZIP,
    CODEC_LZ4,
    CODEC_NONE,
    CODEC_SNAPPY,
    CODEC_ZSTD,
)

with warnings.catch_warnings():
    # kafka-python 3 loads its JSON schemas through a deprecated importlib API at import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import codec as kafka_codec

CODECS = [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD]
ALL_CODECS = [CODEC_NONE, *CODECS]
BOMB_BYTES = 64 * 1024 * 1024


def mixed_payload(size: int) -> bytes:
    """Half random, half repetitive: compressible, but not trivially."""
    chunk = os.urandom(64) + b"kafka" * 13
    return (chunk * (size // len(chunk) + 1))[:size]


@pytest.fixture(scope="module")
def bombs() -> dict[int, bytes]:
    """64 MiB of zeros per codec, each a few KiB to a few MiB compressed."""
    zeros = bytes(BOMB_BYTES)
    return {codec: compress(codec, zeros) for codec in CODECS}


# --- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("codec", ALL_CODECS)
@given(data=st.binary(max_size=4096))
@settings(max_examples=50, deadline=None)
def test_round_trip(codec: int, data: bytes) -> None:
    assert decompress(codec, compress(codec, data)) == data


@pytest.mark.parametrize("codec", ALL_CODECS)
@pytest.mark.parametrize("size", [0, 1, XERIAL_BLOCK_BYTES, XERIAL_BLOCK_BYTES + 1, 300_000])
def test_round_trip_sizes_and_buffer_types(codec: int, size: int) -> None:
    data = mixed_payload(size)
    compressed = compress(codec, bytearray(data))
    assert compress(codec, memoryview(data)) == compressed
    assert decompress(codec, compressed) == data
    assert decompress(codec, memoryview(b"xx" + compressed)[2:]) == data
    assert decompress(codec, bytearray(compressed), max_bytes=size) == data


@pytest.mark.parametrize("codec", CODECS)
def test_compression_shrinks_repetitive_data(codec: int) -> None:
    data = b"the same record again " * 2000
    assert len(compress(codec, data)) < len(data) // 10


@pytest.mark.parametrize("codec", [CODEC_GZIP, CODEC_LZ4, CODEC_ZSTD])
def test_levels_are_honoured(codec: int) -> None:
    data = mixed_payload(200_000)
    for level in (1, 9):
        assert decompress(codec, compress(codec, data, level=level)) == data


def test_unknown_codec_is_refused() -> None:
    for codec in (5, 6, 7):
        with pytest.raises(CompressionError, match="unknown"):
            decompress(codec, b"abc")
        with pytest.raises(CompressionError, match="unknown"):
            compress(codec, b"abc")


# --- gzip ------------------------------------------------------------------------------


def test_gzip_interop_with_stdlib() -> None:
    data = mixed_payload(100_000)
    assert gzip.decompress(compress(CODEC_GZIP, data)) == data
    assert decompress(CODEC_GZIP, gzip.compress(data)) == data


def test_gzip_concatenated_members() -> None:
    assert decompress(CODEC_GZIP, gzip.compress(b"abc") + gzip.compress(b"def")) == b"abcdef"


# --- snappy ----------------------------------------------------------------------------


def test_snappy_writes_xerial_framing() -> None:
    data = mixed_payload(3 * XERIAL_BLOCK_BYTES + 5)
    out = compress(CODEC_SNAPPY, data)
    assert out.startswith(XERIAL_HEADER)
    # Walk the blocks by hand: four of them, each a raw snappy block of <= 32 KiB.
    pos, blocks = len(XERIAL_HEADER), []
    while pos < len(out):
        (length,) = struct.unpack_from(">i", out, pos)
        blocks.append(bytes(cramjam.snappy.decompress_raw(out[pos + 4 : pos + 4 + length])))
        pos += 4 + length
    assert [len(b) for b in blocks] == [XERIAL_BLOCK_BYTES] * 3 + [5]
    assert b"".join(blocks) == data


def test_snappy_reads_raw_blocks() -> None:
    """librdkafka may write one plain raw snappy block, without xerial framing."""
    data = mixed_payload(100_000)
    raw = bytes(cramjam.snappy.compress_raw(data))
    assert not raw.startswith(XERIAL_MAGIC)
    assert decompress(CODEC_SNAPPY, raw) == data
    assert decompress(CODEC_SNAPPY, raw, max_bytes=len(data)) == data


def test_snappy_interop_with_kafka_python_xerial() -> None:
    if not kafka_codec.has_snappy():
        pytest.skip("python-snappy not installed")
    data = mixed_payload(100_000)
    theirs = kafka_codec.snappy_encode(data, xerial_compatible=True, xerial_blocksize=4096)
    assert theirs.startswith(XERIAL_MAGIC)
    assert decompress(CODEC_SNAPPY, theirs) == data
    assert kafka_codec.snappy_decode(compress(CODEC_SNAPPY, data)) == data


def test_snappy_xerial_header_only_is_empty() -> None:
    assert decompress(CODEC_SNAPPY, XERIAL_HEADER) == b""


@pytest.mark.parametrize(
    "tail",
    [
        b"\x00\x00",  # truncated block length
        struct.pack(">i", 100) + b"short",  # block overruns the data
        struct.pack(">i", -5),  # negative block length
        struct.pack(">i", 3) + b"\xff\xff\xff",  # garbage block
    ],
)
def test_snappy_corrupt_xerial(tail: bytes) -> None:
    with pytest.raises(CompressionError):
        decompress(CODEC_SNAPPY, XERIAL_HEADER + tail)


def test_snappy_truncated_xerial_header() -> None:
    with pytest.raises(CompressionError, match="header"):
        decompress(CODEC_SNAPPY, XERIAL_HEADER[:12])


def test_snappy_lying_length_is_refused_before_allocating() -> None:
    # A raw block declaring 2**31 bytes of output with a 2-byte body.
    lying = bytes([0x80, 0x80, 0x80, 0x80, 0x08]) + b"\x00a"
    with pytest.raises(CompressionError, match="claims"):
        decompress(CODEC_SNAPPY, lying)
    with pytest.raises(DecompressionLimitError):
        decompress(CODEC_SNAPPY, lying, max_bytes=1 << 20)


# --- lz4 -------------------------------------------------------------------------------


def test_lz4_writes_independent_blocks() -> None:
    """Java's reader decompresses every block alone: linked blocks would break it."""
    out = compress(CODEC_LZ4, mixed_payload(1_000_000))
    assert out[:4] == b"\x04\x22\x4d\x18"  # frame magic
    flg = out[4]
    assert flg >> 6 == 0b01  # version
    assert flg & 0x20  # block independence
    assert not flg & 0x01  # no dictionary id


def test_lz4_interop_with_python_lz4() -> None:
    lz4_frame = pytest.importorskip("lz4.frame")
    data = mixed_payload(500_000)
    assert lz4_frame.decompress(compress(CODEC_LZ4, data)) == data
    for linked in (False, True):
        for store_size in (False, True):
            theirs = lz4_frame.compress(
                data, block_linked=linked, store_size=store_size, content_checksum=True
            )
            assert decompress(CODEC_LZ4, theirs) == data
            assert decompress(CODEC_LZ4, theirs, max_bytes=len(data)) == data


# --- zstd ------------------------------------------------------------------------------


def test_zstd_interop_with_zstandard() -> None:
    zstandard = pytest.importorskip("zstandard")
    data = mixed_payload(500_000)
    assert zstandard.ZstdDecompressor().decompress(compress(CODEC_ZSTD, data)) == data
    no_size = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    assert decompress(CODEC_ZSTD, no_size) == data
    streamed = zstandard.ZstdCompressor().compressobj()
    framed = streamed.compress(data) + streamed.flush()
    assert decompress(CODEC_ZSTD, framed) == data
    assert decompress(CODEC_ZSTD, framed, max_bytes=len(data)) == data


def test_zstd_lying_content_size_is_an_error() -> None:
    honest = compress(CODEC_ZSTD, b"x" * 1000)
    assert honest[4] == 0x60  # single segment, 2-byte content size
    forged = honest[:4] + bytes([0xE0]) + struct.pack("<Q", 1 << 40) + honest[7:]
    with pytest.raises(CompressionError):
        decompress(CODEC_ZSTD, forged)
    with pytest.raises(CompressionError):
        decompress(CODEC_ZSTD, forged, max_bytes=1 << 20)


# --- corrupt input and bombs -----------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_corrupt_input_raises_compression_error(codec: int) -> None:
    good = compress(codec, mixed_payload(50_000))
    for bad in (b"", b"garbage" * 10, good[: len(good) // 2]):
        for max_bytes in (None, 1 << 20):
            with pytest.raises(CompressionError) as info:
                decompress(codec, bad, max_bytes=max_bytes)
            assert not isinstance(info.value, DecompressionLimitError)


@pytest.mark.parametrize("codec", CODECS)
@given(noise=st.binary(max_size=300), flip=st.integers(min_value=0))
@settings(max_examples=40, deadline=None)
def test_arbitrary_bytes_never_escape_as_other_errors(codec: int, noise: bytes, flip: int) -> None:
    """Whatever a client sends, decompress returns bytes or raises CompressionError."""
    good = bytearray(compress(codec, b"record " * 50))
    good[flip % len(good)] ^= 0x5A
    for candidate in (noise, bytes(good)):
        try:
            out = decompress(codec, candidate, max_bytes=1 << 16)
        except CompressionError:
            continue
        assert len(out) <= 1 << 16


@pytest.mark.parametrize("codec", CODECS)
def test_bomb_is_refused(codec: int, bombs: dict[int, bytes]) -> None:
    bomb = bombs[codec]
    assert len(bomb) < BOMB_BYTES // 10
    with pytest.raises(DecompressionLimitError):
        decompress(codec, bomb, max_bytes=1 << 20)


@pytest.mark.parametrize("codec", ALL_CODECS)
def test_limit_is_inclusive(codec: int) -> None:
    data = mixed_payload(10_000)
    compressed = compress(codec, data)
    assert decompress(codec, compressed, max_bytes=len(data)) == data
    with pytest.raises(DecompressionLimitError):
        decompress(codec, compressed, max_bytes=len(data) - 1)


@pytest.mark.parametrize("codec", ALL_CODECS)
def test_zero_limit_admits_only_empty_output(codec: int) -> None:
    assert decompress(codec, compress(codec, b""), max_bytes=0) == b""
    with pytest.raises(DecompressionLimitError):
        decompress(codec, compress(codec, b"x"), max_bytes=0)


def test_snappy_limit_counts_all_xerial_blocks() -> None:
    data = mixed_payload(5 * XERIAL_BLOCK_BYTES)
    with pytest.raises(DecompressionLimitError):
        decompress(CODEC_SNAPPY, compress(CODEC_SNAPPY, data), max_bytes=len(data) - 1)
