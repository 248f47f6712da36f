"""The states of a classic group and the transitions between them (Kafka's ClassicGroupState)."""

from __future__ import annotations

import enum


class GroupState(enum.Enum):
    """Where a classic group is in its rebalance cycle. The value is Kafka's name, which
    DescribeGroups and ListGroups put on the wire.

    ``EMPTY`` — no members. The group may still hold committed offsets (a consumer group
    whose members all left, or a "simple" group that only ever committed with generation -1).
    Actions: a JoinGroup adds the first member and starts a rebalance; OffsetCommit with
    generation -1 is accepted; DeleteGroups and offset expiry may remove it.
    Next: PREPARING_REBALANCE (first join), DEAD (deleted).

    ``PREPARING_REBALANCE`` — a rebalance started: every known member must send JoinGroup
    again. JoinGroup responses are parked until all members rejoined or the rebalance timeout
    (the largest among members) expires; for a group coming from EMPTY, the first completion
    waits ``group.initial.rebalance.delay.ms`` (extended while members keep arriving, capped by
    the rebalance timeout). Heartbeats answer REBALANCE_IN_PROGRESS; offset commits of the
    current generation are still accepted (eager clients commit before they rejoin).
    Next: COMPLETING_REBALANCE (join phase done, members left), EMPTY (nobody rejoined),
    DEAD.

    ``COMPLETING_REBALANCE`` — the new generation exists; the leader got the member list and
    computes the assignment. SyncGroup from followers is parked until the leader's SyncGroup
    arrives with the assignments and they are written to the log. Members that send no
    SyncGroup within the rebalance timeout are removed. Heartbeats are answered normally;
    offset commits get REBALANCE_IN_PROGRESS. A member joining, leaving or expiring restarts
    the rebalance. Next: STABLE (assignment persisted), PREPARING_REBALANCE, DEAD.

    ``STABLE`` — every member has its assignment. Heartbeats keep sessions alive; a late
    SyncGroup gets the stored assignment; a JoinGroup from the leader or with new metadata,
    a new member, a leave or a session expiry starts a rebalance. A static member that
    restarts (JoinGroup with its ``group.instance.id`` and no member id) is swapped in without
    one. Next: PREPARING_REBALANCE, DEAD.

    ``DEAD`` — the group was deleted or unloaded; nothing more happens to this object.
    Requests that still reach it get COORDINATOR_NOT_AVAILABLE so clients look again.
    Next: DEAD.
    """

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"

    @property
    def valid_previous_states(self) -> frozenset[GroupState]:
        return _VALID_PREVIOUS[self]

    def can_transition_to(self, target: GroupState) -> bool:
        return self in _VALID_PREVIOUS[target]


_VALID_PREVIOUS: dict[GroupState, frozenset[GroupState]] = {
    GroupState.EMPTY: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.PREPARING_REBALANCE: frozenset(
        {GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY}
    ),
    GroupState.COMPLETING_REBALANCE: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.STABLE: frozenset({GroupState.COMPLETING_REBALANCE}),
    GroupState.DEAD: frozenset(GroupState),
}
