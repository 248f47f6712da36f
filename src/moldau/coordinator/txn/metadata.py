"""One transactional id's metadata and the transitions Kafka allows it
(``TransactionMetadata.scala``).

``TransactionMetadata`` is the in-memory image of the id's latest ``TransactionLogValue``
plus what Kafka keeps only in memory (the previous producer id and epoch, for KIP-360).
Its ``prepare_*`` methods do not change it: they build the :class:`~.records.TxnRecord` of
the next state, checking that the transition is one :class:`~.state.TransactionState`
allows. The coordinator writes that record and the state changes when it is replayed
(:meth:`TransactionMetadata.from_record`), on the live path and when loading alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from moldau.coordinator.txn.messages import TopicPartition
from moldau.coordinator.txn.records import TransactionLogKey, TransactionLogValue, TxnRecord
from moldau.coordinator.txn.state import TransactionState

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
SHORT_MAX = 32767


def is_epoch_exhausted(producer_epoch: int) -> bool:
    """Kafka bumps to a new producer id once the epoch reaches Short.MAX - 1: one epoch is
    kept in reserve so that an ongoing transaction can still be fenced by one more bump."""
    return producer_epoch >= SHORT_MAX - 1


class IllegalTransitionError(RuntimeError):
    """A transition the state machine does not allow (a bug, not a client error)."""


@dataclass(slots=True)
class TransactionMetadata:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    transaction_timeout_ms: int
    state: TransactionState
    partitions: frozenset[TopicPartition]
    last_update_timestamp_ms: int
    start_timestamp_ms: int = -1
    last_producer_id: int = NO_PRODUCER_ID
    last_producer_epoch: int = NO_PRODUCER_EPOCH

    @classmethod
    def from_record(cls, record: TxnRecord) -> TransactionMetadata:
        value = record.value
        assert value is not None, "a tombstone has no metadata"
        return cls(
            transactional_id=record.transactional_id,
            producer_id=value.producer_id,
            producer_epoch=value.producer_epoch,
            transaction_timeout_ms=value.transaction_timeout_ms,
            state=value.state,
            partitions=frozenset(value.partitions),
            last_update_timestamp_ms=value.last_update_timestamp_ms,
            start_timestamp_ms=value.start_timestamp_ms,
            last_producer_id=record.last_producer_id,
            last_producer_epoch=record.last_producer_epoch,
        )

    @property
    def is_epoch_exhausted(self) -> bool:
        return is_epoch_exhausted(self.producer_epoch)

    # -- transitions ---------------------------------------------------------------------

    def _record(
        self,
        state: TransactionState,
        now_ms: int,
        *,
        producer_id: int | None = None,
        producer_epoch: int | None = None,
        last_producer_epoch: int | None = None,
        timeout_ms: int | None = None,
        partitions: frozenset[TopicPartition] | None = None,
        start_timestamp_ms: int | None = None,
        last_producer_id: int | None = None,
    ) -> TxnRecord:
        if self.state not in state.valid_previous_states:
            raise IllegalTransitionError(
                f"{self.transactional_id}: {self.state.kafka_name} -> {state.kafka_name}"
            )
        parts = self.partitions if partitions is None else partitions
        value = TransactionLogValue(
            producer_id=self.producer_id if producer_id is None else producer_id,
            producer_epoch=self.producer_epoch if producer_epoch is None else producer_epoch,
            transaction_timeout_ms=(
                self.transaction_timeout_ms if timeout_ms is None else timeout_ms
            ),
            state=state,
            partitions=tuple(sorted(parts)),
            last_update_timestamp_ms=now_ms,
            start_timestamp_ms=(
                self.start_timestamp_ms if start_timestamp_ms is None else start_timestamp_ms
            ),
        )
        return TxnRecord(
            TransactionLogKey(self.transactional_id),
            value,
            last_producer_id=self.producer_id if last_producer_id is None else last_producer_id,
            last_producer_epoch=(
                self.last_producer_epoch if last_producer_epoch is None else last_producer_epoch
            ),
        )

    def prepare_epoch_bump(
        self, timeout_ms: int, now_ms: int, *, epoch: int, last_epoch: int
    ) -> TxnRecord:
        """InitProducerId on an idle id: EMPTY at ``epoch``, no partitions. ``epoch`` is the
        current one for a retried bump, which keeps the "last" producer id as it was, so the
        retry can be answered again."""
        retry = epoch == self.producer_epoch
        return self._record(
            TransactionState.EMPTY,
            now_ms,
            last_producer_id=self.last_producer_id if retry else None,
            producer_epoch=epoch,
            last_producer_epoch=last_epoch,
            timeout_ms=timeout_ms,
            partitions=frozenset(),
            start_timestamp_ms=-1,
        )

    def prepare_producer_id_rotation(
        self, new_producer_id: int, timeout_ms: int, now_ms: int, *, record_last_epoch: bool
    ) -> TxnRecord:
        """The epoch is exhausted: continue with a new producer id at epoch 0. The old id
        and epoch become the "last" ones so that a retry of this call is recognised."""
        return self._record(
            TransactionState.EMPTY,
            now_ms,
            producer_id=new_producer_id,
            producer_epoch=0,
            last_producer_epoch=self.producer_epoch if record_last_epoch else NO_PRODUCER_EPOCH,
            timeout_ms=timeout_ms,
            partitions=frozenset(),
            start_timestamp_ms=-1,
        )

    def prepare_add_partitions(self, added: frozenset[TopicPartition], now_ms: int) -> TxnRecord:
        """ONGOING with ``added``; a transaction that starts here starts now."""
        starting = self.state is TransactionState.EMPTY or self.state.is_complete
        return self._record(
            TransactionState.ONGOING,
            now_ms,
            partitions=self.partitions | added,
            start_timestamp_ms=now_ms if starting else self.start_timestamp_ms,
        )

    def prepare_end(self, commit: bool, now_ms: int) -> TxnRecord:
        """ONGOING → PREPARE_COMMIT / PREPARE_ABORT at the current epoch (EndTxn)."""
        state = TransactionState.PREPARE_COMMIT if commit else TransactionState.PREPARE_ABORT
        return self._record(state, now_ms)

    def prepare_fence_and_abort(self, now_ms: int) -> TxnRecord:
        """ONGOING → (PREPARE_EPOCH_FENCE) → PREPARE_ABORT with the epoch bumped.

        Used when a new producer instance initialises the id, and when the transaction
        times out: the markers carry the bumped epoch, so every partition fences the old
        producer, and its later requests answer PRODUCER_FENCED. The bumped epoch is never
        returned to a client (the client's retry of InitProducerId bumps once more), and
        the last epoch is forgotten so that the old producer cannot pass as a retry.
        """
        if self.producer_epoch >= SHORT_MAX:
            raise IllegalTransitionError(f"{self.transactional_id}: cannot fence epoch {SHORT_MAX}")
        if self.state is not TransactionState.ONGOING:
            raise IllegalTransitionError(
                f"{self.transactional_id}: cannot fence in {self.state.kafka_name}"
            )
        return self._record(
            TransactionState.PREPARE_ABORT,
            now_ms,
            producer_epoch=self.producer_epoch + 1,
            last_producer_epoch=NO_PRODUCER_EPOCH,
        )

    def prepare_complete(self, now_ms: int) -> TxnRecord:
        """PREPARE_COMMIT/ABORT → COMPLETE_COMMIT/ABORT once every marker is written."""
        state = (
            TransactionState.COMPLETE_COMMIT
            if self.state is TransactionState.PREPARE_COMMIT
            else TransactionState.COMPLETE_ABORT
        )
        return self._record(state, now_ms, partitions=frozenset())

    def prepare_dead(self) -> TxnRecord:
        """The id expired: its tombstone (after checking DEAD is reachable from here)."""
        if self.state not in TransactionState.DEAD.valid_previous_states:
            raise IllegalTransitionError(
                f"{self.transactional_id}: {self.state.kafka_name} cannot expire"
            )
        return TxnRecord(TransactionLogKey(self.transactional_id), None)
