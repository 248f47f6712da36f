"""Version-free requests and answers of the classic group APIs.

The broker's handlers translate each kio request version into these and back, so the
coordinator has one code path per API whatever the wire version: JoinGroup v0's single
timeout, v4's MEMBER_ID_REQUIRED step and v9's ``skip_assignment`` become fields here.
Error codes are Kafka's (kio's ``ErrorCode``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kio.schema.errors import ErrorCode

NO_GENERATION = -1
UNKNOWN_MEMBER_ID = ""
NO_OFFSET = -1
NO_LEADER_EPOCH = -1
NO_PRODUCER_ID = -1

Protocol = tuple[str, bytes]
"""A protocol a member supports: name (e.g. "range") and its opaque metadata."""


@dataclass(frozen=True, slots=True)
class JoinGroupRequest:
    group_id: str
    member_id: str
    protocol_type: str
    protocols: tuple[Protocol, ...]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    group_instance_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    reason: str | None = None
    require_known_member_id: bool = True
    """JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED and its id."""
    supports_skip_assignment: bool = False
    """JoinGroup v9+: a static leader rejoining a stable group gets the member list with
    ``skip_assignment`` instead of looking like a follower."""


@dataclass(frozen=True, slots=True)
class JoinGroupMember:
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinGroupResult:
    error: ErrorCode
    member_id: str = UNKNOWN_MEMBER_ID
    generation_id: int = NO_GENERATION
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    skip_assignment: bool = False
    members: tuple[JoinGroupMember, ...] = ()


@dataclass(frozen=True, slots=True)
class SyncGroupRequest:
    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None = None
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignments: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class SyncGroupResult:
    error: ErrorCode
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None = None


@dataclass(frozen=True, slots=True)
class LeavingMember:
    member_id: str
    group_instance_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class LeaveGroupResult:
    """``error`` is the request-level error; ``members`` each member's (v3+ report both)."""

    error: ErrorCode
    members: tuple[tuple[LeavingMember, ErrorCode], ...] = ()


@dataclass(frozen=True, slots=True)
class OffsetCommitRequest:
    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None
    offsets: tuple[PartitionOffset, ...]


@dataclass(frozen=True, slots=True)
class TxnOffsetCommitRequest:
    """TxnOffsetCommit: offsets committed inside ``transactional_id``'s transaction.

    ``generation_id``, ``member_id`` and ``group_instance_id`` exist from v3 (KIP-447) and
    are validated only when given: older producers send none of them.
    """

    group_id: str
    transactional_id: str
    producer_id: int
    producer_epoch: int
    generation_id: int = NO_GENERATION
    member_id: str = UNKNOWN_MEMBER_ID
    group_instance_id: str | None = None
    offsets: tuple[PartitionOffset, ...] = ()


@dataclass(frozen=True, slots=True)
class PartitionOffset:
    topic: str
    partition: int
    offset: int
    leader_epoch: int = NO_LEADER_EPOCH
    metadata: str | None = ""


TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class FetchedOffset:
    topic: str
    partition: int
    offset: int = NO_OFFSET
    leader_epoch: int = NO_LEADER_EPOCH
    metadata: str = ""
    error: ErrorCode = ErrorCode.none


@dataclass(frozen=True, slots=True)
class OffsetFetchResult:
    """``partitions`` in request order, or every committed offset for the all-topics form."""

    error: ErrorCode
    partitions: tuple[FetchedOffset, ...] = ()


@dataclass(frozen=True, slots=True)
class OffsetDeleteResult:
    error: ErrorCode
    partitions: tuple[tuple[TopicPartition, ErrorCode], ...] = ()


@dataclass(frozen=True, slots=True)
class DescribedMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class DescribedGroup:
    group_id: str
    error: ErrorCode
    state: str
    protocol_type: str = ""
    protocol_data: str = ""
    members: tuple[DescribedMember, ...] = ()


@dataclass(frozen=True, slots=True)
class ListedGroup:
    group_id: str
    protocol_type: str
    state: str
    group_type: str = "classic"


@dataclass(frozen=True, slots=True)
class ListGroupsFilter:
    states: frozenset[str] = field(default_factory=frozenset)
    """Lower-case state names; empty means all."""
    types: frozenset[str] = field(default_factory=frozenset)
    """Lower-case group types ("classic", "consumer"); empty means all."""
