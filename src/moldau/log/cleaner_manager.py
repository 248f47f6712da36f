"""The log cleaner's scheduler: which partition to compact next, in which process, and what
to do with the result (Kafka's ``LogCleanerManager`` plus the ``LogCleaner`` threads).

**What is cleanable** (Kafka's ``cleanableOffsets``, :func:`cleanable_range`). A compacted
log splits into a *clean* head — already compacted, up to the first dirty offset that the
``cleaner-offset-checkpoint`` file records (the log start offset when there is none, or when
it is outside the log) — a *dirty* middle, and an *uncleanable* tail starting at the first
uncleanable offset: the least of the active segment's base offset, the last stable offset
(which is at most the high watermark), the high watermark, and, with
``min.compaction.lag.ms``, the first dirty segment holding a record newer than the lag; it is
then moved down to the base offset of the segment holding it, so a clean only ever reads
whole, closed segments. ``cleanable_ratio`` = dirty bytes / (clean + dirty bytes).

**Which log** (Kafka's ``grabFilthiestCompactedLog``): among the logs whose
``cleanup.policy`` contains ``compact``, not being cleaned, not marked uncleanable, not
backing off after an I/O error, the one with the highest ratio among those above their
``min.cleanable.dirty.ratio`` or with a dirty segment older than ``max.compaction.lag.ms``
(by its first batch's timestamp). :meth:`LogCleanerManager.request_clean` queues a topic's
partitions ahead of that choice and ignores the ratio (never the uncleanable bound).

**Where it runs.** The clean itself (:func:`moldau.log.cleaner.clean`) runs in a process
pool (spawn context, ``log.cleaner.threads`` workers, :mod:`moldau.log.cleaner_worker`), at
most one clean per partition at a time; the event loop only builds the
:class:`~moldau.log.cleaner.CleanJob` (segment list, aborted transactions, the topic's
config values) and awaits the result, so produce and fetch latency stay flat.

**Swap.** The result is swapped in on a worker thread under the log's lock, crash-safely
(:mod:`moldau.log.swap`); the swap is abandoned when retention, DeleteRecords, truncation or
a deletion changed the source segments meanwhile. Then the checkpoint moves to the result's
``end_offset``. The producer table is not touched: the cleaner keeps each producer's last
batch, so the in-memory state and the snapshots stay right.

**Failures never stop the broker.** :class:`~moldau.log.cleaner.CleanerError` (a corrupt
segment) marks the partition uncleanable until restart, with one error line naming the
partition and the reason; an ``OSError`` (the disk is full) leaves the old segments as they
were, logs a warning and retries the partition after ``log.cleaner.backoff.ms``; a worker
that died (``BrokenProcessPool``) gets the pool rebuilt.

**Test hook.** The environment variable ``MOLDAU_TEST_CLEANER_HOOK`` (comma-separated
items) is read by the broker and its workers for fault tests only; this module acts on
``crash-in-swap``: SIGKILL the broker right after the staged files were renamed to
``.swap``, before the old segments are deleted. Unset in production.

Threads: everything here runs on the event loop, except the swap and the checkpoint writes
(worker threads, via ``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from moldau.log.checkpoint import (
    CheckpointError,
    TopicPartition,
    read_offset_checkpoint,
    write_offset_checkpoint,
)
from moldau.log.cleaner import (
    CleanedGroup,
    CleanerError,
    CleanJob,
    CleanResult,
    SegmentSpec,
    clean,
)
from moldau.log.cleaner_filter import ProducerLastRecord
from moldau.log.cleaner_worker import init_worker
from moldau.log.layout import CLEANER_STAGING_DIR
from moldau.log.log import PartitionLog
from moldau.log.manager import LogManager
from moldau.log.segment import LogSegment
from moldau.log.swap import SwapGroup, swap_cleaned_segments

logger = logging.getLogger("moldau.log.cleaner")

CLEANER_CHECKPOINT_FILE = "cleaner-offset-checkpoint"
TEST_HOOK_ENV = "MOLDAU_TEST_CLEANER_HOOK"
"""Fault-injection hook for tests (see the module docstring); never set in production."""

CleanFunction = Callable[[CleanJob], CleanResult]


@dataclass(frozen=True, slots=True)
class CleanerStatus:
    """What the cleaner knows of one compacted partition (the HTTP endpoint shows it)."""

    cleanable_ratio: float
    """Dirty bytes / cleanable bytes (Kafka's definition), 0.0 for an empty log."""
    first_dirty_offset: int
    last_clean_time_ms: int
    """-1: never cleaned since the broker started."""
    last_result: CleanResult | None
    uncleanable_reason: str | None
    """Why the partition is skipped until restart (e.g. a corrupt segment)."""
    cleaning: bool


@dataclass(frozen=True, slots=True)
class CleanableRange:
    """Kafka's ``LogToClean``: where a log's dirty section starts and ends, and its sizes."""

    first_dirty_offset: int
    first_uncleanable_offset: int
    """A segment's base offset: segments below it are closed and may be cleaned."""
    clean_bytes: int
    cleanable_bytes: int
    needs_compaction_now: bool
    """A dirty segment is older than ``max.compaction.lag.ms``."""

    @property
    def total_bytes(self) -> int:
        return self.clean_bytes + self.cleanable_bytes

    @property
    def cleanable_ratio(self) -> float:
        total = self.total_bytes
        return self.cleanable_bytes / total if total else 0.0


def cleanable_range(log: PartitionLog, checkpoint: int | None, now_ms: int) -> CleanableRange:
    """Kafka's ``cleanableOffsets`` + ``LogToClean`` for ``log`` (see the module docstring):
    ``checkpoint`` is the recorded first dirty offset, if any."""
    with log.lock:
        segments = log.segments
        log_start = log.log_start_offset
        log_end = log.log_end_offset
        last_stable = log.last_stable_offset
        high_watermark = log.high_watermark
    config = log.config
    if checkpoint is None or checkpoint < log_start or checkpoint > log_end:
        first_dirty = log_start
    else:
        first_dirty = checkpoint
    active = segments[-1]
    bases = [s.base_offset for s in segments]
    dirty_start = _floor_index(bases, first_dirty)
    dirty_closed = segments[dirty_start:-1]  # Kafka's nonActiveLogSegmentsFrom(firstDirty)
    bound = min(last_stable, high_watermark, active.base_offset)
    lag_ms = max(config.min_compaction_lag_ms, 0)
    if lag_ms > 0:
        for segment in dirty_closed:
            if segment.largest_timestamp > now_ms - lag_ms:
                bound = min(bound, segment.base_offset)
                break
    bound = max(first_dirty, bound)
    i = _floor_index(bases, bound)
    first_uncleanable = active.base_offset if bound >= active.base_offset else bases[i]
    clean_bytes = sum(s.size for s in segments if s.base_offset < first_dirty)
    low = _floor_index(bases, min(first_dirty, first_uncleanable))
    cleanable_bytes = sum(s.size for s in segments[low:] if s.base_offset < first_uncleanable)
    if first_dirty == first_uncleanable:
        cleanable_bytes = 0
    first_timestamps = [s.first_batch_timestamp for s in dirty_closed]
    earliest = min((ts for ts in first_timestamps if ts > 0), default=None)
    clean_until = now_ms - max(config.max_compaction_lag_ms, 0)
    needs_now = earliest is not None and earliest < clean_until
    return CleanableRange(first_dirty, first_uncleanable, clean_bytes, cleanable_bytes, needs_now)


def _floor_index(bases: list[int], offset: int) -> int:
    """Index of the segment holding ``offset`` (the greatest base ≤ it; 0 if none)."""
    lo, hi = 0, len(bases)
    while lo < hi:
        mid = (lo + hi) // 2
        if bases[mid] <= offset:
            lo = mid + 1
        else:
            hi = mid
    return max(lo - 1, 0)


def is_cleanable(log: PartitionLog, found: CleanableRange) -> bool:
    """Kafka's filter on the dirty logs: non-empty and either past the dirty ratio or
    holding a dirty segment older than ``max.compaction.lag.ms``."""
    if found.total_bytes <= 0:
        return False
    if found.needs_compaction_now and found.cleanable_bytes > 0:
        return True
    return found.cleanable_ratio > log.config.min_cleanable_dirty_ratio


def test_hooks() -> frozenset[str]:
    """The items of ``MOLDAU_TEST_CLEANER_HOOK`` (test hook, empty in production)."""
    raw = os.environ.get(TEST_HOOK_ENV, "")
    return frozenset(item.strip() for item in raw.split(",") if item.strip())


def _crash_now() -> None:
    """The ``crash-in-swap`` test hook: die as a ``kill -9`` would."""
    logger.warning("test hook crash-in-swap: killing the broker mid-swap")
    os.kill(os.getpid(), signal.SIGKILL)


@dataclass(slots=True)
class _PartitionState:
    log: PartitionLog
    last_clean_time_ms: int = -1
    last_result: CleanResult | None = None
    uncleanable_reason: str | None = None
    retry_after_ms: int = 0
    cleaning: bool = field(default=False)


class LogCleanerManager:
    """Schedules and runs compaction of one broker's compacted logs; see the module
    docstring. Build it with the broker's :class:`LogManager`, :meth:`start` it on the
    running loop after the logs are open, and ``await`` :meth:`close` before closing them.

    ``clean_function`` is what the workers run (a picklable module-level function; tests
    pass stand-ins), :func:`moldau.log.cleaner.clean` by default.
    """

    def __init__(
        self,
        logs: LogManager,
        *,
        threads: int,
        dedupe_buffer_bytes: int,
        io_max_bytes_per_second: float,
        backoff_ms: int,
        enabled: bool,
        clean_function: CleanFunction = clean,
    ) -> None:
        self._logs = logs
        self._threads = max(threads, 0)
        self._dedupe_buffer_bytes = dedupe_buffer_bytes
        self._io_max_bytes_per_second = io_max_bytes_per_second
        self._backoff_ms = max(backoff_ms, 1)
        self._enabled = enabled and self._threads > 0
        self._clean_function = clean_function
        self._crash_in_swap = "crash-in-swap" in test_hooks()
        self._checkpoint_path = logs.data_dir / CLEANER_CHECKPOINT_FILE
        self._first_dirty: dict[TopicPartition, int] = {}
        self._checkpoint_loaded = False
        self._states: dict[TopicPartition, _PartitionState] = {}
        self._requested: dict[TopicPartition, None] = {}  # an ordered set
        self._cleaning: dict[TopicPartition, asyncio.Task[None]] = {}
        self._swaps: set[asyncio.Future[bool]] = set()
        self._executor: ProcessPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._changed = asyncio.Condition()
        self._closed = False

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._closed

    def start(self) -> None:
        """Read the cleaner checkpoint (a small file, once, at startup) and start the
        scheduler on the running loop (not when disabled or threads=0)."""
        if not self._checkpoint_loaded:
            self._checkpoint_loaded = True
            try:
                self._first_dirty = self._read_checkpoint()
            except OSError as exc:
                logger.warning("cannot read %s (%s)", self._checkpoint_path, exc)
        if not self._enabled or self._task is not None or self._closed:
            return
        self._executor = self._new_executor()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._threads,
            mp_context=get_context("spawn"),
            initializer=init_worker,
            initargs=(os.getpid(),),
        )

    async def close(self) -> None:
        """Stop: cancel the scheduler and running cleans (their workers are terminated and
        their staging output is left for the next open to delete); a swap already under way
        is waited for, so the logs can be closed right after."""
        self._closed = True
        tasks = [t for t in (self._task, *self._cleaning.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._swaps:
            await asyncio.gather(*self._swaps, return_exceptions=True)
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(_stop_executor, executor)
        self._cleaning.clear()
        self._requested.clear()
        await self._notify()

    # --- queries and requests -------------------------------------------------------------

    def status(self, topic: str, partition: int) -> CleanerStatus | None:
        """The partition's cleaner status; None if there is no such log or it is not
        compacted."""
        log = self._logs.get_log(topic, partition)
        if log is None or not log.config.compact:
            return None
        key = (topic, partition)
        state = self._state(key, log)
        found = cleanable_range(log, self._first_dirty.get(key), _now_ms())
        return CleanerStatus(
            cleanable_ratio=found.cleanable_ratio,
            first_dirty_offset=found.first_dirty_offset,
            last_clean_time_ms=state.last_clean_time_ms,
            last_result=state.last_result,
            uncleanable_reason=state.uncleanable_reason,
            cleaning=key in self._cleaning,
        )

    def request_clean(self, topic: str) -> int:
        """Queue every partition of ``topic`` for a clean as soon as possible, whatever its
        dirty ratio (still never past the first uncleanable offset). Returns how many were
        queued: 0 if the topic is not compacted, unknown, or the cleaner is not running."""
        if not self.running:
            return 0
        queued = 0
        for log in sorted(self._logs.topic_logs(topic), key=lambda lg: lg.partition):
            if not log.config.compact or log.closed:
                continue
            self._requested[(log.topic, log.partition)] = None
            queued += 1
        if queued:
            self._wakeup.set()
        return queued

    async def wait_idle(self) -> None:
        """Return once nothing is queued or being cleaned (tests, benchmarks)."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._requested and not self._cleaning)

    # --- scheduling -----------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closed:
            self._wakeup.clear()
            try:
                self._schedule(_now_ms())
            except Exception:
                logger.exception("log cleaner scheduling failed")
            await self._notify()
            # asyncio.timeout, not wait_for: 3.11's wait_for swallows a cancellation that
            # arrives as the event is set, and close() would wait forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._backoff_ms / 1000):
                    await self._wakeup.wait()

    def _schedule(self, now_ms: int) -> None:
        """Start cleans while workers are free: requested partitions first, then the
        filthiest log."""
        loop = asyncio.get_running_loop()
        while len(self._cleaning) < self._threads:
            picked = self._pick(now_ms)
            if picked is None:
                return
            key, log, found = picked
            self._state(key, log).cleaning = True
            task = loop.create_task(self._clean(key, log, found, now_ms))
            self._cleaning[key] = task

    def _pick(self, now_ms: int) -> tuple[TopicPartition, PartitionLog, CleanableRange] | None:
        for key in list(self._requested):
            if key in self._cleaning:
                continue
            log = self._logs.get_log(*key)
            state = self._state(key, log) if log is not None else None
            if log is None or state is None or not log.config.compact or log.closed:
                del self._requested[key]
                continue
            if state.uncleanable_reason is not None:
                del self._requested[key]
                continue
            if state.retry_after_ms > now_ms:
                continue
            del self._requested[key]
            found = cleanable_range(log, self._first_dirty.get(key), now_ms)
            if found.first_uncleanable_offset > log.segments[0].base_offset:
                return key, log, found
        best: tuple[TopicPartition, PartitionLog, CleanableRange] | None = None
        for log in self._logs.logs():
            key = (log.topic, log.partition)
            if not log.config.compact or log.closed or key in self._cleaning:
                continue
            state = self._state(key, log)
            if state.uncleanable_reason is not None or state.retry_after_ms > now_ms:
                continue
            found = cleanable_range(log, self._first_dirty.get(key), now_ms)
            if not is_cleanable(log, found):
                continue
            if best is None or found.cleanable_ratio > best[2].cleanable_ratio:
                best = key, log, found
        return best

    def _state(self, key: TopicPartition, log: PartitionLog) -> _PartitionState:
        """The partition's state, reset when its log was deleted and created again."""
        state = self._states.get(key)
        if state is None or state.log is not log:
            if state is not None:
                # A new log under the same name (topic deleted and created again): the
                # old log's cleaned position means nothing for it (Kafka drops the
                # checkpoint entry with the log).
                self._first_dirty.pop(key, None)
            state = _PartitionState(log)
            self._states[key] = state
        return state

    # --- one clean ------------------------------------------------------------------------

    def build_job(
        self, log: PartitionLog, found: CleanableRange, now_ms: int
    ) -> tuple[CleanJob, dict[int, LogSegment]]:
        """The job for ``log``: every segment from the log start below the first uncleanable
        offset, the aborted transactions over them, the topic's settings. Also returns the
        source segments by base offset, for the swap's check."""
        with log.lock:
            # The range was computed before this task ran; never past today's active segment
            # (a truncation in between would otherwise move the checkpoint too far).
            first_uncleanable = min(found.first_uncleanable_offset, log.segments[-1].base_offset)
            sources = [s for s in log.segments[:-1] if s.base_offset < first_uncleanable]
            specs = tuple(SegmentSpec(s.base_offset, s.next_offset, s.size) for s in sources)
            aborted = (
                tuple(log.aborted_transactions(sources[0].base_offset, sources[-1].next_offset))
                if sources
                else ()
            )
            # Kafka's activeProducers: the cleaner keeps each live producer's last batch
            # (possibly emptied) so that its sequence and epoch survive the clean.
            producers = tuple(
                ProducerLastRecord(
                    entry.producer_id,
                    entry.last_offset if entry.last_offset >= 0 else None,
                    entry.producer_epoch,
                )
                for entry in log.producer_state.producers.values()
            )
        config = log.config
        share = max(self._threads, 1)
        job = CleanJob(
            directory=str(log.directory),
            segments=specs,
            first_dirty_offset=found.first_dirty_offset,
            first_uncleanable_offset=first_uncleanable,
            delete_retention_ms=config.delete_retention_ms,
            now_ms=now_ms,
            segment_bytes=config.segment_bytes,
            max_index_bytes=config.segment_index_bytes,
            index_interval_bytes=config.index_interval_bytes,
            aborted_txns=aborted,
            dedupe_buffer_bytes=max(self._dedupe_buffer_bytes // share, 1),
            io_max_bytes_per_second=self._io_max_bytes_per_second / share,
            active_producers=producers,
        )
        return job, {s.base_offset: s for s in sources}

    async def _clean(
        self, key: TopicPartition, log: PartitionLog, found: CleanableRange, now_ms: int
    ) -> None:
        state = self._state(key, log)
        name = f"{key[0]}-{key[1]}"
        try:
            job, sources = self.build_job(log, found, now_ms)
            if not job.segments:
                return
            executor = self._executor
            if executor is None:
                return
            loop = asyncio.get_running_loop()
            try:
                result = await loop.run_in_executor(executor, self._clean_function, job)
            except CleanerError as exc:
                state.uncleanable_reason = str(exc)
                logger.error(
                    "log cleaner: partition %s is uncleanable until restart, skipped: %s",
                    name,
                    exc,
                )
                return
            except BrokenProcessPool:
                logger.warning("log cleaner: a worker died cleaning %s; restarting the pool", name)
                self._replace_broken_executor(executor)
                state.retry_after_ms = _now_ms() + self._backoff_ms
                return
            except OSError as exc:
                logger.warning(
                    "log cleaner: cleaning %s failed (%s); old segments kept, retrying in %d ms",
                    name,
                    exc,
                    self._backoff_ms,
                )
                state.retry_after_ms = _now_ms() + self._backoff_ms
                return
            if await self._swap(log, job, result, sources):
                self._first_dirty[key] = result.end_offset
                state.last_clean_time_ms = _now_ms()
                state.last_result = result
                logger.info(
                    "log cleaner: cleaned %s up to offset %d: %d → %d bytes, %d of %d records "
                    "kept, %d ms",
                    name,
                    result.end_offset,
                    result.bytes_read,
                    result.bytes_written,
                    result.records_kept,
                    result.records_read,
                    result.duration_ms,
                )
                await asyncio.to_thread(self._write_checkpoint)
            else:
                logger.info("log cleaner: %s changed while it was cleaned; result dropped", name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            state.uncleanable_reason = f"unexpected error: {exc!r}"
            logger.exception("log cleaner: cleaning %s failed; partition marked uncleanable", name)
        finally:
            state.cleaning = False
            if self._cleaning.get(key) is asyncio.current_task():
                del self._cleaning[key]
            self._wakeup.set()
            await self._notify()

    async def _swap(
        self,
        log: PartitionLog,
        job: CleanJob,
        result: CleanResult,
        sources: dict[int, LogSegment],
    ) -> bool:
        specs = {spec.base_offset: spec for spec in job.segments}
        groups: list[SwapGroup] = []
        for group in result.groups:
            if not _covers(group, specs):
                raise CleanerError(f"result group {group} does not match the job's segments")
            groups.append(
                SwapGroup(
                    group.base_offset,
                    tuple(sources[b] for b in group.source_base_offsets),
                    tuple(
                        (specs[b].size_bytes, specs[b].next_offset)
                        for b in group.source_base_offsets
                    ),
                )
            )
        staging = Path(job.directory) / CLEANER_STAGING_DIR
        hook = _crash_now if self._crash_in_swap else None
        future = asyncio.ensure_future(
            asyncio.to_thread(swap_cleaned_segments, log, groups, staging, after_swap_renames=hook)
        )
        self._swaps.add(future)
        future.add_done_callback(self._swaps.discard)
        return await asyncio.shield(future)

    def _replace_broken_executor(self, broken: ProcessPoolExecutor) -> None:
        if self._executor is broken and not self._closed:
            self._executor = self._new_executor()
            broken.shutdown(wait=False, cancel_futures=True)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # --- checkpoint -----------------------------------------------------------------------

    def _read_checkpoint(self) -> dict[TopicPartition, int]:
        try:
            return read_offset_checkpoint(self._checkpoint_path)
        except CheckpointError as exc:
            logger.warning("ignoring %s: %s", self._checkpoint_path, exc)
            return {}

    def _write_checkpoint(self) -> None:
        """Persist the first dirty offsets of the logs that still exist (worker thread)."""
        offsets = {
            key: offset
            for key, offset in list(self._first_dirty.items())
            if self._logs.get_log(*key) is not None
        }
        write_offset_checkpoint(self._checkpoint_path, offsets)


def _covers(group: CleanedGroup, specs: dict[int, SegmentSpec]) -> bool:
    bases = group.source_base_offsets
    return bool(bases) and bases[0] == group.base_offset and all(b in specs for b in bases)


def _stop_executor(executor: ProcessPoolExecutor) -> None:
    """Terminate the workers (a clean in progress is abandoned) and reap them."""
    processes = getattr(executor, "_processes", None) or {}
    for process in list(processes.values()):
        with contextlib.suppress(Exception):
            process.terminate()
    executor.shutdown(wait=True, cancel_futures=True)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
