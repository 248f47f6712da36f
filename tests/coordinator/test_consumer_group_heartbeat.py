"""ConsumerGroupHeartbeat on the sans-I/O coordinator: joining, epochs, fencing, revocation
before reassignment, leaving, session expiry, and offset commits validated by member epoch."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import pytest
from group_helpers import Harness
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode

from moldau.coordinator.group.config import GroupCoordinatorConfig
from moldau.coordinator.group.consumer_heartbeat import (
    ConsumerHeartbeatRequest,
    ConsumerHeartbeatResult,
)
from moldau.coordinator.group.messages import ListGroupsFilter

T = uuid.UUID(int=7)
TOPICS = {"t": (T, 6)}
SESSION_MS = 45_000


def harness(**config: object) -> Harness:
    return Harness(config=GroupCoordinatorConfig(initial_rebalance_delay_ms=0, **config))  # type: ignore[arg-type]


def hb(
    h: Harness,
    member_id: str,
    epoch: int,
    *,
    group: str = "g",
    owned: Mapping[uuid.UUID, frozenset[int]] | None = None,
    topics: Mapping[str, tuple[uuid.UUID, int]] = TOPICS,
    join: bool = False,
    **fields: object,
) -> ConsumerHeartbeatResult:
    if join:
        fields.setdefault("subscribed_topic_names", ("t",))
        fields.setdefault("rebalance_timeout_ms", 30_000)
        owned = {} if owned is None else owned
    request = ConsumerHeartbeatRequest(
        group_id=group,
        member_id=member_id,
        member_epoch=epoch,
        topics=topics,
        owned=owned,
        **fields,  # type: ignore[arg-type]
    )
    result = h.apply(h.coordinator.consumer_group_heartbeat(request, h.now))
    assert result is not None
    return result


def parts(result: ConsumerHeartbeatResult) -> set[int]:
    assert result.assignment is not None
    return set(result.assignment.get(T, frozenset()))


def test_first_member_gets_everything_at_epoch_one() -> None:
    h = harness()
    r = hb(h, "a", 0, join=True)
    assert r.error is ErrorCode.none
    assert r.member_epoch == 1
    assert r.heartbeat_interval_ms == 5000
    assert parts(r) == set(range(6))


def test_join_requires_subscription_and_rebalance_timeout() -> None:
    h = harness()
    r = hb(h, "a", 0, owned={}, rebalance_timeout_ms=30_000)
    assert r.error is ErrorCode.invalid_request
    r = hb(h, "a", 0, owned={}, subscribed_topic_names=("t",))
    assert r.error is ErrorCode.invalid_request
    r = hb(h, "", 0, join=True)
    assert r.error is ErrorCode.invalid_request


def test_unknown_assignor_and_bad_regex_are_refused() -> None:
    h = harness()
    assert hb(h, "a", 0, join=True, server_assignor="nope").error is ErrorCode.unsupported_assignor
    r = hb(h, "a", 0, join=True, subscribed_topic_regex="(")
    assert r.error is ErrorCode.invalid_regular_expression


def test_partitions_move_only_after_the_old_owner_revoked_them() -> None:
    h = harness()
    a = hb(h, "a", 0, join=True)
    b = hb(h, "b", 0, join=True)
    assert b.member_epoch == 2
    assert parts(b) == set()  # everything still belongs to a
    a2 = hb(h, "a", a.member_epoch)
    kept = parts(a2)
    assert len(kept) == 3
    assert a2.member_epoch == 1  # revoking: a stays at its epoch
    # b cannot get the partitions a still holds.
    assert hb(h, "b", b.member_epoch).assignment is None
    # a acknowledges the revocation by reporting what it still owns.
    a3 = hb(h, "a", a2.member_epoch, owned={T: frozenset(kept)})
    assert a3.member_epoch == 2
    b3 = hb(h, "b", b.member_epoch)
    assert parts(b3) == set(range(6)) - kept


def test_stale_and_future_epochs_are_fenced() -> None:
    h = harness()
    a = hb(h, "a", 0, join=True)
    assert hb(h, "a", a.member_epoch + 1).error is ErrorCode.fenced_member_epoch
    hb(h, "b", 0, join=True)
    a2 = hb(h, "a", a.member_epoch)
    hb(h, "a", a2.member_epoch, owned={T: frozenset(parts(a2))})
    # The previous epoch is accepted only when the member claims nothing beyond its own.
    assert hb(h, "a", a.member_epoch, owned={T: frozenset(range(6))}).error is (
        ErrorCode.fenced_member_epoch
    )
    assert hb(h, "zzz", 3).error is ErrorCode.unknown_member_id


def test_leave_frees_partitions_for_the_others() -> None:
    h = harness()
    a = hb(h, "a", 0, join=True)
    b = hb(h, "b", 0, join=True)
    a2 = hb(h, "a", a.member_epoch)
    hb(h, "a", a2.member_epoch, owned={T: frozenset(parts(a2))})
    b2 = hb(h, "b", b.member_epoch)
    assert len(parts(b2)) == 3
    left = hb(h, "a", -1)
    assert left.error is ErrorCode.none and left.member_epoch == -1
    b3 = hb(h, "b", b2.member_epoch)
    assert parts(b3) == set(range(6))
    assert b3.member_epoch == 3


def test_session_expiry_removes_the_member() -> None:
    h = harness(consumer_session_timeout_ms=SESSION_MS)
    a = hb(h, "a", 0, join=True)
    b = hb(h, "b", 0, join=True)
    h.advance(SESSION_MS - 1)
    b2 = hb(h, "b", b.member_epoch)
    h.advance(2)
    assert "a" not in h.coordinator.consumer_groups["g"].members
    assert hb(h, "a", a.member_epoch).error is ErrorCode.unknown_member_id
    assert parts(hb(h, "b", b2.member_epoch)) == set(range(6))


def test_unrevoked_partitions_past_rebalance_timeout_remove_the_member() -> None:
    h = harness()
    a = hb(h, "a", 0, join=True, rebalance_timeout_ms=1000)
    hb(h, "b", 0, join=True)
    hb(h, "a", a.member_epoch)  # asked to revoke, never acknowledges
    h.advance(1001)
    assert "a" not in h.coordinator.consumer_groups["g"].members


def test_max_size_is_enforced() -> None:
    h = harness(consumer_max_size=1)
    hb(h, "a", 0, join=True)
    assert hb(h, "b", 0, join=True).error is ErrorCode.group_max_size_reached


def test_static_member_rejoining_takes_over_its_assignment() -> None:
    h = harness()
    a = hb(h, "a", 0, join=True, instance_id="i1")
    assert hb(h, "a2", 0, join=True, instance_id="i1").error is ErrorCode.unreleased_instance_id
    assert hb(h, "a", -2, instance_id="i1").member_epoch == -2
    again = hb(h, "a2", 0, join=True, instance_id="i1")
    assert again.error is ErrorCode.none
    assert again.member_epoch == a.member_epoch
    assert parts(again) == set(range(6))


def test_topic_created_later_is_assigned() -> None:
    h = harness()
    a = hb(h, "a", 0, join=True, subscribed_topic_names=("t", "later"), topics=TOPICS)
    later = uuid.UUID(int=8)
    r = hb(h, "a", a.member_epoch, topics={**TOPICS, "later": (later, 2)})
    assert r.member_epoch == 2
    assert r.assignment is not None and r.assignment[later] == frozenset({0, 1})


def test_regex_subscription() -> None:
    h = harness()
    topics = {"orders-1": (uuid.UUID(int=1), 1), "orders-2": (uuid.UUID(int=2), 1), "x": (T, 1)}
    r = hb(
        h,
        "a",
        0,
        topics=topics,
        owned={},
        rebalance_timeout_ms=1,
        subscribed_topic_regex="orders-.*",
    )
    assert r.assignment is not None and set(r.assignment) == {uuid.UUID(int=1), uuid.UUID(int=2)}


def test_offset_commit_checks_member_epoch() -> None:
    h = harness()
    a = hb(h, "a", 0, join=True)
    ok = h.commit("g", {("t", 0): 5}, member_id="a", generation=a.member_epoch)
    assert ok == {("t", 0): ErrorCode.none}
    assert h.commit("g", {("t", 0): 5}, member_id="b", generation=1) == {
        ("t", 0): ErrorCode.unknown_member_id
    }
    assert h.commit("g", {("t", 0): 5}, member_id="a", generation=9) == {
        ("t", 0): ErrorCode.stale_member_epoch
    }
    fetched = h.coordinator.fetch_offsets("g", [("t", 0)])
    assert fetched.partitions[0].offset == 5


def test_list_and_describe_consumer_groups() -> None:
    h = harness()
    hb(h, "a", 0, join=True)
    listed = h.coordinator.list_groups(ListGroupsFilter())
    assert [(g.group_id, g.group_type, g.state) for g in listed] == [("g", "consumer", "Stable")]
    assert h.coordinator.list_groups(ListGroupsFilter(types=frozenset({"classic"}))) == []
    (described,) = h.coordinator.consumer_group_describe(["g"])
    assert described.error is ErrorCode.none
    assert [m.member.member_id for m in described.members] == ["a"]
    (missing,) = h.coordinator.consumer_group_describe(["nope"])
    assert missing.error is ErrorCode.group_id_not_found
    (classic_view,) = h.coordinator.describe_groups(["g"])
    assert classic_view.error is ErrorCode.group_id_not_found


def test_classic_join_into_consumer_group_is_refused() -> None:
    h = harness()
    hb(h, "a", 0, join=True)
    completion = h.join("g")
    assert completion.result().error is ErrorCode.inconsistent_group_protocol


# -- the safety property ---------------------------------------------------------------------


class Client:
    """A well-behaved client: applies what it is told, acknowledges revocations."""

    def __init__(self, member_id: str) -> None:
        self.member_id = member_id
        self.epoch = 0
        self.owned: frozenset[int] = frozenset()

    def heartbeat(self, h: Harness) -> None:
        if self.epoch == 0:
            r = hb(h, self.member_id, 0, join=True)
        else:
            r = hb(h, self.member_id, self.epoch, owned={T: self.owned})
        if r.error is not ErrorCode.none:
            self.epoch, self.owned = 0, frozenset()
            return
        self.epoch = r.member_epoch
        if r.assignment is not None:
            self.owned = frozenset(r.assignment.get(T, frozenset()))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("join leave beat"), st.integers(0, 3)), max_size=40))
def test_no_partition_is_ever_owned_by_two_members(steps: list[tuple[str, int]]) -> None:
    h = harness()
    clients: dict[int, Client] = {}
    for action, who in steps:
        if action == "join" and who not in clients:
            clients[who] = Client(f"m{who}-{len(steps)}-{id(steps)}")
            clients[who].heartbeat(h)
        elif action == "leave" and who in clients:
            hb(h, clients.pop(who).member_id, -1)
        elif action == "beat" and who in clients:
            clients[who].heartbeat(h)
        seen: set[int] = set()
        for client in clients.values():
            assert not (client.owned & seen), "a partition is owned by two members"
            seen |= client.owned
    # And with enough heartbeats, the group converges to a balanced, complete assignment.
    for _ in range(4):
        for client in clients.values():
            client.heartbeat(h)
    if clients:
        owned = [c.owned for c in clients.values()]
        assert sorted(p for o in owned for p in o) == list(range(6))
        assert max(map(len, owned)) - min(map(len, owned)) <= 1


@pytest.mark.parametrize("epoch", [-3, -10])
def test_invalid_member_epoch(epoch: int) -> None:
    assert hb(harness(), "a", epoch).error is ErrorCode.invalid_request
