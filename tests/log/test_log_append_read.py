"""Appending as leader and reading back: offsets, slices, limits, rolling, reopening."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from log_helpers import NOW_MS, OpenLog, batch_offsets, make_batch

from moldau.log import segment as segment_module
from moldau.log.config import LogConfig
from moldau.log.errors import OffsetOutOfRangeError
from moldau.log.log import PartitionLog
from moldau.protocol.record_batch import crc_is_valid, read_header


def test_append_assigns_offsets_and_reads_back(open_log: OpenLog) -> None:
    log = open_log()
    infos = [log.append_as_leader(make_batch(n), leader_epoch=7, now_ms=NOW_MS) for n in (3, 1, 5)]
    assert [(i.base_offset, i.last_offset) for i in infos] == [(0, 2), (3, 3), (4, 8)]
    assert all(i.log_append_time_ms == -1 and not i.duplicate for i in infos)
    assert infos[-1].records_count == 5
    assert log.log_end_offset == log.high_watermark == 9
    data = log.read(0, 1 << 20).read_bytes()
    assert batch_offsets(data) == [(0, 2), (3, 3), (4, 8)]
    header = read_header(data)
    assert header.partition_leader_epoch == 7
    assert crc_is_valid(data, 0, header)


def test_read_starts_at_the_batch_containing_the_offset(open_log: OpenLog) -> None:
    log = open_log()
    for n in (3, 3, 3):
        log.append_as_leader(make_batch(n), leader_epoch=0, now_ms=NOW_MS)
    assert batch_offsets(log.read(4, 1 << 20).read_bytes()) == [(3, 5), (6, 8)]
    assert batch_offsets(log.read(8, 1 << 20).read_bytes()) == [(6, 8)]


def test_read_at_end_is_empty_and_outside_is_out_of_range(open_log: OpenLog) -> None:
    log = open_log()
    log.append_as_leader(make_batch(2), leader_epoch=0, now_ms=NOW_MS)
    empty = log.read(2, 1000)
    assert empty.size == 0 and empty.read_bytes() == b""
    with pytest.raises(OffsetOutOfRangeError):
        log.read(3, 1000)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(-1, 1000)


def test_read_never_passes_max_offset(open_log: OpenLog) -> None:
    log = open_log()
    for _ in range(4):
        log.append_as_leader(make_batch(2), leader_epoch=0, now_ms=NOW_MS)
    assert batch_offsets(log.read(0, 1 << 20, max_offset=4).read_bytes()) == [(0, 1), (2, 3)]
    assert log.read(4, 1 << 20, max_offset=4).size == 0
    log.high_watermark = 6
    assert log.high_watermark == 6
    assert batch_offsets(log.read(2, 1 << 20, max_offset=log.high_watermark).read_bytes()) == [
        (2, 3),
        (4, 5),
    ]
    log.high_watermark = 100  # clamped to the log end offset
    assert log.high_watermark == 8


def test_max_bytes_returns_whole_batches_only(open_log: OpenLog) -> None:
    log = open_log()
    sizes = []
    for _ in range(4):
        batch = make_batch(1, value_size=100)
        sizes.append(len(batch))
        log.append_as_leader(batch, leader_epoch=0, now_ms=NOW_MS)
    result = log.read(0, sizes[0] + sizes[1] + sizes[2] // 2)
    assert result.size == sizes[0] + sizes[1]
    assert batch_offsets(result.read_bytes()) == [(0, 0), (1, 1)]


def test_first_batch_larger_than_max_bytes(open_log: OpenLog) -> None:
    log = open_log()
    batch = make_batch(1, value_size=1000)
    log.append_as_leader(batch, leader_epoch=0, now_ms=NOW_MS)
    log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=NOW_MS)
    whole = log.read(0, 10, min_one_message=True)
    assert whole.size == len(batch)
    assert log.read(0, 10, min_one_message=False).size == 0


def test_slices_are_file_ranges(open_log: OpenLog) -> None:
    log = open_log()
    log.append_as_leader(make_batch(2), leader_epoch=0, now_ms=NOW_MS)
    log.append_as_leader(make_batch(2), leader_epoch=0, now_ms=NOW_MS)
    result = log.read(2, 1 << 20)
    (piece,) = result.slices
    assert piece.path == log.active_segment.path
    assert os.pread(piece.fd, piece.size, piece.position) == result.read_bytes()
    assert read_header(result.read_bytes()).base_offset == 2


def test_roll_by_size(open_log: OpenLog, log_dir: Path) -> None:
    batch_size = len(make_batch(1, value_size=200))
    log = open_log(LogConfig(segment_bytes=batch_size * 3))
    for _ in range(10):
        log.append_as_leader(make_batch(1, value_size=200), leader_epoch=0, now_ms=NOW_MS)
    assert [s.base_offset for s in log.segments] == [0, 3, 6, 9]
    assert all(s.size <= batch_size * 3 for s in log.segments)
    assert (log_dir / "00000000000000000003.log").exists()
    for offset in range(10):
        assert batch_offsets(log.read(offset, 1 << 20).read_bytes())[0] == (offset, offset)


def test_oversized_batch_goes_into_an_empty_segment(open_log: OpenLog) -> None:
    log = open_log(LogConfig(segment_bytes=100))
    log.append_as_leader(make_batch(1, value_size=500), leader_epoch=0, now_ms=NOW_MS)
    log.append_as_leader(make_batch(1, value_size=500), leader_epoch=0, now_ms=NOW_MS)
    assert [s.base_offset for s in log.segments] == [0, 1]


def test_roll_by_time_uses_record_timestamps(open_log: OpenLog) -> None:
    log = open_log(LogConfig(segment_ms=1000))
    log.append_as_leader(make_batch(1, timestamp_ms=NOW_MS), leader_epoch=0, now_ms=NOW_MS)
    log.append_as_leader(make_batch(1, timestamp_ms=NOW_MS + 1000), leader_epoch=0, now_ms=NOW_MS)
    assert len(log.segments) == 1
    log.append_as_leader(make_batch(1, timestamp_ms=NOW_MS + 1001), leader_epoch=0, now_ms=NOW_MS)
    assert [s.base_offset for s in log.segments] == [0, 2]


def test_roll_when_the_offset_index_is_full(open_log: OpenLog) -> None:
    # 24 bytes: three offset entries, two time entries (all batches share one timestamp,
    # so the time index holds a single entry and never fills)
    log = open_log(LogConfig(index_interval_bytes=0, segment_index_bytes=24))
    for _ in range(7):
        log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=NOW_MS)
    # the first batch of a segment is never indexed; three more fill the offset index
    assert [s.base_offset for s in log.segments] == [0, 4]


def test_explicit_roll_and_empty_roll(open_log: OpenLog) -> None:
    log = open_log()
    assert log.roll() is log.active_segment  # empty: nothing to roll
    log.append_as_leader(make_batch(2), leader_epoch=0, now_ms=NOW_MS)
    segment = log.roll()
    assert segment.base_offset == 2
    assert [s.base_offset for s in log.segments] == [0, 2]


def test_clean_reopen_keeps_everything(open_log: OpenLog, log_dir: Path) -> None:
    config = LogConfig(segment_bytes=600, index_interval_bytes=50)
    log = open_log(config)
    for i in range(20):
        log.append_as_leader(make_batch(1 + i % 3), leader_epoch=0, now_ms=NOW_MS)
    before = log.read(0, 1 << 30)
    expected = b"".join(log.read(s.base_offset, 1 << 30).read_bytes() for s in log.segments)
    end = log.log_end_offset
    assert before.size > 0
    log.close()
    assert (log_dir / "00000000000000000000.index").stat().st_size > 0
    reopened = open_log(config)
    assert reopened.log_end_offset == end
    assert reopened.log_start_offset == 0
    again = b"".join(reopened.read(s.base_offset, 1 << 30).read_bytes() for s in reopened.segments)
    assert again == expected
    reopened.append_as_leader(make_batch(1), leader_epoch=0, now_ms=NOW_MS)
    assert reopened.log_end_offset == end + 1


def test_update_config_applies_to_next_append(open_log: OpenLog) -> None:
    log = open_log()
    log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=NOW_MS)
    log.update_config(LogConfig(max_message_bytes=10))
    assert log.config.max_message_bytes == 10
    from moldau.log.errors import LogAppendError

    with pytest.raises(LogAppendError):
        log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=NOW_MS)


def test_append_as_follower_keeps_offsets(open_log: OpenLog) -> None:
    log = open_log()
    data = make_batch(2, base_offset=0) + make_batch(3, base_offset=2)
    info = log.append_as_follower(data)
    assert (info.base_offset, info.last_offset, info.records_count) == (0, 4, 5)
    assert log.log_end_offset == 5
    assert log.read(0, 1 << 20).read_bytes() == bytes(data)


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(1, 5), min_size=1, max_size=40),
    value_sizes=st.lists(st.integers(0, 300), min_size=40, max_size=40),
    segment_bytes=st.integers(200, 3000),
    index_interval=st.integers(0, 400),
    data=st.data(),
)
def test_any_fetch_offset_returns_the_batch_containing_it(
    counts: list[int],
    value_sizes: list[int],
    segment_bytes: int,
    index_interval: int,
    data: st.DataObject,
) -> None:
    config = LogConfig(segment_bytes=segment_bytes, index_interval_bytes=index_interval)
    with tempfile.TemporaryDirectory() as tmp:
        log = PartitionLog.open(Path(tmp) / "t-0", config, recover=False, now_ms=NOW_MS)
        try:
            ranges = []
            for count, size in zip(counts, value_sizes, strict=False):
                info = log.append_as_leader(
                    make_batch(count, value_size=size), leader_epoch=0, now_ms=NOW_MS
                )
                ranges.append((info.base_offset, info.last_offset))
            for _ in range(10):
                offset = data.draw(st.integers(0, log.log_end_offset - 1))
                max_bytes = data.draw(st.integers(0, 2000))
                result = log.read(offset, max_bytes)
                batches = batch_offsets(result.read_bytes())
                assert batches, "min_one_message: at least one batch"
                first, last = batches[0]
                assert first <= offset <= last
                assert batches == ranges[ranges.index(batches[0]) :][: len(batches)]
                assert len(batches) == 1 or result.size <= max_bytes
        finally:
            log.close()


def test_reads_outside_the_recent_batch_window(
    open_log: OpenLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the active segment remembers the exact position of its last batches; older ones are
    # found through the sparse index
    monkeypatch.setattr(segment_module, "RECENT_BATCHES", 2)
    log = open_log(LogConfig(index_interval_bytes=300))
    ranges = []
    for i in range(30):
        info = log.append_as_leader(
            make_batch(1 + i % 3, value_size=40 * (i % 5)), leader_epoch=0, now_ms=NOW_MS
        )
        ranges.append((info.base_offset, info.last_offset))
    for offset in range(log.log_end_offset):
        for max_bytes in (0, 150, 700, 1 << 20):
            result = log.read(offset, max_bytes)
            batches = batch_offsets(result.read_bytes())
            assert batches[0][0] <= offset <= batches[0][1]
            assert batches == ranges[ranges.index(batches[0]) :][: len(batches)]
            assert len(batches) == 1 or result.size <= max_bytes
