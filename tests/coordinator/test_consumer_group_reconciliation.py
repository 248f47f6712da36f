"""One reconciliation step (Kafka's CurrentAssignmentBuilder), as a pure function."""

from __future__ import annotations

import uuid

from moldau.coordinator.group.reconciliation import (
    MemberAssignmentState,
    MemberState,
    next_assignment,
)

T = uuid.UUID(int=3)


def state(
    kind: MemberState,
    epoch: int,
    assigned: set[int],
    revoking: set[int] = frozenset(),  # type: ignore[assignment]
) -> MemberAssignmentState:
    return MemberAssignmentState(
        kind,
        epoch,
        epoch - 1,
        {T: frozenset(assigned)} if assigned else {},
        {T: frozenset(revoking)} if revoking else {},
    )


def nobody(_topic: uuid.UUID, _partition: int) -> None:
    return None


def test_revocation_keeps_the_epoch_and_only_the_kept_partitions() -> None:
    current = state(MemberState.STABLE, 3, {0, 1, 2})
    nxt = next_assignment("m", current, 4, {T: frozenset({0, 5})}, nobody, None)
    assert nxt.state is MemberState.UNREVOKED_PARTITIONS
    assert nxt.member_epoch == 3
    assert nxt.assigned == {T: frozenset({0})}
    assert nxt.pending_revocation == {T: frozenset({1, 2})}


def test_revocation_waits_for_an_explicit_ack() -> None:
    current = state(MemberState.UNREVOKED_PARTITIONS, 3, {0}, {1, 2})
    target = {T: frozenset({0, 5})}
    assert next_assignment("m", current, 4, target, nobody, None) == current
    assert next_assignment("m", current, 4, target, nobody, {T: frozenset({0, 1})}) == current
    done = next_assignment("m", current, 4, target, nobody, {T: frozenset({0})})
    assert done.state is MemberState.STABLE
    assert done.member_epoch == 4
    assert done.assigned == target


def test_partitions_held_by_others_are_unreleased() -> None:
    current = state(MemberState.STABLE, 1, set())

    def owner(_topic: uuid.UUID, partition: int) -> str | None:
        return "other" if partition == 1 else None

    nxt = next_assignment("m", current, 2, {T: frozenset({0, 1})}, owner, None)
    assert nxt.state is MemberState.UNRELEASED_PARTITIONS
    assert nxt.member_epoch == 2
    assert nxt.assigned == {T: frozenset({0})}
    freed = next_assignment("m", nxt, 2, {T: frozenset({0, 1})}, nobody, None)
    assert freed.state is MemberState.STABLE
    assert freed.assigned == {T: frozenset({0, 1})}
    assert freed.previous_member_epoch == 1


def test_a_member_at_its_target_is_left_alone() -> None:
    current = state(MemberState.STABLE, 2, {0})
    assert next_assignment("m", current, 2, {T: frozenset({0, 1})}, nobody, None) is current
