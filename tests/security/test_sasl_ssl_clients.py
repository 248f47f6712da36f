"""confluent-kafka, kafka-python and aiokafka each produce and consume over SASL_SSL with
SCRAM-SHA-512 (TLS from the test CA, the user created offline), and a wrong password is
refused over the same listener."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from sasl_helpers import SCRAM_PASSWORD, SECRETS, WRONG_PASSWORD, add_scram_users

from moldau.testing import BrokerProcess
from moldau.testing.tls import CertFiles, ssl_broker_config

pytestmark = pytest.mark.compat

MECHANISM = "SCRAM-SHA-512"
VALUES = [f"secure-{i}".encode() for i in range(10)]


@pytest.fixture(scope="module")
def broker(server_cert: CertFiles) -> Iterator[BrokerProcess]:
    config = ssl_broker_config(server_cert)
    config["sasl.enabled.mechanisms"] = MECHANISM
    process = BrokerProcess(listeners={"SASL_SSL": "SASL_SSL"}, config=config)
    add_scram_users(process.data_dir, {"carol": SCRAM_PASSWORD})
    with process:
        yield process
        log = process.output()
    for secret in SECRETS:
        assert secret not in log


def confluent(broker: BrokerProcess, server_cert: CertFiles, password: str) -> dict[str, str]:
    return {
        "bootstrap.servers": broker.bootstrap_for("SASL_SSL"),
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": MECHANISM,
        "sasl.username": "carol",
        "sasl.password": password,
        "ssl.ca.location": str(server_cert.ca),
    }


def python_settings(broker: BrokerProcess, server_cert: CertFiles) -> dict[str, object]:
    return {
        "bootstrap_servers": broker.bootstrap_for("SASL_SSL"),
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": MECHANISM,
        "sasl_plain_username": "carol",
        "sasl_plain_password": SCRAM_PASSWORD,
        "ssl_context": ssl.create_default_context(cafile=str(server_cert.ca)),
    }


def topic() -> str:
    return f"sasl-ssl-{uuid.uuid4().hex[:8]}"


def test_confluent_kafka(broker: BrokerProcess, server_cert: CertFiles) -> None:
    name = topic()
    producer = Producer(confluent(broker, server_cert, SCRAM_PASSWORD))
    for value in VALUES:
        producer.produce(name, value)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            **confluent(broker, server_cert, SCRAM_PASSWORD),
            "group.id": f"g-{name}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([name])
    got: list[bytes] = []
    for _ in range(60):
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            got.append(bytes(message.value()))
        if len(got) == len(VALUES):
            break
    consumer.close()
    assert got == VALUES


def test_kafka_python(broker: BrokerProcess, server_cert: CertFiles) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    name = topic()
    settings = python_settings(broker, server_cert)
    producer = KafkaProducer(**settings)
    for value in VALUES:
        producer.send(name, value)
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(
        name, **settings, auto_offset_reset="earliest", consumer_timeout_ms=5000
    )
    assert [m.value for m in consumer] == VALUES
    consumer.close()


def test_aiokafka(broker: BrokerProcess, server_cert: CertFiles) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    name = topic()

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(**python_settings(broker, server_cert))
        await producer.start()
        try:
            for value in VALUES:
                await producer.send_and_wait(name, value)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            name, **python_settings(broker, server_cert), auto_offset_reset="earliest"
        )
        await consumer.start()
        got: list[bytes] = []
        try:
            while len(got) < len(VALUES):
                batch = await consumer.getmany(timeout_ms=5000)
                if not batch:
                    break
                got += [m.value for messages in batch.values() for m in messages]
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(run()) == VALUES


def test_a_wrong_password_is_refused(broker: BrokerProcess, server_cert: CertFiles) -> None:
    errors: list[KafkaError] = []
    settings = {
        **confluent(broker, server_cert, WRONG_PASSWORD),
        "error_cb": errors.append,
        "message.timeout.ms": 5000,
    }
    producer = Producer(settings)
    producer.produce(topic(), b"never")
    producer.flush(10)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors)
