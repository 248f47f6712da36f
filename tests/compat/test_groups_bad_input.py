"""Exact group requests over the wire (kio-encoded), including the bad ones: each gets
Kafka's error code and the rest of the group carries on undisturbed."""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.errors import ErrorCode

from moldau.protocol.api import ApiKey, schema_for
from moldau.protocol.messages import make
from moldau.testing import BrokerProcess
from moldau.testing.wire import WireClient, decode_response

pytestmark = pytest.mark.compat

JOIN_V = 5
SESSION_MS = 6000


@pytest.fixture(scope="module")
def wire_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    data_dir = tmp_path_factory.mktemp("wire-groups") / "data"
    broker = BrokerProcess(
        data_dir,
        config={"group.initial.rebalance.delay.ms": "0", "group.max.size": "2"},
    )
    broker.start()
    yield broker
    broker.close()


@pytest.fixture(scope="module")
def topic(wire_broker: BrokerProcess) -> str:
    name = f"wire-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": wire_broker.bootstrap})
    admin.create_topics([NewTopic(name, 2, 1)])[name].result(timeout=15)
    return name


def body(api: int, version: int, **fields: Any) -> Any:
    return make(schema_for(api, version).request_type, **fields)


def nested(api: int, version: int, cls: str, **fields: Any) -> Any:
    return make(getattr(schema_for(api, version).request_module, cls), **fields)


def subscription(*topics: str) -> bytes:
    out = bytearray(struct.pack(">hi", 0, len(topics)))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return bytes(out + struct.pack(">i", -1))


class Conn:
    """A wire connection that can leave a request parked and collect its answer later."""

    def __init__(self, broker: BrokerProcess) -> None:
        self.client = WireClient(broker.host, broker.port, timeout_s=30)

    def call(self, api: int, version: int, **fields: Any) -> Any:
        return self.client.request(api, version, body(api, version, **fields))

    def send(self, api: int, version: int, **fields: Any) -> tuple[int, int, int]:
        correlation = self.client.next_correlation_id()
        self.client.send_raw(
            self.client.encode(api, version, body(api, version, **fields), correlation)
        )
        return api, version, correlation

    def receive(self, pending: tuple[int, int, int]) -> Any:
        api, version, correlation = pending
        return decode_response(api, version, correlation, self.client.read_frame())

    def close(self) -> None:
        self.client.close()


@dataclass
class Joined:
    conn: Conn
    member_id: str
    generation: int
    leader: str


def join_fields(
    group: str, member_id: str = "", subscribed: tuple[str, ...] = ("t",), **overrides: Any
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "group_id": group,
        "session_timeout": SESSION_MS,
        "rebalance_timeout": 10_000,
        "member_id": member_id,
        "protocol_type": "consumer",
        "protocols": (
            nested(
                ApiKey.JOIN_GROUP,
                JOIN_V,
                "JoinGroupRequestProtocol",
                name="range",
                metadata=subscription(*subscribed),
            ),
        ),
    }
    fields.update(overrides)
    return fields


def join(conn: Conn, group: str, **overrides: Any) -> Any:
    """The v4+ two-step join of a new member; returns the final JoinGroup response."""
    first = conn.call(ApiKey.JOIN_GROUP, JOIN_V, **join_fields(group, **overrides))
    assert first.error_code is ErrorCode.member_id_required
    assert first.member_id
    return conn.call(ApiKey.JOIN_GROUP, JOIN_V, **join_fields(group, first.member_id, **overrides))


def sync(
    conn: Conn, group: str, member_id: str, generation: int, assignments: dict[str, bytes]
) -> Any:
    return conn.call(
        ApiKey.SYNC_GROUP,
        3,
        group_id=group,
        generation_id=generation,
        member_id=member_id,
        assignments=tuple(
            nested(ApiKey.SYNC_GROUP, 3, "SyncGroupRequestAssignment", member_id=m, assignment=a)
            for m, a in assignments.items()
        ),
    )


def heartbeat(conn: Conn, group: str, member_id: str, generation: int) -> ErrorCode:
    response = conn.call(
        ApiKey.HEARTBEAT, 3, group_id=group, generation_id=generation, member_id=member_id
    )
    return ErrorCode(response.error_code)


def find_coordinator(broker: BrokerProcess) -> None:
    conn = Conn(broker)
    try:
        response = conn.call(ApiKey.FIND_COORDINATOR, 3, key="any", key_type=0)
        assert response.error_code is ErrorCode.none
    finally:
        conn.close()


def form_group(
    broker: BrokerProcess, group: str, subscribed: tuple[str, ...] = ("t",)
) -> tuple[Joined, Joined]:
    """Two members in one STABLE generation, formed as real clients do it: the first alone,
    then the second joins and the first rejoins after its heartbeat learns of it."""
    find_coordinator(broker)
    a, b = Conn(broker), Conn(broker)
    first = join(a, group, subscribed=subscribed)
    assert first.error_code is ErrorCode.none and first.generation_id == 1
    assert sync(a, group, first.member_id, 1, {first.member_id: b"all"}).error_code is (
        ErrorCode.none
    )
    step = b.call(ApiKey.JOIN_GROUP, JOIN_V, **join_fields(group, subscribed=subscribed))
    assert step.error_code is ErrorCode.member_id_required
    parked = b.send(
        ApiKey.JOIN_GROUP, JOIN_V, **join_fields(group, step.member_id, subscribed=subscribed)
    )
    deadline = time.monotonic() + 30
    while heartbeat(a, group, first.member_id, 1) is not ErrorCode.rebalance_in_progress:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    rejoin = a.call(
        ApiKey.JOIN_GROUP, JOIN_V, **join_fields(group, first.member_id, subscribed=subscribed)
    )
    second = b.receive(parked)
    assert rejoin.generation_id == second.generation_id == 2
    leader = rejoin.leader
    assert leader == first.member_id and len(rejoin.members) == 2
    assignments = {first.member_id: b"A", second.member_id: b"B"}
    assert sync(a, group, first.member_id, 2, assignments).assignment == b"A"
    assert sync(b, group, second.member_id, 2, {}).assignment == b"B"
    return (
        Joined(a, first.member_id, 2, leader),
        Joined(b, second.member_id, 2, leader),
    )


def commit(
    conn: Conn, group: str, generation: int, member_id: str, offsets: dict[tuple[str, int], int]
) -> dict[tuple[str, int], ErrorCode]:
    version = 7
    topics: dict[str, list[Any]] = {}
    for (name, partition), offset in offsets.items():
        topics.setdefault(name, []).append(
            nested(
                ApiKey.OFFSET_COMMIT,
                version,
                "OffsetCommitRequestPartition",
                partition_index=partition,
                committed_offset=offset,
                committed_metadata="m",
            )
        )
    response = conn.call(
        ApiKey.OFFSET_COMMIT,
        version,
        group_id=group,
        generation_id_or_member_epoch=generation,
        member_id=member_id,
        topics=tuple(
            nested(
                ApiKey.OFFSET_COMMIT,
                version,
                "OffsetCommitRequestTopic",
                name=n,
                partitions=tuple(ps),
            )
            for n, ps in topics.items()
        ),
    )
    return {
        (t.name, p.partition_index): ErrorCode(p.error_code)
        for t in response.topics
        for p in t.partitions
    }


def fetch(
    conn: Conn, group: str, partitions: list[tuple[str, int]] | None, version: int = 7
) -> Any:
    topics: Any = None
    if partitions is not None:
        by_topic: dict[str, list[int]] = {}
        for name, p in partitions:
            by_topic.setdefault(name, []).append(p)
        topics = tuple(
            nested(
                ApiKey.OFFSET_FETCH,
                version,
                "OffsetFetchRequestTopic",
                name=n,
                partition_indexes=tuple(ps),
            )
            for n, ps in by_topic.items()
        )
    return conn.call(ApiKey.OFFSET_FETCH, version, group_id=group, topics=topics)


def offsets_of(response: Any) -> dict[tuple[str, int], int]:
    return {
        (t.name, p.partition_index): p.committed_offset
        for t in response.topics
        for p in t.partitions
    }


# -- tests ---------------------------------------------------------------------------------


def test_find_coordinator_every_form(wire_broker: BrokerProcess) -> None:
    conn = Conn(wire_broker)
    try:
        v0 = conn.call(ApiKey.FIND_COORDINATOR, 0, key="g")
        assert (v0.error_code, v0.port) == (ErrorCode.none, wire_broker.port)
        txn = conn.call(ApiKey.FIND_COORDINATOR, 3, key="tx", key_type=1)
        assert (txn.error_code, txn.port) == (ErrorCode.none, wire_broker.port)
        batch = conn.call(ApiKey.FIND_COORDINATOR, 4, key_type=0, coordinator_keys=("a", "b"))
        assert [(c.key, c.error_code, c.port) for c in batch.coordinators] == [
            ("a", ErrorCode.none, wire_broker.port),
            ("b", ErrorCode.none, wire_broker.port),
        ]
        bad = conn.call(ApiKey.FIND_COORDINATOR, 4, key_type=7, coordinator_keys=("a",))
        assert bad.coordinators[0].error_code is ErrorCode.invalid_request
    finally:
        conn.close()


def test_heartbeat_for_a_group_that_does_not_exist(wire_broker: BrokerProcess) -> None:
    find_coordinator(wire_broker)
    conn = Conn(wire_broker)
    try:
        assert heartbeat(conn, "no-such-group", "m", 1) is ErrorCode.unknown_member_id
        sync_response = sync(conn, "no-such-group", "m", 1, {})
        assert sync_response.error_code is ErrorCode.unknown_member_id
        leave = conn.call(ApiKey.LEAVE_GROUP, 1, group_id="no-such-group", member_id="m")
        assert leave.error_code is ErrorCode.unknown_member_id
    finally:
        conn.close()


def test_commit_from_a_fenced_generation(wire_broker: BrokerProcess, topic: str) -> None:
    group = f"fenced-{uuid.uuid4().hex[:6]}"
    a, b = form_group(wire_broker, group)
    try:
        stale = commit(a.conn, group, 1, a.member_id, {(topic, 0): 5})
        assert stale == {(topic, 0): ErrorCode.illegal_generation}
        assert heartbeat(a.conn, group, a.member_id, 1) is ErrorCode.illegal_generation
        ghost = commit(a.conn, group, 2, "ghost", {(topic, 0): 5})
        assert ghost == {(topic, 0): ErrorCode.unknown_member_id}
        # Nobody else is disturbed, and the fenced commit changed nothing.
        assert heartbeat(b.conn, group, b.member_id, 2) is ErrorCode.none
        assert heartbeat(a.conn, group, a.member_id, 2) is ErrorCode.none
        assert offsets_of(fetch(b.conn, group, [(topic, 0)])) == {(topic, 0): -1}
        assert commit(b.conn, group, 2, b.member_id, {(topic, 0): 7}) == {
            (topic, 0): ErrorCode.none
        }
        assert offsets_of(fetch(a.conn, group, [(topic, 0)])) == {(topic, 0): 7}
    finally:
        a.conn.close()
        b.conn.close()


def test_offset_commit_for_an_unknown_topic(wire_broker: BrokerProcess, topic: str) -> None:
    find_coordinator(wire_broker)
    conn = Conn(wire_broker)
    group = f"unknown-topic-{uuid.uuid4().hex[:6]}"
    try:
        answer = commit(
            conn, group, -1, "", {(topic, 0): 3, ("no-such-topic", 0): 1, (topic, 99): 1}
        )
        assert answer == {
            (topic, 0): ErrorCode.none,
            ("no-such-topic", 0): ErrorCode.unknown_topic_or_partition,
            (topic, 99): ErrorCode.unknown_topic_or_partition,
        }
        assert offsets_of(fetch(conn, group, [(topic, 0), ("no-such-topic", 0)])) == {
            (topic, 0): 3,
            ("no-such-topic", 0): -1,
        }
    finally:
        conn.close()


def test_inconsistent_protocols(wire_broker: BrokerProcess) -> None:
    group = f"protocols-{uuid.uuid4().hex[:6]}"
    find_coordinator(wire_broker)
    a, c = Conn(wire_broker), Conn(wire_broker)
    try:
        member = join(a, group)
        assert sync(a, group, member.member_id, 1, {member.member_id: b"x"}).assignment == b"x"
        other_type = c.call(
            ApiKey.JOIN_GROUP, JOIN_V, **join_fields(group, protocol_type="connect")
        )
        assert other_type.error_code is ErrorCode.inconsistent_group_protocol
        no_common = c.call(
            ApiKey.JOIN_GROUP,
            JOIN_V,
            **join_fields(
                group,
                protocols=(
                    nested(
                        ApiKey.JOIN_GROUP,
                        JOIN_V,
                        "JoinGroupRequestProtocol",
                        name="roundrobin",
                        metadata=b"",
                    ),
                ),
            ),
        )
        assert no_common.error_code is ErrorCode.inconsistent_group_protocol
        empty_type = c.call(
            ApiKey.JOIN_GROUP, JOIN_V, **join_fields("fresh-group", protocol_type="")
        )
        assert empty_type.error_code is ErrorCode.inconsistent_group_protocol
        assert heartbeat(a, group, member.member_id, 1) is ErrorCode.none
    finally:
        a.close()
        c.close()


def test_invalid_session_timeout_and_full_group(wire_broker: BrokerProcess) -> None:
    group = f"limits-{uuid.uuid4().hex[:6]}"
    a, b = form_group(wire_broker, group)  # group.max.size is 2
    c = Conn(wire_broker)
    try:
        too_short = c.call(ApiKey.JOIN_GROUP, JOIN_V, **join_fields(group, session_timeout=10))
        assert too_short.error_code is ErrorCode.invalid_session_timeout
        full = c.call(ApiKey.JOIN_GROUP, JOIN_V, **join_fields(group))
        assert full.error_code is ErrorCode.group_max_size_reached
        assert heartbeat(a.conn, group, a.member_id, 2) is ErrorCode.none
        assert heartbeat(b.conn, group, b.member_id, 2) is ErrorCode.none
    finally:
        for conn in (a.conn, b.conn, c):
            conn.close()


def test_a_member_that_never_syncs_is_removed(wire_broker: BrokerProcess) -> None:
    group = f"no-sync-{uuid.uuid4().hex[:6]}"
    find_coordinator(wire_broker)
    a, b = Conn(wire_broker), Conn(wire_broker)
    short = {"rebalance_timeout": 1500}
    try:
        first = join(a, group, **short)
        sync(a, group, first.member_id, 1, {first.member_id: b"all"})
        step = b.call(ApiKey.JOIN_GROUP, JOIN_V, **join_fields(group, **short))
        parked = b.send(ApiKey.JOIN_GROUP, JOIN_V, **join_fields(group, step.member_id, **short))
        deadline = time.monotonic() + 30
        while heartbeat(a, group, first.member_id, 1) is not ErrorCode.rebalance_in_progress:
            assert time.monotonic() < deadline, "the newcomer never started a rebalance"
            time.sleep(0.05)
        rejoin = a.call(ApiKey.JOIN_GROUP, JOIN_V, **join_fields(group, first.member_id, **short))
        quiet = b.receive(parked)
        assert rejoin.generation_id == quiet.generation_id == 2
        assignments = {first.member_id: b"A", quiet.member_id: b"B"}
        assert sync(a, group, first.member_id, 2, assignments).error_code is ErrorCode.none
        # b never sends SyncGroup: after the rebalance timeout it is gone and a rebalances.
        deadline = time.monotonic() + 30
        while heartbeat(a, group, first.member_id, 2) is ErrorCode.none:
            assert time.monotonic() < deadline, "the silent member was never removed"
            time.sleep(0.1)
        alone = a.call(ApiKey.JOIN_GROUP, JOIN_V, **join_fields(group, first.member_id, **short))
        assert alone.generation_id == 3
        assert [m.member_id for m in alone.members] == [first.member_id]
        assert heartbeat(b, group, quiet.member_id, 2) is ErrorCode.unknown_member_id
    finally:
        a.close()
        b.close()


def test_leave_group_versions(wire_broker: BrokerProcess) -> None:
    group = f"leave-{uuid.uuid4().hex[:6]}"
    a, b = form_group(wire_broker, group)
    try:
        batch = a.conn.call(
            ApiKey.LEAVE_GROUP,
            3,
            group_id=group,
            members=(
                nested(ApiKey.LEAVE_GROUP, 3, "MemberIdentity", member_id="ghost"),
                nested(ApiKey.LEAVE_GROUP, 3, "MemberIdentity", member_id=b.member_id),
            ),
        )
        assert batch.error_code is ErrorCode.none
        assert [(m.member_id, m.error_code) for m in batch.members] == [
            ("ghost", ErrorCode.unknown_member_id),
            (b.member_id, ErrorCode.none),
        ]
        assert heartbeat(a.conn, group, a.member_id, 2) is ErrorCode.rebalance_in_progress
        single = a.conn.call(ApiKey.LEAVE_GROUP, 1, group_id=group, member_id=a.member_id)
        assert single.error_code is ErrorCode.none
        conn = Conn(wire_broker)
        described = conn.call(
            ApiKey.DESCRIBE_GROUPS, 5, groups=(group,), include_authorized_operations=False
        ).groups[0]
        conn.close()
        assert (described.group_state, described.members) == ("Empty", ())
    finally:
        a.conn.close()
        b.conn.close()


def test_describe_list_and_delete(wire_broker: BrokerProcess, topic: str) -> None:
    group = f"admin-{uuid.uuid4().hex[:6]}"
    empty = f"empty-{uuid.uuid4().hex[:6]}"
    a, b = form_group(wire_broker, group)
    conn = Conn(wire_broker)
    try:
        commit(conn, empty, -1, "", {(topic, 0): 1, (topic, 1): 2})
        described = conn.call(
            ApiKey.DESCRIBE_GROUPS, 5, groups=(group, "nope"), include_authorized_operations=True
        ).groups
        live, dead = described
        assert (live.group_state, live.protocol_type, live.protocol_data) == (
            "Stable",
            "consumer",
            "range",
        )
        assert {m.member_id: m.member_assignment for m in live.members} == {
            a.member_id: b"A",
            b.member_id: b"B",
        }
        assert all(m.client_host.startswith("/127.0.0.1") for m in live.members)
        assert live.authorized_operations == (1 << 3) | (1 << 6) | (1 << 8)
        assert (dead.error_code, dead.group_state) == (ErrorCode.none, "Dead")

        listed = conn.call(ApiKey.LIST_GROUPS, 4, states_filter=("Stable",)).groups
        assert group in {g.group_id for g in listed} and empty not in {g.group_id for g in listed}
        listed = conn.call(ApiKey.LIST_GROUPS, 2).groups
        assert {group, empty} <= {g.group_id for g in listed}

        deleted = conn.call(ApiKey.DELETE_GROUPS, 2, groups_names=(group, empty, "nope")).results
        assert [(r.group_id, r.error_code) for r in deleted] == [
            (group, ErrorCode.non_empty_group),
            (empty, ErrorCode.none),
            ("nope", ErrorCode.group_id_not_found),
        ]
        assert offsets_of(fetch(conn, empty, [(topic, 0)])) == {(topic, 0): -1}
        assert heartbeat(a.conn, group, a.member_id, 2) is ErrorCode.none
    finally:
        for c in (a.conn, b.conn, conn):
            c.close()


def test_offset_fetch_forms_and_offset_delete(wire_broker: BrokerProcess, topic: str) -> None:
    group = f"offsets-{uuid.uuid4().hex[:6]}"
    other = f"other-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": wire_broker.bootstrap})
    admin.create_topics([NewTopic(other, 1, 1)])[other].result(timeout=15)
    a, b = form_group(wire_broker, group, subscribed=(topic,))
    conn = Conn(wire_broker)
    try:
        assert commit(
            a.conn, group, 2, a.member_id, {(topic, 0): 4, (topic, 1): 9, (other, 0): 1}
        ) == {
            (topic, 0): ErrorCode.none,
            (topic, 1): ErrorCode.none,
            (other, 0): ErrorCode.none,
        }
        v1 = fetch(conn, group, [(topic, 0), (topic, 1)], version=1)
        assert offsets_of(v1) == {(topic, 0): 4, (topic, 1): 9}
        everything = fetch(conn, group, None, version=7)
        assert offsets_of(everything) == {(topic, 0): 4, (topic, 1): 9, (other, 0): 1}
        multi = conn.call(
            ApiKey.OFFSET_FETCH,
            8,
            groups=(
                nested(
                    ApiKey.OFFSET_FETCH, 8, "OffsetFetchRequestGroup", group_id=group, topics=None
                ),
                nested(
                    ApiKey.OFFSET_FETCH,
                    8,
                    "OffsetFetchRequestGroup",
                    group_id="nope",
                    topics=(
                        nested(
                            ApiKey.OFFSET_FETCH,
                            8,
                            "OffsetFetchRequestTopics",
                            name=topic,
                            partition_indexes=(0,),
                        ),
                    ),
                ),
            ),
            require_stable=True,
        )
        answers = {g.group_id: g for g in multi.groups}
        assert offsets_of(answers[group]) == {(topic, 0): 4, (topic, 1): 9, (other, 0): 1}
        assert offsets_of(answers["nope"]) == {(topic, 0): -1}
        assert answers["nope"].error_code is ErrorCode.none

        def delete(group_id: str, *tps: tuple[str, int]) -> Any:
            by_topic: dict[str, list[int]] = {}
            for name, p in tps:
                by_topic.setdefault(name, []).append(p)
            return conn.call(
                ApiKey.OFFSET_DELETE,
                0,
                group_id=group_id,
                topics=tuple(
                    nested(
                        ApiKey.OFFSET_DELETE,
                        0,
                        "OffsetDeleteRequestTopic",
                        name=n,
                        partitions=tuple(
                            nested(
                                ApiKey.OFFSET_DELETE,
                                0,
                                "OffsetDeleteRequestPartition",
                                partition_index=p,
                            )
                            for p in ps
                        ),
                    )
                    for n, ps in by_topic.items()
                ),
            )

        assert delete("nope", (topic, 0)).error_code is ErrorCode.group_id_not_found
        result = delete(group, (other, 0), ("no-such-topic", 0), (topic, 0))
        assert result.error_code is ErrorCode.none
        errors = {
            (t.name, p.partition_index): p.error_code for t in result.topics for p in t.partitions
        }
        # The members subscribe to the first topic only: the other's offsets may go.
        assert errors == {
            (other, 0): ErrorCode.none,
            ("no-such-topic", 0): ErrorCode.unknown_topic_or_partition,
            (topic, 0): ErrorCode.group_subscribed_to_topic,
        }
        assert offsets_of(fetch(conn, group, [(topic, 0), (other, 0)])) == {
            (topic, 0): 4,
            (other, 0): -1,
        }
    finally:
        for c in (a.conn, b.conn, conn):
            c.close()


def test_join_group_v0_joins_in_one_step(wire_broker: BrokerProcess) -> None:
    find_coordinator(wire_broker)
    conn = Conn(wire_broker)
    group = f"v0-{uuid.uuid4().hex[:6]}"
    try:
        fields = join_fields(group)
        fields["protocols"] = (
            nested(ApiKey.JOIN_GROUP, 0, "JoinGroupRequestProtocol", name="range", metadata=b"m"),
        )
        response = conn.call(ApiKey.JOIN_GROUP, 0, **fields)
        assert response.error_code is ErrorCode.none
        assert response.generation_id == 1 and response.leader == response.member_id
        assert response.protocol_name == "range"
    finally:
        conn.close()
