"""The ``__consumer_offsets`` records of KIP-848 consumer groups, byte-compatible with Kafka's.

=========  ===========================================  =====================================
key ver.   record                                       value (version 0, flexible)
=========  ===========================================  =====================================
3          ConsumerGroupMetadata (group)                the group epoch
5          ConsumerGroupMemberMetadata (group, member)  client, subscription, assignor
6          ConsumerGroupTargetAssignmentMetadata        the assignment epoch
7          ConsumerGroupTargetAssignmentMember          the member's target partitions
8          ConsumerGroupCurrentMemberAssignment         epochs, state, assigned, revoking
=========  ===========================================  =====================================

Layouts follow apache/kafka ``group-coordinator/src/main/resources/common/message/``: keys
are non-flexible structs (int16-length strings) after the int16 key version; values are
flexible (compact lengths, tagged fields after each struct; the tagged fields Kafka added
later — metadata hash, assignment epochs — are skipped when read and not written). Key 4
(the deprecated ConsumerGroupPartitionMetadata) is not written and is skipped when read.

Kafka's state byte of the current assignment: 0 STABLE, 1 UNREVOKED_PARTITIONS,
2 UNRELEASED_PARTITIONS.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass

ConsumerAssignment = tuple[tuple[uuid.UUID, tuple[int, ...]], ...]
"""Partitions by topic id, sorted: the record form of an assignment."""

CONSUMER_GROUP_METADATA = 3
CONSUMER_GROUP_MEMBER_METADATA = 5
CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA = 6
CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER = 7
CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT = 8
CONSUMER_KEY_VERSIONS = frozenset({3, 4, 5, 6, 7, 8})


class ConsumerRecordFormatError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ConsumerGroupKey:
    """Keys 3 and 6 (``member_id`` None) and 5, 7, 8 (with the member)."""

    version: int
    group: str
    member_id: str | None = None


@dataclass(frozen=True, slots=True)
class ConsumerGroupMetadataValue:
    epoch: int


@dataclass(frozen=True, slots=True)
class ConsumerGroupMemberMetadataValue:
    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: tuple[str, ...]
    subscribed_topic_regex: str | None
    rebalance_timeout_ms: int
    server_assignor: str | None


@dataclass(frozen=True, slots=True)
class ConsumerGroupTargetAssignmentMetadataValue:
    assignment_epoch: int


@dataclass(frozen=True, slots=True)
class ConsumerGroupTargetAssignmentMemberValue:
    partitions: ConsumerAssignment


@dataclass(frozen=True, slots=True)
class ConsumerGroupCurrentMemberAssignmentValue:
    member_epoch: int
    previous_member_epoch: int
    state: int
    assigned: ConsumerAssignment
    pending_revocation: ConsumerAssignment


ConsumerGroupValue = (
    ConsumerGroupMetadataValue
    | ConsumerGroupMemberMetadataValue
    | ConsumerGroupTargetAssignmentMetadataValue
    | ConsumerGroupTargetAssignmentMemberValue
    | ConsumerGroupCurrentMemberAssignmentValue
)


# -- encoding --------------------------------------------------------------------------------


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _FlexWriter:
    def __init__(self) -> None:
        self.out = bytearray(struct.pack(">h", 0))

    def i8(self, value: int) -> None:
        self.out += struct.pack(">b", value)

    def i32(self, value: int) -> None:
        self.out += struct.pack(">i", value)

    def string(self, value: str | None) -> None:
        if value is None:
            self.out += _uvarint(0)
            return
        data = value.encode()
        self.out += _uvarint(len(data) + 1) + data

    def length(self, n: int) -> None:
        self.out += _uvarint(n + 1)

    def no_tags(self) -> None:
        self.out += b"\x00"

    def assignment(self, partitions: ConsumerAssignment) -> None:
        self.length(len(partitions))
        for topic_id, ps in partitions:
            self.out += topic_id.bytes
            self.length(len(ps))
            for p in ps:
                self.i32(p)
            self.no_tags()


def encode_consumer_key(key: ConsumerGroupKey) -> bytes:
    out = bytearray(struct.pack(">h", key.version))
    for value in (key.group, key.member_id):
        if value is None:
            continue
        data = value.encode()
        out += struct.pack(">h", len(data)) + data
    return bytes(out)


def encode_consumer_value(value: ConsumerGroupValue) -> bytes:
    w = _FlexWriter()
    if isinstance(value, ConsumerGroupMetadataValue):
        w.i32(value.epoch)
    elif isinstance(value, ConsumerGroupMemberMetadataValue):
        w.string(value.instance_id)
        w.string(value.rack_id)
        w.string(value.client_id)
        w.string(value.client_host)
        w.length(len(value.subscribed_topic_names))
        for name in value.subscribed_topic_names:
            w.string(name)
        w.string(value.subscribed_topic_regex)
        w.i32(value.rebalance_timeout_ms)
        w.string(value.server_assignor)
    elif isinstance(value, ConsumerGroupTargetAssignmentMetadataValue):
        w.i32(value.assignment_epoch)
    elif isinstance(value, ConsumerGroupTargetAssignmentMemberValue):
        w.assignment(value.partitions)
    else:
        w.i32(value.member_epoch)
        w.i32(value.previous_member_epoch)
        w.i8(value.state)
        w.assignment(value.assigned)
        w.assignment(value.pending_revocation)
    w.no_tags()
    return bytes(w.out)


# -- decoding --------------------------------------------------------------------------------


class _FlexReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ConsumerRecordFormatError("consumer group record truncated")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def i8(self) -> int:
        return int(struct.unpack(">b", self.take(1))[0])

    def i16(self) -> int:
        return int(struct.unpack(">h", self.take(2))[0])

    def i32(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            (byte,) = self.take(1)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise ConsumerRecordFormatError("unsigned varint too long")

    def short_string(self) -> str:
        n = self.i16()
        return self._decode(self.take(n))

    def string(self) -> str | None:
        n = self.uvarint() - 1
        return None if n < 0 else self._decode(self.take(n))

    def required_string(self) -> str:
        value = self.string()
        if value is None:
            raise ConsumerRecordFormatError("null where a string is required")
        return value

    @staticmethod
    def _decode(data: bytes) -> str:
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            raise ConsumerRecordFormatError(f"string is not UTF-8: {exc}") from None

    def length(self) -> int:
        return max(self.uvarint() - 1, 0)

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())

    def assignment(self) -> ConsumerAssignment:
        topics = []
        for _ in range(self.length()):
            topic_id = uuid.UUID(bytes=self.take(16))
            partitions = tuple(self.i32() for _ in range(self.length()))
            self.skip_tags()
            topics.append((topic_id, partitions))
        return tuple(topics)

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ConsumerRecordFormatError("unexpected trailing bytes")


def decode_consumer_key(data: bytes) -> ConsumerGroupKey | None:
    """The key, or None for key 4 (not used here). Expects a version in CONSUMER_KEY_VERSIONS."""
    r = _FlexReader(data)
    version = r.i16()
    group = r.short_string()
    member_id = r.short_string() if version in (5, 7, 8) else None
    r.end()
    if version == 4:
        return None
    return ConsumerGroupKey(version, group, member_id)


def decode_consumer_value(version: int, data: bytes) -> ConsumerGroupValue:
    r = _FlexReader(data)
    if r.i16() != 0:
        raise ConsumerRecordFormatError("unknown consumer group record value version")
    value: ConsumerGroupValue
    if version == CONSUMER_GROUP_METADATA:
        value = ConsumerGroupMetadataValue(r.i32())
    elif version == CONSUMER_GROUP_MEMBER_METADATA:
        instance_id = r.string()
        rack_id = r.string()
        client_id = r.required_string()
        client_host = r.required_string()
        names = tuple(r.required_string() for _ in range(r.length()))
        value = ConsumerGroupMemberMetadataValue(
            instance_id, rack_id, client_id, client_host, names, r.string(), r.i32(), r.string()
        )
    elif version == CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA:
        value = ConsumerGroupTargetAssignmentMetadataValue(r.i32())
    elif version == CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER:
        value = ConsumerGroupTargetAssignmentMemberValue(r.assignment())
    else:
        member_epoch = r.i32()
        previous = r.i32()
        state = r.i8()
        value = ConsumerGroupCurrentMemberAssignmentValue(
            member_epoch, previous, state, r.assignment(), r.assignment()
        )
    r.skip_tags()
    r.end()
    return value
