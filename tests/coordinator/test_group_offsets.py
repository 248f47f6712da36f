"""Committed offsets: commit validation, fetch, delete, retention; group deletion and views."""

from __future__ import annotations

from group_helpers import Harness, subscription
from kio.schema.errors import ErrorCode

from moldau.coordinator.group.config import GroupCoordinatorConfig
from moldau.coordinator.group.messages import (
    FetchedOffset,
    LeavingMember,
    ListGroupsFilter,
)
from moldau.coordinator.group.records import GroupMetadataKey, OffsetCommitKey
from moldau.coordinator.group.state import GroupState

DAY_MS = 24 * 3600 * 1000


def fetched(h: Harness, group: str, *partitions: tuple[str, int]) -> list[FetchedOffset]:
    return list(h.coordinator.fetch_offsets(group, partitions).partitions)


def test_simple_commit_creates_a_simple_group() -> None:
    h = Harness()
    answer = h.commit("g", {("t", 0): 42, ("t", 1): 7}, metadata="hello")
    assert answer == {("t", 0): ErrorCode.none, ("t", 1): ErrorCode.none}
    group = h.coordinator.groups["g"]
    assert group.state is GroupState.EMPTY and group.protocol_type is None
    f0, f1, f2 = fetched(h, "g", ("t", 0), ("t", 1), ("t", 2))
    assert (f0.offset, f0.metadata) == (42, "hello")
    assert f1.offset == 7
    assert (f2.offset, f2.metadata, f2.error) == (-1, "", ErrorCode.none)
    keys = [r.key for r in h.written]
    assert keys == [OffsetCommitKey("g", "t", 0), OffsetCommitKey("g", "t", 1)]


def test_null_metadata_is_stored_as_empty() -> None:
    h = Harness()
    h.commit("g", {("t", 0): 1}, metadata=None)
    assert fetched(h, "g", ("t", 0))[0].metadata == ""


def test_fetch_of_unknown_group_is_not_an_error() -> None:
    h = Harness()
    result = h.coordinator.fetch_offsets("nope", [("t", 0)])
    assert result.error is ErrorCode.none
    assert result.partitions == (FetchedOffset("t", 0),)
    assert h.coordinator.fetch_offsets("nope", None).partitions == ()


def test_fetch_all_partitions() -> None:
    h = Harness()
    h.commit("g", {("t", 0): 1, ("t", 1): 2, ("u", 0): 3})
    everything = h.coordinator.fetch_offsets("g", None).partitions
    assert {(f.topic, f.partition, f.offset) for f in everything} == {
        ("t", 0, 1),
        ("t", 1, 2),
        ("u", 0, 3),
    }


def test_metadata_too_large() -> None:
    h = Harness()
    answer = h.commit("g", {("t", 0): 1}, metadata="x" * 4097)
    assert answer == {("t", 0): ErrorCode.offset_metadata_too_large}
    assert h.written == []


def test_commit_validation_against_a_live_group() -> None:
    h = Harness()
    (member,), generation = h.stable_group("g", 1)
    offsets = {("t", 0): 10}

    def commit(**kwargs: object) -> ErrorCode:
        return h.commit("g", offsets, **kwargs)[("t", 0)]  # type: ignore[arg-type]

    assert commit(member_id=member, generation=generation) is ErrorCode.none
    assert commit(member_id=member, generation=generation - 1) is ErrorCode.illegal_generation
    assert commit(member_id="ghost", generation=generation) is ErrorCode.unknown_member_id
    assert commit() is ErrorCode.unknown_member_id  # a simple commit into a live group
    assert h.commit("nope", offsets, member_id=member, generation=3)[("t", 0)] is (
        ErrorCode.illegal_generation
    )


def test_commit_is_accepted_while_preparing_but_not_while_completing() -> None:
    h = Harness()
    (a, b), generation = h.stable_group("g", 2)
    h.join("g", a)  # PREPARING_REBALANCE
    assert h.commit("g", {("t", 0): 1}, member_id=b, generation=generation)[("t", 0)] is (
        ErrorCode.none
    )
    h.join("g", b)  # everyone rejoined: COMPLETING_REBALANCE
    assert h.coordinator.groups["g"].state is GroupState.COMPLETING_REBALANCE
    answer = h.commit("g", {("t", 0): 2}, member_id=b, generation=generation + 1)
    assert answer[("t", 0)] is ErrorCode.rebalance_in_progress


def test_commit_from_a_fenced_generation_is_refused_and_keeps_the_offset() -> None:
    h = Harness()
    (a, b), generation = h.stable_group("g", 2)
    h.commit("g", {("t", 0): 5}, member_id=a, generation=generation)
    h.leave("g", LeavingMember(b))
    h.join("g", a)
    assert h.coordinator.groups["g"].generation_id == generation + 1
    answer = h.commit("g", {("t", 0): 99}, member_id=a, generation=generation)
    assert answer[("t", 0)] is ErrorCode.illegal_generation
    assert fetched(h, "g", ("t", 0))[0].offset == 5


def test_offset_delete_rules() -> None:
    h = Harness()
    assert h.apply(h.coordinator.delete_offsets("nope", [("t", 0)])).error is (  # type: ignore[union-attr]
        ErrorCode.group_id_not_found
    )
    (member,), generation = h.stable_group("g", 1)  # subscribed to "t"
    h.commit("g", {("t", 0): 1, ("old", 0): 2}, member_id=member, generation=generation)
    result = h.apply(h.coordinator.delete_offsets("g", [("t", 0), ("old", 0)]))
    assert result is not None and result.error is ErrorCode.none
    assert dict(result.partitions) == {
        ("t", 0): ErrorCode.group_subscribed_to_topic,
        ("old", 0): ErrorCode.none,
    }
    assert fetched(h, "g", ("old", 0))[0].offset == -1
    assert fetched(h, "g", ("t", 0))[0].offset == 1


def test_offset_delete_refuses_a_non_consumer_group_with_members() -> None:
    h = Harness()
    h.stable_group("g", 1, protocol_type="connect", protocols=(("default", b""),))
    result = h.apply(h.coordinator.delete_offsets("g", [("t", 0)]))
    assert result is not None and result.error is ErrorCode.non_empty_group


def test_delete_groups() -> None:
    h = Harness()
    h.commit("simple", {("t", 0): 1})
    h.stable_group("live", 1)
    result = h.apply(h.coordinator.delete_groups(["simple", "live", "nope"]))
    assert result == [
        ("simple", ErrorCode.none),
        ("live", ErrorCode.non_empty_group),
        ("nope", ErrorCode.group_id_not_found),
    ]
    assert "simple" not in h.coordinator.groups
    assert fetched(h, "simple", ("t", 0))[0].offset == -1
    tombstones = [r.key for r in h.written if r.value is None]
    assert tombstones == [OffsetCommitKey("simple", "t", 0), GroupMetadataKey("simple")]


def test_describe_and_list() -> None:
    h = Harness()
    (member,), _ = h.stable_group("g", 1)
    h.commit("simple", {("t", 0): 1})
    described, dead = h.coordinator.describe_groups(["g", "nope"])
    assert (described.state, described.protocol_type, described.protocol_data) == (
        "Stable",
        "consumer",
        "range",
    )
    (m,) = described.members
    assert (m.member_id, m.client_host, m.assignment) == (member, "/127.0.0.1", member.encode())
    assert m.metadata == subscription("t")
    assert (dead.state, dead.error, dead.members) == ("Dead", ErrorCode.none, ())

    listed = {g.group_id: g for g in h.coordinator.list_groups(ListGroupsFilter())}
    assert (listed["g"].protocol_type, listed["g"].state) == ("consumer", "Stable")
    assert (listed["simple"].protocol_type, listed["simple"].state) == ("", "Empty")
    empty_only = h.coordinator.list_groups(ListGroupsFilter(states=frozenset({"empty"})))
    assert [g.group_id for g in empty_only] == ["simple"]
    assert h.coordinator.list_groups(ListGroupsFilter(types=frozenset({"consumer"}))) == []


def test_describe_hides_metadata_while_rebalancing() -> None:
    h = Harness()
    (a, _b), _ = h.stable_group("g", 2)
    h.join("g", a)
    (described,) = h.coordinator.describe_groups(["g"])
    assert described.state == "PreparingRebalance"
    assert described.protocol_data == ""
    assert all(m.metadata == b"" and m.assignment == b"" for m in described.members)


# -- retention -----------------------------------------------------------------------------


def retention_harness(days: int = 7) -> Harness:
    return Harness(
        GroupCoordinatorConfig(initial_rebalance_delay_ms=0, offsets_retention_ms=days * DAY_MS)
    )


def cleanup(h: Harness) -> None:
    h.apply(h.coordinator.cleanup_group_metadata(h.now))


def test_simple_group_offsets_expire_from_their_commit() -> None:
    h = retention_harness()
    h.commit("g", {("t", 0): 1})
    h.advance(3 * DAY_MS)
    h.commit("g", {("t", 1): 1})
    h.advance(4 * DAY_MS)
    cleanup(h)
    assert fetched(h, "g", ("t", 0))[0].offset == -1
    assert fetched(h, "g", ("t", 1))[0].offset == 1
    assert "g" in h.coordinator.groups
    h.advance(3 * DAY_MS)
    cleanup(h)
    assert "g" not in h.coordinator.groups  # nothing left: the group goes too
    assert h.written[-1].key == GroupMetadataKey("g") and h.written[-1].value is None


def test_live_group_keeps_offsets_of_subscribed_topics() -> None:
    h = retention_harness()
    session_ms = 1_800_000
    (member,), generation = h.stable_group("g", 1, session_ms=session_ms)
    h.commit("g", {("t", 0): 1, ("gone", 0): 1}, member_id=member, generation=generation)
    for _ in range(8 * DAY_MS // (session_ms // 2)):  # eight days of heartbeats
        h.advance(session_ms // 2)
        assert h.heartbeat("g", member, generation) is ErrorCode.none
    cleanup(h)
    assert fetched(h, "g", ("t", 0))[0].offset == 1
    assert fetched(h, "g", ("gone", 0))[0].offset == -1


def test_empty_group_offsets_expire_after_the_group_empties() -> None:
    h = retention_harness()
    (member,), generation = h.stable_group("g", 1)
    h.commit("g", {("t", 0): 1}, member_id=member, generation=generation)
    h.advance(10 * DAY_MS)  # the member is long gone (session expired at once)
    assert h.coordinator.groups["g"].state is GroupState.EMPTY
    cleanup(h)
    assert "g" not in h.coordinator.groups


def test_empty_group_offsets_survive_within_retention() -> None:
    h = retention_harness()
    (member,), generation = h.stable_group("g", 1)
    h.commit("g", {("t", 0): 1}, member_id=member, generation=generation)
    h.leave("g", LeavingMember(member))
    h.advance(6 * DAY_MS)
    cleanup(h)
    assert fetched(h, "g", ("t", 0))[0].offset == 1
