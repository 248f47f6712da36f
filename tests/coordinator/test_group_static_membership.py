"""Static membership (KIP-345): restarts without rebalances, and fencing of stale ids."""

from __future__ import annotations

from group_helpers import REBALANCE_MS, SESSION_MS, Harness
from kio.schema.errors import ErrorCode

from moldau.coordinator.group.messages import LeavingMember
from moldau.coordinator.group.records import GroupMetadataKey, GroupMetadataValue
from moldau.coordinator.group.state import GroupState


def static_group(h: Harness, *instances: str) -> tuple[dict[str, str], int]:
    """A STABLE group of static members; returns (instance id → member id, generation)."""
    joins = {i: h.join("g", instance_id=i) for i in instances}
    h.advance(0)
    member_ids = {i: j.result().member_id for i, j in joins.items()}
    generation = next(iter(joins.values())).result().generation_id
    leader = next(iter(joins.values())).result().leader
    assignments = {m: i.encode() for i, m in member_ids.items()}
    for i, m in member_ids.items():
        h.sync("g", m, generation, assignments if m == leader else None, instance_id=i)
    assert h.coordinator.groups["g"].state is GroupState.STABLE
    return member_ids, generation


def last_group_record(h: Harness) -> GroupMetadataValue:
    value = [r.value for r in h.written if isinstance(r.key, GroupMetadataKey)][-1]
    assert isinstance(value, GroupMetadataValue)
    return value


def test_static_members_join_without_member_id_required() -> None:
    h = Harness()
    join = h.join("g", instance_id="i1")
    h.advance(0)
    assert join.result().error is ErrorCode.none
    assert join.result().member_id.startswith("i1-")


def test_restart_within_session_gets_old_assignment_without_rebalance() -> None:
    h = Harness()
    members, generation = static_group(h, "a", "b", "c")
    leader = h.coordinator.groups["g"].leader_id
    follower_instance = next(i for i, m in members.items() if m != leader)
    old_id = members[follower_instance]

    h.advance(SESSION_MS // 2)  # the instance restarts and comes back in time
    for i, m in members.items():
        if i != follower_instance:
            assert h.heartbeat("g", m, generation, i) is ErrorCode.none
    rejoin = h.join("g", instance_id=follower_instance)
    result = rejoin.result()
    assert result.error is ErrorCode.none
    assert result.generation_id == generation
    assert result.member_id != old_id
    assert result.leader == leader
    group = h.coordinator.groups["g"]
    assert group.state is GroupState.STABLE
    sync = h.sync("g", result.member_id, generation, instance_id=follower_instance)
    assert sync.result().assignment == follower_instance.encode()
    # The others never noticed.
    for i, m in members.items():
        if i != follower_instance:
            assert h.heartbeat("g", m, generation, i) is ErrorCode.none
    # The old incarnation is fenced; the new member id is persisted.
    assert h.heartbeat("g", old_id, generation, follower_instance) is ErrorCode.fenced_instance_id
    assert result.member_id in {m.member_id for m in last_group_record(h).members}


def test_restarted_static_leader_looks_like_a_follower_before_v9() -> None:
    h = Harness()
    members, _generation = static_group(h, "a", "b")
    leader = h.coordinator.groups["g"].leader_id
    leader_instance = next(i for i, m in members.items() if m == leader)
    result = h.join("g", instance_id=leader_instance).result()
    assert result.error is ErrorCode.none
    assert result.leader == leader  # the old id: the new incarnation does not assign
    assert result.members == ()
    assert h.coordinator.groups["g"].leader_id == result.member_id


def test_restarted_static_leader_skips_assignment_from_v9() -> None:
    h = Harness()
    members, _ = static_group(h, "a", "b")
    leader_instance = next(
        i for i, m in members.items() if m == h.coordinator.groups["g"].leader_id
    )
    result = h.join("g", instance_id=leader_instance, supports_skip_assignment=True).result()
    assert result.leader == result.member_id
    assert result.skip_assignment
    assert len(result.members) == 2


def test_static_rejoin_with_a_different_protocol_rebalances() -> None:
    h = Harness()
    _members, generation = static_group(h, "a")
    rejoin = h.join("g", instance_id="a", protocols=(("roundrobin", b""), ("range", b"")))
    h.advance(0)
    assert rejoin.result().generation_id == generation + 1
    assert rejoin.result().protocol_name == "roundrobin"


def test_failed_write_reverts_the_replacement() -> None:
    h = Harness()
    members, generation = static_group(h, "a", "b")
    h.fail_writes = True
    result = h.join("g", instance_id="a").result()
    assert result.error is ErrorCode.coordinator_not_available
    h.fail_writes = False
    assert h.heartbeat("g", members["a"], generation, "a") is ErrorCode.none


def test_static_rejoin_while_completing_rebalance_fences_the_parked_sync() -> None:
    h = Harness()
    joins = {i: h.join("g", instance_id=i) for i in ("a", "b")}
    h.advance(0)
    results = {i: j.result() for i, j in joins.items()}
    follower = next(i for i, r in results.items() if r.member_id != r.leader)
    parked = h.sync("g", results[follower].member_id, 1, instance_id=follower)
    assert not parked.done
    h.join("g", instance_id=follower)
    assert parked.result().error is ErrorCode.fenced_instance_id
    assert h.coordinator.groups["g"].state is GroupState.PREPARING_REBALANCE


def test_static_member_missing_a_rebalance_stays_until_its_session_ends() -> None:
    h = Harness()
    members, generation = static_group(h, "a", "b")
    rejoin = h.join("g", members["a"], instance_id="a", protocols=(("range", b"new"),))
    for _ in range(REBALANCE_MS // 5000):
        h.advance(5000)
        h.heartbeat("g", members["b"], generation, "b")
    assert rejoin.result().error is ErrorCode.none
    assert members["b"] in h.coordinator.groups["g"].members  # static: not dropped


def test_admin_removes_static_member_by_instance_id() -> None:
    h = Harness()
    members, _ = static_group(h, "a", "b")
    result = h.leave("g", LeavingMember("", "b"))
    assert result.members[0][1] is ErrorCode.none
    assert members["b"] not in h.coordinator.groups["g"].members
    assert h.coordinator.groups["g"].state is GroupState.PREPARING_REBALANCE


def test_wrong_member_id_for_instance_is_fenced_everywhere() -> None:
    h = Harness()
    members, generation = static_group(h, "a")
    assert h.heartbeat("g", "imposter", generation, "a") is ErrorCode.fenced_instance_id
    sync = h.sync("g", "imposter", generation, instance_id="a")
    assert sync.result().error is ErrorCode.fenced_instance_id
    join = h.join("g", "imposter", instance_id="a")
    assert join.result().error is ErrorCode.fenced_instance_id
    answer = h.commit(
        "g", {("t", 0): 1}, member_id="imposter", generation=generation, instance_id="a"
    )
    assert answer == {("t", 0): ErrorCode.fenced_instance_id}
    leave = h.leave("g", LeavingMember("imposter", "a"))
    assert leave.members[0][1] is ErrorCode.fenced_instance_id
    assert h.heartbeat("g", members["a"], generation, "a") is ErrorCode.none
