"""Retention by time and size, DeleteRecords, truncation, and reads racing deletion."""

from __future__ import annotations

from pathlib import Path

import pytest
from log_helpers import NOW_MS, OpenLog, batch_offsets, make_batch

from moldau.log.config import LogConfig
from moldau.log.errors import OffsetOutOfRangeError
from moldau.log.log import PartitionLog

HOUR_MS = 3_600_000
SEGMENT_BYTES = 3 * len(make_batch(1, value_size=100))
"""Three of the test batches per segment."""


def fill(log: PartitionLog, timestamps: list[int]) -> None:
    for ts in timestamps:
        batch = make_batch(1, value_size=100, timestamp_ms=ts)
        log.append_as_leader(batch, leader_epoch=0, now_ms=ts)


def bases(log: PartitionLog) -> list[int]:
    return [s.base_offset for s in log.segments]


def test_retention_by_time_deletes_old_segments(open_log: OpenLog, log_dir: Path) -> None:
    config = LogConfig(segment_bytes=SEGMENT_BYTES, retention_ms=10 * HOUR_MS)
    log = open_log(config)
    fill(log, [NOW_MS + i * HOUR_MS for i in range(9)])  # 3 batches per segment
    assert bases(log) == [0, 3, 6]
    now = NOW_MS + 16 * HOUR_MS  # [0,3) ends at hour 2, [3,6) at hour 5: > 10 hours old
    assert log.delete_retention_segments(now) == 2
    assert bases(log) == [6]
    assert log.log_start_offset == 6
    assert not (log_dir / "00000000000000000000.log").exists()
    assert not list(log_dir.glob("*.deleted"))
    with pytest.raises(OffsetOutOfRangeError):
        log.read(2, 1000)
    assert batch_offsets(log.read(6, 1 << 20).read_bytes())[0] == (6, 6)


def test_expired_active_segment_is_rolled_then_deleted(open_log: OpenLog) -> None:
    log = open_log(LogConfig(retention_ms=HOUR_MS))
    fill(log, [NOW_MS, NOW_MS + 1])
    assert log.delete_retention_segments(NOW_MS + 2 * HOUR_MS) == 1
    assert bases(log) == [2]
    assert log.log_start_offset == log.log_end_offset == 2
    assert log.active_segment.is_empty
    # an empty active segment is never deleted
    assert log.delete_retention_segments(NOW_MS + 100 * HOUR_MS) == 0
    fill(log, [NOW_MS + 100 * HOUR_MS])
    assert batch_offsets(log.read(2, 1000).read_bytes()) == [(2, 2)]


def test_negative_retention_keeps_everything(open_log: OpenLog) -> None:
    log = open_log(LogConfig(segment_bytes=SEGMENT_BYTES, retention_ms=-1))
    fill(log, [0, 1, 2, 3, 4])
    assert log.delete_retention_segments(NOW_MS) == 0


def test_compact_only_topics_ignore_retention(open_log: OpenLog) -> None:
    log = open_log(LogConfig(segment_bytes=SEGMENT_BYTES, retention_ms=1, cleanup_policy="compact"))
    log.append_as_leader(make_batch(1, keys=[b"k"]), leader_epoch=0, now_ms=NOW_MS)
    log.roll()
    log.append_as_leader(make_batch(1, keys=[b"k"]), leader_epoch=0, now_ms=NOW_MS)
    assert log.delete_retention_segments(NOW_MS + HOUR_MS) == 0


def test_retention_by_size(open_log: OpenLog) -> None:
    log = open_log(LogConfig(segment_bytes=SEGMENT_BYTES, retention_ms=-1))
    fill(log, [NOW_MS] * 9)
    segment_size = log.segments[0].size
    total = log.size_bytes
    # the log keeps at least retention.bytes: a segment goes only if the rest still holds it
    config = LogConfig(segment_bytes=SEGMENT_BYTES, retention_ms=-1, retention_bytes=total - 1)
    log.update_config(config)
    assert log.delete_retention_segments(NOW_MS) == 0
    config = LogConfig(
        segment_bytes=SEGMENT_BYTES, retention_ms=-1, retention_bytes=total - segment_size
    )
    log.update_config(config)
    assert log.delete_retention_segments(NOW_MS) == 1
    assert bases(log) == [3, 6]
    log.update_config(
        LogConfig(
            segment_bytes=SEGMENT_BYTES, retention_ms=-1, retention_bytes=segment_size * 2 - 1
        )
    )
    assert log.delete_retention_segments(NOW_MS) == 0  # removing one more would go below
    log.update_config(LogConfig(segment_bytes=SEGMENT_BYTES, retention_ms=-1, retention_bytes=0))
    assert log.delete_retention_segments(NOW_MS) == 2
    assert log.log_start_offset == 9 and log.active_segment.is_empty


def test_delete_records(open_log: OpenLog) -> None:
    log = open_log(LogConfig(segment_bytes=SEGMENT_BYTES))
    fill(log, [NOW_MS] * 9)
    assert bases(log) == [0, 3, 6]
    assert log.delete_records_before(4) == 4
    assert log.log_start_offset == 4
    assert bases(log) == [3, 6]  # [0,3) is wholly below; [3,6) still holds 4 and 5
    with pytest.raises(OffsetOutOfRangeError):
        log.read(3, 1000)
    assert batch_offsets(log.read(4, 1 << 20).read_bytes())[0] == (4, 4)
    assert log.delete_records_before(2) == 4  # never backwards
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records_before(10)
    assert log.delete_records_before(9) == 9
    assert bases(log) == [6]
    assert log.read(9, 1000).size == 0


def test_log_start_offset_survives_reopen(open_log: OpenLog) -> None:
    log = open_log()
    fill(log, [NOW_MS] * 5)
    log.delete_records_before(3)
    log.close()
    reopened = open_log(log_start_offset=3)
    assert reopened.log_start_offset == 3
    with pytest.raises(OffsetOutOfRangeError):
        reopened.read(2, 1000)


def test_fetch_slice_stays_readable_after_its_segment_is_deleted(open_log: OpenLog) -> None:
    log = open_log(LogConfig(segment_bytes=SEGMENT_BYTES, retention_ms=HOUR_MS))
    fill(log, [NOW_MS] * 4)
    pending = log.read(0, 1 << 20)
    expected_size = pending.size
    log.delete_retention_segments(NOW_MS + 2 * HOUR_MS)
    assert log.log_start_offset == 4
    data = pending.read_bytes()
    assert len(data) == expected_size
    assert batch_offsets(data) == [(0, 0), (1, 1), (2, 2)]


def test_truncate_to(open_log: OpenLog) -> None:
    log = open_log(LogConfig(segment_bytes=SEGMENT_BYTES))
    for seq in range(9):
        batch = make_batch(1, value_size=100, producer_id=1, producer_epoch=0, base_sequence=seq)
        log.append_as_leader(batch, leader_epoch=0, now_ms=NOW_MS)
    assert log.truncate_to(5)
    assert log.log_end_offset == 5 and log.high_watermark == 5
    assert bases(log) == [0, 3]
    assert batch_offsets(log.read(3, 1 << 20).read_bytes()) == [(3, 3), (4, 4)]
    # the producer table follows the truncated log
    retry = make_batch(1, producer_id=1, producer_epoch=0, base_sequence=5)
    assert log.append_as_leader(retry, leader_epoch=0, now_ms=NOW_MS).base_offset == 5
    assert not log.truncate_to(100)
    log.truncate_to(0)
    assert log.log_end_offset == 0 and bases(log) == [0]


def test_truncate_below_the_first_segment_restarts_the_log(open_log: OpenLog) -> None:
    log = open_log(LogConfig(segment_bytes=SEGMENT_BYTES, retention_ms=HOUR_MS))
    fill(log, [NOW_MS] * 7)
    log.delete_retention_segments(NOW_MS + 2 * HOUR_MS)
    assert log.log_start_offset == 7
    log.truncate_to(2)
    assert bases(log) == [2]
    assert log.log_start_offset == log.log_end_offset == 2


def test_batches_without_timestamps_age_from_their_last_write(open_log: OpenLog) -> None:
    log = open_log(LogConfig(retention_ms=5 * HOUR_MS))
    batch = make_batch(1, timestamp_ms=-1)
    log.append_as_leader(batch, leader_epoch=0, now_ms=NOW_MS + 10 * HOUR_MS)
    assert log.delete_retention_segments(NOW_MS + 12 * HOUR_MS) == 0
    assert log.delete_retention_segments(NOW_MS + 16 * HOUR_MS) == 1
    assert log.log_start_offset == 1
