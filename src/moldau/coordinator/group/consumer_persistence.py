"""Consumer groups to and from their ``__consumer_offsets`` records (:mod:`.consumer_records`).

Writing follows the classic groups' rule: the in-memory group is the truth, and each
operation writes snapshots of what it changed (``_Snapshot.changes``: the member's metadata
and current assignment, the group epoch, the whole target assignment when it was
recomputed) plus tombstones for members that left (current assignment, target, metadata —
Kafka's order). Replaying every record of a partition in order rebuilds the groups.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from moldau.coordinator.group.assignors import Assignment
from moldau.coordinator.group.consumer_group import ConsumerGroup, ConsumerGroupMember
from moldau.coordinator.group.consumer_records import (
    CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT,
    CONSUMER_GROUP_MEMBER_METADATA,
    CONSUMER_GROUP_METADATA,
    CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER,
    CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA,
    ConsumerAssignment,
    ConsumerGroupCurrentMemberAssignmentValue,
    ConsumerGroupKey,
    ConsumerGroupMemberMetadataValue,
    ConsumerGroupMetadataValue,
    ConsumerGroupTargetAssignmentMemberValue,
    ConsumerGroupTargetAssignmentMetadataValue,
    ConsumerGroupValue,
)
from moldau.coordinator.group.reconciliation import MemberAssignmentState, MemberState
from moldau.coordinator.group.records import CoordinatorRecord

_STATES = {
    0: MemberState.STABLE,
    1: MemberState.UNREVOKED_PARTITIONS,
    2: MemberState.UNRELEASED_PARTITIONS,
}
_STATE_BYTES = {state: byte for byte, state in _STATES.items()}


def to_record_assignment(assignment: Mapping[uuid.UUID, frozenset[int]]) -> ConsumerAssignment:
    return tuple((t, tuple(sorted(ps))) for t, ps in sorted(assignment.items()) if ps)


def from_record_assignment(partitions: ConsumerAssignment) -> Assignment:
    return {t: frozenset(ps) for t, ps in partitions if ps}


def member_tombstones(group_id: str, member_id: str) -> list[CoordinatorRecord]:
    """What Kafka writes when a member goes: its current and target assignment, then it."""
    return [
        CoordinatorRecord(ConsumerGroupKey(version, group_id, member_id), None)
        for version in (
            CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT,
            CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER,
            CONSUMER_GROUP_MEMBER_METADATA,
        )
    ]


def group_epoch_record(group: ConsumerGroup) -> CoordinatorRecord:
    return CoordinatorRecord(
        ConsumerGroupKey(CONSUMER_GROUP_METADATA, group.group_id),
        ConsumerGroupMetadataValue(group.group_epoch),
    )


def member_metadata_value(member: ConsumerGroupMember) -> ConsumerGroupMemberMetadataValue:
    return ConsumerGroupMemberMetadataValue(
        member.instance_id,
        member.rack_id,
        member.client_id,
        member.client_host,
        member.subscribed_topic_names,
        member.subscribed_topic_regex,
        member.rebalance_timeout_ms,
        member.server_assignor,
    )


def current_assignment_value(
    member: ConsumerGroupMember,
) -> ConsumerGroupCurrentMemberAssignmentValue:
    return ConsumerGroupCurrentMemberAssignmentValue(
        member.member_epoch,
        member.previous_member_epoch,
        _STATE_BYTES[member.state],
        to_record_assignment(member.assigned),
        to_record_assignment(member.pending_revocation),
    )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A heartbeat's group and member before it ran, to write only what changed."""

    group_epoch: int | None
    assignment_epoch: int | None
    metadata: ConsumerGroupMemberMetadataValue | None
    assignment: ConsumerGroupCurrentMemberAssignmentValue | None

    @classmethod
    def of(cls, group: ConsumerGroup | None, member: ConsumerGroupMember | None) -> Snapshot:
        return cls(
            None if group is None else group.group_epoch,
            None if group is None else group.assignment_epoch,
            None if member is None else member_metadata_value(member),
            None if member is None else current_assignment_value(member),
        )

    def changes(
        self, group: ConsumerGroup, member: ConsumerGroupMember | None
    ) -> list[CoordinatorRecord]:
        records: list[CoordinatorRecord] = []
        group_id = group.group_id
        if member is not None:
            metadata = member_metadata_value(member)
            if metadata != self.metadata:
                key = ConsumerGroupKey(CONSUMER_GROUP_MEMBER_METADATA, group_id, member.member_id)
                records.append(CoordinatorRecord(key, metadata))
        if group.group_epoch != self.group_epoch:
            records.append(group_epoch_record(group))
        if group.assignment_epoch != self.assignment_epoch:
            for member_id, target in sorted(group.target.items()):
                key = ConsumerGroupKey(CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER, group_id, member_id)
                value = ConsumerGroupTargetAssignmentMemberValue(to_record_assignment(target))
                records.append(CoordinatorRecord(key, value))
            key = ConsumerGroupKey(CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA, group_id)
            records.append(
                CoordinatorRecord(
                    key, ConsumerGroupTargetAssignmentMetadataValue(group.assignment_epoch)
                )
            )
        if member is not None:
            assignment = current_assignment_value(member)
            if assignment != self.assignment:
                key = ConsumerGroupKey(
                    CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT, group_id, member.member_id
                )
                records.append(CoordinatorRecord(key, assignment))
        return records


def replay_record(
    groups: dict[str, ConsumerGroup], key: ConsumerGroupKey, value: ConsumerGroupValue | None
) -> None:
    """Apply one consumer-group record to ``groups`` (loading ``__consumer_offsets``)."""
    group = groups.get(key.group)
    if group is None:
        if value is None:
            return
        group = groups[key.group] = ConsumerGroup(key.group)
    if key.member_id is None:
        if key.version == CONSUMER_GROUP_METADATA:
            if value is None:
                groups.pop(key.group, None)
            elif isinstance(value, ConsumerGroupMetadataValue):
                group.group_epoch = value.epoch
        elif isinstance(value, ConsumerGroupTargetAssignmentMetadataValue):
            group.assignment_epoch = value.assignment_epoch
        return
    member_id = key.member_id
    if key.version == CONSUMER_GROUP_MEMBER_METADATA:
        if value is None:
            group.members.pop(member_id, None)
            return
        member = group.members.setdefault(member_id, ConsumerGroupMember(member_id))
        if isinstance(value, ConsumerGroupMemberMetadataValue):
            member.instance_id = value.instance_id
            member.rack_id = value.rack_id
            member.client_id = value.client_id
            member.client_host = value.client_host
            member.subscribed_topic_names = value.subscribed_topic_names
            member.subscribed_topic_regex = value.subscribed_topic_regex
            member.rebalance_timeout_ms = value.rebalance_timeout_ms
            member.server_assignor = value.server_assignor
    elif key.version == CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER:
        if value is None:
            group.target.pop(member_id, None)
        elif isinstance(value, ConsumerGroupTargetAssignmentMemberValue):
            group.target[member_id] = from_record_assignment(value.partitions)
    elif isinstance(value, ConsumerGroupCurrentMemberAssignmentValue):
        member = group.members.setdefault(member_id, ConsumerGroupMember(member_id))
        member.apply(
            MemberAssignmentState(
                _STATES.get(value.state, MemberState.STABLE),
                value.member_epoch,
                value.previous_member_epoch,
                from_record_assignment(value.assigned),
                from_record_assignment(value.pending_revocation),
            )
        )
