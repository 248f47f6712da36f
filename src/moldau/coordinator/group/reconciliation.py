"""How a consumer-group member moves towards its target assignment (Kafka's
``CurrentAssignmentBuilder``).

A member does not jump to its target: a partition must never be consumed by two members at
once, so a partition leaves its old owner before it reaches the new one. Each step compares
what the member *has* (``assigned``, plus ``pending_revocation`` it was asked to give up)
with what the target says, and yields the member's next state:

- Partitions the member has but the target does not are *revoked*: the member stays at its
  epoch, keeps only the partitions it may keep, and is in ``UNREVOKED_PARTITIONS`` until a
  heartbeat reports (``owned``) that it no longer holds any of them.
- Partitions the target gives it that another member still holds (assigned or pending
  revocation) are *unreleased*: the member takes the target epoch with what is free and
  waits in ``UNRELEASED_PARTITIONS``; a later heartbeat picks up what was freed meanwhile.
- Otherwise the member is ``STABLE`` at the target epoch with exactly its target.

The functions are pure; :mod:`.consumer_heartbeat` applies their answer to the member.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from moldau.coordinator.group.assignors import Assignment


class MemberState(enum.Enum):
    """Kafka's ``MemberState``; the value is what ConsumerGroupDescribe tooling shows."""

    STABLE = "stable"
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    UNRELEASED_PARTITIONS = "unreleased_partitions"


@dataclass(frozen=True, slots=True)
class MemberAssignmentState:
    """The part of a member that reconciliation reads and produces."""

    state: MemberState
    member_epoch: int
    previous_member_epoch: int
    assigned: Assignment
    pending_revocation: Assignment


OwnerLookup = Callable[[uuid.UUID, int], "str | None"]
"""``owner(topic_id, partition)``: the member holding it (assigned or pending revocation)."""


def owns_any(owned: Mapping[uuid.UUID, frozenset[int]] | None, partitions: Assignment) -> bool:
    """Whether ``owned`` (a heartbeat's report; None = not reported) still holds any of
    ``partitions``. Unreported counts as still owning: we wait for an explicit ack."""
    if owned is None:
        return True
    return any(owned.get(t, frozenset()) & ps for t, ps in partitions.items())


def next_assignment(
    member_id: str,
    current: MemberAssignmentState,
    target_epoch: int,
    target: Assignment,
    owner: OwnerLookup,
    owned: Mapping[uuid.UUID, frozenset[int]] | None,
) -> MemberAssignmentState:
    """One reconciliation step for ``member_id``; see the module docstring.

    ``owned`` is what the member reported in this heartbeat (None if it did not say).
    """
    if current.state is MemberState.UNREVOKED_PARTITIONS:
        if owns_any(owned, current.pending_revocation):
            return current
        # Revocation acknowledged: the partitions are free, continue towards the target.
        current = MemberAssignmentState(
            MemberState.STABLE,
            current.member_epoch,
            current.previous_member_epoch,
            current.assigned,
            {},
        )
    elif (
        current.state is MemberState.STABLE
        and current.member_epoch == target_epoch
        and not current.pending_revocation
    ):
        return current

    kept: dict[uuid.UUID, frozenset[int]] = {}
    revoked: dict[uuid.UUID, frozenset[int]] = {}
    new_assigned: dict[uuid.UUID, frozenset[int]] = {}
    unreleased = False
    for topic_id in set(current.assigned) | set(target):
        have = current.assigned.get(topic_id, frozenset())
        want = target.get(topic_id, frozenset())
        keep = have & want
        if keep:
            kept[topic_id] = keep
        if have - want:
            revoked[topic_id] = have - want
        free = set(keep)
        for p in want - have:
            holder = owner(topic_id, p)
            if holder is None or holder == member_id:
                free.add(p)
            else:
                unreleased = True
        if free:
            new_assigned[topic_id] = frozenset(free)

    if revoked:
        return MemberAssignmentState(
            MemberState.UNREVOKED_PARTITIONS,
            current.member_epoch,
            current.previous_member_epoch,
            kept,
            revoked,
        )
    return MemberAssignmentState(
        MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE,
        target_epoch,
        (
            current.previous_member_epoch
            if current.member_epoch == target_epoch
            else current.member_epoch
        ),
        new_assigned,
        {},
    )
