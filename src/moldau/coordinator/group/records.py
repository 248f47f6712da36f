"""The records of ``__consumer_offsets``, byte-compatible with Kafka's.

Every record is a key and a value, each starting with an int16 *version*. The key's version
says what the record is (Kafka's coordinator record "api key"):

=========  ====================  ==================================================
key ver.   key                   value
=========  ====================  ==================================================
0, 1       ``OffsetCommitKey``   ``OffsetCommitValue`` v0-4: one committed offset
2          ``GroupMetadataKey``  ``GroupMetadataValue`` v0-4: a classic group's
                                 generation, protocol, leader and members
3, 5-8     KIP-848 consumer groups: see :mod:`.consumer_records`
4, 9+      the deprecated partition metadata, share and streams group records (not
           decoded: ``decode_record`` returns None and loading skips them)
=========  ====================  ==================================================

A null value is a tombstone: the offset or the group is gone (and compaction may drop the
key). Layouts follow apache/kafka ``group-coordinator/src/main/resources/common/message/``
(``OffsetCommitKey.json``, ``OffsetCommitValue.json``, ``GroupMetadataKey.json``,
``GroupMetadataValue.json``): non-flexible versions use int16-length strings and int32-length
bytes and arrays; version 4 of both values is flexible (unsigned-varint "compact" lengths
plus tagged fields after every struct). kio does not carry these schemas, so they are
hand-encoded here.

We write what Kafka 3.x writes, so that Kafka tools reading the topic understand it: key
version 1 for offsets, ``OffsetCommitValue`` v3 (with the leader epoch), key version 2 and
``GroupMetadataValue`` v3 for groups. Every listed version decodes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from moldau.coordinator.group.consumer_records import (
    CONSUMER_KEY_VERSIONS,
    ConsumerGroupKey,
    ConsumerGroupValue,
    ConsumerRecordFormatError,
    decode_consumer_key,
    decode_consumer_value,
    encode_consumer_key,
    encode_consumer_value,
)
from moldau.protocol.records import NewRecord

OFFSET_COMMIT_KEY_VERSION = 1
OFFSET_COMMIT_VALUE_VERSION = 3
GROUP_METADATA_KEY_VERSION = 2
GROUP_METADATA_VALUE_VERSION = 3

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class RecordFormatError(ValueError):
    """Bytes that are not a record of a known version (truncated, bad length, bad UTF-8)."""


@dataclass(frozen=True, slots=True)
class OffsetCommitKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class OffsetCommitValue:
    """One committed offset. ``leader_epoch`` -1 is "unknown"; ``expire_timestamp_ms`` exists
    only in value v1 (retention set by the committer) and is -1 otherwise."""

    offset: int
    metadata: str
    commit_timestamp_ms: int
    leader_epoch: int = -1
    expire_timestamp_ms: int = -1


@dataclass(frozen=True, slots=True)
class GroupMetadataKey:
    group: str


@dataclass(frozen=True, slots=True)
class MemberMetadata:
    """One member as a classic group record stores it: its subscription is the metadata of
    the group's selected protocol only, its assignment what the leader gave it."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupMetadataValue:
    """A classic group at the end of a generation. ``protocol_type`` is "" for a group that
    never had members; ``current_state_timestamp_ms`` (v2+) is when the group entered its
    state, -1 if unknown — offset expiry of empty groups counts from it."""

    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp_ms: int
    members: tuple[MemberMetadata, ...]


RecordKey = OffsetCommitKey | GroupMetadataKey | ConsumerGroupKey
RecordValue = OffsetCommitValue | GroupMetadataValue | ConsumerGroupValue


@dataclass(frozen=True, slots=True)
class CoordinatorRecord:
    """A key and its value; ``value`` None is a tombstone."""

    key: RecordKey
    value: RecordValue | None

    @property
    def is_tombstone(self) -> bool:
        return self.value is None


def offset_commit_record(
    group: str, topic: str, partition: int, value: OffsetCommitValue | None
) -> CoordinatorRecord:
    return CoordinatorRecord(OffsetCommitKey(group, topic, partition), value)


def group_metadata_record(group: str, value: GroupMetadataValue | None) -> CoordinatorRecord:
    return CoordinatorRecord(GroupMetadataKey(group), value)


# -- encoding --------------------------------------------------------------------------------


class _Writer:
    __slots__ = ("_out",)

    def __init__(self, version: int) -> None:
        self._out = bytearray(_I16.pack(version))

    def i32(self, value: int) -> None:
        self._out += _I32.pack(value)

    def i64(self, value: int) -> None:
        self._out += _I64.pack(value)

    def string(self, value: str | None) -> None:
        if value is None:
            self._out += _I16.pack(-1)
            return
        data = value.encode()
        self._out += _I16.pack(len(data))
        self._out += data

    def bytes_(self, value: bytes) -> None:
        self._out += _I32.pack(len(value))
        self._out += value

    def getvalue(self) -> bytes:
        return bytes(self._out)


def encode_key(key: RecordKey) -> bytes:
    if isinstance(key, ConsumerGroupKey):
        return encode_consumer_key(key)
    if isinstance(key, OffsetCommitKey):
        w = _Writer(OFFSET_COMMIT_KEY_VERSION)
        w.string(key.group)
        w.string(key.topic)
        w.i32(key.partition)
        return w.getvalue()
    w = _Writer(GROUP_METADATA_KEY_VERSION)
    w.string(key.group)
    return w.getvalue()


def encode_offset_commit_value(value: OffsetCommitValue) -> bytes:
    """Version 3, or version 1 when the committer set an expire timestamp (as Kafka does)."""
    if value.expire_timestamp_ms >= 0:
        w = _Writer(1)
        w.i64(value.offset)
        w.string(value.metadata)
        w.i64(value.commit_timestamp_ms)
        w.i64(value.expire_timestamp_ms)
        return w.getvalue()
    w = _Writer(OFFSET_COMMIT_VALUE_VERSION)
    w.i64(value.offset)
    w.i32(value.leader_epoch)
    w.string(value.metadata)
    w.i64(value.commit_timestamp_ms)
    return w.getvalue()


def encode_group_metadata_value(value: GroupMetadataValue) -> bytes:
    w = _Writer(GROUP_METADATA_VALUE_VERSION)
    w.string(value.protocol_type)
    w.i32(value.generation)
    w.string(value.protocol)
    w.string(value.leader)
    w.i64(value.current_state_timestamp_ms)
    w.i32(len(value.members))
    for m in value.members:
        w.string(m.member_id)
        w.string(m.group_instance_id)
        w.string(m.client_id)
        w.string(m.client_host)
        w.i32(m.rebalance_timeout_ms)
        w.i32(m.session_timeout_ms)
        w.bytes_(m.subscription)
        w.bytes_(m.assignment)
    return w.getvalue()


def encode_value(value: RecordValue | None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, OffsetCommitValue):
        return encode_offset_commit_value(value)
    if isinstance(value, GroupMetadataValue):
        return encode_group_metadata_value(value)
    return encode_consumer_value(value)


def to_new_record(record: CoordinatorRecord) -> NewRecord:
    """The record as the log stores it (key and value bytes; tombstone = null value)."""
    return NewRecord(key=encode_key(record.key), value=encode_value(record.value))


# -- decoding --------------------------------------------------------------------------------


class _Reader:
    """Reads one struct; ``flexible`` switches to compact lengths and tagged fields."""

    __slots__ = ("_buf", "_pos", "flexible")

    def __init__(self, buf: bytes, pos: int = 0, *, flexible: bool = False) -> None:
        self._buf = buf
        self._pos = pos
        self.flexible = flexible

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if n < 0 or end > len(self._buf):
            raise RecordFormatError(f"record truncated: need {n} bytes at {self._pos}")
        data = self._buf[self._pos : end]
        self._pos = end
        return data

    def i16(self) -> int:
        return int(_I16.unpack(self._take(2))[0])

    def i32(self) -> int:
        return int(_I32.unpack(self._take(4))[0])

    def i64(self) -> int:
        return int(_I64.unpack(self._take(8))[0])

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            (byte,) = self._take(1)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise RecordFormatError("unsigned varint longer than 5 bytes")

    def _length(self, wide: bool) -> int:
        """A length prefix; -1 means null."""
        if self.flexible:
            return self.uvarint() - 1
        return self.i32() if wide else self.i16()

    def nullable_string(self) -> str | None:
        n = self._length(wide=False)
        if n < 0:
            return None
        try:
            return self._take(n).decode()
        except UnicodeDecodeError as exc:
            raise RecordFormatError(f"string is not UTF-8: {exc}") from None

    def string(self) -> str:
        value = self.nullable_string()
        if value is None:
            raise RecordFormatError("null where a string is required")
        return value

    def bytes_(self) -> bytes:
        n = self._length(wide=True)
        return b"" if n < 0 else self._take(n)

    def array_length(self) -> int:
        n = self._length(wide=True)
        return max(n, 0)

    def tagged_fields(self) -> None:
        """Skip a flexible struct's tagged fields (we know of none)."""
        if not self.flexible:
            return
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self._take(self.uvarint())

    def end(self) -> None:
        if self._pos != len(self._buf):
            raise RecordFormatError(f"{len(self._buf) - self._pos} unexpected trailing bytes")


def decode_key(data: bytes) -> RecordKey | None:
    """The key, or None for a record type this module does not know (key version ≥ 3)."""
    r = _Reader(data)
    version = r.i16()
    if version in (0, 1):
        key: RecordKey = OffsetCommitKey(r.string(), r.string(), r.i32())
    elif version == 2:
        key = GroupMetadataKey(r.string())
    elif version in CONSUMER_KEY_VERSIONS:
        try:
            return decode_consumer_key(data)
        except ConsumerRecordFormatError as exc:
            raise RecordFormatError(str(exc)) from None
    else:
        return None
    r.end()
    return key


def decode_offset_commit_value(data: bytes) -> OffsetCommitValue:
    r = _Reader(data)
    version = r.i16()
    if not 0 <= version <= 4:
        raise RecordFormatError(f"unknown OffsetCommitValue version {version}")
    r.flexible = version >= 4
    offset = r.i64()
    leader_epoch = r.i32() if version >= 3 else -1
    metadata = r.string()
    commit_timestamp_ms = r.i64()
    expire_timestamp_ms = r.i64() if version == 1 else -1
    r.tagged_fields()
    r.end()
    return OffsetCommitValue(
        offset=offset,
        metadata=metadata,
        commit_timestamp_ms=commit_timestamp_ms,
        leader_epoch=leader_epoch,
        expire_timestamp_ms=expire_timestamp_ms,
    )


def decode_group_metadata_value(data: bytes) -> GroupMetadataValue:
    r = _Reader(data)
    version = r.i16()
    if not 0 <= version <= 4:
        raise RecordFormatError(f"unknown GroupMetadataValue version {version}")
    r.flexible = version >= 4
    protocol_type = r.string()
    generation = r.i32()
    protocol = r.nullable_string()
    leader = r.nullable_string()
    current_state_timestamp_ms = r.i64() if version >= 2 else -1
    members: list[MemberMetadata] = []
    for _ in range(r.array_length()):
        member_id = r.string()
        group_instance_id = r.nullable_string() if version >= 3 else None
        client_id = r.string()
        client_host = r.string()
        rebalance_timeout_ms = r.i32() if version >= 1 else -1
        session_timeout_ms = r.i32()
        if rebalance_timeout_ms < 0:
            rebalance_timeout_ms = session_timeout_ms  # v0 had one timeout for both
        subscription = r.bytes_()
        assignment = r.bytes_()
        r.tagged_fields()
        members.append(
            MemberMetadata(
                member_id=member_id,
                group_instance_id=group_instance_id,
                client_id=client_id,
                client_host=client_host,
                rebalance_timeout_ms=rebalance_timeout_ms,
                session_timeout_ms=session_timeout_ms,
                subscription=subscription,
                assignment=assignment,
            )
        )
    r.tagged_fields()
    r.end()
    return GroupMetadataValue(
        protocol_type=protocol_type,
        generation=generation,
        protocol=protocol,
        leader=leader,
        current_state_timestamp_ms=current_state_timestamp_ms,
        members=tuple(members),
    )


def decode_record(key: bytes | None, value: bytes | None) -> CoordinatorRecord | None:
    """A record read back from the log; None for record types not handled here.

    Raises RecordFormatError for bytes that claim a known type but do not parse.
    """
    if key is None:
        raise RecordFormatError("coordinator record without a key")
    decoded = decode_key(key)
    if decoded is None:
        return None
    if value is None:
        return CoordinatorRecord(decoded, None)
    if isinstance(decoded, OffsetCommitKey):
        return CoordinatorRecord(decoded, decode_offset_commit_value(value))
    if isinstance(decoded, ConsumerGroupKey):
        try:
            return CoordinatorRecord(decoded, decode_consumer_value(decoded.version, value))
        except ConsumerRecordFormatError as exc:
            raise RecordFormatError(str(exc)) from None
    return CoordinatorRecord(decoded, decode_group_metadata_value(value))
