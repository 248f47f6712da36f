"""The transaction coordinator — Kafka's classic transaction protocol (transaction version
1): InitProducerId with a transactional id, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
transaction timeouts, transactional id expiry, DescribeTransactions and ListTransactions —
persisted in ``__transaction_state``.

Layers, from the wire inwards:

- :mod:`.runtime` — ``TransactionCoordinatorRuntime``: binds shards to asyncio (writes,
  marker rounds, timers, loading). The broker talks only to it.
- :mod:`.coordinator` — ``TransactionCoordinator``: one shard's sans-I/O state machine.
- :mod:`.metadata`, :mod:`.state` — a transactional id's metadata, its states and the
  transitions between them.
- :mod:`.records` — Kafka's ``__transaction_state`` record format; :mod:`.messages` —
  version-free answers; :mod:`.config` — settings.
"""

from moldau.coordinator.txn.config import TRANSACTION_STATE_TOPIC, TxnCoordinatorConfig
from moldau.coordinator.txn.coordinator import TransactionCoordinator
from moldau.coordinator.txn.messages import (
    DescribedTransaction,
    InitProducerIdResult,
    ListedTransaction,
    TopicPartition,
    TxnMarkerRequest,
)
from moldau.coordinator.txn.runtime import (
    AppendFn,
    TransactionCoordinatorRuntime,
    WriteMarkersFn,
    wall_clock_ms,
)
from moldau.coordinator.txn.state import TransactionState

__all__ = [
    "TRANSACTION_STATE_TOPIC",
    "AppendFn",
    "DescribedTransaction",
    "InitProducerIdResult",
    "ListedTransaction",
    "TopicPartition",
    "TransactionCoordinator",
    "TransactionCoordinatorRuntime",
    "TransactionState",
    "TxnCoordinatorConfig",
    "TxnMarkerRequest",
    "WriteMarkersFn",
    "wall_clock_ms",
]
