"""JoinGroup, SyncGroup, Heartbeat and LeaveGroup: the classic rebalance protocol.

This is Kafka's classic group state machine (``GroupMetadataManager``'s classic half). One
rebalance, seen from the coordinator:

1. Something starts it (a member joins, changes its metadata, leaves or expires; the leader
   rejoins): the group goes to PREPARING_REBALANCE and every member's next JoinGroup is
   parked. The join phase ends when all known members (and pending new ones) have rejoined,
   or after the rebalance timeout, whichever comes first. A group coming from EMPTY waits
   ``group.initial.rebalance.delay.ms`` instead, extended by that much each time another
   member arrived during the wait, but never beyond the rebalance timeout — so that a burst
   of consumers starting together forms one generation, not one per consumer.
2. Completing the join phase drops dynamic members that did not rejoin, bumps the
   generation, selects the protocol and answers every parked JoinGroup; the leader's answer
   lists all members with their metadata for the selected protocol.
3. In COMPLETING_REBALANCE followers' SyncGroups are parked until the leader's SyncGroup
   brings the assignments. These are written to the log as the group's record; once that
   write is durable every parked SyncGroup gets its member's assignment and the group is
   STABLE. Members that send no SyncGroup within the rebalance timeout are removed and the
   rebalance starts over.

Sessions: each member has a heartbeat timer of its session timeout, reset by Heartbeat,
by OffsetCommit in STABLE or PREPARING_REBALANCE, and by answers to its JoinGroup/SyncGroup.
When it fires the member is removed — unless its JoinGroup or SyncGroup is parked (it
cannot heartbeat then), except for a brand-new member whose first JoinGroup is parked: that
one expires after ``new_member_join_timeout_ms``, because a client that gave up would
otherwise block the rebalance forever.

Static members (KIP-345): a JoinGroup with a known ``group.instance.id`` and no member id is
a restarted instance. It gets a new member id that replaces the old one (a request still
parked under the old id is answered FENCED_INSTANCE_ID); in a STABLE group whose selected
protocol would not change, it rejoins *without* a rebalance and keeps its assignment —
the group record is rewritten with the new member id and the JoinGroup answered once that
write is durable. Static members that miss a rebalance are not dropped at the end of the
join phase; only their session timeout removes them.

All timers are keyed (``heartbeat-<len>-<group>-<member>``, ``join-<group>``, ``sync-<group>``)
and their callbacks look the group up again by id: it may have been deleted meanwhile.
"""

from __future__ import annotations

import logging

from kio.schema.errors import ErrorCode

from moldau.coordinator.group.config import GroupCoordinatorConfig
from moldau.coordinator.group.group import ClassicGroup
from moldau.coordinator.group.member import ClassicMember
from moldau.coordinator.group.messages import (
    DescribedGroup,
    HeartbeatRequest,
    JoinGroupRequest,
    JoinGroupResult,
    LeaveGroupResult,
    LeavingMember,
    ListedGroup,
    ListGroupsFilter,
    SyncGroupRequest,
    SyncGroupResult,
)
from moldau.coordinator.group.records import group_metadata_record
from moldau.coordinator.group.results import (
    Completion,
    CoordinatorResult,
    GroupError,
    Timer,
)
from moldau.coordinator.group.state import GroupState

log = logging.getLogger("moldau.coordinator.group")

EMPTY_RESULT: CoordinatorResult[None] = CoordinatorResult()
"""Shared "nothing to write"; never mutated."""


def heartbeat_key(group_id: str, member_id: str) -> str:
    # Length-prefixed: group and member ids may contain any character, "-" included.
    return f"heartbeat-{len(group_id)}-{group_id}-{member_id}"


def join_key(group_id: str) -> str:
    return f"join-{group_id}"


def sync_key(group_id: str) -> str:
    return f"sync-{group_id}"


class ClassicGroupManager:
    """The classic-protocol operations over one coordinator shard's groups.

    ``groups`` is the shard's group table, shared with the offset manager (offset commits
    create simple groups). Every method runs on the runtime's single thread; none blocks.
    """

    def __init__(
        self, groups: dict[str, ClassicGroup], timer: Timer, config: GroupCoordinatorConfig
    ) -> None:
        self.groups = groups
        self.timer = timer
        self.config = config

    # -- JoinGroup -----------------------------------------------------------------------

    def join_group(
        self, request: JoinGroupRequest, completion: Completion[JoinGroupResult], now_ms: int
    ) -> CoordinatorResult[None]:
        """Handle a JoinGroup; ``completion`` gets the answer, maybe much later."""
        member_id = request.member_id
        is_unknown_member = member_id == ""
        group = self.groups.get(request.group_id)
        created = False
        if group is None:
            if not is_unknown_member:
                completion.complete(JoinGroupResult(ErrorCode.unknown_member_id, member_id))
                return EMPTY_RESULT
            group = ClassicGroup(request.group_id)
            self.groups[request.group_id] = group
            created = True

        if not self._accepts_joining_member(group, member_id):
            removed = group.remove(member_id)
            if removed is not None:
                self.timer.cancel(heartbeat_key(group.group_id, member_id))
            completion.complete(JoinGroupResult(ErrorCode.group_max_size_reached))
            result = EMPTY_RESULT
        elif is_unknown_member:
            result = self._join_new_member(group, request, completion, now_ms)
        else:
            result = self._join_existing_member(group, request, completion, now_ms)

        if created and not group.members and not group.pending_join_members:
            del self.groups[group.group_id]  # refused before anything joined: leave no trace
        return result

    def _accepts_joining_member(self, group: ClassicGroup, member_id: str) -> bool:
        max_size = self.config.max_size
        if group.is_in(GroupState.EMPTY, GroupState.DEAD):
            return True
        if group.state is GroupState.PREPARING_REBALANCE:
            # Count parked joins, not members: a shrunken max size then admits the first
            # members to rejoin and refuses the rest.
            known = group.has_member(member_id) and group.member(member_id).is_awaiting_join
            return known or group.num_awaiting_join < max_size
        return group.has_member(member_id) or group.num_members < max_size

    def _join_new_member(
        self,
        group: ClassicGroup,
        request: JoinGroupRequest,
        completion: Completion[JoinGroupResult],
        now_ms: int,
    ) -> CoordinatorResult[None]:
        if group.state is GroupState.DEAD:
            completion.complete(JoinGroupResult(ErrorCode.coordinator_not_available))
            return EMPTY_RESULT
        if not group.supports_protocols(request.protocol_type, (n for n, _ in request.protocols)):
            completion.complete(JoinGroupResult(ErrorCode.inconsistent_group_protocol))
            return EMPTY_RESULT
        instance_id = request.group_instance_id
        new_member_id = group.generate_member_id(request.client_id, instance_id)
        if instance_id is not None:
            existing = group.static_member_id(instance_id)
            if existing is not None:
                log.info(
                    "group %s: static member %s rejoins in %s; replacing member id %s",
                    group.group_id,
                    instance_id,
                    group.state.value,
                    existing,
                )
                return self._replace_static_member(
                    group, request, existing, new_member_id, completion, now_ms
                )
            return self._add_member_and_rebalance(group, request, new_member_id, completion, now_ms)
        if request.require_known_member_id:
            # JoinGroup v4+: hand out the id first; the member joins with it in a second
            # request. Until then it is pending, and a rebalance waits for it.
            group.pending_join_members.add(new_member_id)
            self._schedule_heartbeat(group.group_id, new_member_id, request.session_timeout_ms)
            completion.complete(JoinGroupResult(ErrorCode.member_id_required, new_member_id))
            return EMPTY_RESULT
        return self._add_member_and_rebalance(group, request, new_member_id, completion, now_ms)

    def _join_existing_member(
        self,
        group: ClassicGroup,
        request: JoinGroupRequest,
        completion: Completion[JoinGroupResult],
        now_ms: int,
    ) -> CoordinatorResult[None]:
        member_id = request.member_id
        if group.state is GroupState.DEAD:
            completion.complete(JoinGroupResult(ErrorCode.coordinator_not_available, member_id))
            return EMPTY_RESULT
        if not group.supports_protocols(request.protocol_type, (n for n, _ in request.protocols)):
            completion.complete(JoinGroupResult(ErrorCode.inconsistent_group_protocol, member_id))
            return EMPTY_RESULT
        if member_id in group.pending_join_members:
            return self._add_member_and_rebalance(group, request, member_id, completion, now_ms)
        try:
            group.validate_member(member_id, request.group_instance_id)
        except GroupError as exc:
            completion.complete(JoinGroupResult(exc.error, member_id))
            return EMPTY_RESULT

        member = group.member(member_id)
        state = group.state
        if state is GroupState.PREPARING_REBALANCE:
            return self._update_member_and_rebalance(group, member, request, completion, now_ms)
        if state is GroupState.COMPLETING_REBALANCE:
            if member.matches(request.protocols):
                # Probably a retry of a JoinGroup whose answer was lost: answer it again.
                completion.complete(
                    group.join_result(member_id, with_members=group.is_leader(member_id))
                )
                return EMPTY_RESULT
            return self._update_member_and_rebalance(group, member, request, completion, now_ms)
        if state is GroupState.STABLE:
            if group.is_leader(member_id) or not member.matches(request.protocols):
                # The leader rejoins to get a rebalance for changes the metadata does not
                # show (a topic got partitions); anyone may change its metadata.
                return self._update_member_and_rebalance(group, member, request, completion, now_ms)
            completion.complete(group.join_result(member_id, with_members=False))
            return EMPTY_RESULT
        completion.complete(JoinGroupResult(ErrorCode.unknown_member_id, member_id))
        return EMPTY_RESULT

    def _add_member_and_rebalance(
        self,
        group: ClassicGroup,
        request: JoinGroupRequest,
        member_id: str,
        completion: Completion[JoinGroupResult],
        now_ms: int,
    ) -> CoordinatorResult[None]:
        member = ClassicMember(
            member_id,
            request.group_instance_id,
            request.client_id,
            request.client_host,
            request.rebalance_timeout_ms,
            request.session_timeout_ms,
            request.protocol_type,
            request.protocols,
        )
        member.is_new = True
        member.awaiting_join = completion
        if (
            group.state is GroupState.PREPARING_REBALANCE
            and group.previous_state is GroupState.EMPTY
        ):
            group.new_member_added = True  # lets the initial rebalance wait a little longer
        group.add(member)
        self._schedule_heartbeat(group.group_id, member_id, self.config.new_member_join_timeout_ms)
        return self._maybe_prepare_rebalance_or_complete_join(group, now_ms)

    def _update_member_and_rebalance(
        self,
        group: ClassicGroup,
        member: ClassicMember,
        request: JoinGroupRequest,
        completion: Completion[JoinGroupResult],
        now_ms: int,
    ) -> CoordinatorResult[None]:
        group.update_member(
            member, request.protocols, request.rebalance_timeout_ms, request.session_timeout_ms
        )
        if member.awaiting_join is not None and member.awaiting_join is not completion:
            # A second JoinGroup while one is parked: the client gave up on the first.
            member.complete_join(JoinGroupResult(ErrorCode.rebalance_in_progress, member.member_id))
        member.awaiting_join = completion
        return self._maybe_prepare_rebalance_or_complete_join(group, now_ms)

    def _replace_static_member(
        self,
        group: ClassicGroup,
        request: JoinGroupRequest,
        old_member_id: str,
        new_member_id: str,
        completion: Completion[JoinGroupResult],
        now_ms: int,
    ) -> CoordinatorResult[None]:
        instance_id = request.group_instance_id
        assert instance_id is not None
        current_leader = group.leader_id
        member = group.replace_static_member(instance_id, old_member_id, new_member_id)
        self.timer.cancel(heartbeat_key(group.group_id, old_member_id))
        self.reschedule_heartbeat(group, member)
        old_protocols = member.protocols
        old_rebalance_timeout_ms = member.rebalance_timeout_ms
        old_session_timeout_ms = member.session_timeout_ms
        group.update_member(
            member, request.protocols, request.rebalance_timeout_ms, request.session_timeout_ms
        )
        member.awaiting_join = completion

        if group.state is GroupState.STABLE:
            if group.protocol_name != group.select_protocol():
                return self._maybe_prepare_rebalance_or_complete_join(group, now_ms)
            # Same protocol: persist the new member id and answer without a rebalance.
            record = group_metadata_record(
                group.group_id, group.to_record_value(group.group_assignment())
            )

            def on_written(error: BaseException | None, _now_ms: int) -> None:
                if error is not None:
                    log.warning(
                        "group %s: could not persist static member %s (%s); reverting to %s",
                        group.group_id,
                        instance_id,
                        error,
                        old_member_id,
                    )
                    member.awaiting_join = None
                    if group.static_member_id(instance_id) == new_member_id:
                        group.update_member(
                            member, old_protocols, old_rebalance_timeout_ms, old_session_timeout_ms
                        )
                        old = group.replace_static_member(instance_id, new_member_id, old_member_id)
                        self.timer.cancel(heartbeat_key(group.group_id, new_member_id))
                        self.reschedule_heartbeat(group, old)
                    completion.complete(
                        JoinGroupResult(
                            ErrorCode.coordinator_not_available,
                            generation_id=group.generation_id,
                            protocol_type=group.protocol_type,
                            protocol_name=group.protocol_name,
                            leader=current_leader or "",
                        )
                    )
                elif request.supports_skip_assignment:
                    # v9: a static leader gets the members back but must not reassign.
                    is_leader = group.is_leader(new_member_id)
                    result = group.join_result(new_member_id, with_members=is_leader)
                    member.complete_join(
                        JoinGroupResult(
                            result.error,
                            result.member_id,
                            result.generation_id,
                            result.protocol_type,
                            result.protocol_name,
                            result.leader,
                            skip_assignment=is_leader,
                            members=result.members,
                        )
                    )
                else:
                    # Older clients: name the old leader id, so that even a static leader
                    # behaves as a follower and fetches its assignment with SyncGroup.
                    result = group.join_result(new_member_id, with_members=False)
                    member.complete_join(
                        JoinGroupResult(
                            result.error,
                            result.member_id,
                            result.generation_id,
                            result.protocol_type,
                            result.protocol_name,
                            current_leader or "",
                        )
                    )
                return None

            return CoordinatorResult([record], on_written=on_written, replay=False)
        if group.state is GroupState.COMPLETING_REBALANCE:
            # The leader may be assigning to the old member id: start over.
            return self.prepare_rebalance(group, now_ms)
        return self._maybe_complete_join_phase(group, now_ms)

    # -- rebalance mechanics -------------------------------------------------------------

    def _maybe_prepare_rebalance_or_complete_join(
        self, group: ClassicGroup, now_ms: int
    ) -> CoordinatorResult[None]:
        if group.can_rebalance():
            return self.prepare_rebalance(group, now_ms)
        return self._maybe_complete_join_phase(group, now_ms)

    def prepare_rebalance(self, group: ClassicGroup, now_ms: int) -> CoordinatorResult[None]:
        if group.state is GroupState.COMPLETING_REBALANCE:
            self._reset_and_propagate_assignment(group, ErrorCode.rebalance_in_progress)
        self._remove_sync_expiration(group)
        initial = group.state is GroupState.EMPTY
        if initial:
            delay_ms = self.config.initial_rebalance_delay_ms
            remaining_ms = max(group.rebalance_timeout_ms() - delay_ms, 0)
            self._schedule_initial_join(group.group_id, delay_ms, remaining_ms)
        group.transition_to(GroupState.PREPARING_REBALANCE, now_ms)
        log.info(
            "group %s: preparing to rebalance (generation %d)", group.group_id, group.generation_id
        )
        if initial:
            return EMPTY_RESULT
        if group.has_all_members_joined():
            return self._complete_join(group, now_ms)
        group_id = group.group_id
        self.timer.schedule(
            join_key(group_id),
            group.rebalance_timeout_ms(),
            lambda now: self._complete_join_by_id(group_id, now),
        )
        return EMPTY_RESULT

    def _schedule_initial_join(self, group_id: str, delay_ms: int, remaining_ms: int) -> None:
        self.timer.schedule(
            join_key(group_id),
            delay_ms,
            lambda now: self._try_complete_initial_rebalance(group_id, delay_ms, remaining_ms, now),
        )

    def _try_complete_initial_rebalance(
        self, group_id: str, delay_ms: int, remaining_ms: int, now_ms: int
    ) -> CoordinatorResult[None]:
        group = self.groups.get(group_id)
        if group is None:
            return EMPTY_RESULT
        if group.new_member_added and remaining_ms != 0:
            group.new_member_added = False
            new_delay_ms = min(self.config.initial_rebalance_delay_ms, remaining_ms)
            self._schedule_initial_join(group_id, new_delay_ms, max(remaining_ms - delay_ms, 0))
            return EMPTY_RESULT
        return self._complete_join(group, now_ms)

    def _maybe_complete_join_phase(
        self, group: ClassicGroup, now_ms: int
    ) -> CoordinatorResult[None]:
        if group.state is not GroupState.PREPARING_REBALANCE:
            return EMPTY_RESULT
        if group.previous_state is GroupState.EMPTY:
            return EMPTY_RESULT  # the initial rebalance ends on its timer only
        if not group.has_all_members_joined():
            return EMPTY_RESULT
        return self._complete_join(group, now_ms)

    def _complete_join_by_id(self, group_id: str, now_ms: int) -> CoordinatorResult[None]:
        group = self.groups.get(group_id)
        return EMPTY_RESULT if group is None else self._complete_join(group, now_ms)

    def _complete_join(self, group: ClassicGroup, now_ms: int) -> CoordinatorResult[None]:
        """End the join phase: next generation, answers to every parked JoinGroup."""
        group_id = group.group_id
        self.timer.cancel(join_key(group_id))
        for member in group.not_yet_rejoined_members():
            if not member.is_static:
                group.remove(member.member_id)
                self.timer.cancel(heartbeat_key(group_id, member.member_id))
                log.info("group %s: removed %s, which did not rejoin", group_id, member.member_id)
        if group.state is GroupState.DEAD:
            return EMPTY_RESULT
        if not group.maybe_elect_new_joined_leader() and group.members:
            # Nobody rejoined (only static members remain): wait for sessions to expire.
            self.timer.schedule(
                join_key(group_id),
                group.rebalance_timeout_ms(),
                lambda now: self._complete_join_by_id(group_id, now),
            )
            return EMPTY_RESULT
        group.init_next_generation(now_ms)
        if group.state is GroupState.EMPTY:
            log.info("group %s: generation %d is empty", group_id, group.generation_id)
            record = group_metadata_record(group_id, group.to_record_value({}))
            return CoordinatorResult([record], replay=False)
        log.info(
            "group %s: generation %d with %d members, protocol %s",
            group_id,
            group.generation_id,
            group.num_members,
            group.protocol_name,
        )
        for member in group.members.values():
            member.complete_join(
                group.join_result(member.member_id, with_members=group.is_leader(member.member_id))
            )
            self.reschedule_heartbeat(group, member)
            member.is_new = False
            group.pending_sync_members.add(member.member_id)
        generation = group.generation_id
        self.timer.schedule(
            sync_key(group_id),
            group.rebalance_timeout_ms(),
            lambda now: self._expire_pending_sync(group_id, generation, now),
        )
        return EMPTY_RESULT

    def _expire_pending_sync(
        self, group_id: str, generation_id: int, now_ms: int
    ) -> CoordinatorResult[None]:
        group = self.groups.get(group_id)
        if group is None or group.generation_id != generation_id:
            return EMPTY_RESULT
        if not group.is_in(GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            return EMPTY_RESULT
        if not group.pending_sync_members:
            return EMPTY_RESULT
        missing = sorted(group.pending_sync_members)
        for member_id in missing:
            member = group.remove(member_id)
            if member is not None:
                member.complete_sync(SyncGroupResult(ErrorCode.unknown_member_id))
            self.timer.cancel(heartbeat_key(group_id, member_id))
        log.info("group %s: removed %s, which did not send SyncGroup in time", group_id, missing)
        return self.prepare_rebalance(group, now_ms)

    def _remove_sync_expiration(self, group: ClassicGroup) -> None:
        group.pending_sync_members.clear()
        self.timer.cancel(sync_key(group.group_id))

    def _remove_pending_sync_member(self, group: ClassicGroup, member_id: str) -> None:
        group.pending_sync_members.discard(member_id)
        if not group.pending_sync_members or group.is_in(
            GroupState.DEAD, GroupState.EMPTY, GroupState.PREPARING_REBALANCE
        ):
            self.timer.cancel(sync_key(group.group_id))

    def _reset_and_propagate_assignment(self, group: ClassicGroup, error: ErrorCode) -> None:
        for member in group.members.values():
            member.assignment = b""
        self._propagate_assignment(group, error)

    def _set_and_propagate_assignment(
        self, group: ClassicGroup, assignment: dict[str, bytes]
    ) -> None:
        for member_id, member in group.members.items():
            member.assignment = assignment.get(member_id, b"")
        self._propagate_assignment(group, ErrorCode.none)

    def _propagate_assignment(self, group: ClassicGroup, error: ErrorCode) -> None:
        ok = error is ErrorCode.none
        for member in group.members.values():
            answered = member.complete_sync(
                SyncGroupResult(
                    error,
                    group.protocol_type if ok else None,
                    group.protocol_name if ok else None,
                    member.assignment,
                )
            )
            if answered:
                # Its session may have "expired" while the SyncGroup was parked (ignored
                # then): start a fresh one.
                self.reschedule_heartbeat(group, member)

    # -- sessions ------------------------------------------------------------------------

    def reschedule_heartbeat(
        self, group: ClassicGroup, member: ClassicMember, timeout_ms: int | None = None
    ) -> None:
        self._schedule_heartbeat(
            group.group_id,
            member.member_id,
            member.session_timeout_ms if timeout_ms is None else timeout_ms,
        )

    def _schedule_heartbeat(self, group_id: str, member_id: str, timeout_ms: int) -> None:
        self.timer.schedule(
            heartbeat_key(group_id, member_id),
            timeout_ms,
            lambda now: self._expire_heartbeat(group_id, member_id, now),
        )

    def _expire_heartbeat(
        self, group_id: str, member_id: str, now_ms: int
    ) -> CoordinatorResult[None]:
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return EMPTY_RESULT
        if member_id in group.pending_join_members:
            log.info("group %s: pending member %s expired", group_id, member_id)
            group.remove(member_id)
            if group.state is GroupState.PREPARING_REBALANCE and group.has_all_members_joined():
                return self._complete_join(group, now_ms)
            return EMPTY_RESULT
        member = group.members.get(member_id)
        if member is None or member.has_satisfied_heartbeat():
            return EMPTY_RESULT
        log.info("group %s: session of %s expired; removing it", group_id, member_id)
        return self._remove_member_and_update(group, member, now_ms)

    def _remove_member_and_update(
        self, group: ClassicGroup, member: ClassicMember, now_ms: int
    ) -> CoordinatorResult[None]:
        # A new member may expire with its JoinGroup parked: tell it to retry.
        member.complete_join(JoinGroupResult(ErrorCode.unknown_member_id))
        member.complete_sync(SyncGroupResult(ErrorCode.unknown_member_id))
        group.remove(member.member_id)
        if group.is_in(GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            return self._maybe_prepare_rebalance_or_complete_join(group, now_ms)
        if group.state is GroupState.PREPARING_REBALANCE and group.has_all_members_joined():
            return self._complete_join(group, now_ms)
        return EMPTY_RESULT

    # -- SyncGroup -----------------------------------------------------------------------

    def sync_group(
        self, request: SyncGroupRequest, completion: Completion[SyncGroupResult], now_ms: int
    ) -> CoordinatorResult[None]:
        group = self.groups.get(request.group_id)
        if group is None or group.state is GroupState.EMPTY:
            completion.complete(SyncGroupResult(ErrorCode.unknown_member_id))
            return EMPTY_RESULT
        try:
            self._validate_sync(group, request)
        except GroupError as exc:
            completion.complete(SyncGroupResult(exc.error))
            return EMPTY_RESULT
        member_id = request.member_id
        member = group.member(member_id)
        if group.state is GroupState.PREPARING_REBALANCE:
            completion.complete(SyncGroupResult(ErrorCode.rebalance_in_progress))
            return EMPTY_RESULT
        if group.state is GroupState.STABLE:
            self._remove_pending_sync_member(group, member_id)
            completion.complete(
                SyncGroupResult(
                    ErrorCode.none, group.protocol_type, group.protocol_name, member.assignment
                )
            )
            return EMPTY_RESULT
        # COMPLETING_REBALANCE: park until the leader's assignment is durable.
        if member.awaiting_sync is not None and member.awaiting_sync is not completion:
            member.complete_sync(SyncGroupResult(ErrorCode.rebalance_in_progress))
        member.awaiting_sync = completion
        self._remove_pending_sync_member(group, member_id)
        if not group.is_leader(member_id):
            return EMPTY_RESULT
        assignment = {member_id: data for member_id, data in request.assignments}
        generation_id = group.generation_id
        record = group_metadata_record(group.group_id, group.to_record_value(assignment))

        def on_written(error: BaseException | None, now: int) -> CoordinatorResult[None] | None:
            # The group may have moved on while the write was in flight.
            if (
                self.groups.get(group.group_id) is not group
                or group.state is not GroupState.COMPLETING_REBALANCE
                or group.generation_id != generation_id
            ):
                return None
            if error is not None:
                log.warning("group %s: could not persist the assignment: %s", group.group_id, error)
                self._reset_and_propagate_assignment(group, ErrorCode.coordinator_not_available)
                return self._maybe_prepare_rebalance_or_complete_join(group, now)
            self._set_and_propagate_assignment(group, assignment)
            group.transition_to(GroupState.STABLE, now)
            log.info("group %s: generation %d is stable", group.group_id, generation_id)
            return None

        return CoordinatorResult([record], on_written=on_written, replay=False)

    @staticmethod
    def _validate_sync(group: ClassicGroup, request: SyncGroupRequest) -> None:
        if group.state is GroupState.DEAD:
            raise GroupError(ErrorCode.coordinator_not_available)
        group.validate_member(request.member_id, request.group_instance_id)
        if request.generation_id != group.generation_id:
            raise GroupError(ErrorCode.illegal_generation)
        if (request.protocol_type is not None and request.protocol_type != group.protocol_type) or (
            request.protocol_name is not None and request.protocol_name != group.protocol_name
        ):
            raise GroupError(ErrorCode.inconsistent_group_protocol)

    # -- Heartbeat -----------------------------------------------------------------------

    def heartbeat(self, request: HeartbeatRequest, now_ms: int) -> ErrorCode:
        group = self.groups.get(request.group_id)
        if group is None:
            return ErrorCode.unknown_member_id
        if group.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available
        try:
            group.validate_member(request.member_id, request.group_instance_id)
        except GroupError as exc:
            return exc.error
        if request.generation_id != group.generation_id:
            return ErrorCode.illegal_generation
        if group.state is GroupState.EMPTY:
            return ErrorCode.unknown_member_id
        self.reschedule_heartbeat(group, group.member(request.member_id))
        if group.state is GroupState.PREPARING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    # -- LeaveGroup ----------------------------------------------------------------------

    def leave_group(
        self, group_id: str, leaving: tuple[LeavingMember, ...], now_ms: int
    ) -> CoordinatorResult[LeaveGroupResult]:
        group = self.groups.get(group_id)
        if group is None:
            return CoordinatorResult(response=LeaveGroupResult(ErrorCode.unknown_member_id))
        if group.state is GroupState.DEAD:
            return CoordinatorResult(response=LeaveGroupResult(ErrorCode.coordinator_not_available))
        answers: list[tuple[LeavingMember, ErrorCode]] = []
        any_left = False
        for who in leaving:
            error = ErrorCode.none
            if who.member_id == "":
                # Administrative removal of a static member by its instance id.
                static_id = (
                    group.static_member_id(who.group_instance_id)
                    if who.group_instance_id is not None
                    else None
                )
                if static_id is None:
                    error = ErrorCode.unknown_member_id
                else:
                    self._remove_current_member(group, static_id)
            elif who.member_id in group.pending_join_members:
                group.remove(who.member_id)
                self.timer.cancel(heartbeat_key(group_id, who.member_id))
            else:
                try:
                    group.validate_member(who.member_id, who.group_instance_id)
                except GroupError as exc:
                    error = exc.error
                else:
                    self._remove_current_member(group, who.member_id)
            if error is ErrorCode.none:
                any_left = True
                log.info(
                    "group %s: %s left (reason: %s)",
                    group_id,
                    who.member_id or who.group_instance_id,
                    who.reason or "not provided",
                )
            answers.append((who, error))
        result = EMPTY_RESULT
        if any_left:
            if group.is_in(GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
                result = self._maybe_prepare_rebalance_or_complete_join(group, now_ms)
            elif group.state is GroupState.PREPARING_REBALANCE:
                result = self._maybe_complete_join_phase(group, now_ms)
        return CoordinatorResult(
            list(result.records),
            response=LeaveGroupResult(ErrorCode.none, tuple(answers)),
            on_written=result.on_written,
            replay=result.replay,
        )

    def _remove_current_member(self, group: ClassicGroup, member_id: str) -> None:
        self.timer.cancel(heartbeat_key(group.group_id, member_id))
        member = group.members.get(member_id)
        if member is not None:
            member.complete_join(JoinGroupResult(ErrorCode.unknown_member_id))
            member.complete_sync(SyncGroupResult(ErrorCode.unknown_member_id))
        group.remove(member_id)

    # -- views ---------------------------------------------------------------------------

    def describe_group(self, group_id: str) -> DescribedGroup:
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return DescribedGroup(group_id, ErrorCode.none, GroupState.DEAD.value)
        return group.describe()

    def list_groups(self, filter_: ListGroupsFilter) -> list[ListedGroup]:
        listed: list[ListedGroup] = []
        for group in self.groups.values():
            if group.state is GroupState.DEAD:
                continue
            if filter_.states and group.state.value.lower() not in filter_.states:
                continue
            if filter_.types and "classic" not in filter_.types:
                continue
            listed.append(group.listed())
        return listed

    # -- loading -------------------------------------------------------------------------

    def on_loaded(self, now_ms: int) -> CoordinatorResult[None]:
        """After replay: start every loaded member's session; shrink oversized groups."""
        records = []
        for group in list(self.groups.values()):
            for member in group.members.values():
                self.reschedule_heartbeat(group, member)
            if group.num_members > self.config.max_size and group.can_rebalance():
                records.extend(self.prepare_rebalance(group, now_ms).records)
        return CoordinatorResult(records, replay=False)

    def remove_group(self, group_id: str) -> None:
        """Forget a deleted group (replay of its tombstone) and its group-level timers."""
        group = self.groups.pop(group_id, None)
        if group is None:
            return
        group.state = GroupState.DEAD
        self.timer.cancel(join_key(group_id))
        self.timer.cancel(sync_key(group_id))
        for member_id in [*group.members, *group.pending_join_members]:
            self.timer.cancel(heartbeat_key(group_id, member_id))
