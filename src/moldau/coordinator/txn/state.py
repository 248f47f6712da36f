"""The states of a transactional id, with Kafka's ids (``TransactionState.scala``)."""

from __future__ import annotations

import enum


class TransactionState(enum.Enum):
    """Where a transactional id's current transaction stands; the value is Kafka's status id
    as stored in ``TransactionLogValue.transaction_status``.

    ``EMPTY`` (0)
        No transaction open: the producer was just initialised (or its epoch bumped).
        Next: ONGOING (AddPartitions/AddOffsets), EMPTY (InitProducerId), DEAD (expiry).
    ``ONGOING`` (1)
        Partitions were added; data may be in flight. Next: PREPARE_COMMIT/PREPARE_ABORT
        (EndTxn), PREPARE_ABORT with a bumped epoch (fencing by InitProducerId or by the
        timeout, through PREPARE_EPOCH_FENCE), ONGOING (more partitions).
    ``PREPARE_COMMIT`` (2) / ``PREPARE_ABORT`` (3)
        The decision is durable and the client has its answer; markers are being written to
        every partition. Everything else on the id answers CONCURRENT_TRANSACTIONS until
        the markers are done. Next: COMPLETE_COMMIT / COMPLETE_ABORT.
    ``COMPLETE_COMMIT`` (4) / ``COMPLETE_ABORT`` (5)
        Markers written everywhere; the partition set is cleared. A retried EndTxn of the
        same direction answers NONE. Next: ONGOING, EMPTY (InitProducerId), DEAD (expiry).
    ``DEAD`` (6)
        The id expired and its tombstone is being written; never persisted as a value.
    ``PREPARE_EPOCH_FENCE`` (7)
        Kafka's transient state while an ongoing transaction is aborted with a bumped epoch.
        Never written in the log (transaction version 1): here it is only the pending state
        of the PREPARE_ABORT write that does the fencing.
    """

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def kafka_name(self) -> str:
        """The name Kafka's admin APIs use (DescribeTransactions, ListTransactions)."""
        return _NAMES[self]

    @classmethod
    def from_kafka_name(cls, name: str) -> TransactionState | None:
        """The state called ``name`` by Kafka, or None for an unknown name."""
        return _BY_NAME.get(name)

    @property
    def valid_previous_states(self) -> frozenset[TransactionState]:
        return _PREVIOUS[self]

    @property
    def is_prepare(self) -> bool:
        return self in (TransactionState.PREPARE_COMMIT, TransactionState.PREPARE_ABORT)

    @property
    def is_complete(self) -> bool:
        return self in (TransactionState.COMPLETE_COMMIT, TransactionState.COMPLETE_ABORT)

    @property
    def is_expirable(self) -> bool:
        """States in which an idle transactional id may be removed (nothing in flight)."""
        return self is TransactionState.EMPTY or self.is_complete


_NAMES = {
    TransactionState.EMPTY: "Empty",
    TransactionState.ONGOING: "Ongoing",
    TransactionState.PREPARE_COMMIT: "PrepareCommit",
    TransactionState.PREPARE_ABORT: "PrepareAbort",
    TransactionState.COMPLETE_COMMIT: "CompleteCommit",
    TransactionState.COMPLETE_ABORT: "CompleteAbort",
    TransactionState.DEAD: "Dead",
    TransactionState.PREPARE_EPOCH_FENCE: "PrepareEpochFence",
}
_BY_NAME = {name: state for state, name in _NAMES.items()}

_S = TransactionState
_PREVIOUS: dict[TransactionState, frozenset[TransactionState]] = {
    _S.EMPTY: frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.ONGOING: frozenset({_S.ONGOING, _S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.PREPARE_COMMIT: frozenset({_S.ONGOING}),
    _S.PREPARE_ABORT: frozenset({_S.ONGOING, _S.PREPARE_EPOCH_FENCE}),
    _S.COMPLETE_COMMIT: frozenset({_S.PREPARE_COMMIT}),
    _S.COMPLETE_ABORT: frozenset({_S.PREPARE_ABORT}),
    _S.DEAD: frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.PREPARE_EPOCH_FENCE: frozenset({_S.ONGOING}),
}
