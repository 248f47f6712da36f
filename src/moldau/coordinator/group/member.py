"""One member of a classic group (Kafka's ClassicGroupMember)."""

from __future__ import annotations

from collections.abc import Collection

from moldau.coordinator.group.messages import (
    DescribedMember,
    JoinGroupResult,
    Protocol,
    SyncGroupResult,
)
from moldau.coordinator.group.results import Completion


class ClassicMember:
    """A member as the coordinator tracks it between its JoinGroup and its departure.

    ``protocols`` is the member's ordered preference list of (name, metadata); the group
    picks the protocol all members support that gets the most first-choice votes, and the
    leader receives every member's metadata *for that protocol*. ``assignment`` is the opaque
    bytes the leader gave this member in the last SyncGroup.

    ``awaiting_join`` / ``awaiting_sync`` hold the parked JoinGroup / SyncGroup response of a
    member inside a rebalance. While one is set the member "satisfies" its heartbeat (it
    cannot heartbeat while its request is parked), except when ``is_new``: a member that
    joined for the first time and never got a response may have gone away, so its parked
    join expires on the new-member timeout instead.

    Static members (``group_instance_id`` set) keep their identity across restarts: the
    instance id maps to the current member id, and a rejoin with the instance id replaces
    the member id (see ``ClassicGroup.replace_static_member``).
    """

    __slots__ = (
        "assignment",
        "awaiting_join",
        "awaiting_sync",
        "client_host",
        "client_id",
        "group_instance_id",
        "is_new",
        "member_id",
        "protocol_type",
        "protocols",
        "rebalance_timeout_ms",
        "session_timeout_ms",
    )

    def __init__(
        self,
        member_id: str,
        group_instance_id: str | None,
        client_id: str,
        client_host: str,
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
        protocol_type: str,
        protocols: tuple[Protocol, ...],
        assignment: bytes = b"",
    ) -> None:
        self.member_id = member_id
        self.group_instance_id = group_instance_id
        self.client_id = client_id
        self.client_host = client_host
        self.rebalance_timeout_ms = rebalance_timeout_ms
        self.session_timeout_ms = session_timeout_ms
        self.protocol_type = protocol_type
        self.protocols = protocols
        self.assignment = assignment
        self.awaiting_join: Completion[JoinGroupResult] | None = None
        self.awaiting_sync: Completion[SyncGroupResult] | None = None
        self.is_new = False

    @property
    def is_static(self) -> bool:
        return self.group_instance_id is not None

    @property
    def is_awaiting_join(self) -> bool:
        return self.awaiting_join is not None

    @property
    def is_awaiting_sync(self) -> bool:
        return self.awaiting_sync is not None

    @property
    def protocol_names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.protocols)

    def metadata(self, protocol_name: str | None) -> bytes:
        """This member's metadata for ``protocol_name`` (b"" if it does not support it)."""
        for name, metadata in self.protocols:
            if name == protocol_name:
                return metadata
        return b""

    def matches(self, protocols: tuple[Protocol, ...]) -> bool:
        """Same protocols, same order, same metadata: a rejoin that changes nothing."""
        return self.protocols == protocols

    def vote(self, candidates: Collection[str]) -> str:
        """The member's most preferred protocol among ``candidates``."""
        for name, _ in self.protocols:
            if name in candidates:
                return name
        raise ValueError(f"member {self.member_id} supports none of {sorted(candidates)}")

    def has_satisfied_heartbeat(self) -> bool:
        if self.is_new:
            return False
        return self.is_awaiting_join or self.is_awaiting_sync

    def complete_join(self, result: JoinGroupResult) -> bool:
        completion, self.awaiting_join = self.awaiting_join, None
        return completion is not None and completion.complete(result)

    def complete_sync(self, result: SyncGroupResult) -> bool:
        completion, self.awaiting_sync = self.awaiting_sync, None
        return completion is not None and completion.complete(result)

    def describe(self, protocol_name: str | None) -> DescribedMember:
        """DescribeGroups' view: metadata and assignment only when the group is stable."""
        return DescribedMember(
            member_id=self.member_id,
            group_instance_id=self.group_instance_id,
            client_id=self.client_id,
            client_host=self.client_host,
            metadata=self.metadata(protocol_name) if protocol_name is not None else b"",
            assignment=self.assignment if protocol_name is not None else b"",
        )

    def __repr__(self) -> str:
        static = f", instance={self.group_instance_id}" if self.is_static else ""
        return f"ClassicMember({self.member_id}{static})"
