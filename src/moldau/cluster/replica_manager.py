"""The replica manager: which partitions this broker holds, and in which role.

Every metadata image the broker sees goes through :meth:`ReplicaManager.apply_image`, which
makes the local replicas match it — Kafka's ``ReplicaManager.applyDelta`` in one pass:

* a partition naming this broker among its replicas gets a log (created empty if absent)
  and a :class:`~moldau.cluster.partition.Partition`;
* leader == us, and we were not leader at this epoch → **become leader**: stop fetching,
  start the epoch at our log end offset (leader-epoch cache), track the followers;
* leader ≠ us, and the leader or its epoch changed (or the partition is new here) →
  **become follower**: hand the log to the fetchers with the leader's id and epoch (or stop
  fetching when there is no leader), fail pending acks=all writes;
* same leader and epoch, other ISR/replicas → adopt the state (the HW may move);
* not a replica any more (reassigned away) → stop fetching and delete the log; topic deleted
  (or re-created under the same name with a new id) → stop and forget (the broker deletes
  the logs of deleted topics; a re-created topic's old logs are deleted here).

It returns the :class:`RoleChanges`, which the broker uses to move coordinators. A topic
whose partition tuple is the very object seen last time is skipped, and a partition whose
state compares equal is skipped, so an image that changed one partition costs little.

``leader_partition`` is the gate of every leader-only request (Produce, consumer Fetch,
ListOffsets, OffsetForLeaderEpoch): it answers UNKNOWN_TOPIC_OR_PARTITION,
NOT_LEADER_OR_FOLLOWER, or FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH for a client whose
``current_leader_epoch`` is older / newer than ours (checked before the role, as Kafka does).

A timer (``start``) asks every leader to shrink its ISR of followers that lag. Single node
(``alter_partition`` None, no fetchers): this broker leads everything and the ISR never
changes. Runs on the event loop; ``apply_image`` never awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kio.schema.errors import ErrorCode

from moldau.cluster.metadata import MetadataImage
from moldau.cluster.partition import (
    AlterPartition,
    Partition,
    PartitionError,
    ReplicationConfig,
)
from moldau.cluster.state import NO_LEADER, PartitionState
from moldau.log.config import LogConfig
from moldau.log.manager import LogManager

if TYPE_CHECKING:
    from moldau.cluster.replica_fetcher import FollowerTarget, ReplicaFetcherManager

__all__ = [
    "AlterPartition",
    "Partition",
    "PartitionError",
    "ReplicaManager",
    "ReplicationConfig",
    "RoleChanges",
]

log = logging.getLogger("moldau.replication")

TopicPartition = tuple[str, int]


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class RoleChanges:
    """What one ``apply_image`` changed for the local replicas."""

    became_leader: list[tuple[str, int, int]] = field(default_factory=list)
    """(topic, partition, leader_epoch)"""
    became_follower: list[TopicPartition] = field(default_factory=list)
    removed: list[TopicPartition] = field(default_factory=list)


@dataclass
class _ImagePass:
    """What one ``apply_image`` collects while it walks the partitions."""

    now_ms: int
    changes: RoleChanges = field(default_factory=RoleChanges)
    stop_fetching: list[TopicPartition] = field(default_factory=list)
    follow: dict[int, dict[TopicPartition, FollowerTarget]] = field(default_factory=dict)


class ReplicaManager:
    """The local replicas and their roles; see the module docstring."""

    def __init__(
        self,
        config: ReplicationConfig,
        logs: LogManager,
        *,
        log_config_for: Callable[[str], LogConfig],
        alter_partition: AlterPartition | None,
        fetchers: ReplicaFetcherManager | None,
        on_high_watermark: Callable[[str, int], None],
        lease_valid: Callable[[], bool] = lambda: True,
        clock: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        self.config = config
        self._logs = logs
        self._log_config_for = log_config_for
        self._alter_partition = alter_partition
        self._fetchers = fetchers
        self._on_high_watermark = on_high_watermark
        self._lease_valid = lease_valid
        self._clock = clock
        self._partitions: dict[TopicPartition, Partition] = {}
        self._topic_states: dict[str, tuple[PartitionState, ...]] = {}
        self._topic_ids: dict[str, uuid.UUID] = {}
        self._image: MetadataImage | None = None
        self._isr_task: asyncio.Task[None] | None = None

    @property
    def node_id(self) -> int:
        return self.config.node_id

    def now_ms(self) -> int:
        """The clock follower caught-up times are measured with."""
        return self._clock()

    # --- lookups --------------------------------------------------------------------------

    def get(self, topic: str, partition: int) -> Partition | None:
        return self._partitions.get((topic, partition))

    def partitions(self) -> list[Partition]:
        return list(self._partitions.values())

    def leader_count(self) -> int:
        return sum(1 for p in self._partitions.values() if p.is_leader)

    def leader_partition(
        self, topic: str, partition: int, current_leader_epoch: int = -1
    ) -> Partition:
        """The partition if we lead it at ``current_leader_epoch`` (-1: any); raises
        PartitionError otherwise."""
        return self.local_partition(topic, partition, current_leader_epoch, require_leader=True)

    def local_partition(
        self,
        topic: str,
        partition: int,
        current_leader_epoch: int = -1,
        *,
        require_leader: bool = True,
    ) -> Partition:
        """The local replica, checked as Kafka's ``localLogWithEpochOrThrow``: the client's
        epoch first, then (with ``require_leader``) our role."""
        replica = self._partitions.get((topic, partition))
        if replica is None:
            image = self._image
            if image is not None and image.partition(topic, partition) is not None:
                raise PartitionError(
                    ErrorCode.not_leader_or_follower,
                    f"This broker holds no replica of {topic}-{partition}",
                )
            raise PartitionError(
                ErrorCode.unknown_topic_or_partition,
                f"This server does not host {topic}-{partition}",
            )
        if current_leader_epoch >= 0:
            if current_leader_epoch < replica.leader_epoch:
                raise PartitionError(
                    ErrorCode.fenced_leader_epoch,
                    f"Leader epoch {current_leader_epoch} of the request is older than the "
                    f"current epoch {replica.leader_epoch} of {topic}-{partition}",
                )
            if current_leader_epoch > replica.leader_epoch:
                raise PartitionError(
                    ErrorCode.unknown_leader_epoch,
                    f"Leader epoch {current_leader_epoch} of the request is newer than the "
                    f"current epoch {replica.leader_epoch} of {topic}-{partition}",
                )
        if require_leader and not replica.is_leader:
            raise PartitionError(
                ErrorCode.not_leader_or_follower,
                f"This broker is not the leader of {topic}-{partition}",
            )
        return replica

    # --- the image ------------------------------------------------------------------------

    def apply_image(self, image: MetadataImage) -> RoleChanges:
        """Make the local replicas match ``image``; see the module docstring."""
        self._image = image
        work = _ImagePass(self._clock())
        changes, stop_fetching = work.changes, work.stop_fetching
        for name, topic in image.topics.items():
            states = image.partitions.get(name)
            if states is None:
                continue
            known_id = self._topic_ids.get(name)
            if self._topic_states.get(name) is states and known_id == topic.topic_id:
                continue
            if known_id is not None and known_id != topic.topic_id:
                # re-created under the same name: the old replicas and logs are gone
                self._forget_topic(name, changes, stop_fetching, delete_logs=True)
            self._topic_ids[name] = topic.topic_id
            complete = True
            for index, state in enumerate(states):
                try:
                    self._apply_partition(name, index, state, work)
                except Exception:
                    # one bad partition (say, a disk error creating its log) must not keep
                    # the others from their roles; the next image tries it again
                    log.exception("applying the state of %s-%d failed", name, index)
                    complete = False
            if complete:
                self._topic_states[name] = states
            else:
                self._topic_states.pop(name, None)
        for name in [n for n in self._topic_ids if n not in image.topics]:
            self._forget_topic(name, changes, stop_fetching, delete_logs=False)
        fetchers = self._fetchers
        if fetchers is not None:
            if stop_fetching:
                fetchers.remove_partitions(stop_fetching)
            for leader_id, targets in work.follow.items():
                fetchers.add_partitions(leader_id, targets)
        return changes

    def _apply_partition(
        self, name: str, index: int, state: PartitionState, work: _ImagePass
    ) -> None:
        node = self.config.node_id
        now_ms, changes, stop_fetching = work.now_ms, work.changes, work.stop_fetching
        key = (name, index)
        replica = self._partitions.get(key)
        if node not in state.replicas:
            if replica is not None:
                self._remove(key, changes, stop_fetching, delete_log=True)
            return
        if replica is not None and (replica.state is state or replica.state == state):
            return
        created = replica is None
        if replica is None:
            replica = self._create(name, index, state)
        if state.leader == node:
            if replica.is_leader and replica.leader_epoch == state.leader_epoch:
                replica.update_state(state, now_ms)
                return
            replica.make_leader(state, now_ms)
            if not created:
                stop_fetching.append(key)
            changes.became_leader.append((name, index, state.leader_epoch))
            return
        if (
            created
            or replica.is_leader
            or replica.leader_epoch != state.leader_epoch
            or replica.state.leader != state.leader
        ):
            replica.make_follower(state)
            changes.became_follower.append(key)
            if state.leader == NO_LEADER:
                stop_fetching.append(key)
            else:
                work.follow.setdefault(state.leader, {})[key] = _follower_target(replica)
        else:
            replica.update_state(state, now_ms)

    def _create(self, topic: str, partition: int, state: PartitionState) -> Partition:
        partition_log = self._logs.get_log(topic, partition)
        if partition_log is None:
            partition_log = self._logs.get_or_create_log(
                topic, partition, self._log_config_for(topic)
            )
        replica = Partition(
            topic,
            partition,
            partition_log,
            state,
            node_id=self.config.node_id,
            config=self.config,
            alter_partition=self._alter_partition,
            on_high_watermark=self._on_high_watermark,
            lease_valid=self._lease_valid,
            replica_eligible=self._replica_eligible,
        )
        self._partitions[(topic, partition)] = replica
        return replica

    def _replica_eligible(self, replica_id: int) -> bool:
        """May this follower join an ISR? Only a live broker that is not shutting down
        (KIP-841: else a broker in controlled shutdown would flap in and out)."""
        image = self._image
        if image is None or self._alter_partition is None:
            return True
        registration = image.brokers.get(replica_id)
        return registration is not None and not registration.shutting_down

    def _remove(
        self,
        key: TopicPartition,
        changes: RoleChanges,
        stop_fetching: list[TopicPartition],
        *,
        delete_log: bool,
    ) -> None:
        """Stop and forget a replica. Its log may go at once: the fetchers are told to let
        go of it before ``apply_image`` returns, and nothing runs in between."""
        replica = self._partitions.pop(key, None)
        if replica is None:
            return
        replica.stop()
        stop_fetching.append(key)
        changes.removed.append(key)
        if delete_log:
            self._logs.delete_log(*key)

    def _forget_topic(
        self,
        name: str,
        changes: RoleChanges,
        stop_fetching: list[TopicPartition],
        *,
        delete_logs: bool,
    ) -> None:
        """Drop every replica of ``name``; with ``delete_logs`` their logs too (the topic was
        re-created); without, the broker deletes them (the topic was deleted)."""
        self._topic_states.pop(name, None)
        self._topic_ids.pop(name, None)
        for key in [k for k in self._partitions if k[0] == name]:
            self._remove(key, changes, stop_fetching, delete_log=delete_logs)

    # --- lease and lifecycle --------------------------------------------------------------

    def on_lease_state(self, valid: bool) -> None:
        """The metadata-store lease lapsed (appends are refused, the HW stands still) or is
        back (let each leader's HW catch up, completing acks=all writes)."""
        if not valid:
            log.warning("metadata session lapsed: refusing writes until it is back")
            return
        for replica in list(self._partitions.values()):
            if replica.is_leader:
                replica.maybe_increment_high_watermark()

    def check_isr(self, now_ms: int | None = None) -> None:
        """One pass of the ISR-shrink check over every partition we lead."""
        now = self._clock() if now_ms is None else now_ms
        for replica in list(self._partitions.values()):
            if replica.is_leader:
                try:
                    replica.maybe_shrink_isr(now)
                except Exception:
                    log.exception("ISR check of %r failed", replica)

    def start(self) -> None:
        """Start the ISR-shrink timer (cluster mode only: a single node's ISR is fixed)."""
        if self._alter_partition is None or self._isr_task is not None:
            return
        self._isr_task = asyncio.get_running_loop().create_task(self._isr_loop())

    async def _isr_loop(self) -> None:
        interval_s = max(self.config.isr_check_interval, 1) / 1000
        while True:
            await asyncio.sleep(interval_s)
            self.check_isr()

    async def close(self) -> None:
        task, self._isr_task = self._isr_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for replica in list(self._partitions.values()):
            replica.stop()


def _follower_target(replica: Partition) -> FollowerTarget:
    from moldau.cluster.replica_fetcher import FollowerTarget

    return FollowerTarget(log=replica.log, leader_epoch=replica.leader_epoch)
