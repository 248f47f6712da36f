"""The cleaner's scheduling decisions, its process pool, checkpoint and failure handling.

Cleans run in a real spawn-context process pool with the stand-in clean of
``test_log_swap`` (the real one is cleaner-core's and has its own tests), except where the
real :func:`moldau.log.cleaner.clean` is the point (corrupt segment, full disk).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from log_helpers import NOW_MS, make_batch
from test_log_swap import (
    COMPACT,
    SEGMENT_BYTES,
    expected_after_clean,
    fill,
    keep_every_other_clean,
    read_all,
)

from moldau.log.checkpoint import read_offset_checkpoint
from moldau.log.cleaner import CleanerError, CleanJob, CleanResult
from moldau.log.cleaner_manager import (
    CLEANER_CHECKPOINT_FILE,
    TEST_HOOK_ENV,
    LogCleanerManager,
    cleanable_range,
    is_cleanable,
)
from moldau.log.config import LogConfig
from moldau.log.layout import CLEANER_STAGING_DIR
from moldau.log.manager import LogManager

HOUR_MS = 3_600_000
NEVER_BY_RATIO = LogConfig(
    cleanup_policy="compact", segment_bytes=SEGMENT_BYTES, min_cleanable_dirty_ratio=1.0
)
"""Cleaned only on request: a failed clean is then not retried on its own."""


def corrupt_clean(job: CleanJob) -> CleanResult:
    raise CleanerError(f"{job.directory}/{job.segments[0].base_offset:020d}.log: bad CRC at 0")


def enospc_clean(job: CleanJob) -> CleanResult:
    raise OSError(errno.ENOSPC, "No space left on device")


def slow_clean(job: CleanJob) -> CleanResult:
    time.sleep(60)
    return keep_every_other_clean(job)


@pytest.fixture
def logs(tmp_path: Path) -> LogManager:
    manager = LogManager(tmp_path / "data", LogConfig())
    manager.open_all()
    return manager


def make_manager(logs: LogManager, **kwargs: object) -> LogCleanerManager:
    options: dict[str, object] = {
        "threads": 1,
        "dedupe_buffer_bytes": 1 << 20,
        "io_max_bytes_per_second": 1e18,
        "backoff_ms": 50,
        "enabled": True,
        "clean_function": keep_every_other_clean,
    }
    options.update(kwargs)
    return LogCleanerManager(logs, **options)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def cleaner(logs: LogManager) -> AsyncIterator[LogCleanerManager]:
    manager = make_manager(logs)
    manager.start()
    yield manager
    await manager.close()
    logs.close()


# --- what is cleanable ----------------------------------------------------------------------


def test_ratio_counts_clean_and_dirty_bytes(logs: LogManager) -> None:
    log = logs.get_or_create_log("t", 0, COMPACT)
    fill(log, 10)  # [0,3) [3,6) [6,9) active [9,10)
    sizes = [s.size for s in log.segments]
    found = cleanable_range(log, None, NOW_MS)
    assert (found.first_dirty_offset, found.first_uncleanable_offset) == (0, 9)
    assert found.cleanable_ratio == 1.0
    found = cleanable_range(log, 6, NOW_MS)  # everything below 6 is clean
    assert found.clean_bytes == sizes[0] + sizes[1]
    assert found.cleanable_bytes == sizes[2]
    assert found.cleanable_ratio == pytest.approx(1 / 3)
    # a checkpoint outside the log is ignored (Kafka resets it to the log start)
    assert cleanable_range(log, 1000, NOW_MS).first_dirty_offset == 0
    logs.close()


def test_active_segment_is_never_cleanable(logs: LogManager) -> None:
    log = logs.get_or_create_log("t", 0, COMPACT)
    fill(log, 2)  # only the active segment
    found = cleanable_range(log, None, NOW_MS)
    assert found.first_uncleanable_offset == 0
    assert found.cleanable_bytes == 0
    assert not is_cleanable(log, found)
    logs.close()


def test_last_stable_offset_bounds_the_clean(logs: LogManager) -> None:
    log = logs.get_or_create_log("t", 0, COMPACT)
    fill(log, 4)  # [0,3) active [3,4)
    txn = make_batch(1, keys=[b"k0"], value_size=50, producer_id=7, producer_epoch=0,
                     base_sequence=0, is_transactional=True)  # fmt: skip
    log.append_as_leader(txn, leader_epoch=0, now_ms=NOW_MS)  # open transaction at 4
    fill(log, 6)  # [3,6) [6,9) active [9,10)
    assert log.last_stable_offset == 4
    found = cleanable_range(log, None, NOW_MS)
    assert found.first_uncleanable_offset == 3  # the segment holding the LSO
    log.append_txn_marker(producer_id=7, producer_epoch=0, commit=True, coordinator_epoch=0,
                          leader_epoch=0, now_ms=NOW_MS)  # fmt: skip
    assert cleanable_range(log, None, NOW_MS).first_uncleanable_offset == 9
    logs.close()


def test_high_watermark_bounds_the_clean(logs: LogManager) -> None:
    log = logs.get_or_create_log("t", 0, COMPACT)
    fill(log, 10)
    log.high_watermark = 4
    assert cleanable_range(log, None, NOW_MS).first_uncleanable_offset == 3
    logs.close()


def test_min_compaction_lag_keeps_recent_segments(logs: LogManager) -> None:
    config = LogConfig(
        cleanup_policy="compact", segment_bytes=SEGMENT_BYTES, min_compaction_lag_ms=HOUR_MS
    )
    log = logs.get_or_create_log("t", 0, config)
    for i in range(10):  # one hour apart: segment [3,6) ends at hour 5
        batch = make_batch(1, keys=[b"k0"], value_size=50, timestamp_ms=NOW_MS + i * HOUR_MS)
        log.append_as_leader(batch, leader_epoch=0, now_ms=NOW_MS + i * HOUR_MS)
    now = NOW_MS + 5 * HOUR_MS + HOUR_MS // 2  # [3,6) (newest at hour 5) is within the lag
    assert cleanable_range(log, None, now).first_uncleanable_offset == 3
    assert cleanable_range(log, None, now + 10 * HOUR_MS).first_uncleanable_offset == 9
    logs.close()


def test_max_compaction_lag_forces_a_clean_below_the_ratio(logs: LogManager) -> None:
    config = LogConfig(
        cleanup_policy="compact",
        segment_bytes=SEGMENT_BYTES,
        min_cleanable_dirty_ratio=0.9,
        max_compaction_lag_ms=HOUR_MS,
    )
    log = logs.get_or_create_log("t", 0, config)
    fill(log, 10)
    found = cleanable_range(log, 6, NOW_MS)  # ratio 1/3 < 0.9
    assert not found.needs_compaction_now
    assert not is_cleanable(log, found)
    later = cleanable_range(log, 6, NOW_MS + 2 * HOUR_MS)
    assert later.needs_compaction_now
    assert is_cleanable(log, later)
    logs.close()


def test_ratio_must_exceed_the_minimum(logs: LogManager) -> None:
    config = LogConfig(
        cleanup_policy="compact", segment_bytes=SEGMENT_BYTES, min_cleanable_dirty_ratio=0.5
    )
    log = logs.get_or_create_log("t", 0, config)
    fill(log, 13)  # four closed segments of equal size, active [12,13)
    assert not is_cleanable(log, cleanable_range(log, 6, NOW_MS))  # exactly 0.5
    assert is_cleanable(log, cleanable_range(log, 5, NOW_MS))
    logs.close()


# --- cleaning through the process pool ------------------------------------------------------


async def test_request_clean_cleans_swaps_and_checkpoints(
    logs: LogManager, cleaner: LogCleanerManager
) -> None:
    log = logs.get_or_create_log("t", 0, COMPACT)
    logs.get_or_create_log("t", 1, COMPACT)  # empty: nothing to clean there
    fill(log, 10)
    expected = expected_after_clean(log, 9)
    assert cleaner.request_clean("t") == 2
    await cleaner.wait_idle()
    assert read_all(log) == expected
    status = cleaner.status("t", 0)
    assert status is not None
    assert status.last_result is not None and status.last_result.records_kept == 6
    assert status.first_dirty_offset == 9
    assert status.last_clean_time_ms > 0
    assert status.uncleanable_reason is None and not status.cleaning
    checkpoint = read_offset_checkpoint(logs.data_dir / CLEANER_CHECKPOINT_FILE)
    assert checkpoint == {("t", 0): 9}
    assert not (log.directory / CLEANER_STAGING_DIR).exists()


async def test_request_clean_ignores_topics_that_are_not_compacted(
    logs: LogManager, cleaner: LogCleanerManager
) -> None:
    fill(logs.get_or_create_log("plain", 0, LogConfig(segment_bytes=SEGMENT_BYTES)), 10)
    assert cleaner.request_clean("plain") == 0
    assert cleaner.request_clean("unknown") == 0
    assert cleaner.status("plain", 0) is None


async def test_the_dirtiest_log_is_cleaned_without_a_request(
    logs: LogManager, cleaner: LogCleanerManager
) -> None:
    log = logs.get_or_create_log("t", 0, COMPACT)
    fill(log, 10)
    expected = expected_after_clean(log, 9)
    deadline = time.monotonic() + 60
    while (status := cleaner.status("t", 0)) is not None and status.last_result is None:
        assert time.monotonic() < deadline, "the cleaner never picked the dirty log"
        await cleaner.wait_idle()
        await _sleep(0.05)
    await cleaner.wait_idle()
    assert read_all(log) == expected


async def test_checkpoint_is_read_back_on_start(logs: LogManager, tmp_path: Path) -> None:
    log = logs.get_or_create_log("t", 0, COMPACT)
    fill(log, 10)
    first = make_manager(logs)
    first.start()
    first.request_clean("t")
    await first.wait_idle()
    await first.close()
    second = make_manager(logs, enabled=False)
    second.start()  # disabled: reads the checkpoint all the same
    status = second.status("t", 0)
    assert status is not None and status.first_dirty_offset == 9
    third = make_manager(logs)
    third.start()
    await third.wait_idle()  # the scheduler has read the checkpoint
    status = third.status("t", 0)
    assert status is not None and status.first_dirty_offset == 9
    await third.close()
    logs.close()


async def test_corrupt_segment_marks_the_partition_uncleanable(
    logs: LogManager, caplog: pytest.LogCaptureFixture
) -> None:
    log = logs.get_or_create_log("t", 0, COMPACT)
    fill(log, 10)
    before = read_all(log)
    manager = make_manager(logs, clean_function=corrupt_clean)
    manager.start()
    assert manager.request_clean("t") == 1
    await manager.wait_idle()
    status = manager.status("t", 0)
    assert status is not None and status.uncleanable_reason is not None
    assert "bad CRC" in status.uncleanable_reason
    assert [r for r in caplog.records if "t-0 is uncleanable" in r.getMessage()]
    assert read_all(log) == before
    assert manager.request_clean("t") == 1  # queued, then skipped: no second attempt
    await manager.wait_idle()
    assert len([r for r in caplog.records if "uncleanable" in r.getMessage()]) == 1
    await manager.close()
    logs.close()


async def test_real_clean_of_a_corrupt_segment_leaves_the_log_alone(
    logs: LogManager,
) -> None:
    from moldau.log.cleaner import clean

    log = logs.get_or_create_log("t", 0, COMPACT)
    fill(log, 10)
    with open(log.segments[1].path, "r+b") as f:  # flip a byte in a record of [3,6)
        f.seek(log.segments[1].size - 5)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    manager = make_manager(logs, clean_function=clean)
    manager.start()
    manager.request_clean("t")
    await manager.wait_idle()
    status = manager.status("t", 0)
    assert status is not None and status.uncleanable_reason is not None
    assert [s.base_offset for s in log.segments] == [0, 3, 6, 9]
    assert not (log.directory / CLEANER_STAGING_DIR).exists()
    await manager.close()
    logs.close()


async def test_disk_full_keeps_the_old_segments_and_backs_off(
    logs: LogManager, caplog: pytest.LogCaptureFixture
) -> None:
    log = logs.get_or_create_log("t", 0, NEVER_BY_RATIO)
    fill(log, 10)
    before = read_all(log)
    files = sorted(p.name for p in log.directory.iterdir())
    manager = make_manager(logs, clean_function=enospc_clean)
    manager.start()
    manager.request_clean("t")
    await manager.wait_idle()
    status = manager.status("t", 0)
    assert status is not None
    assert status.uncleanable_reason is None and status.last_result is None
    assert [r for r in caplog.records if "No space left" in r.getMessage()]
    assert read_all(log) == before
    assert sorted(p.name for p in log.directory.iterdir()) == files
    await manager.close()
    logs.close()


async def test_enospc_hook_with_the_real_clean(
    logs: LogManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moldau.log.cleaner import clean

    monkeypatch.setenv(TEST_HOOK_ENV, "enospc=100")  # workers are spawned with it
    log = logs.get_or_create_log("t", 0, NEVER_BY_RATIO)
    fill(log, 10)
    before = read_all(log)
    manager = make_manager(logs, clean_function=clean)
    manager.start()
    manager.request_clean("t")
    await manager.wait_idle()
    status = manager.status("t", 0)
    assert status is not None and status.last_result is None
    assert status.uncleanable_reason is None
    assert read_all(log) == before
    assert not (log.directory / CLEANER_STAGING_DIR).exists()
    await manager.close()
    logs.close()


async def test_close_abandons_a_running_clean(logs: LogManager) -> None:
    log = logs.get_or_create_log("t", 0, COMPACT)
    fill(log, 10)
    before = read_all(log)
    manager = make_manager(logs, clean_function=slow_clean)
    manager.start()
    manager.request_clean("t")
    deadline = time.monotonic() + 30
    while not (status := manager.status("t", 0)) or not status.cleaning:
        assert time.monotonic() < deadline
        await _sleep(0.01)
    await manager.close()
    assert read_all(log) == before
    assert manager.request_clean("t") == 0  # closed
    logs.close()


def test_disabled_cleaner_does_not_start(logs: LogManager) -> None:
    manager = make_manager(logs, enabled=False)
    manager.start()
    assert not manager.running
    assert make_manager(logs, threads=0).request_clean("t") == 0
    logs.close()


# --- the workers die with the broker ---------------------------------------------------------

_ORPHAN_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    from moldau.log.cleaner_worker import init_worker

    if __name__ == "__main__":
        pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"),
                                   initializer=init_worker, initargs=(os.getpid(),))
        print(pool.submit(os.getpid).result(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_workers_die_with_their_parent(tmp_path: Path) -> None:
    script = tmp_path / "orphan.py"
    script.write_text(_ORPHAN_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == -signal.SIGKILL
    worker_pid = int(proc.stdout.strip())
    deadline = time.monotonic() + 30
    while _alive(worker_pid):
        if time.monotonic() > deadline:
            os.kill(worker_pid, signal.SIGKILL)
            pytest.fail("the worker outlived its parent")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@pytest.mark.asyncio
async def test_a_recreated_topic_starts_with_no_cleaned_position(
    logs: LogManager, cleaner: LogCleanerManager
) -> None:
    log = logs.get_or_create_log("t", 0, COMPACT)
    fill(log, 30)
    assert cleaner.request_clean("t") == 1
    await cleaner.wait_idle()
    status = cleaner.status("t", 0)
    assert status is not None and status.first_dirty_offset > 0
    logs.delete_topic("t")
    new = logs.get_or_create_log("t", 0, COMPACT)
    fill(new, 40)  # grows past the old log's cleaned position
    status = cleaner.status("t", 0)
    assert status is not None
    assert status.first_dirty_offset == 0


@pytest.mark.asyncio
async def test_compact_delete_topics_are_cleaned_and_keep_retention(
    logs: LogManager, cleaner: LogCleanerManager
) -> None:
    config = LogConfig(
        cleanup_policy="compact,delete", segment_bytes=SEGMENT_BYTES, retention_bytes=1
    )
    log = logs.get_or_create_log("both", 0, config)
    fill(log, 10)
    assert cleaner.request_clean("both") == 1
    await cleaner.wait_idle()
    status = cleaner.status("both", 0)
    assert status is not None and status.last_clean_time_ms >= 0
    before = len(log.segments)
    assert log.delete_retention_segments(NOW_MS) > 0  # retention.bytes still applies
    assert len(log.segments) < before
