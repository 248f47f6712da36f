"""confluent-kafka, kafka-python and aiokafka each produce and consume over an SSL listener
of a real broker, verifying the broker's certificate against the test CA and presenting a
client certificate (the listener requests one)."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid

import pytest

from moldau.testing import BrokerProcess
from moldau.testing.tls import CertFiles

pytestmark = pytest.mark.compat

VALUES = [f"tls-value-{i}".encode() for i in range(20)]


def _topic() -> str:
    return f"tls-{uuid.uuid4().hex[:8]}"


def _python_ssl_context(cert: CertFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert.ca))
    context.load_cert_chain(str(cert.certificate), str(cert.key))
    return context


def test_confluent_kafka_round_trip_over_ssl(
    ssl_broker: BrokerProcess, alice_cert: CertFiles
) -> None:
    from confluent_kafka import Consumer, Producer

    topic = _topic()
    config = {
        "bootstrap.servers": ssl_broker.bootstrap_for("SSL"),
        "security.protocol": "SSL",
        **alice_cert.confluent_config(),
    }
    producer = Producer(config)
    for value in VALUES:
        producer.produce(topic, value)
    assert producer.flush(30) == 0
    consumer = Consumer({**config, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < len(VALUES) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got.append(message.value())
    finally:
        consumer.close()
    assert got == VALUES


def test_kafka_python_round_trip_over_ssl(ssl_broker: BrokerProcess, alice_cert: CertFiles) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    topic = _topic()
    settings = {
        "bootstrap_servers": ssl_broker.bootstrap_for("SSL"),
        "security_protocol": "SSL",
        "ssl_cafile": str(alice_cert.ca),
        "ssl_certfile": str(alice_cert.certificate),
        "ssl_keyfile": str(alice_cert.key),
    }
    producer = KafkaProducer(**settings)
    try:
        for value in VALUES:
            producer.send(topic, value)
        producer.flush(30)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        topic,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        consumer_timeout_ms=15_000,
        **settings,
    )
    try:
        got = []
        for message in consumer:
            got.append(message.value)
            if len(got) == len(VALUES):
                break
    finally:
        consumer.close()
    assert got == VALUES


def test_aiokafka_round_trip_over_ssl(ssl_broker: BrokerProcess, alice_cert: CertFiles) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = _topic()
    bootstrap = ssl_broker.bootstrap_for("SSL")

    async def run() -> list[bytes]:
        context = _python_ssl_context(alice_cert)
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, security_protocol="SSL", ssl_context=context
        )
        await producer.start()
        try:
            for value in VALUES:
                await producer.send(topic, value)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            security_protocol="SSL",
            ssl_context=context,
            group_id=f"g-{topic}",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        got: list[bytes] = []
        try:
            async with asyncio.timeout(30):
                async for message in consumer:
                    assert message.value is not None
                    got.append(message.value)
                    if len(got) == len(VALUES):
                        break
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(run()) == VALUES
