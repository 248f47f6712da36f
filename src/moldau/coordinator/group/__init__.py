"""The group coordinator — classic groups (JoinGroup/SyncGroup/Heartbeat/LeaveGroup), KIP-848
consumer groups (ConsumerGroupHeartbeat) and committed offsets — persisted in
``__consumer_offsets``. A group id is one or the other, as in Kafka.

Layers, from the wire inwards:

- :mod:`.runtime` — ``GroupCoordinatorRuntime``: binds shards to asyncio (writes, timers,
  loading, retention). The broker talks only to it.
- :mod:`.coordinator` — ``GroupCoordinator``: one shard's sans-I/O state machine, composed
  of :mod:`.membership` (the rebalance protocol) and :mod:`.offsets` (committed offsets).
- :mod:`.group`, :mod:`.member`, :mod:`.state` — a classic group, its members, its states.
- KIP-848 consumer groups: :mod:`.consumer_heartbeat` (ConsumerGroupHeartbeat/Describe,
  the consumer half of the shard), :mod:`.consumer_group` (group and member state),
  :mod:`.reconciliation` (member epochs, revoke-before-reassign), :mod:`.assignors`
  (server-side ``uniform`` and ``range``), :mod:`.consumer_records` and
  :mod:`.consumer_persistence` (their ``__consumer_offsets`` records).
- :mod:`.records` — Kafka's ``__consumer_offsets`` record formats; :mod:`.partitioner` —
  which partition holds a group; :mod:`.messages` — version-free requests and answers;
  :mod:`.results` — the coordinator/runtime contract; :mod:`.txn_offsets` — offsets pending
  in open transactions (TxnOffsetCommit) until their COMMIT/ABORT marker.
"""

from moldau.coordinator.group.config import GroupCoordinatorConfig
from moldau.coordinator.group.coordinator import GroupCoordinator
from moldau.coordinator.group.messages import TxnOffsetCommitRequest
from moldau.coordinator.group.partitioner import partition_for
from moldau.coordinator.group.results import TxnProducer
from moldau.coordinator.group.runtime import (
    AppendFn,
    CoordinatorWriteError,
    GroupCoordinatorRuntime,
)
from moldau.coordinator.group.state import GroupState

GROUP_METADATA_TOPIC = "__consumer_offsets"

__all__ = [
    "GROUP_METADATA_TOPIC",
    "AppendFn",
    "CoordinatorWriteError",
    "GroupCoordinator",
    "GroupCoordinatorConfig",
    "GroupCoordinatorRuntime",
    "GroupState",
    "TxnOffsetCommitRequest",
    "TxnProducer",
    "partition_for",
]
