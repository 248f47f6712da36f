"""Version-free requests and answers of the transaction coordinator (issue 4 §4 contract)."""

from __future__ import annotations

from dataclasses import dataclass

from kio.schema.errors import ErrorCode

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class TxnMarkerRequest:
    """Write a COMMIT/ABORT marker for ``producer_id``/``producer_epoch`` to ``partitions``
    (one WriteTxnMarkers entry); ``coordinator_epoch`` lets partitions fence old
    coordinators."""

    producer_id: int
    producer_epoch: int
    coordinator_epoch: int
    commit: bool
    partitions: tuple[TopicPartition, ...]


@dataclass(frozen=True, slots=True)
class InitProducerIdResult:
    error: ErrorCode
    producer_id: int = -1
    producer_epoch: int = -1


@dataclass(frozen=True, slots=True)
class DescribedTransaction:
    """One DescribeTransactions entry; ``state`` is Kafka's state name."""

    transactional_id: str
    error: ErrorCode
    state: str = ""
    producer_id: int = -1
    producer_epoch: int = -1
    transaction_timeout_ms: int = 0
    transaction_start_time_ms: int = -1
    partitions: tuple[TopicPartition, ...] = ()


@dataclass(frozen=True, slots=True)
class ListedTransaction:
    transactional_id: str
    producer_id: int
    state: str
