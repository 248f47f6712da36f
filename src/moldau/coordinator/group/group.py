"""A classic group's membership, generation and protocol (Kafka's ClassicGroup)."""

from __future__ import annotations

import struct
import uuid
from collections import Counter
from collections.abc import Iterable

from kio.schema.errors import ErrorCode

from moldau.coordinator.group.member import ClassicMember
from moldau.coordinator.group.messages import (
    DescribedGroup,
    JoinGroupMember,
    JoinGroupResult,
    ListedGroup,
    Protocol,
    SyncGroupResult,
)
from moldau.coordinator.group.records import GroupMetadataValue, MemberMetadata
from moldau.coordinator.group.results import GroupError
from moldau.coordinator.group.state import GroupState

CONSUMER_PROTOCOL_TYPE = "consumer"
"""The protocol type of Kafka consumers; only for it do we read member metadata."""


class ClassicGroup:
    """The in-memory state of one classic group; the coordinator drives its transitions.

    Invariants:

    - ``protocol_type`` is set by the first member and every later member must use the same
      one; a group without it (None) is a "simple" group that only commits offsets.
    - ``supported_protocols`` counts, per protocol name, the members supporting it, so the
      candidate protocols (supported by *all* members) are those whose count equals the
      member count; a joining member must support at least one of them.
    - ``leader_id`` names a member whenever there are members; removing the leader promotes
      the oldest remaining member.
    - ``static_members`` maps each ``group.instance.id`` to its current member id.
    - ``pending_join_members`` are member ids handed out with MEMBER_ID_REQUIRED whose second
      JoinGroup has not arrived; a rebalance waits for them too.
    - ``pending_sync_members`` are the members of the new generation whose SyncGroup has not
      arrived; the coordinator removes them if the rebalance timeout passes first.

    ``current_state_timestamp_ms`` is when the group entered its state; persisted in the
    group record, it is what offset expiry of an empty group counts from.
    """

    def __init__(
        self,
        group_id: str,
        *,
        state: GroupState = GroupState.EMPTY,
        generation_id: int = 0,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
        leader_id: str | None = None,
        current_state_timestamp_ms: int | None = None,
    ) -> None:
        self.group_id = group_id
        self.state = state
        self.previous_state = state
        self.current_state_timestamp_ms = current_state_timestamp_ms
        self.generation_id = generation_id
        self.protocol_type = protocol_type
        self.protocol_name = protocol_name
        self.leader_id = leader_id
        self.members: dict[str, ClassicMember] = {}
        self.static_members: dict[str, str] = {}
        self.pending_join_members: set[str] = set()
        self.pending_sync_members: set[str] = set()
        self.supported_protocols: Counter[str] = Counter()
        self.subscribed_topics: frozenset[str] | None = None
        self.new_member_added = False

    # -- state ---------------------------------------------------------------------------

    def is_in(self, *states: GroupState) -> bool:
        return self.state in states

    def transition_to(self, target: GroupState, now_ms: int) -> None:
        if not self.state.can_transition_to(target):
            raise RuntimeError(
                f"group {self.group_id}: illegal transition {self.state.name} -> {target.name}"
            )
        self.previous_state = self.state
        self.state = target
        self.current_state_timestamp_ms = now_ms

    def can_rebalance(self) -> bool:
        return self.state.can_transition_to(GroupState.PREPARING_REBALANCE)

    @property
    def is_simple(self) -> bool:
        return self.protocol_type is None

    @property
    def uses_consumer_protocol(self) -> bool:
        return self.protocol_type == CONSUMER_PROTOCOL_TYPE

    # -- members -------------------------------------------------------------------------

    def has_member(self, member_id: str) -> bool:
        return member_id in self.members

    def member(self, member_id: str) -> ClassicMember:
        return self.members[member_id]

    @property
    def num_members(self) -> int:
        return len(self.members)

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id == member_id

    def add(self, member: ClassicMember) -> None:
        """Add ``member`` (its ``awaiting_join`` already set if it waits for a response)."""
        if member.group_instance_id is not None:
            if member.group_instance_id in self.static_members:
                raise RuntimeError(f"static member {member.group_instance_id} already present")
            self.static_members[member.group_instance_id] = member.member_id
        if not self.members:
            self.protocol_type = member.protocol_type
        if member.protocol_type != self.protocol_type:
            raise RuntimeError("member and group protocol types differ")
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.members[member.member_id] = member
        self.supported_protocols.update(member.protocol_names)
        self.pending_join_members.discard(member.member_id)

    def remove(self, member_id: str) -> ClassicMember | None:
        member = self.members.pop(member_id, None)
        if member is not None:
            self.supported_protocols.subtract(member.protocol_names)
            if member.group_instance_id is not None:
                self.static_members.pop(member.group_instance_id, None)
        if self.is_leader(member_id):
            self.leader_id = next(iter(self.members), None)
        self.pending_join_members.discard(member_id)
        self.pending_sync_members.discard(member_id)
        return member

    def update_member(
        self,
        member: ClassicMember,
        protocols: tuple[Protocol, ...],
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
    ) -> None:
        self.supported_protocols.subtract(member.protocol_names)
        member.protocols = protocols
        self.supported_protocols.update(member.protocol_names)
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.session_timeout_ms = session_timeout_ms

    def replace_static_member(
        self, group_instance_id: str, old_member_id: str, new_member_id: str
    ) -> ClassicMember:
        """Give a restarted static member a new member id, keeping everything else (its
        assignment included). Whoever still waits under the old id is fenced."""
        old = self.members.pop(old_member_id, None)
        if old is None:
            raise KeyError(old_member_id)
        old.complete_join(
            JoinGroupResult(error=ErrorCode.fenced_instance_id, member_id=old_member_id)
        )
        old.complete_sync(SyncGroupResult(error=ErrorCode.fenced_instance_id))
        new = ClassicMember(
            new_member_id,
            old.group_instance_id,
            old.client_id,
            old.client_host,
            old.rebalance_timeout_ms,
            old.session_timeout_ms,
            old.protocol_type,
            old.protocols,
            old.assignment,
        )
        self.members[new_member_id] = new
        if self.is_leader(old_member_id):
            self.leader_id = new_member_id
        self.static_members[group_instance_id] = new_member_id
        if old_member_id in self.pending_sync_members:
            self.pending_sync_members.discard(old_member_id)
            self.pending_sync_members.add(new_member_id)
        return new

    def static_member_id(self, group_instance_id: str) -> str | None:
        return self.static_members.get(group_instance_id)

    def generate_member_id(self, client_id: str, group_instance_id: str | None) -> str:
        prefix = group_instance_id if group_instance_id is not None else client_id
        return f"{prefix}-{uuid.uuid4()}"

    def validate_member(self, member_id: str, group_instance_id: str | None) -> None:
        """UNKNOWN_MEMBER_ID for a stranger, FENCED_INSTANCE_ID for a stale static member."""
        if group_instance_id is not None:
            existing = self.static_members.get(group_instance_id)
            if existing is None:
                raise GroupError(ErrorCode.unknown_member_id)
            if existing != member_id:
                raise GroupError(ErrorCode.fenced_instance_id)
        if member_id not in self.members:
            raise GroupError(ErrorCode.unknown_member_id)

    @property
    def num_awaiting_join(self) -> int:
        return sum(1 for m in self.members.values() if m.is_awaiting_join)

    def has_all_members_joined(self) -> bool:
        return self.num_awaiting_join == len(self.members) and not self.pending_join_members

    def not_yet_rejoined_members(self) -> list[ClassicMember]:
        return [m for m in self.members.values() if not m.is_awaiting_join]

    def maybe_elect_new_joined_leader(self) -> bool:
        """Keep a leader that rejoined, else promote a member that did; False if none did."""
        if self.leader_id is None:
            return False
        if self.members[self.leader_id].is_awaiting_join:
            return True
        for member in self.members.values():
            if member.is_awaiting_join:
                self.leader_id = member.member_id
                return True
        return False

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    # -- protocols -----------------------------------------------------------------------

    def candidate_protocols(self) -> set[str]:
        n = len(self.members)
        return {name for name, count in self.supported_protocols.items() if count == n}

    def supports_protocols(self, protocol_type: str, protocol_names: Iterable[str]) -> bool:
        names = set(protocol_names)
        if self.state is GroupState.EMPTY:
            return bool(protocol_type) and bool(names)
        if self.protocol_type != protocol_type:
            return False
        n = len(self.members)
        return any(self.supported_protocols.get(name, 0) == n for name in names)

    def select_protocol(self) -> str:
        """The candidate protocol with the most first-choice votes (ties: first voted)."""
        if not self.members:
            raise RuntimeError("cannot select a protocol for an empty group")
        candidates = self.candidate_protocols()
        votes: Counter[str] = Counter(m.vote(candidates) for m in self.members.values())
        return votes.most_common(1)[0][0]

    # -- generations ---------------------------------------------------------------------

    def init_next_generation(self, now_ms: int) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.COMPLETING_REBALANCE, now_ms)
        else:
            self.protocol_name = None
            self.subscribed_topics = self.compute_subscribed_topics()
            self.transition_to(GroupState.EMPTY, now_ms)
        self.pending_sync_members.clear()

    def current_members(self) -> tuple[JoinGroupMember, ...]:
        """What the leader's JoinGroup response lists: every member's metadata for the
        selected protocol."""
        return tuple(
            JoinGroupMember(m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
            for m in self.members.values()
        )

    def group_assignment(self) -> dict[str, bytes]:
        return {member_id: m.assignment for member_id, m in self.members.items()}

    def join_result(self, member_id: str, *, with_members: bool) -> JoinGroupResult:
        """A successful JoinGroup answer describing the current generation."""
        return JoinGroupResult(
            error=ErrorCode.none,
            member_id=member_id,
            generation_id=self.generation_id,
            protocol_type=self.protocol_type,
            protocol_name=self.protocol_name,
            leader=self.leader_id or "",
            members=self.current_members() if with_members else (),
        )

    # -- subscriptions -------------------------------------------------------------------

    def compute_subscribed_topics(self) -> frozenset[str] | None:
        """Topics the members of a consumer group subscribe to, read from their metadata;
        None when unknown (not a consumer group, or metadata we cannot parse)."""
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return None
        if not self.members:
            return frozenset()
        if self.protocol_name is None:
            return None
        topics: set[str] = set()
        try:
            for m in self.members.values():
                topics.update(consumer_subscription_topics(m.metadata(self.protocol_name)))
        except ValueError:
            return None
        return frozenset(topics)

    def is_subscribed_to_topic(self, topic: str) -> bool:
        if self.subscribed_topics is None:
            return self.uses_consumer_protocol
        return topic in self.subscribed_topics

    # -- offset commits ------------------------------------------------------------------

    def validate_offset_commit(
        self, member_id: str, group_instance_id: str | None, generation_id: int
    ) -> None:
        """Kafka's rules for a (non-transactional) OffsetCommit against this group."""
        if self.state is GroupState.DEAD:
            raise GroupError(ErrorCode.coordinator_not_available)
        if generation_id < 0 and self.state is GroupState.EMPTY:
            return  # a standalone consumer or an admin client: allowed while nobody is in
        if generation_id >= 0 or member_id or group_instance_id is not None:
            self.validate_member(member_id, group_instance_id)
            if generation_id != self.generation_id:
                raise GroupError(ErrorCode.illegal_generation)
        elif self.state is not GroupState.EMPTY:
            raise GroupError(ErrorCode.unknown_member_id)
        if self.state is GroupState.COMPLETING_REBALANCE:
            raise GroupError(ErrorCode.rebalance_in_progress)

    # -- views and persistence -----------------------------------------------------------

    def describe(self) -> DescribedGroup:
        stable = self.state is GroupState.STABLE
        protocol = self.protocol_name if stable else None
        return DescribedGroup(
            group_id=self.group_id,
            error=ErrorCode.none,
            state=self.state.value,
            protocol_type=self.protocol_type or "",
            protocol_data=(self.protocol_name or "") if stable else "",
            members=tuple(m.describe(protocol) for m in self.members.values()),
        )

    def listed(self) -> ListedGroup:
        return ListedGroup(self.group_id, self.protocol_type or "", self.state.value)

    def to_record_value(self, assignment: dict[str, bytes]) -> GroupMetadataValue:
        """The group record for the current generation with ``assignment`` per member."""
        return GroupMetadataValue(
            protocol_type=self.protocol_type or "",
            generation=self.generation_id,
            protocol=self.protocol_name,
            leader=self.leader_id,
            current_state_timestamp_ms=(
                -1 if self.current_state_timestamp_ms is None else self.current_state_timestamp_ms
            ),
            members=tuple(
                MemberMetadata(
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    rebalance_timeout_ms=m.rebalance_timeout_ms,
                    session_timeout_ms=m.session_timeout_ms,
                    subscription=m.metadata(self.protocol_name),
                    assignment=assignment.get(m.member_id, b""),
                )
                for m in self.members.values()
            ),
        )

    @classmethod
    def from_record(cls, group_id: str, value: GroupMetadataValue) -> ClassicGroup:
        """Rebuild a group from its record: STABLE with its members, or EMPTY."""
        group = cls(
            group_id,
            state=GroupState.STABLE if value.members else GroupState.EMPTY,
            generation_id=value.generation,
            protocol_type=value.protocol_type or None,
            protocol_name=value.protocol,
            leader_id=value.leader,
            current_state_timestamp_ms=(
                None if value.current_state_timestamp_ms < 0 else value.current_state_timestamp_ms
            ),
        )
        for m in value.members:
            protocols: tuple[Protocol, ...] = (
                ((value.protocol, m.subscription),) if value.protocol is not None else ()
            )
            group.add(
                ClassicMember(
                    m.member_id,
                    m.group_instance_id,
                    m.client_id,
                    m.client_host,
                    m.rebalance_timeout_ms,
                    m.session_timeout_ms,
                    value.protocol_type,
                    protocols,
                    m.assignment,
                )
            )
        if group.leader_id is not None and group.leader_id not in group.members:
            group.leader_id = next(iter(group.members), None)
        group.subscribed_topics = group.compute_subscribed_topics()
        return group

    def __repr__(self) -> str:
        return (
            f"ClassicGroup({self.group_id!r}, {self.state.name}, generation={self.generation_id},"
            f" members={len(self.members)})"
        )


_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


def consumer_subscription_topics(metadata: bytes) -> list[str]:
    """The topics of a consumer-protocol subscription (``ConsumerProtocolSubscription``).

    Every version starts with v0's layout — int16 version, then an int32-counted array of
    int16-length topic names — so that prefix is all we read, as Kafka does.
    Raises ValueError for metadata that is not such a subscription.
    """
    try:
        pos = 2  # version
        (count,) = _I32.unpack_from(metadata, pos)
        pos += 4
        if count < 0 or count > len(metadata):
            raise ValueError(f"bad topic count {count}")
        topics = []
        for _ in range(count):
            (length,) = _I16.unpack_from(metadata, pos)
            pos += 2
            if length < 0 or pos + length > len(metadata):
                raise ValueError("bad topic name length")
            topics.append(metadata[pos : pos + length].decode())
            pos += length
        return topics
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"not a consumer subscription: {exc}") from None
