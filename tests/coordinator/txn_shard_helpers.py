"""A fake runtime for driving the sans-I/O transaction coordinator in tests.

``TxnHarness`` plays the runtime: it runs an operation with a manual clock, "writes" the
transition's record to an in-memory log (begin → replay, as a durable append would), or
fails it when told to, and keeps the marker requests the coordinator asked for.
"""

from __future__ import annotations

import itertools
from typing import TypeVar

from kio.schema.errors import ErrorCode

from moldau.coordinator.txn.config import TxnCoordinatorConfig
from moldau.coordinator.txn.coordinator import TransactionCoordinator, TxnResult, TxnTransition
from moldau.coordinator.txn.messages import InitProducerIdResult, TopicPartition, TxnMarkerRequest
from moldau.coordinator.txn.records import TxnRecord

T = TypeVar("T")

NOW_MS = 1_700_000_000_000
TIMEOUT_MS = 60_000


class TxnHarness:
    def __init__(
        self, config: TxnCoordinatorConfig | None = None, *, first_pid: int = 1000
    ) -> None:
        self.config = config or TxnCoordinatorConfig()
        self.coordinator = TransactionCoordinator(self.config, coordinator_epoch=3)
        self.now_ms = NOW_MS
        self.log: list[TxnRecord] = []
        self.markers: list[TxnMarkerRequest] = []
        self.fail_next_write = False
        self._pids = itertools.count(first_pid)

    def allocate(self) -> int:
        return next(self._pids)

    def write(self, transition: TxnTransition) -> bool:
        """Write one transition as the runtime does; False if it 'failed'."""
        self.coordinator.begin(transition)
        if self.fail_next_write:
            self.fail_next_write = False
            self.coordinator.abort_pending(transition.transactional_id)
            return False
        self.log.append(transition.record)
        self.coordinator.replay(transition.record)
        if transition.markers is not None:
            self.markers.append(transition.markers)
        return True

    def run(self, result: TxnResult[T]) -> T:
        if result.transition is not None:
            self.write(result.transition)
        return result.response

    # -- operations --------------------------------------------------------------------

    def init(
        self,
        tid: str = "t",
        timeout_ms: int = TIMEOUT_MS,
        expected_pid: int = -1,
        expected_epoch: int = -1,
    ) -> InitProducerIdResult:
        return self.run(
            self.coordinator.init_producer_id(
                tid, timeout_ms, self.now_ms, self.allocate, expected_pid, expected_epoch
            )
        )

    def add(self, tid: str, pid: int, epoch: int, *partitions: TopicPartition) -> ErrorCode:
        return self.run(self.coordinator.add_partitions(tid, pid, epoch, partitions, self.now_ms))

    def end(self, tid: str, pid: int, epoch: int, commit: bool) -> ErrorCode:
        return self.run(self.coordinator.end_transaction(tid, pid, epoch, commit, self.now_ms))

    def complete(self, tid: str) -> None:
        """The marker round finished: write Complete*."""
        meta = self.coordinator.transactions[tid]
        transition = self.coordinator.complete_transaction(
            tid, meta.producer_id, meta.producer_epoch, self.now_ms
        )
        assert transition is not None
        assert self.write(transition)
