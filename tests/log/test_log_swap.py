"""Swapping cleaned segments into a log, and finishing an interrupted swap when it opens.

The clean itself is replaced here by :func:`keep_every_other_clean`, a stand-in that writes
a staged segment per source segment keeping every other batch (and the last one): enough to
tell old from new segments, and simple enough to know exactly which offsets survive.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from log_helpers import NOW_MS, OpenLog, batch_offsets, make_batch

from moldau.log.cleaner import CleanedGroup, CleanerError, CleanJob, CleanResult
from moldau.log.config import LogConfig
from moldau.log.layout import CLEANER_STAGING_DIR
from moldau.log.log import PartitionLog
from moldau.log.swap import SwapGroup, complete_interrupted_swaps, swap_cleaned_segments
from moldau.protocol.record_batch import crc_is_valid, iter_batches

SEGMENT_BYTES = 3 * len(make_batch(1, keys=[b"k0"], value_size=50))
"""Three of the test batches per segment."""
COMPACT = LogConfig(cleanup_policy="compact", segment_bytes=SEGMENT_BYTES)


# --- the stand-in clean (module level: the process pool pickles it by name) ---------------


def keep_every_other_clean(job: CleanJob) -> CleanResult:
    """One output segment per input segment with its batches 0, 2, 4… and its last one."""
    directory = Path(job.directory)
    staging = directory / CLEANER_STAGING_DIR
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    groups: list[CleanedGroup] = []
    read = written = records_read = records_kept = 0
    for spec in job.segments:
        data = (directory / f"{spec.base_offset:020d}.log").read_bytes()[: spec.size_bytes]
        batches = list(iter_batches(data))
        kept = bytearray()
        for i, (position, header) in enumerate(batches):
            if not crc_is_valid(data, position, header):
                shutil.rmtree(staging, ignore_errors=True)
                raise CleanerError(f"{directory.name}/{spec.base_offset:020d}.log: bad CRC")
            records_read += header.records_count
            if i % 2 == 0 or i == len(batches) - 1:
                kept += data[position : position + header.size]
                records_kept += header.records_count
        out = staging / f"{spec.base_offset:020d}.log"
        with open(out, "wb") as f:
            f.write(kept)
            f.flush()
            os.fsync(f.fileno())
        read += len(data)
        written += len(kept)
        groups.append(
            CleanedGroup((spec.base_offset,), spec.base_offset, spec.next_offset, len(kept))
        )
    return CleanResult(
        tuple(groups), job.first_uncleanable_offset, read, written, records_read, records_kept, 1
    )


def expected_after_clean(log: PartitionLog, upto: int) -> list[tuple[int, int]]:
    """The batches :func:`keep_every_other_clean` keeps of segments below ``upto``, then
    every batch from ``upto`` on."""
    out: list[tuple[int, int]] = []
    for segment in log.segments:
        batches = batch_offsets(segment.file.pread(segment.size, 0))
        if segment.base_offset < upto:
            out += [b for i, b in enumerate(batches) if i % 2 == 0 or i == len(batches) - 1]
        else:
            out += batches
    return out


def fill(log: PartitionLog, count: int, *, keys: int = 3) -> None:
    for i in range(count):
        batch = make_batch(1, keys=[b"k%d" % (i % keys)], value_size=50)
        log.append_as_leader(batch, leader_epoch=0, now_ms=NOW_MS)


def read_all(log: PartitionLog) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, 1 << 20).read_bytes()
        if not data:
            break
        batches = batch_offsets(data)
        out += batches
        offset = batches[-1][1] + 1
    return out


def job_for(log: PartitionLog, upto: int) -> CleanJob:
    from moldau.log.cleaner import SegmentSpec

    sources = [s for s in log.segments[:-1] if s.base_offset < upto]
    return CleanJob(
        directory=str(log.directory),
        segments=tuple(SegmentSpec(s.base_offset, s.next_offset, s.size) for s in sources),
        first_dirty_offset=log.log_start_offset,
        first_uncleanable_offset=upto,
        delete_retention_ms=0,
        now_ms=NOW_MS,
        segment_bytes=SEGMENT_BYTES,
        max_index_bytes=1 << 20,
        index_interval_bytes=4096,
        aborted_txns=(),
        dedupe_buffer_bytes=1 << 20,
        io_max_bytes_per_second=1e18,
    )


def swap_groups(log: PartitionLog, job: CleanJob, result: CleanResult) -> list[SwapGroup]:
    by_base = {s.base_offset: s for s in log.segments}
    specs = {s.base_offset: s for s in job.segments}
    return [
        SwapGroup(
            g.base_offset,
            tuple(by_base[b] for b in g.source_base_offsets),
            tuple((specs[b].size_bytes, specs[b].next_offset) for b in g.source_base_offsets),
        )
        for g in result.groups
    ]


def staging(log: PartitionLog) -> Path:
    return log.directory / CLEANER_STAGING_DIR


# --- the swap -------------------------------------------------------------------------------


def test_swap_replaces_segments_and_keeps_reads_valid(open_log: OpenLog, log_dir: Path) -> None:
    log = open_log(COMPACT)
    fill(log, 10)  # segments [0,3) [3,6) [6,9) and the active [9,10)
    assert [s.base_offset for s in log.segments] == [0, 3, 6, 9]
    before = read_all(log)
    assert before == [(i, i) for i in range(10)]
    old_slice = log.read(3, 1 << 20).slices[0]  # a fetch in flight over an old segment
    old_bytes = old_slice.read_bytes()

    job = job_for(log, 9)
    expected = expected_after_clean(log, 9)
    result = keep_every_other_clean(job)
    assert swap_cleaned_segments(log, swap_groups(log, job, result), staging(log))

    assert read_all(log) == expected == [(0, 0), (2, 2), (3, 3), (5, 5), (6, 6), (8, 8), (9, 9)]
    assert [s.base_offset for s in log.segments] == [0, 3, 6, 9]
    assert old_slice.read_bytes() == old_bytes  # the old file is unlinked, not closed
    assert not staging(log).exists()
    assert not [p.name for p in log_dir.iterdir() if p.name.endswith((".swap", ".deleted"))]
    assert (log.log_start_offset, log.log_end_offset) == (0, 10)
    # a fetch at an offset the clean removed gets the next batch
    assert batch_offsets(log.read(1, 1 << 20).read_bytes())[0] == (2, 2)
    fill(log, 1)
    log.close()
    reopened = PartitionLog.open(log_dir, COMPACT, recover=True, now_ms=NOW_MS)
    assert read_all(reopened) == [*expected, (10, 10)]
    reopened.close()


def test_swap_is_abandoned_when_retention_removed_a_source(open_log: OpenLog) -> None:
    log = open_log(COMPACT)
    fill(log, 10)
    job = job_for(log, 9)
    groups_before = {s.base_offset: s for s in log.segments}
    result = keep_every_other_clean(job)
    log.delete_records_before(4)  # deletes segment [0,3) while the clean "runs"
    groups = [
        SwapGroup(
            g.base_offset,
            tuple(groups_before[b] for b in g.source_base_offsets),
            tuple(
                (s.size_bytes, s.next_offset)
                for s in job.segments
                if s.base_offset == g.base_offset
            ),
        )
        for g in result.groups
    ]
    before = read_all(log)
    assert not swap_cleaned_segments(log, groups, staging(log))
    assert read_all(log) == before == [(i, i) for i in range(4, 10)]
    assert not staging(log).exists()
    assert not list(log.directory.glob("*.swap"))


def test_swap_is_abandoned_when_a_source_was_truncated(open_log: OpenLog) -> None:
    log = open_log(COMPACT)
    fill(log, 10)
    job = job_for(log, 9)
    result = keep_every_other_clean(job)
    groups = swap_groups(log, job, result)
    log.truncate_to(7)  # cuts segment [6,9) and drops the active one
    assert not swap_cleaned_segments(log, groups, staging(log))
    assert read_all(log) == [(i, i) for i in range(7)]


def test_swap_of_a_closed_log_does_nothing(open_log: OpenLog) -> None:
    log = open_log(COMPACT)
    fill(log, 10)
    job = job_for(log, 9)
    result = keep_every_other_clean(job)
    groups = swap_groups(log, job, result)
    log.close()
    assert not swap_cleaned_segments(log, groups, staging(log))
    assert (log.directory / "00000000000000000000.log").stat().st_size == 3 * len(
        make_batch(1, keys=[b"k0"], value_size=50)
    )


def test_hook_runs_after_the_swap_renames(open_log: OpenLog) -> None:
    log = open_log(COMPACT)
    fill(log, 10)
    job = job_for(log, 9)
    result = keep_every_other_clean(job)
    seen: list[list[str]] = []

    def hook() -> None:
        seen.append(sorted(p.name for p in log.directory.glob("*.swap")))
        raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        swap_cleaned_segments(
            log, swap_groups(log, job, result), staging(log), after_swap_renames=hook
        )
    assert seen == [[f"{b:020d}.log.swap" for b in (0, 3, 6)]]


# --- open-time completion -------------------------------------------------------------------


def crash_after_swap_renames(log: PartitionLog, upto: int) -> list[tuple[int, int]]:
    """Build by hand what a crash right after step 1 leaves: staged files renamed to
    ``.swap``, the old segments all still there. Returns what the log must read after."""
    job = job_for(log, upto)
    expected = expected_after_clean(log, upto)
    keep_every_other_clean(job)
    for path in staging(log).iterdir():
        os.rename(path, log.directory / (path.name + ".swap"))
    log.close()
    return expected


def test_open_completes_a_committed_swap(open_log: OpenLog, log_dir: Path) -> None:
    log = open_log(COMPACT)
    fill(log, 10)
    expected = crash_after_swap_renames(log, 9)
    assert (log_dir / "00000000000000000003.log").exists()
    assert (log_dir / "00000000000000000003.log.swap").exists()
    reopened = open_log(COMPACT, recover=True)
    assert read_all(reopened) == expected
    assert [s.base_offset for s in reopened.segments] == [0, 3, 6, 9]
    assert not list(log_dir.glob("*.swap"))


def test_open_completes_a_swap_whose_old_segment_is_half_deleted(
    open_log: OpenLog, log_dir: Path
) -> None:
    """Crash in step 2: the first old segment is gone, its index files renamed away."""
    log = open_log(COMPACT)
    fill(log, 10)
    expected = crash_after_swap_renames(log, 9)
    (log_dir / "00000000000000000000.index").unlink()
    (log_dir / "00000000000000000000.log").rename(log_dir / "00000000000000000000.log.deleted")
    reopened = open_log(COMPACT, recover=True)
    assert read_all(reopened) == expected


def test_open_completes_a_swap_that_covers_several_old_segments(
    open_log: OpenLog, log_dir: Path
) -> None:
    """One cleaned segment replacing two: the old one inside its range goes too."""
    log = open_log(COMPACT)
    fill(log, 10)
    job = job_for(log, 6)
    expected = expected_after_clean(log, 6)
    keep_every_other_clean(job)
    merged = (staging(log) / "00000000000000000000.log").read_bytes() + (
        staging(log) / "00000000000000000003.log"
    ).read_bytes()
    (log_dir / "00000000000000000000.log.swap").write_bytes(merged)
    shutil.rmtree(staging(log))
    log.close()
    reopened = open_log(COMPACT, recover=True)
    assert read_all(reopened) == expected
    assert [s.base_offset for s in reopened.segments] == [0, 6, 9]


def test_open_discards_an_uncommitted_swap_and_stale_staging(
    open_log: OpenLog, log_dir: Path
) -> None:
    log = open_log(COMPACT)
    fill(log, 10)
    before = read_all(log)
    keep_every_other_clean(job_for(log, 9))  # a clean that never reached its swap
    (log_dir / "00000000000000000003.index.swap").write_bytes(b"\0" * 8)  # step 1 cut short
    log.close()
    reopened = open_log(COMPACT, recover=True)
    assert read_all(reopened) == before
    assert not staging(reopened).exists()
    assert not list(log_dir.glob("*.swap"))


def test_complete_interrupted_swaps_without_swaps_is_a_no_op(log_dir: Path) -> None:
    log_dir.mkdir()
    (log_dir / "00000000000000000000.log").write_bytes(b"")
    assert complete_interrupted_swaps(log_dir) == 0
    assert (log_dir / "00000000000000000000.log").exists()


# --- a real crash in the middle of a swap ---------------------------------------------------

_CRASH_SCRIPT = """
import asyncio, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_log_swap import COMPACT, fill, keep_every_other_clean
from moldau.log.cleaner_manager import LogCleanerManager
from moldau.log.config import LogConfig
from moldau.log.manager import LogManager

async def main() -> None:
    logs = LogManager(Path({data!r}), LogConfig())
    logs.open_all()
    fill(logs.get_or_create_log("t", 0, COMPACT), 10)
    logs.flush_all()
    cleaner = LogCleanerManager(logs, threads=1, dedupe_buffer_bytes=1 << 20,
                                io_max_bytes_per_second=1e18, backoff_ms=50, enabled=True,
                                clean_function=keep_every_other_clean)
    cleaner.start()
    cleaner.request_clean("t")
    await cleaner.wait_idle()
    print("survived the swap")

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_crash_in_swap_hook_then_restart(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    from moldau.log.manager import LogManager

    data = tmp_path / "data"
    script = tmp_path / "crash.py"
    script.write_text(_CRASH_SCRIPT.format(tests=str(Path(__file__).parent), data=str(data)))
    env = {**os.environ, "MOLDAU_TEST_CLEANER_HOOK": "crash-in-swap"}
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    log_dir = data / "t-0"
    assert (log_dir / "00000000000000000000.log.swap").exists()
    assert (log_dir / "00000000000000000000.log").exists()  # the old segments are still there
    logs = LogManager(data, LogConfig())
    logs.open_all()
    log = logs.get_log("t", 0)
    assert log is not None
    assert read_all(log) == [(0, 0), (2, 2), (3, 3), (5, 5), (6, 6), (8, 8), (9, 9)]
    assert not list(log_dir.glob("*.swap"))
    logs.close()
