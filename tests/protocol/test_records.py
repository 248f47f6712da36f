"""Records inside v2 batches: round trips, cross-checks against kafka-python's independent
implementation (both directions, every codec), recompression and malformed input."""

from __future__ import annotations

import contextlib
import struct
import time
import warnings

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moldau.protocol.compression import DecompressionLimitError, compress
from moldau.protocol.record_batch import (
    CODEC_GZIP,
    CODEC_LZ4,
    CODEC_NONE,
    CODEC_SNAPPY,
    CODEC_ZSTD,
    CONTROL_MASK,
    HEADER_SIZE,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_MASK,
    crc_is_valid,
    read_header,
)
from moldau.protocol.records import (
    CONTROL_ABORT,
    CONTROL_COMMIT,
    InvalidRecordError,
    NewRecord,
    Record,
    build_batch,
    count_and_check_records,
    decode_records,
    encode_records,
    end_txn_marker,
    recompress_batch,
)

with warnings.catch_warnings():
    # kafka-python 3 loads its JSON schemas through a deprecated importlib API at import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import codec as kafka_codec
    from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

ALL_CODECS = [CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD]
KAFKA_PYTHON_HAS = {
    CODEC_NONE: True,
    CODEC_GZIP: kafka_codec.has_gzip(),
    CODEC_SNAPPY: kafka_codec.has_snappy(),
    CODEC_LZ4: kafka_codec.has_lz4(),
    CODEC_ZSTD: kafka_codec.has_zstd(),
}


def needs_kafka_python_codec(codec: int) -> None:
    if not KAFKA_PYTHON_HAS[codec]:
        pytest.skip(f"kafka-python lacks the library for codec {codec}")


headers_st = st.lists(
    st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=16)), max_size=3
).map(tuple)
new_record_st = st.builds(
    NewRecord,
    key=st.none() | st.binary(max_size=40),
    value=st.none() | st.binary(max_size=300),
    headers=headers_st,
    timestamp_ms=st.none() | st.integers(min_value=0, max_value=2**41),
)


def sealed(
    records: bytes,
    count: int,
    *,
    attributes: int = 0,
    last_offset_delta: int | None = None,
    base_timestamp: int = 1_000,
) -> bytes:
    """A batch around a hand-made records section, packed here independently of records.py."""
    last = count - 1 if last_offset_delta is None else last_offset_delta
    covered = struct.pack(
        ">hiqqqhii", attributes, last, base_timestamp, base_timestamp, -1, -1, -1, count
    )
    body = covered + records
    crc = crc32c.crc32c(body)
    return struct.pack(">qiibI", 0, len(body) + 9, -1, 2, crc) + body


def varint(value: int) -> bytes:
    v = (value << 1) ^ (value >> 63)
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def raw_record(
    offset_delta: int,
    key: bytes | None = b"k",
    value: bytes | None = b"v",
    *,
    headers: bytes = b"\x00",
    length_adjust: int = 0,
    key_length: int | None = None,
) -> bytes:
    body = b"\x00" + varint(0) + varint(offset_delta)
    if key_length is not None:
        body += varint(key_length) + (key or b"")
    else:
        body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(-1) if value is None else varint(len(value)) + value
    body += headers
    return varint(len(body) + length_adjust) + body


def decode(batch: bytes, **kwargs: object) -> list[Record]:
    return decode_records(batch, 0, read_header(batch), **kwargs)  # type: ignore[arg-type]


def check(batch: bytes) -> None:
    count_and_check_records(batch, 0, read_header(batch))


# --- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("codec", ALL_CODECS)
@given(records=st.lists(new_record_st, min_size=1, max_size=20))
@settings(max_examples=30, deadline=None)
def test_build_then_decode(codec: int, records: list[NewRecord]) -> None:
    batch = build_batch(records, compression=codec, base_offset=100, base_timestamp=5_000)
    header = read_header(batch)
    assert header.size == len(batch)
    assert crc_is_valid(batch, 0, header)
    assert header.compression == codec
    assert header.records_count == len(records)
    assert header.last_offset_delta == len(records) - 1
    decoded = decode_records(batch, 0, header)
    count_and_check_records(batch, 0, header)
    timestamps = [5_000 if r.timestamp_ms is None else r.timestamp_ms for r in records]
    assert header.max_timestamp == max(timestamps)
    for i, (new, got) in enumerate(zip(records, decoded, strict=True)):
        assert got.offset(header) == 100 + i
        assert got.timestamp(header) == timestamps[i]
        assert (got.key, got.value, got.headers) == (new.key, new.value, tuple(new.headers))


@given(records=st.lists(new_record_st, max_size=10))
@settings(max_examples=50, deadline=None)
def test_encode_records_round_trip(records: list[NewRecord]) -> None:
    originals = [
        Record(i, (r.timestamp_ms or 0) - 2**40, r.key, r.value, tuple(r.headers))
        for i, r in enumerate(records)
    ]
    section = encode_records(originals)
    batch = sealed(section, len(originals))
    assert decode(batch) == originals


def test_extreme_varints_round_trip() -> None:
    originals = [
        Record(0, -(2**63), None, b"", ()),
        Record(1, 2**63 - 1, b"", None, (("", b""),)),
    ]
    assert decode(sealed(encode_records(originals), 2)) == originals


def test_non_utf8_header_key_round_trips_byte_for_byte() -> None:
    raw = raw_record(0, headers=varint(1) + varint(2) + b"\xff\xfe" + varint(-1))
    batch = sealed(raw, 1)
    (record,) = decode(batch)
    assert record.headers[0][0].encode("utf-8", "surrogateescape") == b"\xff\xfe"
    assert encode_records([record]) == raw


def test_default_timestamps() -> None:
    before = time.time_ns() // 1_000_000
    batch = build_batch([NewRecord(b"a", b"b"), NewRecord(b"c", b"d", timestamp_ms=7)])
    after = time.time_ns() // 1_000_000
    header = read_header(batch)
    first, second = decode_records(batch, 0, header)
    assert before <= header.base_timestamp <= after  # the first record's clock time
    assert first.timestamp(header) == header.base_timestamp
    assert second.timestamp(header) == 7  # a negative delta
    assert header.max_timestamp == header.base_timestamp


def test_build_batch_attributes_and_producer_fields() -> None:
    batch = build_batch(
        [NewRecord(b"k", b"v", timestamp_ms=5)],
        compression=CODEC_LZ4,
        base_timestamp=9_000,
        producer_id=42,
        producer_epoch=3,
        base_sequence=17,
        partition_leader_epoch=8,
        is_transactional=True,
        is_control=True,
        log_append_time=True,
    )
    h = read_header(batch)
    assert h.compression == CODEC_LZ4
    assert h.attributes & (TIMESTAMP_TYPE_MASK | TRANSACTIONAL_MASK | CONTROL_MASK) == 0x38
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (42, 3, 17)
    assert h.partition_leader_epoch == 8
    (record,) = decode_records(batch, 0, h)
    assert h.max_timestamp == 9_000
    assert record.timestamp(h) == 9_000  # LogAppendTime overrides the producer's 5


def test_empty_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        build_batch([])


# --- cross-checks with kafka-python ----------------------------------------------------


@pytest.mark.parametrize("codec", ALL_CODECS)
@given(records=st.lists(new_record_st, min_size=1, max_size=15))
@settings(max_examples=20, deadline=None)
def test_ours_decode_with_kafka_python(codec: int, records: list[NewRecord]) -> None:
    needs_kafka_python_codec(codec)
    batch = build_batch(
        records,
        compression=codec,
        base_offset=7,
        base_timestamp=1_000,
        producer_id=9,
        producer_epoch=1,
        base_sequence=4,
    )
    theirs = DefaultRecordBatch(bytearray(batch))
    assert theirs.validate_crc()
    assert theirs.compression_type == codec
    assert (theirs.producer_id, theirs.producer_epoch, theirs.base_sequence) == (9, 1, 4)
    got = [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in theirs]
    expected = [
        (
            7 + i,
            1_000 if r.timestamp_ms is None else r.timestamp_ms,
            r.key,
            r.value,
            list(r.headers),
        )
        for i, r in enumerate(records)
    ]
    assert got == expected


@pytest.mark.parametrize("codec", ALL_CODECS)
@given(records=st.lists(new_record_st, min_size=1, max_size=15))
@settings(max_examples=20, deadline=None)
def test_kafka_python_batches_decode_with_ours(codec: int, records: list[NewRecord]) -> None:
    needs_kafka_python_codec(codec)
    builder = DefaultRecordBatchBuilder(2, codec, False, 11, 2, 30, 1 << 22)
    for i, r in enumerate(records):
        builder.append(i, r.timestamp_ms or 1, r.key, r.value, list(r.headers))
    batch = bytes(builder.build())
    header = read_header(batch)
    assert crc_is_valid(batch, 0, header)
    # kafka-python sends uncompressed when compression does not pay off.
    assert header.compression in (codec, CODEC_NONE)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (11, 2, 30)
    count_and_check_records(batch, 0, header)
    decoded = decode_records(batch, 0, header)
    got = [(r.offset(header), r.timestamp(header), r.key, r.value, r.headers) for r in decoded]
    expected = [
        (i, r.timestamp_ms or 1, r.key, r.value, tuple(r.headers)) for i, r in enumerate(records)
    ]
    assert got == expected


@pytest.mark.parametrize("codec", ALL_CODECS)
def test_kafka_python_compressed_batch_really_compressed(codec: int) -> None:
    """The property tests may fall back to uncompressed; this one surely compresses."""
    needs_kafka_python_codec(codec)
    builder = DefaultRecordBatchBuilder(2, codec, False, -1, -1, -1, 1 << 22)
    for i in range(200):
        builder.append(i, 1_000 + i, b"key-%d" % (i % 5), b"value " * 40, [("h", b"x")])
    batch = bytes(builder.build())
    header = read_header(batch)
    assert header.compression == codec
    decoded = decode_records(batch, 0, header)
    assert [r.key for r in decoded] == [b"key-%d" % (i % 5) for i in range(200)]
    assert decoded[-1].timestamp(header) == 1_199


@pytest.mark.parametrize("commit", [True, False])
def test_end_txn_marker_reads_as_control_record(commit: bool) -> None:
    batch = build_batch(
        [end_txn_marker(commit, coordinator_epoch=5)],
        producer_id=3,
        producer_epoch=0,
        is_transactional=True,
        is_control=True,
    )
    (record,) = DefaultRecordBatch(bytearray(batch))
    assert record.type == (CONTROL_COMMIT if commit else CONTROL_ABORT)
    assert record.commit is commit
    assert record.abort is not commit
    (ours,) = decode(batch)
    assert ours.value == struct.pack(">hi", 0, 5)


# --- recompression ---------------------------------------------------------------------


@pytest.mark.parametrize("source", ALL_CODECS)
@pytest.mark.parametrize("target", ALL_CODECS)
def test_recompress_keeps_everything_but_the_codec(source: int, target: int) -> None:
    records = [
        NewRecord(b"key%d" % i, b"payload " * 30, (("trace", b"%d" % i),), 1_000 + i)
        for i in range(50)
    ]
    batch = build_batch(
        records,
        compression=source,
        base_offset=500,
        producer_id=77,
        producer_epoch=4,
        base_sequence=90,
        partition_leader_epoch=6,
        is_transactional=True,
        log_append_time=True,
    )
    before = read_header(batch)
    out = recompress_batch(batch, 0, before, target)
    after = read_header(out)
    assert after.compression == target
    assert crc_is_valid(out, 0, after)
    assert after.size == len(out)
    assert after._replace(batch_length=0, crc=0, attributes=0) == before._replace(
        batch_length=0, crc=0, attributes=0
    )
    assert after.attributes & ~0x07 == before.attributes & ~0x07
    assert decode_records(out, 0, after) == decode_records(batch, 0, before)
    if KAFKA_PYTHON_HAS[target]:
        theirs = DefaultRecordBatch(bytearray(out))
        assert theirs.validate_crc()
        assert [r.value for r in theirs] == [r.value for r in records]


def test_recompress_batch_in_a_larger_buffer() -> None:
    first = build_batch([NewRecord(b"a", b"1")], compression=CODEC_GZIP)
    second = build_batch([NewRecord(b"b", b"2" * 100)] * 3, compression=CODEC_SNAPPY)
    buf = memoryview(bytearray(first + second))
    out = recompress_batch(buf, len(first), read_header(buf, len(first)), CODEC_ZSTD)
    assert [r.value for r in decode(out)] == [b"2" * 100] * 3


def test_recompress_validates_and_bounds() -> None:
    bad = sealed(raw_record(0) + raw_record(2), 2, last_offset_delta=1)
    with pytest.raises(InvalidRecordError):
        recompress_batch(bad, 0, read_header(bad), CODEC_GZIP)
    big = build_batch([NewRecord(None, bytes(1 << 20))], compression=CODEC_ZSTD)
    with pytest.raises(DecompressionLimitError):
        recompress_batch(big, 0, read_header(big), CODEC_GZIP, max_bytes=1 << 16)


# --- malformed records -----------------------------------------------------------------

VALID = raw_record(0) + raw_record(1)

MALFORMED = {  # name: (batch, what the error says)
    "fewer records than declared": (sealed(VALID, 3, last_offset_delta=2), "only 2 of 3"),
    "more records than declared": (sealed(VALID + raw_record(2), 2), "trail"),
    "trailing bytes": (sealed(VALID + b"\x00", 2), "1 bytes trail"),
    "offset gap": (sealed(raw_record(0) + raw_record(2), 2), "offset delta 2"),
    "offset not from zero": (sealed(raw_record(1) + raw_record(2), 2), "offset delta 1"),
    "duplicate offset": (sealed(raw_record(0) + raw_record(0), 2), "record 1 has offset delta 0"),
    "lastOffsetDelta mismatch": (sealed(VALID, 2, last_offset_delta=5), "lastOffsetDelta 5"),
    "negative count": (sealed(b"", -1, last_offset_delta=0), "negative record count"),
    "record longer than batch": (sealed(raw_record(0, length_adjust=5), 1), "record 0"),
    "record shorter than fields": (
        sealed(raw_record(0, length_adjust=-1) + b"\x00", 1),
        "declares 7 bytes|trail",
    ),
    "negative record length": (sealed(varint(-3) + b"\x00" * 6, 1), "length -3"),
    "varint overrun": (sealed(raw_record(0) + b"\x80\x80", 2), "truncated"),
    "varint too long": (sealed(b"\xff" * 11 + b"\x00", 1), "longer than 10 bytes"),
    "short record": (sealed(varint(2) + b"\x00\x00", 1), "truncated|length 2"),
}
MALFORMED_DEEP = {  # caught by decode_records only: count_and_check skips these fields
    "key length -2": (sealed(raw_record(0, key=b"", key_length=-2), 1), "key length -2"),
    "key overruns record": (sealed(raw_record(0, key=b"k", key_length=50), 1), "truncated"),
    "null header key": (
        sealed(raw_record(0, headers=varint(1) + varint(-1) + varint(-1)), 1),
        "header key of length -1",
    ),
    "negative header count": (sealed(raw_record(0, headers=varint(-2)), 1), "-2 headers"),
    "huge header count": (sealed(raw_record(0, headers=varint(2**31)), 1), "claims"),
    "header value length -3": (
        sealed(raw_record(0, headers=varint(1) + varint(1) + b"h" + varint(-3)), 1),
        "header value of length -3",
    ),
    "value length -5": (
        sealed(raw_record(0, value=None)[:-2] + varint(-5) + b"\x00", 1),
        "value length -5",
    ),
}


def test_valid_fixture_is_valid() -> None:
    batch = sealed(VALID, 2)
    check(batch)
    assert [r.key for r in decode(batch)] == [b"k", b"k"]


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_is_rejected_by_both(name: str) -> None:
    batch, says = MALFORMED[name]
    with pytest.raises(InvalidRecordError, match=says):
        decode(batch)
    with pytest.raises(InvalidRecordError, match=says):
        check(batch)


@pytest.mark.parametrize("name", sorted(MALFORMED_DEEP))
def test_malformed_fields_rejected_by_decode(name: str) -> None:
    batch, says = MALFORMED_DEEP[name]
    with pytest.raises(InvalidRecordError, match=says):
        decode(batch)


@pytest.mark.parametrize("codec", [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD])
@pytest.mark.parametrize("name", ["trailing bytes", "offset gap", "fewer records than declared"])
def test_malformed_inside_compressed_batches(codec: int, name: str) -> None:
    plain, says = MALFORMED[name]
    header = read_header(plain)
    batch = sealed(
        compress(codec, plain[HEADER_SIZE:]),
        header.records_count,
        attributes=codec,
        last_offset_delta=header.last_offset_delta,
    )
    with pytest.raises(InvalidRecordError, match=says):
        decode(batch)
    with pytest.raises(InvalidRecordError, match=says):
        check(batch)


@pytest.mark.parametrize("codec", [CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD])
def test_corrupt_compressed_payload_is_invalid_record(codec: int) -> None:
    batch = sealed(b"\x01\x02\x03 not compressed at all", 1, attributes=codec)
    with pytest.raises(InvalidRecordError):
        decode(batch)
    with pytest.raises(InvalidRecordError):
        check(batch)


def test_decompression_bomb_is_refused() -> None:
    bomb = build_batch([NewRecord(None, bytes(32 << 20))], compression=CODEC_ZSTD)
    assert len(bomb) < 1 << 16
    with pytest.raises(DecompressionLimitError):
        decode(bomb, max_bytes=1 << 20)
    with pytest.raises(DecompressionLimitError):
        count_and_check_records(bomb, 0, read_header(bomb), max_bytes=1 << 20)


def test_truncated_batch_buffer() -> None:
    batch = sealed(VALID, 2)
    cut = batch[:-3]
    header = read_header(cut)
    with pytest.raises(InvalidRecordError, match="truncated"):
        decode_records(cut, 0, header)
    with pytest.raises(InvalidRecordError, match="truncated"):
        count_and_check_records(cut, 0, header)


def test_check_walks_in_place_within_a_larger_buffer() -> None:
    """Bytes after the batch belong to the next batch, not to this one's records."""
    good = sealed(VALID, 2)
    fewer = sealed(VALID, 3, last_offset_delta=2)
    buf = bytearray(good + fewer + good)
    count_and_check_records(buf, 0, read_header(buf))
    with pytest.raises(InvalidRecordError):
        count_and_check_records(buf, len(good), read_header(buf, len(good)))
    count_and_check_records(memoryview(buf), 2 * len(good), read_header(buf, 2 * len(good)))


def test_compacted_batches_allow_offset_gaps() -> None:
    """The cleaner drops records but keeps offset deltas: readers pass contiguous_offsets=False."""
    batch = sealed(raw_record(0) + raw_record(3), 2, last_offset_delta=4)
    with pytest.raises(InvalidRecordError):
        decode(batch)
    assert [r.offset_delta for r in decode(batch, contiguous_offsets=False)] == [0, 3]
    count_and_check_records(batch, 0, read_header(batch), contiguous_offsets=False)
    for bad in (
        sealed(raw_record(3) + raw_record(1), 2, last_offset_delta=4),  # decreasing
        sealed(raw_record(0) + raw_record(6), 2, last_offset_delta=4),  # past lastOffsetDelta
    ):
        with pytest.raises(InvalidRecordError):
            decode(bad, contiguous_offsets=False)
        with pytest.raises(InvalidRecordError):
            count_and_check_records(bad, 0, read_header(bad), contiguous_offsets=False)


@given(data=st.binary(max_size=200), count=st.integers(min_value=0, max_value=5))
@settings(max_examples=200, deadline=None)
def test_garbage_records_raise_only_invalid_record(data: bytes, count: int) -> None:
    batch = sealed(data, count)
    for run in (decode, check):
        with contextlib.suppress(InvalidRecordError):
            run(batch)


def test_multi_byte_varints_in_the_walk() -> None:
    """Offset deltas past 63, timestamp deltas past ±63 and records past 8 KiB take the
    walk's 2- and 3-byte varint paths."""
    records = [NewRecord(b"k", b"v" * (i % 7), timestamp_ms=10_000 - 37 * i) for i in range(300)]
    records[250] = NewRecord(b"big", bytes(20_000), timestamp_ms=2**40)
    batch = build_batch(records, base_timestamp=10_000)
    check(batch)
    assert len(decode(batch)) == 300
    gap = b"".join(raw_record(i) for i in range(200)) + raw_record(201)
    for batch, says in (
        (sealed(gap, 201), "record 200 has offset delta 201"),
        (sealed(gap[:-1], 201), "record 200"),
    ):
        with pytest.raises(InvalidRecordError, match=says):
            check(batch)
        with pytest.raises(InvalidRecordError, match=says):
            decode(batch)
