"""confluent-kafka, kafka-python and aiokafka produce to and consume from a real broker process.

Every message is checked field by field and per-partition order message by message: keys,
null keys, headers, explicit timestamps, every codec, and values near ``max.message.bytes``.
Consumers assign partitions directly (consumer groups are a later issue).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 3
BASE_TS = 1_700_000_000_000


@dataclass(frozen=True)
class Msg:
    partition: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int


def make_messages(n: int = 60) -> list[Msg]:
    messages = []
    for i in range(n):
        key = None if i % 5 == 0 else f"key-{i}".encode()
        headers = (("h1", f"v{i}".encode()), ("trace", b"\x00\xff")) if i % 3 == 0 else ()
        messages.append(
            Msg(i % PARTITIONS, key, f"value-{i}-".encode() * (1 + i % 7), headers, BASE_TS + i)
        )
    return messages


def create_topic(
    bootstrap: str, partitions: int = PARTITIONS, config: dict[str, str] | None = None
) -> str:
    name = f"compat-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])
    futures[name].result(timeout=15)
    return name


def check_partition_order(expected: list[Msg], got: list[Msg]) -> None:
    for partition in range(PARTITIONS):
        want = [m for m in expected if m.partition == partition]
        have = [m for m in got if m.partition == partition]
        assert len(have) == len(want), f"partition {partition}: {len(have)} != {len(want)}"
        for i, (w, h) in enumerate(zip(want, have, strict=True)):
            assert h == w, f"partition {partition} message {i}: {h} != {w}"


def consume_confluent(
    bootstrap: str, topic: str, count: int, partitions: int = PARTITIONS
) -> list[tuple[Msg, int]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused-assign-only",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[tuple[Msg, int]] = []
    try:
        attempts = 0
        while len(out) < count and attempts < 300:
            attempts += 1
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            headers = tuple((k, v) for k, v in (msg.headers() or []))
            _ts_type, ts = msg.timestamp()
            out.append((Msg(msg.partition(), msg.key(), msg.value(), headers, ts), msg.offset()))
    finally:
        consumer.close()
    return out


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_round_trip(broker: BrokerProcess, codec: str) -> None:
    topic = create_topic(broker.bootstrap)
    expected = make_messages()
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "compression.type": codec,
            "linger.ms": 5,
            "enable.idempotence": True,
            "acks": "all",
        }
    )
    delivered: list[tuple[int, int]] = []

    def on_delivery(err: KafkaError | None, msg: object) -> None:
        assert err is None, err
        delivered.append((msg.partition(), msg.offset()))  # type: ignore[attr-defined]

    for m in expected:
        producer.produce(
            topic,
            m.value,
            m.key,
            partition=m.partition,
            headers=list(m.headers),
            timestamp=m.timestamp,
            on_delivery=on_delivery,
        )
    assert producer.flush(30) == 0
    assert len(delivered) == len(expected)
    got = consume_confluent(broker.bootstrap, topic, len(expected))
    check_partition_order(expected, [m for m, _ in got])
    for partition in range(PARTITIONS):
        offsets = [o for m, o in got if m.partition == partition]
        assert offsets == list(range(len(offsets)))


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_round_trip(broker: BrokerProcess, codec: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTopicPartition

    topic = create_topic(broker.bootstrap)
    expected = make_messages()
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        compression_type=None if codec == "none" else codec,
        linger_ms=5,
        acks="all",
        enable_idempotence=True,
    )
    futures = [
        producer.send(
            topic,
            value=m.value,
            key=m.key,
            partition=m.partition,
            headers=list(m.headers),
            timestamp_ms=m.timestamp,
        )
        for m in expected
    ]
    producer.flush(30)
    metas = [f.get(timeout=30) for f in futures]
    producer.close()
    assert [md.partition for md in metas] == [m.partition for m in expected]

    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
    )
    consumer.assign([KTopicPartition(topic, p) for p in range(PARTITIONS)])
    consumer.seek_to_beginning()
    got: list[Msg] = []
    for record in consumer:
        got.append(
            Msg(
                record.partition,
                record.key,
                record.value,
                tuple((k, v) for k, v in record.headers),
                record.timestamp,
            )
        )
        if len(got) == len(expected):
            break
    consumer.close()
    check_partition_order(expected, got)


@pytest.mark.parametrize("codec", CODECS)
def test_aiokafka_round_trip(broker: BrokerProcess, codec: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as ATopicPartition

    topic = create_topic(broker.bootstrap)
    expected = make_messages()

    async def run() -> list[Msg]:
        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap,
            compression_type=None if codec == "none" else codec,
            linger_ms=5,
            acks="all",
            enable_idempotence=True,
        )
        await producer.start()
        try:
            futures = [
                await producer.send(
                    topic,
                    value=m.value,
                    key=m.key,
                    partition=m.partition,
                    headers=list(m.headers),
                    timestamp_ms=m.timestamp,
                )
                for m in expected
            ]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=broker.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        got: list[Msg] = []
        try:
            consumer.assign([ATopicPartition(topic, p) for p in range(PARTITIONS)])
            await consumer.seek_to_beginning()
            while len(got) < len(expected):
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 30)
                for records in batch.values():
                    for r in records:
                        got.append(Msg(r.partition, r.key, r.value, tuple(r.headers), r.timestamp))
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(run())
    check_partition_order(expected, got)


def test_messages_near_the_size_limit(broker: BrokerProcess) -> None:
    """A value just under max.message.bytes is stored; one over it is refused by the broker."""
    limit = 200_000
    topic = create_topic(broker.bootstrap, partitions=1, config={"max.message.bytes": str(limit)})
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "message.max.bytes": 10_000_000,
            "compression.type": "none",
            "linger.ms": 0,
        }
    )
    results: list[KafkaError | None] = []
    big_ok = b"a" * (limit - 200)
    too_big = b"b" * (limit + 1000)
    producer.produce(topic, big_ok, partition=0, on_delivery=lambda e, m: results.append(e))
    producer.flush(30)
    producer.produce(topic, too_big, partition=0, on_delivery=lambda e, m: results.append(e))
    producer.flush(30)
    assert results[0] is None
    assert results[1] is not None and results[1].code() == KafkaError.MSG_SIZE_TOO_LARGE
    got = consume_confluent(broker.bootstrap, topic, 1, partitions=1)
    assert got[0][0].value == big_ok


def test_log_append_time_topic_stamps_broker_time(broker: BrokerProcess) -> None:
    topic = create_topic(
        broker.bootstrap, partitions=1, config={"message.timestamp.type": "LogAppendTime"}
    )
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(topic, b"x", partition=0, timestamp=BASE_TS)
    producer.flush(30)
    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    msg = None
    for _ in range(100):
        msg = consumer.poll(0.2)
        if msg is not None:
            break
    consumer.close()
    assert msg is not None and msg.error() is None
    ts_type, ts = msg.timestamp()
    from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME

    assert ts_type == TIMESTAMP_LOG_APPEND_TIME
    assert ts > BASE_TS
