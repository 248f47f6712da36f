"""A KIP-848 consumer group: members with epochs, a group epoch and a target assignment.

Where a classic group rebalances in lock-step generations driven by JoinGroup/SyncGroup, a
consumer group is driven by each member's own heartbeats (Kafka's ``ConsumerGroup``):

- ``group_epoch`` bumps whenever membership, a subscription or the partition count of a
  subscribed topic changes.
- ``target`` is the assignment the server-side assignor computed for ``assignment_epoch``;
  it is recomputed lazily, on the next heartbeat after ``group_epoch`` moved past it.
- every member converges to its share of the target at its own pace
  (:mod:`.reconciliation`); its ``member_epoch`` reaches the assignment epoch once it has
  everything that does not still belong to somebody else.

The group's state is derived, as in Kafka: ``Empty`` (no members), ``Assigning`` (the target
is behind the group epoch), ``Reconciling`` (some member has not reached the target), else
``Stable``.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass, field

from moldau.coordinator.group.assignors import Assignment
from moldau.coordinator.group.reconciliation import MemberAssignmentState, MemberState

LEAVE_GROUP_MEMBER_EPOCH = -1
LEAVE_GROUP_STATIC_MEMBER_EPOCH = -2
CONSUMER_PROTOCOL_TYPE = "consumer"


class ConsumerGroupState(enum.Enum):
    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(slots=True)
class ConsumerGroupMember:
    """One member. Subscription fields keep their last non-null value from heartbeats
    (clients send them only when they change)."""

    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    rebalance_timeout_ms: int = 300_000
    subscribed_topic_names: tuple[str, ...] = ()
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    state: MemberState = MemberState.STABLE
    member_epoch: int = 0
    previous_member_epoch: int = 0
    assigned: Assignment = field(default_factory=dict)
    pending_revocation: Assignment = field(default_factory=dict)

    @property
    def assignment_state(self) -> MemberAssignmentState:
        return MemberAssignmentState(
            self.state,
            self.member_epoch,
            self.previous_member_epoch,
            self.assigned,
            self.pending_revocation,
        )

    def apply(self, next_state: MemberAssignmentState) -> None:
        self.state = next_state.state
        self.member_epoch = next_state.member_epoch
        self.previous_member_epoch = next_state.previous_member_epoch
        self.assigned = dict(next_state.assigned)
        self.pending_revocation = dict(next_state.pending_revocation)

    def subscribes_to(self, topic_name: str) -> bool:
        if topic_name in self.subscribed_topic_names:
            return True
        if self.subscribed_topic_regex:
            return compiled_regex(self.subscribed_topic_regex).fullmatch(topic_name) is not None
        return False


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def compiled_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled (RE2/J syntax is close enough to Python's for topic names)."""
    compiled = _REGEX_CACHE.get(pattern)
    if compiled is None:
        compiled = _REGEX_CACHE[pattern] = re.compile(pattern)
    return compiled


@dataclass(slots=True)
class ConsumerGroup:
    """See the module docstring."""

    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    assignor_name: str = ""
    members: dict[str, ConsumerGroupMember] = field(default_factory=dict)
    target: dict[str, Assignment] = field(default_factory=dict)
    subscription_metadata: dict[str, tuple[uuid.UUID, int]] = field(default_factory=dict)
    """Subscribed topics as of the last epoch bump: name → (topic id, partition count)."""
    dead: bool = False

    @property
    def state(self) -> ConsumerGroupState:
        if self.dead:
            return ConsumerGroupState.DEAD
        if not self.members:
            return ConsumerGroupState.EMPTY
        if self.group_epoch > self.assignment_epoch:
            return ConsumerGroupState.ASSIGNING
        if any(
            m.member_epoch != self.assignment_epoch or m.state is not MemberState.STABLE
            for m in self.members.values()
        ):
            return ConsumerGroupState.RECONCILING
        return ConsumerGroupState.STABLE

    def owner(self, topic_id: uuid.UUID, partition: int) -> str | None:
        """The member that holds the partition (assigned or still revoking), if any."""
        for member in self.members.values():
            if partition in member.assigned.get(topic_id, ()):
                return member.member_id
            if partition in member.pending_revocation.get(topic_id, ()):
                return member.member_id
        return None

    def member_by_instance_id(self, instance_id: str) -> ConsumerGroupMember | None:
        for member in self.members.values():
            if member.instance_id == instance_id:
                return member
        return None

    def subscribed_topic_names(self, known_topics: set[str] | frozenset[str]) -> set[str]:
        """Every known topic some member subscribes to (by name or regex)."""
        names: set[str] = set()
        for member in self.members.values():
            names.update(member.subscribed_topic_names)
            if member.subscribed_topic_regex:
                names.update(t for t in known_topics if member.subscribes_to(t))
        return names

    def is_subscribed_to_topic(self, topic_name: str) -> bool:
        return any(m.subscribes_to(topic_name) for m in self.members.values())
