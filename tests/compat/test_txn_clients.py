"""Transactional producers of confluent-kafka, kafka-python and aiokafka against a real broker.

Each client writes one transaction across two topics (three partitions). A committed
transaction becomes visible to read_committed consumers all at once: before the commit they
read nothing up to the end, after it everything. An aborted transaction is never visible to
read_committed consumers; read_uncommitted consumers see its data records but never the
COMMIT/ABORT control records, whose offsets show up as gaps in the consumed offsets. The
clients' own consumers (with their own isolation settings) are checked too, because each one
decodes ``aborted_transactions`` and control batches its own way.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer, TopicPartition
from txn_helpers import (
    TP,
    WAIT_S,
    Rec,
    all_partitions,
    assert_no_control_records,
    by_partition,
    create_topics,
    latest_offsets,
    poll_count,
    read_to_end,
    reader,
)

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

CLIENTS = ["confluent", "kafka-python", "aiokafka"]
PER_PARTITION = 3

Write = tuple[str, int, bytes]  # (topic, partition, value)


# --- one transaction per client ------------------------------------------------------------


def txn_confluent(
    bootstrap: str, txn_id: str, writes: list[Write], commit: bool, before_end: Callable[[], None]
) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5}
    )
    producer.init_transactions(WAIT_S)
    producer.begin_transaction()
    for topic, partition, value in writes:
        producer.produce(topic, value, key=b"k", partition=partition)
    assert producer.flush(WAIT_S) == 0
    before_end()
    if commit:
        producer.commit_transaction(WAIT_S)
    else:
        producer.abort_transaction(WAIT_S)


def txn_kafka_python(
    bootstrap: str, txn_id: str, writes: list[Write], commit: bool, before_end: Callable[[], None]
) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=txn_id, linger_ms=5, max_block_ms=30_000
    )
    try:
        producer.init_transactions()
        producer.begin_transaction()
        futures = [producer.send(t, value=v, key=b"k", partition=p) for t, p, v in writes]
        producer.flush(WAIT_S)
        for future in futures:
            future.get(timeout=WAIT_S)
        before_end()
        if commit:
            producer.commit_transaction()
        else:
            producer.abort_transaction()
    finally:
        producer.close(timeout=5)


def txn_aiokafka(
    bootstrap: str, txn_id: str, writes: list[Write], commit: bool, before_end: Callable[[], None]
) -> None:
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=txn_id)
        await producer.start()
        try:
            await producer.begin_transaction()
            futures = [await producer.send(t, value=v, key=b"k", partition=p) for t, p, v in writes]
            await asyncio.gather(*futures)
            before_end()  # blocking is fine: nothing else needs this loop meanwhile
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
        finally:
            await producer.stop()

    asyncio.run(asyncio.wait_for(run(), 60))


TXN = {"confluent": txn_confluent, "kafka-python": txn_kafka_python, "aiokafka": txn_aiokafka}


# --- each client's own consumer ------------------------------------------------------------


def consume_confluent(bootstrap: str, tps: list[TP], isolation: str, count: int) -> list[Rec]:
    consumer = reader(bootstrap, isolation)
    try:
        consumer.assign([TopicPartition(t, p, 0) for t, p in tps])
        return poll_count(consumer, count)
    finally:
        consumer.close()


def consume_kafka_python(bootstrap: str, tps: list[TP], isolation: str, count: int) -> list[Rec]:
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level=isolation,
        consumer_timeout_ms=10_000,
        fetch_max_wait_ms=100,
    )
    out: list[Rec] = []
    try:
        consumer.assign([KTopicPartition(t, p) for t, p in tps])
        consumer.seek_to_beginning()
        for r in consumer:
            out.append(Rec(r.topic, r.partition, r.offset, r.key, r.value))
            if len(out) == count:
                break
    finally:
        consumer.close()
    return out


def consume_aiokafka(bootstrap: str, tps: list[TP], isolation: str, count: int) -> list[Rec]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as ATopicPartition

    async def run() -> list[Rec]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level=isolation,
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        out: list[Rec] = []
        try:
            consumer.assign([ATopicPartition(t, p) for t, p in tps])
            await consumer.seek_to_beginning()
            deadline = time.monotonic() + WAIT_S
            while len(out) < count and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    out += [Rec(r.topic, r.partition, r.offset, r.key, r.value) for r in records]
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


CONSUME = {
    "confluent": consume_confluent,
    "kafka-python": consume_kafka_python,
    "aiokafka": consume_aiokafka,
}


# --- tests ---------------------------------------------------------------------------------


def setup(broker: BrokerProcess) -> list[TP]:
    a, b = create_topics(broker.bootstrap, 2, 1)
    return all_partitions({a: 2, b: 1})


def writes_for(tps: list[TP], tag: str) -> list[Write]:
    return [(t, p, f"{tag}-{t}-{p}-{i}".encode()) for t, p in tps for i in range(PER_PARTITION)]


def sorted_values(records: list[Rec]) -> list[Any]:
    return sorted(r.value for r in records)


@pytest.mark.parametrize("client", CLIENTS)
def test_committed_txn_becomes_visible_all_at_once(broker: BrokerProcess, client: str) -> None:
    bootstrap = broker.bootstrap
    tps = setup(broker)
    writes = writes_for(tps, "commit")
    seen_before_commit: list[list[Rec]] = []
    lso_before_commit: list[dict[TP, int]] = []

    def before_commit() -> None:
        seen_before_commit.append(read_to_end(bootstrap, tps, "read_committed"))
        lso_before_commit.append(latest_offsets(bootstrap, tps, committed=True))

    TXN[client](bootstrap, f"txn-{client}-{uuid.uuid4().hex[:6]}", writes, True, before_commit)

    assert seen_before_commit == [[]], "read_committed saw data of an open transaction"
    assert lso_before_commit == [{tp: 0 for tp in tps}]

    committed = read_to_end(bootstrap, tps, "read_committed")
    assert sorted_values(committed) == sorted(v for _, _, v in writes)
    for tp, records in by_partition(committed).items():
        assert [r.offset for r in records] == list(range(PER_PARTITION)), tp
    assert_no_control_records(committed)
    # The COMMIT marker takes one offset after the data; LSO and high watermark agree.
    end = {tp: PER_PARTITION + 1 for tp in tps}
    assert latest_offsets(bootstrap, tps, committed=True) == end
    assert latest_offsets(bootstrap, tps, committed=False) == end

    own = CONSUME[client](bootstrap, tps, "read_committed", len(writes))
    assert sorted_values(own) == sorted(v for _, _, v in writes)
    assert_no_control_records(own)


@pytest.mark.parametrize("client", CLIENTS)
def test_aborted_txn_is_never_visible_to_read_committed(broker: BrokerProcess, client: str) -> None:
    bootstrap = broker.bootstrap
    tps = setup(broker)
    aborted = writes_for(tps, "aborted")
    committed = writes_for(tps, "committed")
    txn_id = f"txn-{client}-{uuid.uuid4().hex[:6]}"

    def nothing() -> None:
        pass

    TXN[client](bootstrap, txn_id, aborted, False, nothing)
    TXN[client](bootstrap, txn_id, committed, True, nothing)

    # Per partition: aborted data 0..2, ABORT marker 3, committed data 4..6, COMMIT marker 7.
    data_offsets = [*range(PER_PARTITION), *range(PER_PARTITION + 1, 2 * PER_PARTITION + 1)]
    end = {tp: 2 * PER_PARTITION + 2 for tp in tps}

    rc = read_to_end(bootstrap, tps, "read_committed")
    assert sorted_values(rc) == sorted(v for _, _, v in committed)
    for tp, records in by_partition(rc).items():
        assert [r.offset for r in records] == data_offsets[PER_PARTITION:], tp
    assert latest_offsets(bootstrap, tps, committed=True) == end

    ru = read_to_end(bootstrap, tps, "read_uncommitted")
    assert sorted_values(ru) == sorted(v for _, _, v in aborted + committed)
    assert_no_control_records(ru)
    for tp, records in by_partition(ru).items():
        assert [r.offset for r in records] == data_offsets, f"{tp}: markers must be gaps"
    assert latest_offsets(bootstrap, tps, committed=False) == end

    own_rc = CONSUME[client](bootstrap, tps, "read_committed", len(committed))
    assert sorted_values(own_rc) == sorted(v for _, _, v in committed)
    own_ru = CONSUME[client](bootstrap, tps, "read_uncommitted", len(aborted) + len(committed))
    assert sorted_values(own_ru) == sorted(v for _, _, v in aborted + committed)
    assert_no_control_records(own_ru)
    for tp, records in by_partition(own_ru).items():
        assert [r.offset for r in records] == data_offsets, tp
