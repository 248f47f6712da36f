"""Rebuilding coordinator state by replay: from records in memory, and from a real log
through the runtime (append, fsync, reopen, load)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from group_helpers import SESSION_MS, Harness, ManualTimer, subscription
from kio.schema.errors import ErrorCode

from moldau.coordinator.group.config import GroupCoordinatorConfig
from moldau.coordinator.group.coordinator import GroupCoordinator
from moldau.coordinator.group.messages import (
    HeartbeatRequest,
    JoinGroupRequest,
    LeavingMember,
    ListGroupsFilter,
    OffsetCommitRequest,
    PartitionOffset,
    SyncGroupRequest,
)
from moldau.coordinator.group.results import TxnProducer
from moldau.coordinator.group.runtime import GroupCoordinatorRuntime
from moldau.coordinator.group.state import GroupState
from moldau.log.config import LogConfig
from moldau.log.flusher import GroupCommitFlusher
from moldau.log.log import PartitionLog
from moldau.protocol.records import NewRecord, build_batch


def snapshot(c: GroupCoordinator) -> dict[str, Any]:
    """What must survive a restart: each group's durable fields, and every offset."""
    groups = {
        group_id: (
            g.state,
            g.generation_id,
            g.protocol_type,
            g.protocol_name,
            g.leader_id,
            {m.member_id: (m.group_instance_id, m.assignment) for m in g.members.values()},
        )
        for group_id, g in c.groups.items()
    }
    return {"groups": groups, "offsets": c.offsets.offsets}


def test_replaying_the_written_records_rebuilds_groups_and_offsets() -> None:
    h = Harness()
    members, generation = h.stable_group("stable", 2)
    h.commit("stable", {("t", 0): 10, ("t", 1): 11}, member_id=members[0], generation=generation)
    h.commit("simple", {("t", 0): 5}, metadata="manual")
    (gone,), gone_generation = h.stable_group("emptied", 1)
    h.commit("emptied", {("t", 2): 3}, member_id=gone, generation=gone_generation)
    h.leave("emptied", LeavingMember(gone))
    h.commit("deleted", {("t", 0): 1})
    h.apply(h.coordinator.delete_groups(["deleted"]))
    static = h.join("static", instance_id="i")
    h.advance(0)
    static_id = static.result().member_id
    h.sync("static", static_id, 1, {static_id: b"mine"}, instance_id="i")
    h.join("static", instance_id="i")  # a restart: new member id, same generation

    replayed = Harness()
    for record in h.written:
        replayed.coordinator.replay(record)
    replayed.apply(replayed.coordinator.on_loaded(replayed.now))

    assert snapshot(replayed.coordinator) == snapshot(h.coordinator)
    assert replayed.coordinator.groups["emptied"].state is GroupState.EMPTY
    assert "deleted" not in replayed.coordinator.groups
    assert replayed.coordinator.groups["simple"].protocol_type is None


def test_loaded_members_resume_without_a_rebalance_or_expire() -> None:
    h = Harness()
    (a, b), generation = h.stable_group("g", 2)
    replayed = Harness()
    for record in h.written:
        replayed.coordinator.replay(record)
    replayed.apply(replayed.coordinator.on_loaded(replayed.now))
    assert replayed.coordinator.groups["g"].state is GroupState.STABLE
    # a keeps heartbeating into the new incarnation; b never comes back.
    for _ in range(3):
        replayed.advance(SESSION_MS // 2)
        assert replayed.heartbeat("g", a, generation) in (
            ErrorCode.none,
            ErrorCode.rebalance_in_progress,
        )
    group = replayed.coordinator.groups["g"]
    assert b not in group.members
    assert group.state is GroupState.PREPARING_REBALANCE


# -- the runtime over a real log -----------------------------------------------------------


class LogBackedAppend:
    """What the broker gives the runtime: append to the partition log now, await the fsync."""

    def __init__(self, log: PartitionLog, flusher: GroupCommitFlusher) -> None:
        self.log = log
        self.flusher = flusher
        self.batches = 0

    def __call__(
        self, partition: int, records: Sequence[NewRecord], producer: TxnProducer | None = None
    ) -> Any:
        assert partition == 0
        batch = bytearray(build_batch(records))
        info = self.log.append_as_leader(batch, leader_epoch=0, now_ms=ManualTimer().now_ms)
        self.batches += 1
        return self.flusher.wait_durable(self.log, info.last_offset)


def open_offsets_log(tmp_path: Path) -> PartitionLog:
    config = LogConfig().with_overrides({"cleanup.policy": "compact"})
    return PartitionLog.open(tmp_path / "__consumer_offsets-0", config, recover=False)


CONFIG = GroupCoordinatorConfig(initial_rebalance_delay_ms=0, num_partitions=1)


async def test_runtime_round_trip_through_a_real_log(tmp_path: Path) -> None:
    log = open_offsets_log(tmp_path)
    flusher = GroupCommitFlusher()
    append = LogBackedAppend(log, flusher)
    runtime = GroupCoordinatorRuntime(CONFIG, append)
    runtime.activate(0)

    join = JoinGroupRequest(
        group_id="g",
        member_id="",
        protocol_type="consumer",
        protocols=(("range", subscription("t")),),
        session_timeout_ms=SESSION_MS,
        rebalance_timeout_ms=SESSION_MS,
        group_instance_id="static-1",
    )
    joined = await asyncio.wait_for(runtime.join_group(join), 5)
    assert joined.error is ErrorCode.none
    synced = await runtime.sync_group(
        SyncGroupRequest(
            "g",
            joined.generation_id,
            joined.member_id,
            "static-1",
            None,
            None,
            ((joined.member_id, b"assignment"),),
        )
    )
    assert synced.assignment == b"assignment"
    commit = OffsetCommitRequest(
        "g", joined.generation_id, joined.member_id, "static-1", (PartitionOffset("t", 0, 77),)
    )
    assert await runtime.commit_offsets(commit) == ((("t", 0), ErrorCode.none),)
    assert log.recovery_point == log.log_end_offset  # answered only once fsynced
    await runtime.close()
    await flusher.close()
    log.close()

    reopened = open_offsets_log(tmp_path)
    restarted = GroupCoordinatorRuntime(CONFIG, LogBackedAppend(reopened, GroupCommitFlusher()))
    task = restarted.load(0, reopened)
    assert restarted.status_error("g") is ErrorCode.coordinator_load_in_progress
    await task
    assert restarted.status_error("g") is None
    (described,) = restarted.describe_groups(["g"])
    assert described.state == "Stable"
    assert [(m.member_id, m.group_instance_id, m.assignment) for m in described.members] == [
        (joined.member_id, "static-1", b"assignment")
    ]
    fetched = restarted.fetch_offsets("g", [("t", 0)]).partitions
    assert fetched[0].offset == 77
    heartbeat = HeartbeatRequest("g", joined.generation_id, joined.member_id, "static-1")
    assert await restarted.heartbeat(heartbeat) is ErrorCode.none
    await restarted.close()
    reopened.close()


async def test_runtime_answers_write_failures_with_kafka_errors(tmp_path: Path) -> None:
    def broken_append(
        partition: int, records: Sequence[NewRecord], producer: TxnProducer | None = None
    ) -> Any:
        raise OSError("disk gone")

    runtime = GroupCoordinatorRuntime(CONFIG, broken_append)
    runtime.activate(0)
    commit = OffsetCommitRequest("g", -1, "", None, (PartitionOffset("t", 0, 1),))
    with pytest.raises(Exception) as info:
        await runtime.commit_offsets(commit)
    assert getattr(info.value, "error", None) is ErrorCode.coordinator_not_available
    assert runtime.fetch_offsets("g", [("t", 0)]).partitions[0].offset == -1  # not replayed
    await runtime.close()


async def test_runtime_timers_expire_sessions(tmp_path: Path) -> None:
    log = open_offsets_log(tmp_path)
    flusher = GroupCommitFlusher()
    config = GroupCoordinatorConfig(
        initial_rebalance_delay_ms=0, num_partitions=1, min_session_timeout_ms=10
    )
    runtime = GroupCoordinatorRuntime(config, LogBackedAppend(log, flusher))
    runtime.activate(0)
    join = JoinGroupRequest(
        group_id="g",
        member_id="",
        protocol_type="consumer",
        protocols=(("range", b""),),
        session_timeout_ms=50,
        rebalance_timeout_ms=50,
        require_known_member_id=False,
    )
    joined = await asyncio.wait_for(runtime.join_group(join), 5)
    assert joined.error is ErrorCode.none
    for _ in range(200):  # the session (50 ms) runs out on the real loop
        await asyncio.sleep(0.02)
        if runtime.describe_groups(["g"])[0].state == "Empty":
            break
    assert runtime.describe_groups(["g"])[0].state == "Empty"
    await runtime.close()
    await flusher.close()
    log.close()


async def test_runtime_retention_pass_writes_tombstones(tmp_path: Path) -> None:
    log = open_offsets_log(tmp_path)
    flusher = GroupCommitFlusher()
    clock = ManualTimer()
    config = GroupCoordinatorConfig(num_partitions=1, offsets_retention_ms=60_000)
    runtime = GroupCoordinatorRuntime(
        config, LogBackedAppend(log, flusher), clock=lambda: clock.now_ms
    )
    runtime.activate(0)
    commit = OffsetCommitRequest("g", -1, "", None, (PartitionOffset("t", 0, 5),))
    await runtime.commit_offsets(commit)
    end_before = log.log_end_offset
    await runtime.run_retention()
    assert runtime.fetch_offsets("g", [("t", 0)]).partitions[0].offset == 5
    assert log.log_end_offset == end_before  # nothing expired yet, nothing written
    clock.now_ms += 60_000
    await runtime.run_retention()
    assert runtime.fetch_offsets("g", [("t", 0)]).partitions[0].offset == -1
    assert runtime.list_groups(ListGroupsFilter()) == (ErrorCode.none, [])
    assert log.log_end_offset == end_before + 2  # the offset's and the group's tombstones
    await runtime.close()
    await flusher.close()
    log.close()
