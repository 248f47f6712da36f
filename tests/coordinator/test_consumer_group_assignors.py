"""Server-side assignors: balance, stickiness of ``uniform``, range semantics."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from moldau.coordinator.group.assignors import (
    Assignment,
    MemberSubscription,
    RangeAssignor,
    UniformAssignor,
)

T1 = uuid.UUID(int=1)
T2 = uuid.UUID(int=2)


def sizes(result: dict[str, Assignment]) -> dict[str, int]:
    return {m: sum(len(ps) for ps in a.values()) for m, a in result.items()}


def all_partitions(result: dict[str, Assignment]) -> list[tuple[uuid.UUID, int]]:
    return sorted((t, p) for a in result.values() for t, ps in a.items() for p in ps)


def test_uniform_balances_six_partitions_over_three_members() -> None:
    members = {m: MemberSubscription(frozenset({T1})) for m in ("a", "b", "c")}
    result = UniformAssignor().assign(members, {T1: 6})
    assert sizes(result) == {"a": 2, "b": 2, "c": 2}
    assert all_partitions(result) == [(T1, p) for p in range(6)]


def test_uniform_is_sticky_when_a_member_joins() -> None:
    before = {"a": {T1: frozenset({0, 1, 2})}, "b": {T1: frozenset({3, 4, 5})}}
    members = {m: MemberSubscription(frozenset({T1}), before.get(m, {})) for m in "abc"}
    result = UniformAssignor().assign(members, {T1: 6})
    assert sizes(result) == {"a": 2, "b": 2, "c": 2}
    # Only what the newcomer takes moves: the others keep a subset of what they had.
    assert result["a"][T1] <= before["a"][T1]
    assert result["b"][T1] <= before["b"][T1]


def test_uniform_is_sticky_when_a_member_leaves() -> None:
    before = {"a": {T1: frozenset({0, 1})}, "b": {T1: frozenset({2, 3})}}
    members = {m: MemberSubscription(frozenset({T1}), before[m]) for m in "ab"}
    result = UniformAssignor().assign(members, {T1: 6})
    assert result["a"][T1] >= before["a"][T1]
    assert result["b"][T1] >= before["b"][T1]
    assert sizes(result) == {"a": 3, "b": 3}


def test_uniform_respects_subscriptions() -> None:
    members = {
        "a": MemberSubscription(frozenset({T1})),
        "b": MemberSubscription(frozenset({T1, T2})),
    }
    result = UniformAssignor().assign(members, {T1: 2, T2: 4})
    assert T2 not in result["a"]
    assert all_partitions(result) == sorted(
        [(T1, p) for p in range(2)] + [(T2, p) for p in range(4)]
    )


def test_uniform_drops_partitions_of_unsubscribed_topics() -> None:
    members = {"a": MemberSubscription(frozenset({T2}), {T1: frozenset({0})})}
    result = UniformAssignor().assign(members, {T2: 1})
    assert result == {"a": {T2: frozenset({0})}}


def test_range_gives_consecutive_ranges_extra_to_the_first() -> None:
    members = {m: MemberSubscription(frozenset({T1, T2})) for m in ("b", "a", "c")}
    result = RangeAssignor().assign(members, {T1: 7, T2: 3})
    assert result["a"] == {T1: frozenset({0, 1, 2}), T2: frozenset({0})}
    assert result["b"] == {T1: frozenset({3, 4}), T2: frozenset({1})}
    assert result["c"] == {T1: frozenset({5, 6}), T2: frozenset({2})}


def test_range_leaves_members_without_partitions_when_there_are_too_few() -> None:
    members = {m: MemberSubscription(frozenset({T1})) for m in "abc"}
    result = RangeAssignor().assign(members, {T1: 2})
    assert result == {"a": {T1: frozenset({0})}, "b": {T1: frozenset({1})}, "c": {}}


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=6),
    st.integers(min_value=0, max_value=20),
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 19)), max_size=20),
)
def test_uniform_is_complete_disjoint_and_balanced(
    num_members: int, num_partitions: int, owned: list[tuple[int, int]]
) -> None:
    current: dict[str, dict[uuid.UUID, set[int]]] = {f"m{i}": {} for i in range(num_members)}
    for member, partition in owned:
        if member < num_members:
            current[f"m{member}"].setdefault(T1, set()).add(partition)
    members = {
        m: MemberSubscription(frozenset({T1}), {t: frozenset(ps) for t, ps in c.items()})
        for m, c in current.items()
    }
    result = UniformAssignor().assign(members, {T1: num_partitions})
    assert all_partitions(result) == [(T1, p) for p in range(num_partitions)]
    counts = sizes(result).values()
    assert max(counts) - min(counts) <= 1
