"""The classic rebalance protocol as a state machine: joins, syncs, sessions, leaves."""

from __future__ import annotations

from group_helpers import REBALANCE_MS, SESSION_MS, Harness, subscription
from kio.schema.errors import ErrorCode

from moldau.coordinator.group.config import GroupCoordinatorConfig
from moldau.coordinator.group.messages import LeavingMember
from moldau.coordinator.group.records import GroupMetadataKey, GroupMetadataValue
from moldau.coordinator.group.state import GroupState


def group_state(h: Harness, group: str) -> GroupState:
    return h.coordinator.groups[group].state


def group_records(h: Harness) -> list[GroupMetadataValue | None]:
    return [
        r.value  # type: ignore[misc]
        for r in h.written
        if isinstance(r.key, GroupMetadataKey)
    ]


# -- joining -------------------------------------------------------------------------------


def test_member_id_required_then_first_generation() -> None:
    h = Harness()
    first = h.join("g")
    assert first.result().error is ErrorCode.member_id_required
    member_id = first.result().member_id
    assert member_id.startswith("client-")
    assert group_state(h, "g") is GroupState.EMPTY  # only a pending member so far

    join = h.join("g", member_id)
    assert not join.done  # the initial rebalance completes on its timer
    assert group_state(h, "g") is GroupState.PREPARING_REBALANCE
    h.advance(0)
    result = join.result()
    assert result.error is ErrorCode.none
    assert result.generation_id == 1
    assert result.leader == member_id
    assert result.protocol_name == "range"
    assert [m.member_id for m in result.members] == [member_id]
    assert group_state(h, "g") is GroupState.COMPLETING_REBALANCE


def test_old_join_versions_add_the_member_directly() -> None:
    h = Harness()
    join = h.join("g", require_known_member_id=False)
    h.advance(0)
    assert join.result().error is ErrorCode.none
    assert join.result().generation_id == 1


def test_leader_assignment_reaches_followers_once_written() -> None:
    h = Harness()
    a, b = h.join_new("g"), h.join_new("g")
    h.advance(0)
    ra, rb = a.result(), b.result()
    assert ra.generation_id == rb.generation_id == 1
    leader = ra.leader
    assert rb.leader == leader
    leader_result, follower_result = (ra, rb) if ra.member_id == leader else (rb, ra)
    assert len(leader_result.members) == 2
    assert follower_result.members == ()

    follower_sync = h.sync("g", follower_result.member_id, 1)
    assert not follower_sync.done  # parked until the leader's assignment
    leader_sync = h.sync(
        "g",
        leader,
        1,
        {leader: b"L", follower_result.member_id: b"F"},
    )
    assert leader_sync.result().assignment == b"L"
    assert follower_sync.result().error is ErrorCode.none
    assert follower_sync.result().assignment == b"F"
    assert follower_sync.result().protocol_name == "range"
    assert group_state(h, "g") is GroupState.STABLE
    record = group_records(h)[-1]
    assert record is not None and record.generation == 1
    assert {m.member_id: m.assignment for m in record.members} == {
        leader: b"L",
        follower_result.member_id: b"F",
    }


def test_member_missing_from_assignment_gets_empty_bytes() -> None:
    h = Harness()
    a, b = h.join_new("g"), h.join_new("g")
    h.advance(0)
    leader = a.result().leader
    other = b.result().member_id if a.result().member_id == leader else a.result().member_id
    other_sync = h.sync("g", other, 1)
    h.sync("g", leader, 1, {leader: b"everything"})
    assert other_sync.result().error is ErrorCode.none
    assert other_sync.result().assignment == b""


def test_failed_assignment_write_restarts_the_rebalance() -> None:
    h = Harness()
    join = h.join_new("g")
    h.advance(0)
    member = join.result().member_id
    h.fail_writes = True
    sync = h.sync("g", member, 1, {member: b"x"})
    assert sync.result().error is ErrorCode.coordinator_not_available
    assert group_state(h, "g") is GroupState.PREPARING_REBALANCE


def test_initial_rebalance_delay_waits_for_more_members() -> None:
    h = Harness(GroupCoordinatorConfig(initial_rebalance_delay_ms=3000))
    a = h.join_new("g")
    h.advance(2000)
    b = h.join_new("g")  # arrives during the delay: extends it
    h.advance(1500)
    assert not a.done and not b.done
    h.advance(3000)
    assert a.result().generation_id == b.result().generation_id == 1
    assert len({a.result().member_id, b.result().member_id}) == 2


def test_initial_rebalance_delay_is_capped_by_the_rebalance_timeout() -> None:
    h = Harness(GroupCoordinatorConfig(initial_rebalance_delay_ms=3000))
    first = h.join_new("g", rebalance_ms=5000)
    for _ in range(10):  # keep arriving every 2 s
        h.advance(2000)
        h.join_new("g", rebalance_ms=5000)
    assert first.done
    assert first.result().generation_id == 1


def test_rebalance_waits_for_known_members_then_drops_laggards() -> None:
    h = Harness()
    (m1, m2), generation = h.stable_group("g", 2)
    rejoin = h.join("g", m1)
    assert group_state(h, "g") is GroupState.PREPARING_REBALANCE
    # m2 keeps its session and learns about the rebalance, but never rejoins.
    for _ in range(REBALANCE_MS // 5000 - 1):
        h.advance(5000)
        assert h.heartbeat("g", m2, generation) is ErrorCode.rebalance_in_progress
    h.advance(4999)
    assert not rejoin.done
    h.advance(1)
    assert rejoin.result().error is ErrorCode.none
    assert rejoin.result().generation_id == generation + 1
    assert [m.member_id for m in rejoin.result().members] == [m1]
    assert "g" in h.coordinator.groups and m2 not in h.coordinator.groups["g"].members


def test_follower_rejoin_with_same_metadata_in_stable_changes_nothing() -> None:
    h = Harness()
    members, generation = h.stable_group("g", 2)
    follower = next(m for m in members if not h.coordinator.groups["g"].is_leader(m))
    join = h.join("g", follower)
    assert join.result().generation_id == generation
    assert join.result().members == ()
    assert group_state(h, "g") is GroupState.STABLE


def test_changed_metadata_triggers_a_rebalance() -> None:
    h = Harness()
    members, _generation = h.stable_group("g", 2)
    follower = next(m for m in members if not h.coordinator.groups["g"].is_leader(m))
    h.join("g", follower, protocols=(("range", subscription("t", "u")),))
    assert group_state(h, "g") is GroupState.PREPARING_REBALANCE


def test_protocol_selection_takes_the_most_votes_among_common_protocols() -> None:
    h = Harness()
    joins = [
        h.join_new("g", protocols=(("range", b"1"), ("roundrobin", b"2"))),
        h.join_new("g", protocols=(("roundrobin", b"3"), ("range", b"4"))),
        h.join_new("g", protocols=(("roundrobin", b"5"), ("sticky", b"6"), ("range", b"7"))),
    ]
    h.advance(0)
    result = joins[0].result()
    assert result.protocol_name == "roundrobin"
    leader = next(j.result() for j in joins if j.result().member_id == result.leader)
    assert sorted(m.metadata for m in leader.members) == [b"2", b"3", b"5"]


def test_inconsistent_protocols_are_refused_without_disturbing_the_group() -> None:
    h = Harness()
    members, generation = h.stable_group("g", 1)
    other_type = h.join("g", protocol_type="connect")
    assert other_type.result().error is ErrorCode.inconsistent_group_protocol
    no_common = h.join("g", protocols=(("roundrobin", b""),))
    assert no_common.result().error is ErrorCode.inconsistent_group_protocol
    assert group_state(h, "g") is GroupState.STABLE
    assert h.heartbeat("g", members[0], generation) is ErrorCode.none


def test_empty_protocol_type_is_inconsistent_and_leaves_no_group() -> None:
    h = Harness()
    join = h.join("g", protocol_type="")
    assert join.result().error is ErrorCode.inconsistent_group_protocol
    assert "g" not in h.coordinator.groups


def test_invalid_session_timeout_and_group_id() -> None:
    h = Harness()
    assert h.join("g", session_ms=1000).result().error is ErrorCode.invalid_session_timeout
    assert h.join("g", session_ms=10**8).result().error is ErrorCode.invalid_session_timeout
    assert h.join("").result().error is ErrorCode.invalid_group_id
    assert "g" not in h.coordinator.groups


def test_group_max_size() -> None:
    h = Harness(GroupCoordinatorConfig(initial_rebalance_delay_ms=0, max_size=2))
    h.stable_group("g", 2)
    third = h.join("g")  # refused before it even gets a member id
    assert third.result().error is ErrorCode.group_max_size_reached
    assert group_state(h, "g") is GroupState.STABLE


def test_join_with_unknown_member_id() -> None:
    h = Harness()
    assert h.join("nope", "ghost").result().error is ErrorCode.unknown_member_id
    h.stable_group("g", 1)
    assert h.join("g", "ghost").result().error is ErrorCode.unknown_member_id


# -- sync ----------------------------------------------------------------------------------


def test_sync_errors() -> None:
    h = Harness()
    (member,), generation = h.stable_group("g", 1)
    assert h.sync("nope", member, 1).result().error is ErrorCode.unknown_member_id
    assert h.sync("g", "ghost", generation).result().error is ErrorCode.unknown_member_id
    assert h.sync("g", member, generation + 5).result().error is ErrorCode.illegal_generation
    bad_protocol = h.sync("g", member, generation, protocol_name="roundrobin")
    assert bad_protocol.result().error is ErrorCode.inconsistent_group_protocol
    stable = h.sync("g", member, generation, protocol_type="consumer", protocol_name="range")
    assert stable.result().assignment == member.encode()


def test_sync_during_preparing_rebalance() -> None:
    h = Harness()
    (a, b), generation = h.stable_group("g", 2)
    h.join("g", a)
    assert h.sync("g", b, generation).result().error is ErrorCode.rebalance_in_progress


def test_rebalance_answers_parked_syncs_with_rebalance_in_progress() -> None:
    h = Harness()
    a, b = h.join_new("g"), h.join_new("g")
    h.advance(0)
    follower = a.result() if a.result().member_id != a.result().leader else b.result()
    parked = h.sync("g", follower.member_id, 1)
    h.join_new("g")  # a newcomer restarts the rebalance
    assert parked.result().error is ErrorCode.rebalance_in_progress


def test_member_that_never_syncs_is_removed_after_the_rebalance_timeout() -> None:
    h = Harness()
    a, b = h.join_new("g"), h.join_new("g")
    h.advance(0)
    leader = a.result().leader
    quiet = b.result().member_id if a.result().member_id == leader else a.result().member_id
    h.sync("g", leader, 1, {leader: b"L", quiet: b"Q"})
    assert group_state(h, "g") is GroupState.STABLE
    # The quiet member keeps its session alive but never syncs.
    for _ in range(REBALANCE_MS // 5000 - 1):
        h.advance(5000)
        assert h.heartbeat("g", quiet, 1) is ErrorCode.none
        assert h.heartbeat("g", leader, 1) is ErrorCode.none
    h.advance(5000)
    group = h.coordinator.groups["g"]
    assert quiet not in group.members
    assert group.state is GroupState.PREPARING_REBALANCE
    assert h.heartbeat("g", leader, 1) is ErrorCode.rebalance_in_progress
    rejoin = h.join("g", leader)
    assert rejoin.result().generation_id == 2
    assert [m.member_id for m in rejoin.result().members] == [leader]


# -- heartbeats and sessions ---------------------------------------------------------------


def test_heartbeat_errors() -> None:
    h = Harness()
    (member,), generation = h.stable_group("g", 1)
    assert h.heartbeat("nope", member, generation) is ErrorCode.unknown_member_id
    assert h.heartbeat("g", "ghost", generation) is ErrorCode.unknown_member_id
    assert h.heartbeat("g", member, generation - 1) is ErrorCode.illegal_generation
    assert h.heartbeat("", member, generation) is ErrorCode.invalid_group_id
    assert h.heartbeat("g", member, generation) is ErrorCode.none


def test_heartbeats_keep_the_session_alive() -> None:
    h = Harness()
    (member,), generation = h.stable_group("g", 1)
    for _ in range(5):
        h.advance(SESSION_MS - 100)
        assert h.heartbeat("g", member, generation) is ErrorCode.none
    assert member in h.coordinator.groups["g"].members


def test_session_expiry_removes_the_member_and_rebalances() -> None:
    h = Harness()
    (a, b), generation = h.stable_group("g", 2)
    for _ in range(3):
        h.advance(SESSION_MS // 2)
        h.heartbeat("g", a, generation)
    group = h.coordinator.groups["g"]
    assert b not in group.members
    assert group.state is GroupState.PREPARING_REBALANCE
    rejoin = h.join("g", a)
    assert rejoin.result().generation_id == generation + 1


def test_last_member_expiring_empties_the_group_and_persists_it() -> None:
    h = Harness()
    h.stable_group("g", 1)
    h.advance(SESSION_MS)
    group = h.coordinator.groups["g"]
    assert group.state is GroupState.EMPTY
    assert group.generation_id == 2
    record = group_records(h)[-1]
    assert record is not None and record.members == () and record.generation == 2


def test_pending_member_that_never_rejoins_expires() -> None:
    h = Harness()
    first = h.join("g")
    pending = first.result().member_id
    assert pending in h.coordinator.groups["g"].pending_join_members
    h.advance(SESSION_MS)
    assert pending not in h.coordinator.groups["g"].pending_join_members
    assert h.join("g", pending).result().error is ErrorCode.unknown_member_id


def test_commit_counts_as_heartbeat() -> None:
    h = Harness()
    (member,), generation = h.stable_group("g", 1)
    for _ in range(3):
        h.advance(SESSION_MS - 100)
        answer = h.commit("g", {("t", 0): 5}, member_id=member, generation=generation)
        assert answer == {("t", 0): ErrorCode.none}
    assert member in h.coordinator.groups["g"].members


# -- leaving -------------------------------------------------------------------------------


def test_leave_rebalances_the_rest() -> None:
    h = Harness()
    (a, b), generation = h.stable_group("g", 2)
    result = h.leave("g", LeavingMember(b))
    assert result.error is ErrorCode.none
    assert result.members == ((LeavingMember(b), ErrorCode.none),)
    assert group_state(h, "g") is GroupState.PREPARING_REBALANCE
    rejoin = h.join("g", a)
    assert rejoin.result().generation_id == generation + 1  # completes at once: all joined


def test_last_leave_empties_the_group() -> None:
    h = Harness()
    (member,), _ = h.stable_group("g", 1)
    h.leave("g", LeavingMember(member))
    assert group_state(h, "g") is GroupState.EMPTY


def test_leave_errors_per_member() -> None:
    h = Harness()
    (member,), _ = h.stable_group("g", 1)
    assert h.leave("nope", LeavingMember(member)).error is ErrorCode.unknown_member_id
    result = h.leave("g", LeavingMember("ghost"), LeavingMember("", "no-such-instance"))
    assert [e for _, e in result.members] == [
        ErrorCode.unknown_member_id,
        ErrorCode.unknown_member_id,
    ]
    assert group_state(h, "g") is GroupState.STABLE


def test_parked_join_of_leaving_member_is_answered() -> None:
    h = Harness()
    (a, _b), _ = h.stable_group("g", 2)
    parked = h.join("g", a)
    h.leave("g", LeavingMember(a))
    assert parked.result().error is ErrorCode.unknown_member_id


def test_timer_keys_are_unambiguous() -> None:
    from moldau.coordinator.group.membership import heartbeat_key

    assert heartbeat_key("g", "x-1") != heartbeat_key("g-x", "1")
