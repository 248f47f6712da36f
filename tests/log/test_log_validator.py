"""LogValidator: each of Kafka's produce rules, with Kafka's error code, and the rewrites."""

from __future__ import annotations

import struct

import pytest
from kio.schema.errors import ErrorCode
from log_helpers import NOW_MS, OpenLog, make_batch

from moldau.log.config import LogConfig
from moldau.log.errors import LogAppendError
from moldau.log.validator import LogValidator
from moldau.protocol.record_batch import (
    CODEC_GZIP,
    CODEC_NONE,
    CONTROL_MASK,
    TIMESTAMP_TYPE_MASK,
    compute_crc,
    crc_is_valid,
    read_header,
)
from moldau.protocol.records import decode_records


def reseal(buf: bytearray) -> bytearray:
    """Recompute the CRC after a test patched a covered field."""
    struct.pack_into(">I", buf, 17, compute_crc(buf, 0, len(buf)))
    return buf


def patch(buf: bytearray, fmt: str, position: int, value: int) -> bytearray:
    struct.pack_into(fmt, buf, position, value)
    return reseal(buf)


def error_of(records: bytearray, config: LogConfig | None = None, now_ms: int = NOW_MS) -> int:
    with pytest.raises(LogAppendError) as info:
        LogValidator(config or LogConfig()).validate(records, now_ms=now_ms)
    return info.value.error_code


def test_a_valid_batch_passes_unchanged() -> None:
    batch = make_batch(3)
    original = bytes(batch)
    result = LogValidator(LogConfig()).validate(batch, now_ms=NOW_MS)
    assert bytes(result.buffer) == original
    assert result.buffer is batch  # patched in place later, never copied
    assert result.log_append_time_ms == -1
    assert result.header.records_count == 3


@pytest.mark.parametrize(
    ("records", "code"),
    [
        (bytearray(), ErrorCode.invalid_record),
        (make_batch(1) + make_batch(1), ErrorCode.invalid_record),
        (make_batch(1)[:-3], ErrorCode.corrupt_message),
        (make_batch(1)[:40], ErrorCode.corrupt_message),
        (patch(make_batch(1), ">b", 16, 1), ErrorCode.unsupported_for_message_format),
        (patch(make_batch(1), ">q", 0, 5), ErrorCode.invalid_record),
        (patch(make_batch(1), ">h", 21, CONTROL_MASK), ErrorCode.invalid_record),
        (patch(make_batch(2), ">i", 57, 3), ErrorCode.invalid_record),  # count mismatch
        (patch(make_batch(2), ">i", 23, 5), ErrorCode.invalid_record),  # lastOffsetDelta
        (make_batch(1, producer_id=9, producer_epoch=0), ErrorCode.invalid_record),  # no seq
    ],
    ids=[
        "empty",
        "two-batches",
        "truncated-batch",
        "truncated-header",
        "magic-1",
        "base-offset",
        "control",
        "count",
        "last-offset-delta",
        "producer-without-sequence",
    ],
)
def test_refused_batches(records: bytearray, code: ErrorCode) -> None:
    assert error_of(records) == code


def test_corrupt_crc() -> None:
    batch = make_batch(2)
    batch[-1] ^= 0xFF
    assert error_of(batch) == ErrorCode.corrupt_message


def test_message_too_large() -> None:
    batch = make_batch(1, value_size=500)
    assert error_of(batch, LogConfig(max_message_bytes=len(batch) - 1)) == (
        ErrorCode.message_too_large
    )
    LogValidator(LogConfig(max_message_bytes=len(batch))).validate(batch, now_ms=NOW_MS)


def test_timestamps_outside_the_allowed_window() -> None:
    config = LogConfig(message_timestamp_before_max_ms=1000, message_timestamp_after_max_ms=500)
    old = make_batch(1, timestamp_ms=NOW_MS - 1001)
    future = make_batch(1, timestamp_ms=NOW_MS + 501)
    assert error_of(old, config) == ErrorCode.invalid_timestamp
    assert error_of(future, config) == ErrorCode.invalid_timestamp
    validator = LogValidator(config)
    validator.validate(make_batch(1, timestamp_ms=NOW_MS - 1000), now_ms=NOW_MS)
    validator.validate(make_batch(1, timestamp_ms=NOW_MS + 500), now_ms=NOW_MS)


def test_log_append_time_topics_ignore_producer_timestamps() -> None:
    config = LogConfig(message_timestamp_type="LogAppendTime", message_timestamp_before_max_ms=1000)
    batch = make_batch(2, timestamp_ms=0)  # far too old for CreateTime, fine here
    result = LogValidator(config).validate(batch, now_ms=NOW_MS)
    assert result.log_append_time_ms == NOW_MS
    header = read_header(result.buffer)
    assert header.is_log_append_time
    assert header.max_timestamp == NOW_MS
    assert crc_is_valid(result.buffer, 0, header)


def test_create_time_topic_clears_a_client_log_append_time_flag() -> None:
    batch = make_batch(1)
    patch(batch, ">h", 21, read_header(batch).attributes | TIMESTAMP_TYPE_MASK)
    result = LogValidator(LogConfig()).validate(batch, now_ms=NOW_MS)
    assert not result.header.is_log_append_time
    assert crc_is_valid(result.buffer, 0, result.header)


def test_compacted_topics_need_keys() -> None:
    config = LogConfig(cleanup_policy="compact")
    assert error_of(make_batch(2, keys=[b"k", None]), config) == ErrorCode.invalid_record
    assert error_of(make_batch(2, keys=[b"k", None], compression=CODEC_GZIP), config) == (
        ErrorCode.invalid_record
    )
    LogValidator(config).validate(make_batch(2, keys=[b"a", b"b"]), now_ms=NOW_MS)
    # delete-only topics do not care
    LogValidator(LogConfig()).validate(make_batch(2, keys=[None, None]), now_ms=NOW_MS)


def test_topic_compression_recompresses() -> None:
    batch = make_batch(5, value_size=200)
    result = LogValidator(LogConfig(compression_type="gzip")).validate(batch, now_ms=NOW_MS)
    header = result.header
    assert header.compression == CODEC_GZIP
    assert crc_is_valid(result.buffer, 0, header)
    assert header.size < len(batch)
    values = [r.value for r in decode_records(result.buffer, 0, header)]
    assert values == [bytes([i]) * 200 for i in range(5)]


def test_uncompressed_topic_decompresses_and_producer_keeps_codec() -> None:
    batch = make_batch(3, compression=CODEC_GZIP)
    plain = LogValidator(LogConfig(compression_type="uncompressed")).validate(
        bytearray(batch), now_ms=NOW_MS
    )
    assert plain.header.compression == CODEC_NONE
    kept = LogValidator(LogConfig(compression_type="producer")).validate(batch, now_ms=NOW_MS)
    assert kept.header.compression == CODEC_GZIP
    same = LogValidator(LogConfig(compression_type="gzip")).validate(batch, now_ms=NOW_MS)
    assert same.buffer is batch  # same codec: no re-encoding


def test_read_only_input_is_copied() -> None:
    batch = bytes(make_batch(1))
    result = LogValidator(LogConfig()).validate(memoryview(batch), now_ms=NOW_MS)
    assert isinstance(result.buffer, bytearray)


def test_errors_reach_append_and_leave_the_log_unchanged(open_log: OpenLog) -> None:
    log = open_log()
    with pytest.raises(LogAppendError) as info:
        log.append_as_leader(make_batch(1) + make_batch(1), leader_epoch=0, now_ms=NOW_MS)
    assert info.value.error_code == ErrorCode.invalid_record
    assert "INVALID_RECORD" in repr(info.value).upper()
    assert log.log_end_offset == 0
    assert log.active_segment.size == 0


def test_log_append_time_is_reported_by_append(open_log: OpenLog) -> None:
    log = open_log(LogConfig(message_timestamp_type="LogAppendTime"))
    info = log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=NOW_MS + 5)
    assert info.log_append_time_ms == NOW_MS + 5
    assert read_header(log.read(0, 1000).read_bytes()).max_timestamp == NOW_MS + 5
