"""ReplicaManager: metadata images → local replicas, roles, fetcher hand-offs, request gates."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import pytest
from kio.schema.errors import ErrorCode

from moldau.cluster.metadata import MetadataImage, TopicImage
from moldau.cluster.replica_manager import (
    PartitionError,
    ReplicaManager,
    ReplicationConfig,
    RoleChanges,
)
from moldau.cluster.state import NO_LEADER, BrokerRegistration, PartitionState
from moldau.log.config import LogConfig
from moldau.log.manager import LogManager
from moldau.protocol.records import NewRecord, build_batch

NODE = 1
NOW_MS = 1_700_000_000_000
LAG_MS = 100


class FakeFetchers:
    """Records what the replica manager asks of the follower side."""

    def __init__(self) -> None:
        self.added: list[tuple[int, dict[tuple[str, int], Any]]] = []
        self.removed: list[tuple[str, int]] = []

    def add_partitions(self, leader_id: int, targets: Mapping[tuple[str, int], Any]) -> None:
        self.added.append((leader_id, dict(targets)))

    def remove_partitions(self, tps: Iterable[tuple[str, int]]) -> None:
        self.removed.extend(tps)


class FakeAlter:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, PartitionState, PartitionState]] = []

    async def __call__(
        self, topic: str, partition: int, expected: PartitionState, new: PartitionState
    ) -> bool:
        self.calls.append((topic, partition, expected, new))
        return True


class Env:
    def __init__(self, tmp_path: Path, *, cluster: bool = True) -> None:
        self.logs = LogManager(tmp_path / "data", LogConfig())
        self.logs.open_all()
        self.fetchers = FakeFetchers()
        self.alter = FakeAlter()
        self.hw_moves: list[tuple[str, int]] = []
        self.now_ms = NOW_MS
        self.lease = True
        self.topic_ids: dict[str, uuid.UUID] = {}
        self.broken_topics: set[str] = set()
        self.manager = ReplicaManager(
            ReplicationConfig(node_id=NODE, replica_lag_time_max_ms=LAG_MS),
            self.logs,
            log_config_for=self.log_config_for,
            alter_partition=self.alter if cluster else None,
            fetchers=cast(Any, self.fetchers) if cluster else None,
            on_high_watermark=lambda t, p: self.hw_moves.append((t, p)),
            lease_valid=lambda: self.lease,
            clock=lambda: self.now_ms,
        )

    def log_config_for(self, name: str) -> LogConfig:
        if name in self.broken_topics:
            raise OSError(f"cannot create the log of {name}")
        return LogConfig()

    def image(self, topics: Mapping[str, list[PartitionState]]) -> MetadataImage:
        topic_images = {}
        for name, states in topics.items():
            topic_id = self.topic_ids.setdefault(name, uuid.uuid4())
            topic_images[name] = TopicImage(name, topic_id, len(states))
        brokers = {
            n: BrokerRegistration(node_id=n, host="127.0.0.1", port=9000 + n) for n in (1, 2, 3)
        }
        return MetadataImage(
            cluster_id="test",
            topics=MappingProxyType(topic_images),
            brokers=MappingProxyType(brokers),
            partitions=MappingProxyType({n: tuple(s) for n, s in topics.items()}),
        )

    def apply(self, topics: Mapping[str, list[PartitionState]]) -> RoleChanges:
        return self.manager.apply_image(self.image(topics))


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.logs.close()


def state(
    leader: int, replicas: tuple[int, ...] = (1, 2, 3), epoch: int = 0, **kw: Any
) -> PartitionState:
    return PartitionState(
        replicas=replicas, isr=kw.pop("isr", replicas), leader=leader, leader_epoch=epoch, **kw
    )


def error_of(env: Env, topic: str, partition: int, epoch: int = -1) -> ErrorCode:
    with pytest.raises(PartitionError) as info:
        env.manager.leader_partition(topic, partition, epoch)
    return info.value.error_code


def test_single_node_leads_every_partition(tmp_path: Path) -> None:
    env = Env(tmp_path, cluster=False)
    try:
        changes = env.apply({"t": [state(1, (1,)), state(1, (1,))]})
        assert changes.became_leader == [("t", 0, 0), ("t", 1, 0)]
        assert env.manager.leader_count() == 2
        p = env.manager.leader_partition("t", 1)
        assert p.log is env.logs.get_log("t", 1)
        info = p.append_as_leader(
            bytearray(build_batch([NewRecord(key=None, value=b"x", timestamp_ms=NOW_MS)])),
            now_ms=NOW_MS,
        )
        assert p.log.high_watermark == info.last_offset + 1
        assert env.hw_moves == [("t", 1)]
    finally:
        env.logs.close()


def test_reapplying_an_unchanged_image_changes_nothing(env: Env) -> None:
    image = env.image({"t": [state(1)]})
    env.manager.apply_image(image)
    replica = env.manager.get("t", 0)
    again = env.manager.apply_image(env.image({"t": [state(1)]}))  # equal, not identical
    assert again == RoleChanges()
    assert env.manager.get("t", 0) is replica
    assert env.manager.apply_image(image) == RoleChanges()


def test_follower_is_handed_to_the_fetchers(env: Env) -> None:
    changes = env.apply({"t": [state(2, epoch=4)]})
    assert changes.became_follower == [("t", 0)]
    ((leader, targets),) = env.fetchers.added
    assert leader == 2
    target = targets[("t", 0)]
    assert target.log is env.logs.get_log("t", 0)
    assert target.leader_epoch == 4
    assert error_of(env, "t", 0) == ErrorCode.not_leader_or_follower


def test_leader_epoch_checks(env: Env) -> None:
    env.apply({"t": [state(1, epoch=5)]})
    assert env.manager.leader_partition("t", 0, 5).leader_epoch == 5
    assert error_of(env, "t", 0, 4) == ErrorCode.fenced_leader_epoch
    assert error_of(env, "t", 0, 6) == ErrorCode.unknown_leader_epoch
    assert env.manager.local_partition("t", 0, -1, require_leader=False).is_leader


def test_unknown_and_remote_partitions(env: Env) -> None:
    env.apply({"t": [state(2, (2, 3))]})
    assert error_of(env, "t", 0) == ErrorCode.not_leader_or_follower
    assert error_of(env, "t", 1) == ErrorCode.unknown_topic_or_partition
    assert error_of(env, "nope", 0) == ErrorCode.unknown_topic_or_partition
    assert env.logs.get_log("t", 0) is None, "no log for a partition we do not replicate"


async def test_follower_becomes_leader(env: Env) -> None:
    env.apply({"t": [state(2, epoch=1)]})
    changes = env.apply({"t": [state(1, epoch=2, isr=(1, 3))]})
    assert changes.became_leader == [("t", 0, 2)]
    assert env.fetchers.removed == [("t", 0)]
    p = env.manager.leader_partition("t", 0, 2)
    assert p.is_replica(2) and p.is_replica(3)


async def test_leader_becomes_follower_and_fails_its_waiters(env: Env) -> None:
    env.apply({"t": [state(1, (1, 2))]})
    p = env.manager.leader_partition("t", 0)
    info = p.append_as_leader(
        bytearray(build_batch([NewRecord(key=None, value=b"x", timestamp_ms=NOW_MS)])),
        now_ms=NOW_MS,
        required_acks=-1,
    )
    waiter = p.wait_for_replication(info.last_offset, 60_000)
    changes = env.apply({"t": [state(2, (1, 2), epoch=1)]})
    assert changes.became_follower == [("t", 0)]
    assert env.fetchers.added[-1][0] == 2
    assert await waiter == ErrorCode.not_leader_or_follower


def test_new_epoch_of_the_same_leader_restarts_fetching(env: Env) -> None:
    env.apply({"t": [state(2, epoch=1)]})
    changes = env.apply({"t": [state(2, epoch=2)]})
    assert changes.became_follower == [("t", 0)]
    assert [(leader, t[("t", 0)].leader_epoch) for leader, t in env.fetchers.added] == [
        (2, 1),
        (2, 2),
    ]


def test_isr_change_alone_is_no_role_change(env: Env) -> None:
    env.apply({"t": [state(1), state(2)]})
    changes = env.apply({"t": [state(1, isr=(1, 2)), state(2, isr=(2, 1))]})
    assert changes == RoleChanges()
    assert env.manager.leader_partition("t", 0).state.isr == (1, 2)
    assert len(env.fetchers.added) == 1


def test_partition_without_leader_stops_fetching(env: Env) -> None:
    env.apply({"t": [state(2)]})
    changes = env.apply({"t": [state(NO_LEADER, epoch=1, isr=(2,))]})
    assert changes.became_follower == [("t", 0)]
    assert env.fetchers.removed == [("t", 0)]


def test_reassigned_away_replica_is_removed_with_its_log(env: Env) -> None:
    env.apply({"t": [state(2)]})
    directory = env.logs.get_log("t", 0).directory  # type: ignore[union-attr]
    changes = env.apply({"t": [state(2, (2, 3))]})
    assert changes.removed == [("t", 0)]
    assert env.fetchers.removed == [("t", 0)]
    assert env.manager.get("t", 0) is None
    assert env.logs.get_log("t", 0) is None
    assert not directory.exists()


def test_deleted_topic_is_dropped_but_its_logs_are_left_to_the_broker(env: Env) -> None:
    env.apply({"t": [state(1)], "u": [state(1)]})
    changes = env.apply({"u": [state(1)]})
    assert changes.removed == [("t", 0)]
    assert env.manager.get("t", 0) is None
    assert env.logs.get_log("t", 0) is not None


def test_recreated_topic_starts_with_a_fresh_log(env: Env) -> None:
    env.apply({"t": [state(1)]})
    env.manager.leader_partition("t", 0).append_as_leader(
        bytearray(build_batch([NewRecord(key=None, value=b"x", timestamp_ms=NOW_MS)])),
        now_ms=NOW_MS,
    )
    env.topic_ids["t"] = uuid.uuid4()
    changes = env.apply({"t": [state(1)]})
    assert changes.removed == [("t", 0)]
    assert changes.became_leader == [("t", 0, 0)]
    assert env.manager.leader_partition("t", 0).log.log_end_offset == 0


async def test_periodic_check_shrinks_lagging_followers(env: Env) -> None:
    env.apply({"t": [state(1)]})
    p = env.manager.leader_partition("t", 0)
    p.append_as_leader(
        bytearray(build_batch([NewRecord(key=None, value=b"x", timestamp_ms=NOW_MS)])),
        now_ms=NOW_MS,
    )
    p.on_follower_fetch(2, 1, NOW_MS + LAG_MS)
    env.now_ms = NOW_MS + LAG_MS + 1
    env.manager.check_isr()
    for _ in range(5):
        await asyncio.sleep(0)
    assert [(c[0], c[1], c[3].isr) for c in env.alter.calls] == [("t", 0, (1, 2))]


async def test_lease_back_lets_the_high_watermark_catch_up(env: Env) -> None:
    env.apply({"t": [state(1, (1, 2))]})
    p = env.manager.leader_partition("t", 0)
    p.append_as_leader(
        bytearray(build_batch([NewRecord(key=None, value=b"x", timestamp_ms=NOW_MS)])),
        now_ms=NOW_MS,
    )
    env.lease = False
    env.manager.on_lease_state(False)
    p.on_follower_fetch(2, 1, NOW_MS)
    assert p.log.high_watermark == 0
    env.lease = True
    env.manager.on_lease_state(True)
    assert p.log.high_watermark == 1


def test_shutting_down_broker_may_not_join_the_isr(env: Env) -> None:
    image = env.image({"t": [state(1, (1, 2), isr=(1,))]})
    brokers = dict(image.brokers)
    brokers[2] = BrokerRegistration(node_id=2, host="h", port=1, shutting_down=True)
    env.manager.apply_image(
        MetadataImage(
            cluster_id=image.cluster_id,
            topics=image.topics,
            brokers=MappingProxyType(brokers),
            partitions=image.partitions,
        )
    )
    env.manager.leader_partition("t", 0).on_follower_fetch(2, 0, NOW_MS)
    assert env.alter.calls == []


async def test_start_and_close(env: Env) -> None:
    env.apply({"t": [state(1, (1, 2))]})
    p = env.manager.leader_partition("t", 0)
    waiter = p.wait_for_replication(0, 60_000)
    env.manager.start()
    await env.manager.close()
    assert await waiter == ErrorCode.not_leader_or_follower


def test_a_failing_partition_does_not_stop_the_others(env: Env) -> None:
    env.broken_topics.add("bad")
    image = env.image({"bad": [state(1)], "t": [state(1)]})
    changes = env.manager.apply_image(image)
    assert changes.became_leader == [("t", 0, 0)]
    assert env.manager.get("bad", 0) is None
    env.broken_topics.clear()
    assert env.manager.apply_image(image).became_leader == [("bad", 0, 0)]
