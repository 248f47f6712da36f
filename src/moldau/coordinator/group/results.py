"""The sans-I/O contract between the group coordinator and its runtime.

The coordinator never awaits, sleeps or writes. An operation (a request, a timer firing)
returns a :class:`CoordinatorResult`: the records to append to the coordinator's
``__consumer_offsets`` partition, the response to send once they are durable, and an
optional ``on_written`` callback — Kafka's "append future" — that runs after the write
succeeds or fails. Responses that complete later (a JoinGroup parked until the rebalance
ends) travel through a :class:`Completion` the caller hands in. Timeouts are requested
through the :class:`Timer` the runtime injects; when one fires, the runtime calls the
operation with the current time and treats its result like any other.

Who calls what: only the runtime calls coordinator operations, one at a time, on one thread;
the unit tests play the runtime with a manual clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, Protocol, TypeVar

from kio.schema.errors import ErrorCode

from moldau.coordinator.group.records import CoordinatorRecord

T = TypeVar("T")


class TxnProducer(NamedTuple):
    """The transactional producer a result's records are written for (TxnOffsetCommit).

    Its records go in one transactional batch carrying this producer id and epoch, so the
    log fences a stale epoch and the COMMIT/ABORT marker that ends the transaction decides
    whether they count.
    """

    producer_id: int
    producer_epoch: int


class GroupError(Exception):
    """Validation failed: answer with ``error`` (used to leave a handler early)."""

    def __init__(self, error: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or error.name)
        self.error = error


class Completion(Generic[T]):
    """A response that is completed at most once, possibly after the operation returned.

    Deliberately not an asyncio future: the coordinator stays free of event loops. The
    runtime bridges it with ``add_callback``. Completing twice is ignored (the first answer
    wins), which is what fencing needs: a parked JoinGroup answered with FENCED_INSTANCE_ID
    must not be answered again.
    """

    __slots__ = ("_callbacks", "_done", "_value")

    def __init__(self) -> None:
        self._done = False
        self._value: T | None = None
        self._callbacks: list[Callable[[T], None]] = []

    @property
    def done(self) -> bool:
        return self._done

    def result(self) -> T:
        if not self._done:
            raise RuntimeError("completion not done yet")
        return self._value  # type: ignore[return-value]

    def complete(self, value: T) -> bool:
        """Complete with ``value``; False (and no effect) if already completed."""
        if self._done:
            return False
        self._done = True
        self._value = value
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(value)
        return True

    def add_callback(self, callback: Callable[[T], None]) -> None:
        """Call ``callback(value)`` on completion (at once if already complete)."""
        if self._done:
            callback(self._value)  # type: ignore[arg-type]
        else:
            self._callbacks.append(callback)


WriteCallback = Callable[["BaseException | None", int], "CoordinatorResult[None] | None"]
"""``on_written(error, now_ms)``: runs once the result's records are durable (``error`` is
None) or could not be written (the exception)."""


@dataclass(slots=True)
class CoordinatorResult(Generic[T]):
    """What an operation produced.

    ``records`` are appended in order, in one batch. ``replay`` says whether the runtime
    applies them to the state machine right after the append (offset commits, tombstones:
    the state changes *only* by replay) or not: classic group metadata records are
    snapshots of a group the coordinator already changed in memory — they exist to rebuild
    the group after a restart, as in Kafka (``CoordinatorResult.replayRecords=false``).
    ``response`` is released when the records are durable. ``on_written`` may return a
    follow-up result (e.g. a rebalance after a failed write), applied like any other.
    ``producer`` set makes the records one transactional batch of that producer; replayed,
    they are pending offsets of its transaction until the marker that ends it.
    """

    records: list[CoordinatorRecord] = field(default_factory=list)
    response: T | None = None
    on_written: WriteCallback | None = None
    replay: bool = True
    producer: TxnProducer | None = None

    @staticmethod
    def empty() -> CoordinatorResult[None]:
        return CoordinatorResult()


TimerOperation = Callable[[int], CoordinatorResult[None]]
"""A timer callback: gets the current wall-clock time in ms, returns records to write."""


class Timer(Protocol):
    """Keyed one-shot timers. Scheduling a key that is pending replaces it."""

    def schedule(self, key: str, delay_ms: int, operation: TimerOperation) -> None: ...

    def cancel(self, key: str) -> None: ...

    def is_scheduled(self, key: str) -> bool: ...
