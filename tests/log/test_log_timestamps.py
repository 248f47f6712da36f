"""ListOffsets support: offset for a timestamp, and the offset of the max timestamp."""

from __future__ import annotations

from log_helpers import NOW_MS, OpenLog, make_batch

from moldau.log.config import LogConfig


def test_offset_for_timestamp_finds_the_first_record_at_or_after(open_log: OpenLog) -> None:
    log = open_log(LogConfig(index_interval_bytes=0, segment_bytes=500))
    # batch timestamps: records at NOW+0,10,20 | 30,40,50 | …; one record out of order
    for start in range(0, 300, 30):
        stamps = [NOW_MS + start, NOW_MS + start + 10, NOW_MS + start + 20]
        log.append_as_leader(make_batch(3, timestamps=stamps), leader_epoch=0, now_ms=NOW_MS)
    assert len(log.segments) > 2
    assert log.offset_for_timestamp(NOW_MS - 5) == (0, NOW_MS)
    assert log.offset_for_timestamp(NOW_MS) == (0, NOW_MS)
    assert log.offset_for_timestamp(NOW_MS + 11) == (2, NOW_MS + 20)
    assert log.offset_for_timestamp(NOW_MS + 145) == (15, NOW_MS + 150)
    assert log.offset_for_timestamp(NOW_MS + 290) == (29, NOW_MS + 290)
    assert log.offset_for_timestamp(NOW_MS + 291) is None


def test_offset_for_timestamp_respects_the_log_start(open_log: OpenLog) -> None:
    log = open_log()
    for i in range(4):
        log.append_as_leader(make_batch(2, timestamp_ms=NOW_MS + i), leader_epoch=0, now_ms=NOW_MS)
    log.delete_records_before(3)
    assert log.offset_for_timestamp(NOW_MS) == (3, NOW_MS + 1)


def test_out_of_order_timestamps_within_a_batch(open_log: OpenLog) -> None:
    log = open_log()
    stamps = [NOW_MS + 50, NOW_MS + 10, NOW_MS + 60]
    log.append_as_leader(make_batch(3, timestamps=stamps), leader_epoch=0, now_ms=NOW_MS)
    assert log.offset_for_timestamp(NOW_MS + 20) == (0, NOW_MS + 50)
    assert log.offset_for_timestamp(NOW_MS + 55) == (2, NOW_MS + 60)


def test_log_append_time_batches_use_the_batch_time(open_log: OpenLog) -> None:
    log = open_log(LogConfig(message_timestamp_type="LogAppendTime"))
    for i in range(3):
        log.append_as_leader(make_batch(2, timestamp_ms=0), leader_epoch=0, now_ms=NOW_MS + i)
    assert log.offset_for_timestamp(NOW_MS + 1) == (2, NOW_MS + 1)
    assert log.max_timestamp_offset() == (4, NOW_MS + 2)


def test_max_timestamp_offset_is_the_record_holding_it(open_log: OpenLog) -> None:
    log = open_log(LogConfig(segment_bytes=300))
    assert log.max_timestamp_offset() == (-1, -1)
    log.append_as_leader(make_batch(3, timestamps=[5, 900, 7]), leader_epoch=0, now_ms=NOW_MS)
    log.append_as_leader(make_batch(2, timestamps=[100, 200]), leader_epoch=0, now_ms=NOW_MS)
    log.append_as_leader(make_batch(2, timestamps=[300, 400]), leader_epoch=0, now_ms=NOW_MS)
    assert len(log.segments) > 1
    assert log.max_timestamp_offset() == (1, 900)


def test_timestamps_survive_reopen(open_log: OpenLog) -> None:
    config = LogConfig(index_interval_bytes=0)
    log = open_log(config)
    for i in range(10):
        log.append_as_leader(
            make_batch(1, timestamp_ms=NOW_MS + i * 10), leader_epoch=0, now_ms=NOW_MS
        )
    log.close()
    reopened = open_log(config)
    assert reopened.offset_for_timestamp(NOW_MS + 45) == (5, NOW_MS + 50)
    assert reopened.max_timestamp_offset() == (9, NOW_MS + 90)
    assert reopened.active_segment.max_timestamp == NOW_MS + 90
