"""confluent-kafka, kafka-python and aiokafka produce and consume over SASL_PLAINTEXT with
PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 against a real broker process."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sasl_helpers import (
    ALICE_PASSWORD,
    SCRAM_PASSWORD,
    SECRETS,
    add_scram_users,
    confluent_config,
    python_client_config,
    sasl_broker_config,
)

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

CREDENTIALS = {
    "PLAIN": ("alice", ALICE_PASSWORD),
    "SCRAM-SHA-256": ("carol", SCRAM_PASSWORD),
    "SCRAM-SHA-512": ("carol", SCRAM_PASSWORD),
}
VALUES = [f"value-{i}".encode() for i in range(20)]


ZOE_PASSWORD = "zoe-Secret-6e0f"


@pytest.fixture(scope="module")
def users_file_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sasl") / "plain-users"
    path.write_text("# no users yet\n")
    return path


@pytest.fixture(scope="module")
def broker(users_file_path: Path) -> Iterator[BrokerProcess]:
    process = BrokerProcess(
        config=sasl_broker_config(**{"moldau.sasl.plain.users.file": str(users_file_path)})
    )
    add_scram_users(process.data_dir, {"carol": SCRAM_PASSWORD})
    with process:
        yield process
        log = process.output()
    for secret in (*SECRETS, ZOE_PASSWORD):
        assert secret not in log


def _topic() -> str:
    return f"sasl-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_confluent_kafka_round_trip(broker: BrokerProcess, mechanism: str) -> None:
    from confluent_kafka import Consumer, Producer

    user, password = CREDENTIALS[mechanism]
    topic = _topic()
    producer = Producer(confluent_config(broker.bootstrap, mechanism, user, password))
    for value in VALUES:
        producer.produce(topic, value)
    assert producer.flush(30) == 0
    consumer = Consumer(
        confluent_config(
            broker.bootstrap,
            mechanism,
            user,
            password,
            **{"group.id": f"g-{topic}", "auto.offset.reset": "earliest"},
        )
    )
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is None:
                continue
            assert message.error() is None
            got.append(message.value())
            if len(got) == len(VALUES):
                break
    finally:
        consumer.close()
    assert got == VALUES
    assert f"SASL {mechanism} authenticated as User:{user}" in broker.output()


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_kafka_python_round_trip(broker: BrokerProcess, mechanism: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    user, password = CREDENTIALS[mechanism]
    settings = python_client_config(mechanism, user, password)
    topic = _topic()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, **settings)
    for value in VALUES:
        producer.send(topic, value)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
        **settings,
    )
    got = []
    for record in consumer:
        got.append(record.value)
        if len(got) == len(VALUES):
            break
    consumer.close()
    assert got == VALUES


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_aiokafka_round_trip(broker: BrokerProcess, mechanism: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    user, password = CREDENTIALS[mechanism]
    settings = python_client_config(mechanism, user, password)
    topic = _topic()

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, **settings)
        await producer.start()
        try:
            for value in VALUES:
                await producer.send_and_wait(topic, value)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest", **settings
        )
        await consumer.start()
        got: list[bytes] = []
        try:
            while len(got) < len(VALUES):
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), 30)
                for records in batch.values():
                    got.extend(r.value for r in records)
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(run()) == VALUES


def test_kafka_python_legacy_handshake_v0(broker: BrokerProcess) -> None:
    """A client that believes the broker is Kafka 0.10.0 uses SaslHandshake v0 and sends the
    SASL tokens unframed (no SaslAuthenticate)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        api_version=(0, 10, 0),
        **python_client_config("PLAIN", "alice", ALICE_PASSWORD),
    )
    try:
        assert isinstance(consumer.topics(), set)
    finally:
        consumer.close()


def test_plain_users_file_is_reread(broker: BrokerProcess, users_file_path: Path) -> None:
    from confluent_kafka import Producer

    users_file_path.write_text(f"# added while the broker runs\nzoe:{ZOE_PASSWORD}\n")
    producer = Producer(confluent_config(broker.bootstrap, "PLAIN", "zoe", ZOE_PASSWORD))
    producer.produce(_topic(), b"from the users file")
    assert producer.flush(30) == 0
