"""ConsumerGroupHeartbeat and ConsumerGroupDescribe (KIP-848) for one coordinator shard.

``ConsumerGroupManager`` is the consumer-group half of Kafka's ``GroupMetadataManager``. One
heartbeat does everything, in this order:

1. validate the request (INVALID_REQUEST for a join without its required fields,
   UNSUPPORTED_ASSIGNOR, INVALID_REGULAR_EXPRESSION);
2. a member epoch of -1 leaves, -2 is a static member leaving for a restart (it keeps its
   assignment, under its instance id, until its session expires or it comes back);
3. find or create the member — epoch 0 joins (a static member's instance id takes over an
   absent -2 member, UNRELEASED_INSTANCE_ID while the old one is still there,
   GROUP_MAX_SIZE_REACHED past ``group.consumer.max.size``); any other epoch must match the
   member's (or its previous epoch, when the member reports no partition beyond what it
   has: the last response was lost), else FENCED_MEMBER_EPOCH;
4. take the new subscription; bump the group epoch if it or the partition counts of the
   subscribed topics changed (this is how a topic created later is picked up);
5. recompute the target assignment if the group epoch moved past it;
6. reconcile the member one step towards its target and answer its epoch, the heartbeat
   interval and — when it joined, sent a full request or its partitions changed — its
   assignment.

Sessions: every heartbeat restarts a ``group.consumer.session.timeout.ms`` timer; expiry
removes the member, freeing its partitions, and bumps the group epoch. A member that does
not acknowledge a revocation within its rebalance timeout is removed the same way.

Persistence (:mod:`.consumer_records`), as for classic groups: the in-memory group is the
truth and every operation writes snapshots of what it changed (``replay=False``) — a
member's metadata and current assignment, the group epoch, the target assignment — and
tombstones for members that left. Loading replays them; members' sessions restart then,
so they can keep heartbeating with their epochs after a broker restart. What is not
persisted is the topic metadata the group last saw: the first heartbeat after a restart
bumps the group epoch and recomputes the (sticky) target.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from moldau.coordinator.group.assignors import ASSIGNORS, Assignment, MemberSubscription
from moldau.coordinator.group.config import GroupCoordinatorConfig
from moldau.coordinator.group.consumer_group import (
    LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
    ConsumerGroup,
    ConsumerGroupMember,
    ConsumerGroupState,
    compiled_regex,
)
from moldau.coordinator.group.consumer_persistence import (
    Snapshot,
    group_epoch_record,
    member_tombstones,
    replay_record,
)
from moldau.coordinator.group.consumer_records import (
    CONSUMER_GROUP_METADATA,
    CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA,
    ConsumerGroupKey,
    ConsumerGroupValue,
)
from moldau.coordinator.group.messages import OffsetCommitRequest
from moldau.coordinator.group.reconciliation import (
    MemberAssignmentState,
    MemberState,
    next_assignment,
)
from moldau.coordinator.group.records import CoordinatorRecord
from moldau.coordinator.group.results import CoordinatorResult, GroupError, Timer

log = logging.getLogger("moldau.coordinator.group")

TopicsView = Mapping[str, tuple[uuid.UUID, int]]
"""The cluster's topics as the coordinator needs them: name → (topic id, partition count)."""


@dataclass(frozen=True, slots=True)
class ConsumerHeartbeatRequest:
    """A ConsumerGroupHeartbeat, version-free. None = "unchanged since the last one"."""

    group_id: str
    member_id: str
    member_epoch: int
    topics: TopicsView
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: tuple[str, ...] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    owned: Mapping[uuid.UUID, frozenset[int]] | None = None
    client_id: str = ""
    client_host: str = ""


@dataclass(frozen=True, slots=True)
class ConsumerHeartbeatResult:
    error: ErrorCode
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: Assignment | None = None
    error_message: str | None = None


@dataclass(frozen=True, slots=True)
class DescribedConsumerMember:
    member: ConsumerGroupMember
    target: Assignment


@dataclass(frozen=True, slots=True)
class DescribedConsumerGroup:
    group_id: str
    error: ErrorCode
    state: str = ConsumerGroupState.DEAD.value
    group_epoch: int = 0
    assignment_epoch: int = 0
    assignor_name: str = ""
    members: tuple[DescribedConsumerMember, ...] = ()
    error_message: str | None = None


def session_key(group_id: str, member_id: str) -> str:
    return f"consumer-session:{group_id}:{member_id}"


def revocation_key(group_id: str, member_id: str) -> str:
    return f"consumer-revocation:{group_id}:{member_id}"


class ConsumerGroupManager:
    """The consumer groups of one shard; see the module docstring."""

    def __init__(
        self,
        groups: dict[str, ConsumerGroup],
        timer: Timer,
        config: GroupCoordinatorConfig,
    ) -> None:
        self.groups = groups
        self.timer = timer
        self.config = config
        self._records: list[CoordinatorRecord] = []
        """Records of the operation in progress (snapshots of what changed)."""

    # -- heartbeat -----------------------------------------------------------------------

    def heartbeat(
        self, request: ConsumerHeartbeatRequest, now_ms: int
    ) -> CoordinatorResult[ConsumerHeartbeatResult]:
        self._records = []
        group = self.groups.get(request.group_id)
        member = None if group is None else group.members.get(request.member_id)
        before = Snapshot.of(group, member)
        try:
            result = self._heartbeat(request)
        except GroupError as exc:
            result = ConsumerHeartbeatResult(exc.error, error_message=str(exc))
        group = self.groups.get(request.group_id)
        member = None if group is None else group.members.get(request.member_id)
        if group is not None:
            self._records.extend(before.changes(group, member))
        records, self._records = self._records, []
        return CoordinatorResult(records, response=result, replay=False)

    def _validate(self, request: ConsumerHeartbeatRequest) -> None:
        if not request.group_id:
            raise GroupError(ErrorCode.invalid_request, "GroupId can't be empty.")
        if not request.member_id:
            raise GroupError(ErrorCode.invalid_request, "MemberId can't be empty.")
        if request.member_epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            raise GroupError(ErrorCode.invalid_request, "MemberEpoch is invalid.")
        if request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH and not request.instance_id:
            raise GroupError(
                ErrorCode.invalid_request, "InstanceId can't be null when leaving temporarily."
            )
        if request.member_epoch == 0:
            if request.rebalance_timeout_ms < 0:
                raise GroupError(
                    ErrorCode.invalid_request,
                    "RebalanceTimeoutMs must be provided in first request.",
                )
            if request.owned is None or any(request.owned.values()):
                raise GroupError(
                    ErrorCode.invalid_request, "TopicPartitions must be empty when (re-)joining."
                )
            if request.subscribed_topic_names is None and request.subscribed_topic_regex is None:
                raise GroupError(
                    ErrorCode.invalid_request,
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                )
        if request.server_assignor and request.server_assignor not in self._assignor_names():
            raise GroupError(
                ErrorCode.unsupported_assignor,
                f"ServerAssignor {request.server_assignor} is not supported.",
            )
        if request.subscribed_topic_regex:
            try:
                compiled_regex(request.subscribed_topic_regex)
            except re.error as exc:
                raise GroupError(
                    ErrorCode.invalid_regular_expression, f"SubscribedTopicRegex: {exc}"
                ) from None

    def _assignor_names(self) -> tuple[str, ...]:
        return tuple(n for n in self.config.consumer_assignors if n in ASSIGNORS) or ("uniform",)

    def _heartbeat(self, request: ConsumerHeartbeatRequest) -> ConsumerHeartbeatResult:
        self._validate(request)
        group_id, member_id, epoch = request.group_id, request.member_id, request.member_epoch
        group = self.groups.get(group_id)
        if epoch in (LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH):
            return self._leave(group, request)
        if group is None:
            if epoch != 0:
                raise GroupError(ErrorCode.unknown_member_id, f"Group {group_id} not found.")
            group = self.groups[group_id] = ConsumerGroup(group_id)
        member = self._member_for(group, request)
        bump = self._update_member(group, member, request)
        if self._refresh_subscription_metadata(group, request.topics):
            bump = True
        if bump:
            group.group_epoch += 1
            log.info("group %s: epoch %d", group_id, group.group_epoch)
        if group.group_epoch > group.assignment_epoch:
            self._compute_target(group, request.topics)
        before = dict(member.assigned)
        owned = request.owned
        member.apply(
            next_assignment(
                member_id,
                member.assignment_state,
                group.assignment_epoch,
                group.target.get(member_id, {}),
                group.owner,
                owned,
            )
        )
        self._schedule_session(group, member)
        self._schedule_revocation(group, member)
        full = (
            request.rebalance_timeout_ms >= 0
            and (
                request.subscribed_topic_names is not None
                or request.subscribed_topic_regex is not None
            )
            and owned is not None
        )
        send_assignment = epoch == 0 or full or before != member.assigned
        return ConsumerHeartbeatResult(
            ErrorCode.none,
            member_id=member_id,
            member_epoch=member.member_epoch,
            heartbeat_interval_ms=self.config.consumer_heartbeat_interval_ms,
            assignment=dict(member.assigned) if send_assignment else None,
        )

    def _member_for(
        self, group: ConsumerGroup, request: ConsumerHeartbeatRequest
    ) -> ConsumerGroupMember:
        member_id, epoch = request.member_id, request.member_epoch
        member = group.members.get(member_id)
        if epoch == 0:
            if request.instance_id:
                static = group.member_by_instance_id(request.instance_id)
                if static is not None and static.member_id != member_id:
                    if static.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH:
                        raise GroupError(
                            ErrorCode.unreleased_instance_id,
                            f"Static member {request.instance_id} is still in the group.",
                        )
                    # The restarted static member takes over its old self's assignment.
                    self._forget_member(group, static.member_id)
                    self._records.extend(member_tombstones(group.group_id, static.member_id))
                    del group.members[static.member_id]
                    if static.member_id in group.target:
                        group.target[member_id] = group.target.pop(static.member_id)
                    static.member_id = member_id
                    static.member_epoch = static.previous_member_epoch
                    group.members[member_id] = static
                    return static
            if member is None:
                if len(group.members) >= self.config.consumer_max_size:
                    raise GroupError(
                        ErrorCode.group_max_size_reached,
                        f"The consumer group has reached its maximum capacity of "
                        f"{self.config.consumer_max_size} members.",
                    )
                member = group.members[member_id] = ConsumerGroupMember(member_id)
            elif member.assigned or member.pending_revocation:
                # A member rejoining from scratch has dropped its partitions: release them.
                member.apply(next_assignment_reset(member))
            return member
        if member is None:
            raise GroupError(
                ErrorCode.unknown_member_id, f"Member {member_id} is not a member of the group."
            )
        if epoch > member.member_epoch or (
            epoch < member.member_epoch
            and not (
                epoch == member.previous_member_epoch
                and request.owned is not None
                and _is_subset(request.owned, member.assigned)
            )
        ):
            raise GroupError(
                ErrorCode.fenced_member_epoch,
                f"The consumer group member has a smaller member epoch ({epoch}) than the one "
                f"known by the group coordinator ({member.member_epoch}).",
            )
        return member

    @staticmethod
    def _update_member(
        group: ConsumerGroup, member: ConsumerGroupMember, request: ConsumerHeartbeatRequest
    ) -> bool:
        """Take the request's non-null fields; True if the subscription changed."""
        changed = request.member_epoch == 0 and member.member_epoch == 0
        if request.instance_id is not None:
            member.instance_id = request.instance_id
        if request.rack_id is not None:
            member.rack_id = request.rack_id
        if request.rebalance_timeout_ms >= 0:
            member.rebalance_timeout_ms = request.rebalance_timeout_ms
        member.client_id = request.client_id
        member.client_host = request.client_host
        if request.subscribed_topic_names is not None:
            names = tuple(sorted(set(request.subscribed_topic_names)))
            changed |= names != member.subscribed_topic_names
            member.subscribed_topic_names = names
        if request.subscribed_topic_regex is not None:
            regex = request.subscribed_topic_regex or None
            changed |= regex != member.subscribed_topic_regex
            member.subscribed_topic_regex = regex
        if request.server_assignor is not None:
            changed |= request.server_assignor != member.server_assignor
            member.server_assignor = request.server_assignor or None
        return changed

    @staticmethod
    def _refresh_subscription_metadata(group: ConsumerGroup, topics: TopicsView) -> bool:
        names = group.subscribed_topic_names(frozenset(topics))
        metadata = {name: topics[name] for name in names if name in topics}
        if metadata == group.subscription_metadata:
            return False
        group.subscription_metadata = metadata
        return True

    def _compute_target(self, group: ConsumerGroup, topics: TopicsView) -> None:
        names = self._assignor_names()
        preferred = [m.server_assignor for m in group.members.values() if m.server_assignor]
        name = max(names, key=lambda n: (preferred.count(n), -names.index(n)))
        assignor = ASSIGNORS[name]
        by_id = dict(group.subscription_metadata.values())
        subscriptions = {
            m.member_id: MemberSubscription(
                frozenset(
                    topic_id
                    for topic_name, (topic_id, _) in group.subscription_metadata.items()
                    if m.subscribes_to(topic_name)
                ),
                m.assigned,
            )
            for m in group.members.values()
        }
        group.target = assignor.assign(subscriptions, by_id)
        group.assignment_epoch = group.group_epoch
        group.assignor_name = name

    # -- leaving and expiry --------------------------------------------------------------

    def _leave(
        self, group: ConsumerGroup | None, request: ConsumerHeartbeatRequest
    ) -> ConsumerHeartbeatResult:
        member = None if group is None else group.members.get(request.member_id)
        if group is None or member is None:
            if request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH and group is not None:
                member = group.member_by_instance_id(request.instance_id or "")
            if group is None or member is None:
                raise GroupError(
                    ErrorCode.unknown_member_id,
                    f"Member {request.member_id} is not a member of the group.",
                )
        if request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            # Kept (assignment and all) until its session expires or it rejoins.
            member.previous_member_epoch = member.member_epoch
            member.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH
            self._schedule_session(group, member)
        else:
            self.remove_member(group, member.member_id)
        return ConsumerHeartbeatResult(
            ErrorCode.none,
            member_id=request.member_id,
            member_epoch=request.member_epoch,
            heartbeat_interval_ms=0,
        )

    def remove_member(self, group: ConsumerGroup, member_id: str) -> None:
        """Remove a member, freeing its partitions, and bump the group epoch (records
        go to the operation's buffer)."""
        if group.members.pop(member_id, None) is None:
            return
        self._forget_member(group, member_id)
        group.target.pop(member_id, None)
        group.group_epoch += 1
        self._records.extend(member_tombstones(group.group_id, member_id))
        self._records.append(group_epoch_record(group))
        log.info("group %s: member %s left, epoch %d", group.group_id, member_id, group.group_epoch)

    def _forget_member(self, group: ConsumerGroup, member_id: str) -> None:
        self.timer.cancel(session_key(group.group_id, member_id))
        self.timer.cancel(revocation_key(group.group_id, member_id))

    def _schedule_session(self, group: ConsumerGroup, member: ConsumerGroupMember) -> None:
        group_id, member_id = group.group_id, member.member_id

        def expire(_now_ms: int) -> CoordinatorResult[None]:
            current = self.groups.get(group_id)
            self._records = []
            if current is not None and member_id in current.members:
                log.info("group %s: session of member %s expired", group_id, member_id)
                self.remove_member(current, member_id)
            records, self._records = self._records, []
            return CoordinatorResult(records, replay=False)

        self.timer.schedule(
            session_key(group_id, member_id), self.config.consumer_session_timeout_ms, expire
        )

    def _schedule_revocation(self, group: ConsumerGroup, member: ConsumerGroupMember) -> None:
        group_id, member_id = group.group_id, member.member_id
        key = revocation_key(group_id, member_id)
        if member.state is not MemberState.UNREVOKED_PARTITIONS:
            self.timer.cancel(key)
            return
        if self.timer.is_scheduled(key):
            return
        epoch = member.member_epoch

        def expire(_now_ms: int) -> CoordinatorResult[None]:
            current = self.groups.get(group_id)
            stuck = None if current is None else current.members.get(member_id)
            self._records = []
            if (
                current is not None
                and stuck is not None
                and stuck.state is MemberState.UNREVOKED_PARTITIONS
                and stuck.member_epoch == epoch
            ):
                log.info("group %s: member %s did not revoke in time", group_id, member_id)
                self.remove_member(current, member_id)
            records, self._records = self._records, []
            return CoordinatorResult(records, replay=False)

        self.timer.schedule(key, member.rebalance_timeout_ms, expire)

    # -- offsets -------------------------------------------------------------------------

    @staticmethod
    def validate_offset_commit(group: ConsumerGroup, request: OffsetCommitRequest) -> ErrorCode:
        """Kafka's ``ConsumerGroup.validateOffsetCommit``: the member must exist
        (UNKNOWN_MEMBER_ID) and commit at its epoch (STALE_MEMBER_EPOCH).

        ``generation_id`` carries the member epoch (OffsetCommit v9 names it so; librdkafka
        sends it in older versions too). A commit at an older epoch is still accepted for
        partitions the member holds now: it is the owner, and a commit made while revoking
        is exactly the one that must not be lost.
        """
        epoch = request.generation_id
        if epoch < 0 and not request.member_id and not group.members:
            return ErrorCode.none
        member = group.members.get(request.member_id)
        if member is None:
            return ErrorCode.unknown_member_id
        if epoch == member.member_epoch:
            return ErrorCode.none
        if epoch > member.member_epoch or epoch < 0:
            return ErrorCode.stale_member_epoch
        for p in request.offsets:
            topic = group.subscription_metadata.get(p.topic)
            if topic is None:
                return ErrorCode.stale_member_epoch
            topic_id = topic[0]
            held = member.assigned.get(topic_id, frozenset()) | member.pending_revocation.get(
                topic_id, frozenset()
            )
            if p.partition not in held:
                return ErrorCode.stale_member_epoch
        return ErrorCode.none

    # -- views ---------------------------------------------------------------------------

    def describe(self, group_id: str) -> DescribedConsumerGroup:
        group = self.groups.get(group_id)
        if group is None or group.dead:
            return DescribedConsumerGroup(
                group_id,
                ErrorCode.group_id_not_found,
                error_message=f"Group {group_id} not found.",
            )
        return DescribedConsumerGroup(
            group_id,
            ErrorCode.none,
            group.state.value,
            group.group_epoch,
            group.assignment_epoch,
            group.assignor_name or self._assignor_names()[0],
            tuple(
                DescribedConsumerMember(m, group.target.get(m.member_id, {}))
                for m in group.members.values()
            ),
        )

    def delete_group(self, group_id: str) -> list[CoordinatorRecord]:
        """Forget an empty group; returns its tombstones."""
        group = self.groups.pop(group_id, None)
        if group is None:
            return []
        group.dead = True
        for member_id in list(group.members):
            self._forget_member(group, member_id)
        return [
            CoordinatorRecord(
                ConsumerGroupKey(CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA, group_id), None
            ),
            CoordinatorRecord(ConsumerGroupKey(CONSUMER_GROUP_METADATA, group_id), None),
        ]

    # -- replay and loading --------------------------------------------------------------

    def replay(self, key: ConsumerGroupKey, value: ConsumerGroupValue | None) -> None:
        """Rebuild groups from their records (loading ``__consumer_offsets``)."""
        replay_record(self.groups, key, value)

    def on_loaded(self) -> None:
        """After replay: every loaded member's session starts now."""
        for group in self.groups.values():
            for member in group.members.values():
                self._schedule_session(group, member)


def next_assignment_reset(member: ConsumerGroupMember) -> MemberAssignmentState:
    """The member with nothing assigned and epoch 0: a rejoin starts from scratch."""
    return MemberAssignmentState(MemberState.STABLE, 0, 0, {}, {})


def _is_subset(
    owned: Mapping[uuid.UUID, frozenset[int]], assigned: Mapping[uuid.UUID, frozenset[int]]
) -> bool:
    return all(ps <= assigned.get(t, frozenset()) for t, ps in owned.items())
