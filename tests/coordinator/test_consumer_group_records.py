"""KIP-848 records in ``__consumer_offsets``: byte layout, round trips, and a restart that
replays them into the same groups."""

from __future__ import annotations

import struct
import uuid

from group_helpers import Harness
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode

from moldau.coordinator.group.config import GroupCoordinatorConfig
from moldau.coordinator.group.consumer_heartbeat import ConsumerHeartbeatRequest
from moldau.coordinator.group.consumer_records import (
    ConsumerGroupCurrentMemberAssignmentValue,
    ConsumerGroupKey,
    ConsumerGroupMemberMetadataValue,
    ConsumerGroupMetadataValue,
    ConsumerGroupTargetAssignmentMemberValue,
)
from moldau.coordinator.group.records import CoordinatorRecord, decode_record, to_new_record

T = uuid.UUID(int=5)
TOPICS = {"t": (T, 4)}


def roundtrip(record: CoordinatorRecord) -> CoordinatorRecord | None:
    new = to_new_record(record)
    assert new.key is not None
    return decode_record(new.key, new.value)


def test_group_metadata_bytes_match_kafkas_layout() -> None:
    record = CoordinatorRecord(ConsumerGroupKey(3, "g"), ConsumerGroupMetadataValue(7))
    new = to_new_record(record)
    assert new.key == struct.pack(">hh", 3, 1) + b"g"
    # value version 0, epoch, empty tagged fields
    assert new.value == struct.pack(">hi", 0, 7) + b"\x00"


def test_member_records_round_trip() -> None:
    key = ConsumerGroupKey(5, "g", "m-1")
    value = ConsumerGroupMemberMetadataValue(
        None, "rack", "client", "/127.0.0.1", ("a", "b"), None, 30_000, "uniform"
    )
    assert roundtrip(CoordinatorRecord(key, value)) == CoordinatorRecord(key, value)
    assert roundtrip(CoordinatorRecord(key, None)) == CoordinatorRecord(key, None)


partitions = st.lists(
    st.tuples(st.uuids(), st.lists(st.integers(0, 2**31 - 1), max_size=5).map(tuple)),
    max_size=4,
).map(tuple)


@settings(max_examples=50, deadline=None)
@given(st.integers(-2, 2**31 - 1), st.integers(-2, 2**31 - 1), partitions, partitions)
def test_assignment_records_round_trip(
    epoch: int,
    previous: int,
    assigned: tuple,
    revoking: tuple,  # type: ignore[type-arg]
) -> None:
    current = CoordinatorRecord(
        ConsumerGroupKey(8, "g", "m"),
        ConsumerGroupCurrentMemberAssignmentValue(epoch, previous, 1, assigned, revoking),
    )
    assert roundtrip(current) == current
    target = CoordinatorRecord(
        ConsumerGroupKey(7, "g", "m"), ConsumerGroupTargetAssignmentMemberValue(assigned)
    )
    assert roundtrip(target) == target


def heartbeat(h: Harness, member_id: str, epoch: int, **fields: object) -> object:
    if epoch == 0:
        fields.setdefault("subscribed_topic_names", ("t",))
        fields.setdefault("rebalance_timeout_ms", 30_000)
        fields.setdefault("owned", {})
    request = ConsumerHeartbeatRequest(
        group_id="g",
        member_id=member_id,
        member_epoch=epoch,
        topics=TOPICS,
        **fields,  # type: ignore[arg-type]
    )
    return h.apply(h.coordinator.consumer_group_heartbeat(request, h.now))


def test_replay_rebuilds_the_groups_and_members_keep_their_epochs() -> None:
    h = Harness()
    a = heartbeat(h, "a", 0)
    heartbeat(h, "b", 0)
    heartbeat(h, "c", 0)
    heartbeat(h, "c", -1)  # leaves: tombstones
    a2 = heartbeat(h, "a", a.member_epoch)  # type: ignore[attr-defined]
    # Every written record survives encoding, and replaying them gives the same groups.
    restarted = Harness(config=GroupCoordinatorConfig())
    for record in h.written:
        decoded = roundtrip(record)
        assert decoded is not None
        restarted.coordinator.replay(decoded)
    restarted.coordinator.on_loaded(restarted.now)
    before, after = h.coordinator.consumer_groups["g"], restarted.coordinator.consumer_groups["g"]
    assert after.group_epoch == before.group_epoch
    assert after.assignment_epoch == before.assignment_epoch
    assert after.target == before.target
    assert set(after.members) == {"a", "b"}
    for member_id in ("a", "b"):
        assert after.members[member_id].assigned == before.members[member_id].assigned
        assert after.members[member_id].member_epoch == before.members[member_id].member_epoch
        assert after.members[member_id].subscribed_topic_names == ("t",)
    # a keeps heartbeating at its epoch after the restart.
    again = heartbeat(restarted, "a", a2.member_epoch)  # type: ignore[attr-defined]
    assert again.error is ErrorCode.none  # type: ignore[attr-defined]


def test_deleting_an_empty_group_writes_tombstones() -> None:
    h = Harness()
    heartbeat(h, "a", 0)
    heartbeat(h, "a", -1)
    answer = h.apply(h.coordinator.delete_groups(["g"]))
    assert answer == [("g", ErrorCode.none)]
    assert CoordinatorRecord(ConsumerGroupKey(3, "g"), None) in h.written
    restarted = Harness()
    for record in h.written:
        restarted.coordinator.replay(record)
    assert "g" not in restarted.coordinator.consumer_groups
