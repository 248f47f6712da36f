"""Bad transactional requests over the wire (kio-encoded): each gets Kafka's error code, and
afterwards the broker still serves a normal transactional producer end to end.

Real clients never send an EndTxn for an id they did not initialise or an epoch they know is
stale, so these requests are built by hand. Every test ends with ``assert_transactions_work``.
"""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kio.schema.errors import ErrorCode
from txn_helpers import WAIT_S, create_topics, read_to_end, txn_producer

from moldau.protocol.api import ApiKey, schema_for
from moldau.protocol.messages import make
from moldau.testing import BrokerProcess
from moldau.testing.wire import WireClient

pytestmark = pytest.mark.compat

MAX_TIMEOUT_MS = 60_000
RETRIABLE = {
    ErrorCode.coordinator_load_in_progress,
    ErrorCode.coordinator_not_available,
    ErrorCode.not_coordinator,
    ErrorCode.concurrent_transactions,
}


@pytest.fixture(scope="module")
def txn_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(
        tmp_path_factory.mktemp("txn-bad") / "data",
        config={
            "group.initial.rebalance.delay.ms": "0",
            "transaction.max.timeout.ms": str(MAX_TIMEOUT_MS),
        },
    )
    broker.start()
    yield broker
    broker.close()


@pytest.fixture(scope="module")
def topic(txn_broker: BrokerProcess) -> str:
    (name,) = create_topics(txn_broker.bootstrap, 2, prefix="txn-bad")
    return name


@pytest.fixture
def conn(txn_broker: BrokerProcess) -> Iterator[Conn]:
    c = Conn(txn_broker)
    yield c
    c.close()


class Conn:
    """One wire connection speaking kio messages built field by field."""

    def __init__(self, broker: BrokerProcess) -> None:
        self.client = WireClient(broker.host, broker.port, timeout_s=30)

    def call(self, api: int, version: int, **fields: Any) -> Any:
        body = make(schema_for(api, version).request_type, **fields)
        return self.client.request(api, version, body)

    def retrying(
        self, api: int, version: int, error_of: Callable[[Any], ErrorCode], **fields: Any
    ) -> Any:
        """``call`` until the answer's error is not a transient coordinator one."""
        deadline = time.monotonic() + WAIT_S
        while True:
            response = self.call(api, version, **fields)
            if ErrorCode(error_of(response)) not in RETRIABLE or time.monotonic() > deadline:
                return response
            time.sleep(0.1)

    def close(self) -> None:
        self.client.close()


def nested(api: int, version: int, cls: str, **fields: Any) -> Any:
    return make(getattr(schema_for(api, version).request_module, cls), **fields)


def top_error(response: Any) -> ErrorCode:
    return ErrorCode(response.error_code)


def find_txn_coordinator(conn: Conn, txn_id: str) -> None:
    response = conn.retrying(
        ApiKey.FIND_COORDINATOR,
        4,
        lambda r: r.coordinators[0].error_code,
        key_type=1,
        coordinator_keys=(txn_id,),
    )
    assert ErrorCode(response.coordinators[0].error_code) is ErrorCode.none


def init_producer_id(
    conn: Conn, txn_id: str, timeout_ms: int = 10_000, version: int = 4
) -> tuple[ErrorCode, int, int]:
    find_txn_coordinator(conn, txn_id)
    response = conn.retrying(
        ApiKey.INIT_PRODUCER_ID,
        version,
        top_error,
        transactional_id=txn_id,
        transaction_timeout=timeout_ms,
        producer_id=-1,
        producer_epoch=-1,
    )
    return ErrorCode(response.error_code), response.producer_id, response.producer_epoch


def add_partitions(
    conn: Conn, version: int, txn_id: str, pid: int, epoch: int, parts: dict[str, list[int]]
) -> dict[tuple[str, int], ErrorCode]:
    api = ApiKey.ADD_PARTITIONS_TO_TXN
    topics = tuple(
        nested(api, version, "AddPartitionsToTxnTopic", name=name, partitions=tuple(ps))
        for name, ps in parts.items()
    )
    response = conn.retrying(
        api,
        version,
        lambda r: r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        v3_and_below_transactional_id=txn_id,
        v3_and_below_producer_id=pid,
        v3_and_below_producer_epoch=epoch,
        v3_and_below_topics=topics,
    )
    return {
        (t.name, p.partition_index): ErrorCode(p.partition_error_code)
        for t in response.results_by_topic_v3_and_below
        for p in t.results_by_partition
    }


def end_txn(
    conn: Conn, txn_id: str, pid: int, epoch: int, commit: bool, version: int = 3
) -> ErrorCode:
    response = conn.retrying(
        ApiKey.END_TXN,
        version,
        top_error,
        transactional_id=txn_id,
        producer_id=pid,
        producer_epoch=epoch,
        committed=commit,
    )
    return ErrorCode(response.error_code)


def assert_transactions_work(broker: BrokerProcess, topic: str) -> None:
    """A real transactional producer commits and a read_committed consumer sees its record."""
    value = f"ok-{uuid.uuid4().hex[:8]}".encode()
    producer = txn_producer(broker.bootstrap, f"healthy-{uuid.uuid4().hex[:6]}")
    producer.begin_transaction()
    producer.produce(topic, value, key=b"k", partition=0)
    producer.commit_transaction(WAIT_S)
    seen = read_to_end(broker.bootstrap, [(topic, 0), (topic, 1)], "read_committed")
    assert value in [r.value for r in seen]


# --- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 3])
def test_end_txn_for_unknown_transactional_id(
    txn_broker: BrokerProcess, topic: str, conn: Conn, version: int
) -> None:
    txn_id = f"never-initialised-{uuid.uuid4().hex[:6]}"
    find_txn_coordinator(conn, txn_id)
    for commit in (True, False):
        error = end_txn(conn, txn_id, 4242, 0, commit, version=version)
        assert error is ErrorCode.invalid_producer_id_mapping
    assert_transactions_work(txn_broker, topic)


def test_add_partitions_with_a_stale_epoch(
    txn_broker: BrokerProcess, topic: str, conn: Conn
) -> None:
    txn_id = f"stale-{uuid.uuid4().hex[:6]}"
    error, pid, old_epoch = init_producer_id(conn, txn_id)
    assert error is ErrorCode.none
    error, pid2, epoch = init_producer_id(conn, txn_id)  # a new incarnation bumps the epoch
    assert error is ErrorCode.none and pid2 == pid and epoch > old_epoch

    v1 = add_partitions(conn, 1, txn_id, pid, old_epoch, {topic: [0]})
    assert v1 == {(topic, 0): ErrorCode.invalid_producer_epoch}
    v3 = add_partitions(conn, 3, txn_id, pid, old_epoch, {topic: [0]})
    assert v3 == {(topic, 0): ErrorCode.producer_fenced}
    assert end_txn(conn, txn_id, pid, old_epoch, True) is ErrorCode.producer_fenced
    assert end_txn(conn, txn_id, pid, old_epoch, True, version=1) is (
        ErrorCode.invalid_producer_epoch
    )

    # The current epoch is unaffected: it adds the partition and aborts cleanly.
    assert add_partitions(conn, 3, txn_id, pid, epoch, {topic: [0]}) == {(topic, 0): ErrorCode.none}
    assert end_txn(conn, txn_id, pid, epoch, False) is ErrorCode.none
    assert_transactions_work(txn_broker, topic)


def test_add_partitions_of_a_missing_topic(
    txn_broker: BrokerProcess, topic: str, conn: Conn
) -> None:
    txn_id = f"missing-{uuid.uuid4().hex[:6]}"
    error, pid, epoch = init_producer_id(conn, txn_id)
    assert error is ErrorCode.none
    missing = f"no-such-topic-{uuid.uuid4().hex[:6]}"
    results = add_partitions(conn, 3, txn_id, pid, epoch, {topic: [0, 1], missing: [0]})
    assert results == {
        (topic, 0): ErrorCode.operation_not_attempted,
        (topic, 1): ErrorCode.operation_not_attempted,
        (missing, 0): ErrorCode.unknown_topic_or_partition,
    }
    results = add_partitions(conn, 3, txn_id, pid, epoch, {topic: [0, 99]})
    assert results == {
        (topic, 0): ErrorCode.operation_not_attempted,
        (topic, 99): ErrorCode.unknown_topic_or_partition,
    }
    # Nothing was added, so there is nothing to commit.
    assert end_txn(conn, txn_id, pid, epoch, True) is ErrorCode.invalid_txn_state
    assert_transactions_work(txn_broker, topic)


def test_init_producer_id_timeout_above_the_maximum(
    txn_broker: BrokerProcess, topic: str, conn: Conn
) -> None:
    txn_id = f"timeout-{uuid.uuid4().hex[:6]}"
    error, _, _ = init_producer_id(conn, txn_id, timeout_ms=MAX_TIMEOUT_MS + 1)
    assert error is ErrorCode.invalid_transaction_timeout
    error, _, _ = init_producer_id(conn, txn_id, timeout_ms=0)
    assert error is ErrorCode.invalid_transaction_timeout
    error, pid, epoch = init_producer_id(conn, txn_id, timeout_ms=MAX_TIMEOUT_MS)
    assert error is ErrorCode.none and pid >= 0 and epoch >= 0
    assert_transactions_work(txn_broker, topic)


# --- TxnOffsetCommit with a generation that moved on ---------------------------------------

JOIN_V = 5


def subscription(*topics: str) -> bytes:
    """ConsumerProtocolSubscription v0: version, topics, no user data."""
    out = bytearray(struct.pack(">hi", 0, len(topics)))
    for t in topics:
        out += struct.pack(">h", len(t)) + t.encode()
    return bytes(out + struct.pack(">i", -1))


def join(conn: Conn, group: str, member_id: str, topic: str) -> Any:
    protocol = nested(
        ApiKey.JOIN_GROUP,
        JOIN_V,
        "JoinGroupRequestProtocol",
        name="range",
        metadata=subscription(topic),
    )
    return conn.call(
        ApiKey.JOIN_GROUP,
        JOIN_V,
        group_id=group,
        session_timeout=10_000,
        rebalance_timeout=10_000,
        member_id=member_id,
        protocol_type="consumer",
        protocols=(protocol,),
    )


def join_and_sync(conn: Conn, group: str, member_id: str, topic: str) -> tuple[str, int]:
    joined = join(conn, group, member_id, topic)
    if joined.error_code == ErrorCode.member_id_required:
        joined = join(conn, group, joined.member_id, topic)
    assert ErrorCode(joined.error_code) is ErrorCode.none
    assignment = nested(
        ApiKey.SYNC_GROUP,
        3,
        "SyncGroupRequestAssignment",
        member_id=joined.member_id,
        assignment=b"",
    )
    synced = conn.call(
        ApiKey.SYNC_GROUP,
        3,
        group_id=group,
        generation_id=joined.generation_id,
        member_id=joined.member_id,
        assignments=(assignment,),
    )
    assert ErrorCode(synced.error_code) is ErrorCode.none
    return joined.member_id, joined.generation_id


def txn_offset_commit(
    conn: Conn,
    txn_id: str,
    group: str,
    pid: int,
    epoch: int,
    generation: int,
    member: str,
    topic: str,
    offset: int,
) -> ErrorCode:
    api, version = ApiKey.TXN_OFFSET_COMMIT, 3
    partition = nested(
        api,
        version,
        "TxnOffsetCommitRequestPartition",
        partition_index=0,
        committed_offset=offset,
        committed_leader_epoch=-1,
        committed_metadata="",
    )
    response = conn.retrying(
        api,
        version,
        lambda r: r.topics[0].partitions[0].error_code,
        transactional_id=txn_id,
        group_id=group,
        producer_id=pid,
        producer_epoch=epoch,
        generation_id=generation,
        member_id=member,
        group_instance_id=None,
        topics=(
            nested(
                api, version, "TxnOffsetCommitRequestTopic", name=topic, partitions=(partition,)
            ),
        ),
    )
    return ErrorCode(response.topics[0].partitions[0].error_code)


def committed_offset(conn: Conn, group: str, topic: str) -> int:
    api, version = ApiKey.OFFSET_FETCH, 7
    request_topic = nested(
        api, version, "OffsetFetchRequestTopic", name=topic, partition_indexes=(0,)
    )
    deadline = time.monotonic() + WAIT_S
    while True:  # the markers are written after EndTxn answers: unstable until then
        response = conn.call(
            api, version, group_id=group, topics=(request_topic,), require_stable=True
        )
        assert ErrorCode(response.error_code) is ErrorCode.none
        partition = response.topics[0].partitions[0]
        error = ErrorCode(partition.error_code)
        if error is not ErrorCode.unstable_offset_commit or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert error is ErrorCode.none
    return int(partition.committed_offset)


def test_txn_offset_commit_for_a_generation_that_moved_on(
    txn_broker: BrokerProcess, topic: str, conn: Conn
) -> None:
    group = f"txn-gen-{uuid.uuid4().hex[:6]}"
    group_conn = Conn(txn_broker)
    try:
        response = group_conn.retrying(ApiKey.FIND_COORDINATOR, 3, top_error, key=group, key_type=0)
        assert top_error(response) is ErrorCode.none
        member, first_generation = join_and_sync(group_conn, group, "", topic)
        # The leader rejoining starts a new generation.
        member2, generation = join_and_sync(group_conn, group, member, topic)
        assert member2 == member and generation > first_generation

        txn_id = f"txn-gen-{uuid.uuid4().hex[:6]}"
        error, pid, epoch = init_producer_id(conn, txn_id)
        assert error is ErrorCode.none
        added = conn.retrying(
            ApiKey.ADD_OFFSETS_TO_TXN,
            3,
            top_error,
            transactional_id=txn_id,
            producer_id=pid,
            producer_epoch=epoch,
            group_id=group,
        )
        assert top_error(added) is ErrorCode.none

        stale = txn_offset_commit(
            conn, txn_id, group, pid, epoch, first_generation, member, topic, 5
        )
        assert stale is ErrorCode.illegal_generation
        current = txn_offset_commit(conn, txn_id, group, pid, epoch, generation, member, topic, 7)
        assert current is ErrorCode.none
        assert end_txn(conn, txn_id, pid, epoch, False) is ErrorCode.none
        # Aborted: the pending offset is dropped, nothing is committed for the group.
        assert committed_offset(group_conn, group, topic) == -1
    finally:
        group_conn.close()
    assert_transactions_work(txn_broker, topic)
