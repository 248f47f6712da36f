"""Group commit: one fsync round makes every append waiting at that moment durable.

An acks=all produce must not be answered before its batch is on stable storage (DESIGN §4:
no acknowledged write lost even on power failure). fsync costs milliseconds and blocks, so
it runs on a worker thread, and it is shared:

* ``await wait_durable(log, offset)`` returns at once if ``log.recovery_point > offset``,
  else registers the waiter and the log, and starts a flush round if none is running.
* A round takes *every* log dirtied so far (those with waiters, and those reported by
  ``maybe_flush`` after an append), fsyncs them one after the other in one worker thread,
  then resolves its waiters. Waiters that arrive while a round runs wait for the next one,
  which starts as soon as the current one ends. Under load, a round therefore covers all the
  appends that arrived during the previous round: fsyncs per second stay bounded by the disk,
  not by the request rate.

Kafka's lazy policy is here too, for topics that ask for it: ``maybe_flush(log)`` after an
append starts a round when the log has ``flush.messages`` unflushed messages, and
``flush_due(logs, now_ms)``, called periodically by the broker, flushes the logs whose last
flush is ``flush.ms`` old.

Failures: if fsync raises, the waiters of that round get a LogStorageError (Kafka answers
KAFKA_STORAGE_ERROR and takes the log directory offline; the broker decides that part).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from moldau.log.config import LONG_MAX
from moldau.log.errors import LogStorageError
from moldau.log.log import PartitionLog

FlushFunction = Callable[[PartitionLog], object]


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _flush_log(log: PartitionLog) -> object:
    return log.flush()


class GroupCommitFlusher:
    """Shares fsyncs between concurrent appends; see the module docstring.

    ``flush_log`` is the blocking call made per log and round (default ``log.flush()``);
    tests pass a counting wrapper. ``clock`` gives milliseconds for the ``flush.ms`` policy.
    Use from one event loop.
    """

    def __init__(
        self,
        *,
        flush_log: FlushFunction = _flush_log,
        clock: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        self._flush_log = flush_log
        self._clock = clock
        self._dirty: dict[PartitionLog, None] = {}
        self._waiters: list[tuple[PartitionLog, int, asyncio.Future[None]]] = []
        self._round_requested = False
        self._task: asyncio.Task[None] | None = None
        self._last_flush_ms: dict[PartitionLog, int] = {}
        self.rounds = 0
        """Flush rounds completed (each is one worker-thread trip)."""

    # --- the API appenders use ------------------------------------------------------------

    async def wait_durable(self, log: PartitionLog, offset: int) -> None:
        """Return once a flush covering ``offset`` (an offset already appended to ``log``)
        has completed. Raises LogStorageError if the flush failed or the log went away."""
        if log.recovery_point > offset:
            return
        if offset >= log.log_end_offset:
            raise ValueError(f"offset {offset} is not in {log.name} (end {log.log_end_offset})")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((log, offset, future))
        self._dirty[log] = None
        self._request_round()
        await future

    def maybe_flush(self, log: PartitionLog) -> None:
        """Call after each append: marks the log dirty (the next round covers it) and
        starts a round if ``flush.messages`` is reached (Kafka's lazy policy)."""
        self._dirty[log] = None
        if log not in self._last_flush_ms:
            self._last_flush_ms[log] = self._clock()
        if log.unflushed_messages >= log.config.flush_messages:
            self._request_round()

    async def flush_due(self, logs: Iterable[PartitionLog], now_ms: int | None = None) -> None:
        """Kafka's ``flush.ms``: flush every log of ``logs`` holding unflushed messages whose
        last flush (or first append seen here) is at least ``flush.ms`` old, in one round."""
        now = self._clock() if now_ms is None else now_ms
        waits = []
        for log in logs:
            flush_ms = log.config.flush_ms
            if flush_ms >= LONG_MAX or log.closed or log.unflushed_messages <= 0:
                continue
            if now - self._last_flush_ms.setdefault(log, now) >= flush_ms:
                waits.append(self.wait_durable(log, log.log_end_offset - 1))
        if waits:
            await asyncio.gather(*waits)

    def forget(self, log: PartitionLog) -> None:
        """Stop tracking a log that is being deleted or closed."""
        self._dirty.pop(log, None)
        self._last_flush_ms.pop(log, None)

    async def close(self) -> None:
        """Let the running round (and the one queued after it) finish."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    # --- rounds ---------------------------------------------------------------------------

    def _request_round(self) -> None:
        self._round_requested = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._round_requested:
            self._round_requested = False
            logs = list(self._dirty)
            self._dirty.clear()
            waiters, self._waiters = self._waiters, []
            try:
                await asyncio.to_thread(self._flush_all, logs)
            except Exception as exc:  # any failure must reach the waiters, not the loop
                error = (
                    exc if isinstance(exc, LogStorageError) else LogStorageError(f"flush: {exc}")
                )
                for _, _, future in waiters:
                    if not future.done():
                        future.set_exception(error)
                continue
            self.rounds += 1
            now = self._clock()
            for log in logs:
                if log.closed:
                    self._last_flush_ms.pop(log, None)
                else:
                    self._last_flush_ms[log] = now
            for log, offset, future in waiters:
                if future.done():
                    continue
                if log.recovery_point > offset:
                    future.set_result(None)
                elif log.closed or offset >= log.log_end_offset:
                    future.set_exception(
                        LogStorageError(f"offset {offset} of {log.name} can no longer be flushed")
                    )
                else:  # not covered (cannot happen with log.flush()); try again next round
                    self._waiters.append((log, offset, future))
                    self._dirty[log] = None
                    self._round_requested = True

    def _flush_all(self, logs: list[PartitionLog]) -> None:
        for log in logs:
            if not log.closed:
                self._flush_log(log)
