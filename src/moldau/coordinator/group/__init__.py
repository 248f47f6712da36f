"""The classic consumer-group coordinator (JoinGroup/SyncGroup/Heartbeat/LeaveGroup,
committed offsets), persisted in ``__consumer_offsets``.

Layers, from the wire inwards:

- :mod:`.runtime` — ``GroupCoordinatorRuntime``: binds shards to asyncio (writes, timers,
  loading, retention). The broker talks only to it.
- :mod:`.coordinator` — ``GroupCoordinator``: one shard's sans-I/O state machine, composed
  of :mod:`.membership` (the rebalance protocol) and :mod:`.offsets` (committed offsets).
- :mod:`.group`, :mod:`.member`, :mod:`.state` — a classic group, its members, its states.
- :mod:`.records` — Kafka's ``__consumer_offsets`` record formats; :mod:`.partitioner` —
  which partition holds a group; :mod:`.messages` — version-free requests and answers;
  :mod:`.results` — the coordinator/runtime contract.
"""

from moldau.coordinator.group.config import GroupCoordinatorConfig
from moldau.coordinator.group.coordinator import GroupCoordinator
from moldau.coordinator.group.partitioner import partition_for
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
    "partition_for",
]
