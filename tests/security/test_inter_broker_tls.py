"""Replication between brokers over an SSL inter-broker listener that requires client
certificates: three real brokers and etcd, followers fetch from the leader over TLS,
presenting the brokers' certificate, and acks=all produces complete."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from moldau.testing.etcd_cluster import LocalCluster
from moldau.testing.tls import CertFiles, ssl_broker_config

pytestmark = pytest.mark.compat

BROKER_PRINCIPAL = "User:CN=broker,OU=brokers,O=moldau-test"


@pytest.fixture(scope="module")
def cluster(server_cert: CertFiles) -> Iterator[LocalCluster]:
    config = {
        **ssl_broker_config(server_cert, listener="SSL", client_auth="required"),
        "inter.broker.listener.name": "SSL",
    }
    with LocalCluster(3, config=config, listeners={"PLAINTEXT": "PLAINTEXT", "SSL": "SSL"}) as c:
        yield c


def _consume(config: dict[str, str], topic: str, count: int) -> list[bytes]:
    from confluent_kafka import Consumer

    consumer = Consumer({**config, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                got.append(message.value())
    finally:
        consumer.close()
    return got


def test_replication_runs_over_the_ssl_inter_broker_listener(
    cluster: LocalCluster, alice_cert: CertFiles
) -> None:
    from confluent_kafka import Producer

    topic = f"repl-{uuid.uuid4().hex[:8]}"
    cluster.create_topic(topic, partitions=3, replication_factor=3)
    ssl_client = {
        "bootstrap.servers": cluster.bootstrap_for("SSL"),
        "security.protocol": "SSL",
        **alice_cert.confluent_config(),
    }
    producer = Producer({**ssl_client, "acks": "all"})
    values = [f"v{i}".encode() for i in range(30)]
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(30) == 0
    cluster.wait_for_full_isr(topic)
    assert sorted(_consume(ssl_client, topic, len(values))) == sorted(values)
    # Every follower connected to the leaders over TLS with the brokers' certificate.
    logs = "".join(broker.output() for broker in cluster.brokers.values())
    assert f"authenticated by certificate as {BROKER_PRINCIPAL}" in logs
    assert "TLS handshake with broker" not in logs  # no fetcher was ever refused


def test_clients_of_each_listener_are_sent_that_listeners_endpoints(
    cluster: LocalCluster, alice_cert: CertFiles
) -> None:
    from confluent_kafka.admin import AdminClient

    def brokers(config: dict[str, str]) -> set[str]:
        metadata = AdminClient(config).list_topics(timeout=10)
        return {f"{b.host}:{b.port}" for b in metadata.brokers.values()}

    plaintext = set(cluster.bootstrap_for("PLAINTEXT").split(","))
    tls = set(cluster.bootstrap_for("SSL").split(","))
    assert brokers({"bootstrap.servers": cluster.bootstrap_for("PLAINTEXT")}) == plaintext
    ssl_client = {
        "bootstrap.servers": cluster.bootstrap_for("SSL"),
        "security.protocol": "SSL",
        **alice_cert.confluent_config(),
    }
    assert brokers(ssl_client) == tls
