"""``__consumer_offsets`` record formats byte for byte, and the group → partition mapping."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moldau.coordinator.group.partitioner import java_string_hash, partition_for
from moldau.coordinator.group.records import (
    CoordinatorRecord,
    GroupMetadataKey,
    GroupMetadataValue,
    MemberMetadata,
    OffsetCommitKey,
    OffsetCommitValue,
    RecordFormatError,
    decode_group_metadata_value,
    decode_key,
    decode_offset_commit_value,
    decode_record,
    encode_group_metadata_value,
    encode_key,
    encode_offset_commit_value,
    to_new_record,
)


def s16(text: str | None) -> bytes:
    if text is None:
        return struct.pack(">h", -1)
    return struct.pack(">h", len(text.encode())) + text.encode()


def compact(text: str | None) -> bytes:
    if text is None:
        return b"\x00"
    data = text.encode()
    return bytes([len(data) + 1]) + data


# -- exact layouts -------------------------------------------------------------------------


def test_offset_commit_key_layout() -> None:
    key = OffsetCommitKey("group", "topic", 7)
    expected = struct.pack(">h", 1) + s16("group") + s16("topic") + struct.pack(">i", 7)
    assert encode_key(key) == expected
    assert decode_key(expected) == key
    assert decode_key(struct.pack(">h", 0) + expected[2:]) == key  # key v0 is the same


def test_group_metadata_key_layout() -> None:
    expected = struct.pack(">h", 2) + s16("group")
    assert encode_key(GroupMetadataKey("group")) == expected
    assert decode_key(expected) == GroupMetadataKey("group")


def test_offset_commit_value_v3_layout() -> None:
    value = OffsetCommitValue(offset=42, metadata="meta", commit_timestamp_ms=1000, leader_epoch=3)
    expected = struct.pack(">hqi", 3, 42, 3) + s16("meta") + struct.pack(">q", 1000)
    assert encode_offset_commit_value(value) == expected
    assert decode_offset_commit_value(expected) == value


def test_offset_commit_value_older_versions() -> None:
    v0 = struct.pack(">hq", 0, 5) + s16("m") + struct.pack(">q", 9)
    assert decode_offset_commit_value(v0) == OffsetCommitValue(5, "m", 9)
    v1 = struct.pack(">hq", 1, 5) + s16("m") + struct.pack(">qq", 9, 99)
    assert decode_offset_commit_value(v1) == OffsetCommitValue(5, "m", 9, expire_timestamp_ms=99)
    assert encode_offset_commit_value(OffsetCommitValue(5, "m", 9, expire_timestamp_ms=99)) == v1


def test_offset_commit_value_v4_flexible() -> None:
    data = struct.pack(">hqi", 4, 42, 3) + compact("meta") + struct.pack(">q", 1000) + b"\x00"
    assert decode_offset_commit_value(data) == OffsetCommitValue(42, "meta", 1000, 3)
    # An unknown tagged field is skipped.
    tagged = data[:-1] + b"\x01" + b"\x05" + b"\x02" + b"hi"
    assert decode_offset_commit_value(tagged) == OffsetCommitValue(42, "meta", 1000, 3)


def member_bytes_v3(m: MemberMetadata) -> bytes:
    return (
        s16(m.member_id)
        + s16(m.group_instance_id)
        + s16(m.client_id)
        + s16(m.client_host)
        + struct.pack(">ii", m.rebalance_timeout_ms, m.session_timeout_ms)
        + struct.pack(">i", len(m.subscription))
        + m.subscription
        + struct.pack(">i", len(m.assignment))
        + m.assignment
    )


MEMBER = MemberMetadata(
    member_id="c-1",
    group_instance_id="i-1",
    client_id="c",
    client_host="/127.0.0.1",
    rebalance_timeout_ms=300000,
    session_timeout_ms=45000,
    subscription=b"\x00\x01sub",
    assignment=b"\x00\x01asg",
)


def test_group_metadata_value_v3_layout() -> None:
    value = GroupMetadataValue("consumer", 4, "range", "c-1", 1234, (MEMBER,))
    expected = (
        struct.pack(">h", 3)
        + s16("consumer")
        + struct.pack(">i", 4)
        + s16("range")
        + s16("c-1")
        + struct.pack(">qi", 1234, 1)
        + member_bytes_v3(MEMBER)
    )
    assert encode_group_metadata_value(value) == expected
    assert decode_group_metadata_value(expected) == value


def test_group_metadata_value_empty_group_has_null_protocol_and_leader() -> None:
    value = GroupMetadataValue("consumer", 2, None, None, 5, ())
    data = encode_group_metadata_value(value)
    assert data == struct.pack(">h", 3) + s16("consumer") + struct.pack(">ihhqi", 2, -1, -1, 5, 0)
    assert decode_group_metadata_value(data) == value


def test_group_metadata_value_v0_has_one_timeout() -> None:
    data = (
        struct.pack(">h", 0)
        + s16("consumer")
        + struct.pack(">i", 1)
        + s16("range")
        + s16("c-1")
        + struct.pack(">i", 1)
        + s16("c-1")
        + s16("c")
        + s16("/h")
        + struct.pack(">i", 10000)
        + struct.pack(">i", 1)
        + b"s"
        + struct.pack(">i", 1)
        + b"a"
    )
    value = decode_group_metadata_value(data)
    (member,) = value.members
    assert (member.rebalance_timeout_ms, member.session_timeout_ms) == (10000, 10000)
    assert member.group_instance_id is None
    assert value.current_state_timestamp_ms == -1


def test_group_metadata_value_v4_flexible() -> None:
    member = (
        compact("c-1")
        + compact(None)
        + compact("c")
        + compact("/h")
        + struct.pack(">ii", 1, 2)
        + b"\x02s"  # compact bytes
        + b"\x02a"
        + b"\x00"  # member tagged fields
    )
    data = (
        struct.pack(">h", 4)
        + compact("consumer")
        + struct.pack(">i", 7)
        + compact("range")
        + compact("c-1")
        + struct.pack(">q", 99)
        + b"\x02"  # compact array of one
        + member
        + b"\x00"
    )
    value = decode_group_metadata_value(data)
    assert value == GroupMetadataValue(
        "consumer",
        7,
        "range",
        "c-1",
        99,
        (MemberMetadata("c-1", None, "c", "/h", 1, 2, b"s", b"a"),),
    )


def test_unknown_record_types_are_skipped_and_garbage_is_refused() -> None:
    # 3 and 5-8 are KIP-848 consumer group records (test_consumer_group_records.py).
    assert decode_key(struct.pack(">h", 4) + s16("g")) is None
    assert decode_key(struct.pack(">h", 11) + s16("g")) is None
    assert decode_record(struct.pack(">h", 10) + b"whatever", b"x") is None
    with pytest.raises(RecordFormatError):
        decode_key(struct.pack(">h", 1) + s16("g"))  # truncated
    with pytest.raises(RecordFormatError):
        decode_offset_commit_value(struct.pack(">h", 9))
    with pytest.raises(RecordFormatError):
        decode_key(struct.pack(">h", 2) + s16("g") + b"extra")


def test_tombstones() -> None:
    record = CoordinatorRecord(OffsetCommitKey("g", "t", 0), None)
    new = to_new_record(record)
    assert new.value is None
    assert decode_record(new.key, None) == record


# -- round trips ---------------------------------------------------------------------------

text = st.text(max_size=20)
i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)

offset_values = st.builds(
    OffsetCommitValue,
    offset=i64,
    metadata=text,
    commit_timestamp_ms=i64,
    leader_epoch=i32,
)
members = st.builds(
    MemberMetadata,
    member_id=text,
    group_instance_id=st.none() | text,
    client_id=text,
    client_host=text,
    rebalance_timeout_ms=st.integers(0, 2**31 - 1),
    session_timeout_ms=i32,
    subscription=st.binary(max_size=30),
    assignment=st.binary(max_size=30),
)
group_values = st.builds(
    GroupMetadataValue,
    protocol_type=text,
    generation=i32,
    protocol=st.none() | text,
    leader=st.none() | text,
    current_state_timestamp_ms=i64,
    members=st.lists(members, max_size=4).map(tuple),
)


@given(st.builds(OffsetCommitKey, group=text, topic=text, partition=i32), offset_values)
def test_offset_commit_round_trip(key: OffsetCommitKey, value: OffsetCommitValue) -> None:
    new = to_new_record(CoordinatorRecord(key, value))
    assert decode_record(new.key, new.value) == CoordinatorRecord(key, value)


@given(text, group_values)
def test_group_metadata_round_trip(group: str, value: GroupMetadataValue) -> None:
    new = to_new_record(CoordinatorRecord(GroupMetadataKey(group), value))
    assert decode_record(new.key, new.value) == CoordinatorRecord(GroupMetadataKey(group), value)


# -- partitioner ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("hello", 99162322),
        ("polygenelubricants", -(2**31)),  # the famous Integer.MIN_VALUE hash
        ("\U0001f600", 0xD83D * 31 + 0xDE00),  # a surrogate pair: two UTF-16 code units
        ("é", 0xE9),
    ],
)
def test_java_string_hash(text: str, expected: int) -> None:
    assert java_string_hash(text) == expected


def test_partition_for_matches_kafka() -> None:
    assert partition_for("hello", 50) == 99162322 % 50
    assert partition_for("polygenelubricants", 50) == 0  # Utils.abs(MIN_VALUE) is 0
    negative = "my-group"
    assert java_string_hash(negative) < 0  # exercises the abs
    assert partition_for(negative, 50) == abs(java_string_hash(negative)) % 50
    with pytest.raises(ValueError):
        partition_for("g", 0)
