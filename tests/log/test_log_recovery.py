"""Recovery: torn tails, garbage, corrupt batches and indexes; no fully written batch lost."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from log_helpers import NOW_MS, OpenLog, batch_offsets, crash, make_batch

from moldau.log.config import LogConfig
from moldau.log.log import PartitionLog

FIRST_LOG = "00000000000000000000.log"


def fill(log: PartitionLog, counts: list[int], value_size: int = 50) -> list[int]:
    """Append batches; return the file position where each one ends."""
    ends = []
    for count in counts:
        log.append_as_leader(make_batch(count, value_size=value_size), leader_epoch=0, now_ms=0)
        ends.append(log.active_segment.size)
    return ends


def test_torn_write_is_cut_back_to_the_last_whole_batch(open_log: OpenLog, log_dir: Path) -> None:
    log = open_log()
    ends = fill(log, [2, 3, 4])
    crash(log)
    os.truncate(log_dir / FIRST_LOG, ends[2] - 5)
    recovered = open_log(recover=True)
    assert recovered.log_end_offset == 5
    assert (log_dir / FIRST_LOG).stat().st_size == ends[1]
    assert batch_offsets(recovered.read(0, 1 << 20).read_bytes()) == [(0, 1), (2, 4)]
    assert recovered.append_as_leader(make_batch(1), leader_epoch=0, now_ms=0).base_offset == 5


def test_garbage_after_the_last_batch_is_removed(open_log: OpenLog, log_dir: Path) -> None:
    log = open_log()
    ends = fill(log, [2, 2])
    crash(log)
    with open(log_dir / FIRST_LOG, "ab") as f:
        f.write(os.urandom(300))
    recovered = open_log(recover=True)
    assert recovered.log_end_offset == 4
    assert (log_dir / FIRST_LOG).stat().st_size == ends[1]


def test_zeroed_tail_is_removed(open_log: OpenLog, log_dir: Path) -> None:
    # a filesystem may extend a file with zeros that were never written
    log = open_log()
    ends = fill(log, [1, 1])
    crash(log)
    with open(log_dir / FIRST_LOG, "ab") as f:
        f.write(bytes(4096))
    recovered = open_log(recover=True)
    assert recovered.log_end_offset == 2
    assert recovered.active_segment.size == ends[1]


def test_corrupt_batch_cuts_everything_after_it(open_log: OpenLog, log_dir: Path) -> None:
    log = open_log()
    ends = fill(log, [1, 1, 1, 1])
    crash(log)
    with open(log_dir / FIRST_LOG, "r+b") as f:
        f.seek(ends[1] + 70)  # inside the third batch's records
        f.write(b"\xff\xff")
    recovered = open_log(recover=True)
    assert recovered.log_end_offset == 2
    assert recovered.active_segment.size == ends[1]


def test_corrupt_middle_segment_drops_the_segments_after_it(
    open_log: OpenLog, log_dir: Path
) -> None:
    config = LogConfig(segment_bytes=250)
    log = open_log(config)
    fill(log, [1] * 9)
    bases = [s.base_offset for s in log.segments]
    assert len(bases) >= 3
    crash(log)
    middle = log_dir / f"{bases[1]:020d}.log"
    os.truncate(middle, middle.stat().st_size - 1)
    recovered = open_log(config, recover=True)
    assert [s.base_offset for s in recovered.segments] == bases[:2]
    assert not (log_dir / f"{bases[2]:020d}.log").exists()
    assert recovered.log_end_offset == recovered.segments[-1].next_offset < 9


def test_segments_below_the_recovery_point_are_not_rescanned(
    open_log: OpenLog, log_dir: Path
) -> None:
    config = LogConfig(segment_bytes=250)
    log = open_log(config)
    fill(log, [1] * 9)
    bases = [s.base_offset for s in log.segments]
    crash(log)
    first = log_dir / FIRST_LOG
    with open(first, "r+b") as f:
        f.seek(70)  # inside the first batch's records: framing intact, CRC broken
        f.write(b"\xff\xff")
    size = first.stat().st_size
    recovered = open_log(config, recover=True, recovery_point=bases[-1])
    assert first.stat().st_size == size
    assert recovered.log_end_offset == 9
    crash(recovered)
    open_log(config, recover=True, recovery_point=0)  # now it is scanned, and cut
    assert first.stat().st_size == 0


def test_missing_indexes_are_rebuilt(open_log: OpenLog, log_dir: Path) -> None:
    config = LogConfig(index_interval_bytes=100)
    log = open_log(config)
    fill(log, [1] * 30)
    expected = {offset: log.read(offset, 1 << 20).read_bytes() for offset in range(30)}
    log.close()
    index = log_dir / "00000000000000000000.index"
    entries = index.stat().st_size
    assert entries > 0
    index.unlink()
    (log_dir / "00000000000000000000.timeindex").unlink()
    reopened = open_log(config)
    for offset in range(30):
        assert reopened.read(offset, 1 << 20).read_bytes() == expected[offset]
    reopened.close()
    assert index.stat().st_size == entries


def test_corrupt_index_is_rebuilt(open_log: OpenLog, log_dir: Path) -> None:
    config = LogConfig(index_interval_bytes=100)
    log = open_log(config)
    fill(log, [1] * 30)
    log.close()
    index = log_dir / "00000000000000000000.index"
    good = index.read_bytes()
    index.write_bytes(good[8:16] + good[:8] + good[16:])  # out of order
    reopened = open_log(config)
    assert batch_offsets(reopened.read(17, 1 << 20).read_bytes())[0] == (17, 17)
    reopened.close()
    assert index.read_bytes() == good


def test_stale_index_pointing_past_the_log_is_rebuilt(open_log: OpenLog, log_dir: Path) -> None:
    config = LogConfig(index_interval_bytes=0)
    log = open_log(config)
    ends = fill(log, [1] * 5)
    log.close()
    os.truncate(log_dir / FIRST_LOG, ends[2])  # the index still lists batches 3 and 4
    reopened = open_log(config)
    assert reopened.log_end_offset == 3
    assert batch_offsets(reopened.read(2, 1 << 20).read_bytes()) == [(2, 2)]


def test_leftover_files_are_cleaned(open_log: OpenLog, log_dir: Path) -> None:
    log = open_log()
    fill(log, [1])
    log.close()
    (log_dir / "00000000000000000000.log.deleted").write_bytes(b"x")
    (log_dir / "00000000000000000077.index").write_bytes(b"")
    open_log()
    assert not (log_dir / "00000000000000000000.log.deleted").exists()
    assert not (log_dir / "00000000000000000077.index").exists()


@settings(max_examples=30, deadline=None)
@given(counts=st.lists(st.integers(1, 4), min_size=1, max_size=8), cut=st.integers(1, 10_000))
def test_no_fully_written_batch_is_lost(counts: list[int], cut: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "t-0"
        log = PartitionLog.open(directory, LogConfig(), recover=False, now_ms=NOW_MS)
        ends = fill(log, counts)
        crash(log)
        total = ends[-1]
        keep = total - (cut % total)  # cut somewhere, possibly mid-header
        os.truncate(directory / FIRST_LOG, keep)
        whole = [end for end in ends if end <= keep]
        recovered = PartitionLog.open(directory, LogConfig(), recover=True, now_ms=NOW_MS)
        try:
            assert recovered.active_segment.size == (whole[-1] if whole else 0)
            assert recovered.log_end_offset == sum(counts[: len(whole)])
        finally:
            recovered.close()


def test_flush_advances_the_recovery_point(
    open_log: OpenLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    log = open_log(LogConfig(segment_bytes=250))
    fill(log, [1] * 4)
    assert len(log.segments) > 1
    assert log.recovery_point == 0
    assert log.flush(up_to_offset=1) == 1
    monkeypatch.setattr(os, "fsync", counting_fsync)
    assert log.flush() == 4
    assert all(not s.has_unflushed_data for s in log.segments)
    count = len(synced)
    assert count >= 1
    assert log.flush() == 4  # nothing new: no fsync at all
    assert len(synced) == count
