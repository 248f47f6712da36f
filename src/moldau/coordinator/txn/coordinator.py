"""One transaction coordinator shard: the transactional ids of one ``__transaction_state``
partition.

``TransactionCoordinator`` is a sans-I/O state machine (DESIGN.md §5) implementing Kafka's
classic protocol (transaction version 1, ``TransactionCoordinator.scala``). Every operation
gets the current time and returns a :class:`TxnResult`: the answer, and at most one
:class:`TxnTransition` — the record that moves one transactional id to its next state, the
state to show while that record is being written, and the markers to write once it is
durable. The state changes only in :meth:`replay`, which the runtime calls once a record is
durable and the loader calls for every record of the partition.

Operations on one transactional id never interleave: while a transition is being written,
the id is *pending* (Kafka's ``pendingState``) and every other operation on it answers
CONCURRENT_TRANSACTIONS, as do operations while the id is in PrepareCommit/PrepareAbort —
its markers are being written. A write that fails clears the pending state
(:meth:`abort_pending`) and leaves the id as it was; in particular a failed fencing write
does not keep a bumped epoch around (Kafka's ``hasFailedEpochFence`` is not needed, since
nothing changed).

Who calls it: only the runtime (and unit tests acting as one), one call at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from kio.schema.errors import ErrorCode

from moldau.coordinator.txn.config import TxnCoordinatorConfig
from moldau.coordinator.txn.messages import (
    DescribedTransaction,
    InitProducerIdResult,
    ListedTransaction,
    TopicPartition,
    TxnMarkerRequest,
)
from moldau.coordinator.txn.metadata import (
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    IllegalTransitionError,
    TransactionMetadata,
    is_epoch_exhausted,
)
from moldau.coordinator.txn.records import TransactionLogKey, TransactionLogValue, TxnRecord
from moldau.coordinator.txn.state import TransactionState

T = TypeVar("T")

log = logging.getLogger("moldau.coordinator.txn")


@dataclass(frozen=True, slots=True)
class TxnTransition:
    """One write for one transactional id.

    ``pending_state`` is what the id is "becoming" while ``record`` is written (Kafka's
    pending state: PrepareEpochFence while a fencing abort is written, Dead while a
    tombstone is). ``markers``, for a PrepareCommit/PrepareAbort record, is the marker
    round to run once it is durable.
    """

    record: TxnRecord
    pending_state: TransactionState
    markers: TxnMarkerRequest | None = None

    @property
    def transactional_id(self) -> str:
        return self.record.transactional_id


@dataclass(frozen=True, slots=True)
class TxnResult(Generic[T]):
    """``response`` is the answer once ``transition`` (if any) is durable."""

    response: T
    transition: TxnTransition | None = None


class TransactionCoordinator:
    """The state machine of one shard; see the module docstring."""

    def __init__(self, config: TxnCoordinatorConfig, coordinator_epoch: int = 0) -> None:
        self.config = config
        self.coordinator_epoch = coordinator_epoch
        self.transactions: dict[str, TransactionMetadata] = {}
        self.pending: dict[str, TransactionState] = {}

    # -- InitProducerId ------------------------------------------------------------------

    def init_producer_id(
        self,
        transactional_id: str,
        transaction_timeout_ms: int,
        now_ms: int,
        allocate_producer_id: Callable[[], int],
        expected_producer_id: int = NO_PRODUCER_ID,
        expected_producer_epoch: int = NO_PRODUCER_EPOCH,
    ) -> TxnResult[InitProducerIdResult]:
        """Give the producer its id and a fresh epoch, fencing older instances.

        A new id gets a producer id and epoch 0. An idle id (Empty, Complete*) gets its
        epoch bumped, or a new producer id at epoch 0 when the epoch is exhausted. An
        Ongoing transaction is aborted with a bumped epoch first and the client is told
        CONCURRENT_TRANSACTIONS, so that its retry finds the id idle (Kafka's way to fence
        a zombie that still holds the transaction open). ``expected_producer_id/epoch``
        (KIP-360, -1/-1 = none) identify the caller's current id: a stale one is
        PRODUCER_FENCED; the caller's previous id/epoch after a bump it never heard of is a
        retry and gets the same answer again.
        """

        def error(code: ErrorCode) -> TxnResult[InitProducerIdResult]:
            return TxnResult(InitProducerIdResult(code))

        if not transactional_id:
            return error(ErrorCode.invalid_request)
        if not 0 < transaction_timeout_ms <= self.config.max_timeout_ms:
            return error(ErrorCode.invalid_transaction_timeout)
        if (expected_producer_id == NO_PRODUCER_ID) != (
            expected_producer_epoch == NO_PRODUCER_EPOCH
        ):
            return error(ErrorCode.invalid_request)
        expected = expected_producer_id != NO_PRODUCER_ID
        if transactional_id in self.pending:
            return error(ErrorCode.concurrent_transactions)
        meta = self.transactions.get(transactional_id)
        if meta is None:
            producer_id = allocate_producer_id()
            value = TransactionLogValue(
                producer_id, 0, transaction_timeout_ms, TransactionState.EMPTY, (), now_ms, -1
            )
            record = TxnRecord(TransactionLogKey(transactional_id), value)
            return TxnResult(
                InitProducerIdResult(ErrorCode.none, producer_id, 0),
                TxnTransition(record, TransactionState.EMPTY),
            )
        if expected and not (
            expected_producer_id == meta.producer_id
            or (
                expected_producer_id == meta.last_producer_id
                and is_epoch_exhausted(expected_producer_epoch)
            )
        ):
            return error(ErrorCode.producer_fenced)
        state = meta.state
        if state.is_prepare:
            return error(ErrorCode.concurrent_transactions)
        if state is TransactionState.ONGOING:
            record = meta.prepare_fence_and_abort(now_ms)
            return TxnResult(
                InitProducerIdResult(ErrorCode.concurrent_transactions),
                TxnTransition(record, TransactionState.PREPARE_EPOCH_FENCE, self._markers(record)),
            )
        if state is TransactionState.EMPTY or state.is_complete:
            if meta.is_epoch_exhausted and (
                not expected or expected_producer_epoch == meta.producer_epoch
            ):
                record = meta.prepare_producer_id_rotation(
                    allocate_producer_id(),
                    transaction_timeout_ms,
                    now_ms,
                    record_last_epoch=expected,
                )
            else:
                bump = self._epoch_bump(meta, expected_producer_epoch if expected else None)
                if bump is None:
                    return error(ErrorCode.producer_fenced)
                epoch, last_epoch = bump
                record = meta.prepare_epoch_bump(
                    transaction_timeout_ms, now_ms, epoch=epoch, last_epoch=last_epoch
                )
            assert record.value is not None
            return TxnResult(
                InitProducerIdResult(
                    ErrorCode.none, record.value.producer_id, record.value.producer_epoch
                ),
                TxnTransition(record, TransactionState.EMPTY),
            )
        raise AssertionError(f"{transactional_id} found in state {state.kafka_name}")

    @staticmethod
    def _epoch_bump(
        meta: TransactionMetadata, expected_epoch: int | None
    ) -> tuple[int, int] | None:
        """(new epoch, last epoch) for InitProducerId on an idle id, None = fenced."""
        if expected_epoch is None:
            if meta.is_epoch_exhausted:  # unreachable: rotation handles it
                return None
            return meta.producer_epoch + 1, NO_PRODUCER_EPOCH
        if expected_epoch == meta.producer_epoch and not meta.is_epoch_exhausted:
            return meta.producer_epoch + 1, meta.producer_epoch
        if (
            meta.last_producer_epoch != NO_PRODUCER_EPOCH
            and expected_epoch == meta.last_producer_epoch
        ):
            # A retry of the bump that produced the current epoch: answer it again.
            return meta.producer_epoch, meta.last_producer_epoch
        return None

    # -- AddPartitionsToTxn / AddOffsetsToTxn --------------------------------------------

    def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Iterable[TopicPartition],
        now_ms: int,
    ) -> TxnResult[ErrorCode]:
        """Add partitions to the transaction (starting it if none is open)."""
        if not transactional_id:
            return TxnResult(ErrorCode.invalid_request)
        meta = self.transactions.get(transactional_id)
        error = self._check_producer(meta, producer_id, producer_epoch)
        if error is not None:
            return TxnResult(error)
        assert meta is not None
        if transactional_id in self.pending or meta.state.is_prepare:
            return TxnResult(ErrorCode.concurrent_transactions)
        added = frozenset(partitions)
        if meta.state is TransactionState.ONGOING and added <= meta.partitions:
            return TxnResult(ErrorCode.none)
        record = meta.prepare_add_partitions(added, now_ms)
        return TxnResult(ErrorCode.none, TxnTransition(record, TransactionState.ONGOING))

    # -- EndTxn --------------------------------------------------------------------------

    def end_transaction(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        now_ms: int,
    ) -> TxnResult[ErrorCode]:
        """Decide the transaction: PrepareCommit/PrepareAbort, then markers."""
        if not transactional_id:
            return TxnResult(ErrorCode.invalid_request)
        meta = self.transactions.get(transactional_id)
        error = self._check_producer(meta, producer_id, producer_epoch)
        if error is not None:
            return TxnResult(error)
        assert meta is not None
        if transactional_id in self.pending:
            return TxnResult(ErrorCode.concurrent_transactions)
        state = meta.state
        same_direction = {
            TransactionState.PREPARE_COMMIT: commit,
            TransactionState.PREPARE_ABORT: not commit,
            TransactionState.COMPLETE_COMMIT: commit,
            TransactionState.COMPLETE_ABORT: not commit,
        }
        if state is TransactionState.ONGOING:
            record = meta.prepare_end(commit, now_ms)
            assert record.value is not None
            return TxnResult(
                ErrorCode.none,
                TxnTransition(record, record.value.state, self._markers(record)),
            )
        if state.is_complete and same_direction[state]:
            return TxnResult(ErrorCode.none)  # a retry of a finished EndTxn
        if state.is_prepare and same_direction[state]:
            return TxnResult(ErrorCode.concurrent_transactions)
        return TxnResult(ErrorCode.invalid_txn_state)

    def _check_producer(
        self, meta: TransactionMetadata | None, producer_id: int, producer_epoch: int
    ) -> ErrorCode | None:
        if meta is None or meta.producer_id != producer_id:
            return ErrorCode.invalid_producer_id_mapping
        if meta.producer_epoch != producer_epoch:
            return ErrorCode.producer_fenced
        return None

    # -- markers, timeouts, expiry -------------------------------------------------------

    def _markers(self, record: TxnRecord) -> TxnMarkerRequest:
        value = record.value
        assert value is not None and value.state.is_prepare
        return TxnMarkerRequest(
            producer_id=value.producer_id,
            producer_epoch=value.producer_epoch,
            coordinator_epoch=self.coordinator_epoch,
            commit=value.state is TransactionState.PREPARE_COMMIT,
            partitions=value.partitions,
        )

    def marker_request(self, transactional_id: str) -> TxnMarkerRequest | None:
        """The markers a PrepareCommit/PrepareAbort id still needs (after loading)."""
        meta = self.transactions.get(transactional_id)
        if meta is None or not meta.state.is_prepare:
            return None
        return TxnMarkerRequest(
            producer_id=meta.producer_id,
            producer_epoch=meta.producer_epoch,
            coordinator_epoch=self.coordinator_epoch,
            commit=meta.state is TransactionState.PREPARE_COMMIT,
            partitions=tuple(sorted(meta.partitions)),
        )

    def prepared_transactions(self) -> list[str]:
        """Ids in PrepareCommit/PrepareAbort: their markers must be (re)sent."""
        return [tid for tid, meta in self.transactions.items() if meta.state.is_prepare]

    def complete_transaction(
        self, transactional_id: str, producer_id: int, producer_epoch: int, now_ms: int
    ) -> TxnTransition | None:
        """Every marker is written: CompleteCommit/CompleteAbort. None when the id is no
        longer in the PrepareCommit/PrepareAbort the markers were for (cannot happen while
        this shard owns it, but a stale marker round must not complete someone else's)."""
        meta = self.transactions.get(transactional_id)
        if (
            meta is None
            or transactional_id in self.pending
            or not meta.state.is_prepare
            or meta.producer_id != producer_id
            or meta.producer_epoch != producer_epoch
        ):
            return None
        record = meta.prepare_complete(now_ms)
        assert record.value is not None
        return TxnTransition(record, record.value.state)

    def timed_out_transactions(self, now_ms: int) -> list[TxnTransition]:
        """Abort Ongoing transactions older than their timeout, fencing their producer."""
        transitions = []
        for tid, meta in self.transactions.items():
            if (
                meta.state is TransactionState.ONGOING
                and tid not in self.pending
                and meta.start_timestamp_ms + meta.transaction_timeout_ms < now_ms
            ):
                try:
                    record = meta.prepare_fence_and_abort(now_ms)
                except IllegalTransitionError:
                    log.exception("cannot abort the timed-out transaction of %r", tid)
                    continue
                transitions.append(
                    TxnTransition(
                        record, TransactionState.PREPARE_EPOCH_FENCE, self._markers(record)
                    )
                )
        return transitions

    def expired_transactional_ids(self, now_ms: int) -> list[TxnTransition]:
        """Tombstones for ids idle (Empty, Complete*) longer than
        ``transactional.id.expiration.ms``."""
        deadline_ms = now_ms - self.config.transactional_id_expiration_ms
        return [
            TxnTransition(meta.prepare_dead(), TransactionState.DEAD)
            for tid, meta in self.transactions.items()
            if meta.state.is_expirable
            and tid not in self.pending
            and meta.last_update_timestamp_ms <= deadline_ms
        ]

    # -- writes and replay ---------------------------------------------------------------

    def begin(self, transition: TxnTransition) -> None:
        """The runtime is about to write ``transition``: the id is pending until replay."""
        self.pending[transition.transactional_id] = transition.pending_state

    def abort_pending(self, transactional_id: str) -> None:
        """The write failed: the id stays as it was."""
        self.pending.pop(transactional_id, None)

    def replay(self, record: TxnRecord) -> None:
        """Apply one record of this shard's partition (just made durable, or read back)."""
        tid = record.transactional_id
        self.pending.pop(tid, None)
        if record.value is None:
            self.transactions.pop(tid, None)
        else:
            self.transactions[tid] = TransactionMetadata.from_record(record)

    # -- admin ---------------------------------------------------------------------------

    def describe(self, transactional_id: str) -> DescribedTransaction:
        """An id whose tombstone is being written is already gone, as in Kafka."""
        meta = self.transactions.get(transactional_id)
        if meta is None or self.pending.get(transactional_id) is TransactionState.DEAD:
            return DescribedTransaction(transactional_id, ErrorCode.transactional_id_not_found)
        return DescribedTransaction(
            transactional_id=transactional_id,
            error=ErrorCode.none,
            state=meta.state.kafka_name,
            producer_id=meta.producer_id,
            producer_epoch=meta.producer_epoch,
            transaction_timeout_ms=meta.transaction_timeout_ms,
            transaction_start_time_ms=meta.start_timestamp_ms,
            partitions=tuple(sorted(meta.partitions)),
        )

    def list_transactions(
        self,
        state_filters: Sequence[str],
        producer_id_filters: Sequence[int],
        duration_filter_ms: int,
        now_ms: int,
    ) -> list[ListedTransaction]:
        """Kafka's ListTransactions filters: any of the named states (unknown names match
        nothing), any of the producer ids, running longer than ``duration_filter_ms``
        (KIP-994; < 0 = no filter)."""
        states = {TransactionState.from_kafka_name(name) for name in state_filters}
        producer_ids = set(producer_id_filters)
        listed = []
        for tid, meta in sorted(self.transactions.items()):
            if self.pending.get(tid) is TransactionState.DEAD:
                continue
            if state_filters and meta.state not in states:
                continue
            if producer_ids and meta.producer_id not in producer_ids:
                continue
            if duration_filter_ms >= 0 and now_ms - meta.start_timestamp_ms <= duration_filter_ms:
                continue
            listed.append(ListedTransaction(tid, meta.producer_id, meta.state.kafka_name))
        return listed
