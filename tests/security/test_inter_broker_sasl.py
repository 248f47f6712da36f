"""Replication over a SASL_SSL inter-broker listener: brokers log in to each other with
``sasl.mechanism.inter.broker.protocol`` (PLAIN from the listener's JAAS users, or
SCRAM-SHA-512 with credentials created over the wire) on top of TLS."""

from __future__ import annotations

import uuid

import pytest

from moldau.testing.etcd_cluster import LocalCluster
from moldau.testing.tls import CertFiles, ssl_broker_config

pytestmark = pytest.mark.compat

BROKER_PASSWORD = "broker-Secret-5a1e"
LISTENERS = {"PLAINTEXT": "PLAINTEXT", "SASL_SSL": "SASL_SSL"}


def _login(module: str) -> str:
    return (
        f"org.apache.kafka.common.security.{module} required "
        f'username="broker" password="{BROKER_PASSWORD}"'
    )


def _base_config(server_cert: CertFiles, mechanism: str) -> dict[str, str]:
    return {
        **ssl_broker_config(server_cert, listener="SASL_SSL"),
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.mechanism.inter.broker.protocol": mechanism,
    }


def _create_scram_user(bootstrap: str) -> None:
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({"bootstrap.servers": bootstrap})
    upsert = UserScramCredentialUpsertion(
        "broker",
        ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
        BROKER_PASSWORD.encode(),
    )
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(30)


def _replicate(cluster: LocalCluster) -> None:
    from confluent_kafka import Producer

    topic = f"sasl-repl-{uuid.uuid4().hex[:8]}"
    cluster.create_topic(topic, partitions=2, replication_factor=3)
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for i in range(20):
        producer.produce(topic, f"v{i}".encode())
    assert producer.flush(30) == 0
    cluster.wait_for_full_isr(topic)


def _logs(cluster: LocalCluster) -> str:
    return "".join(broker.output() for broker in cluster.brokers.values())


def test_replication_with_plain_over_sasl_ssl(server_cert: CertFiles) -> None:
    jaas = _login("plain.PlainLoginModule") + f' user_broker="{BROKER_PASSWORD}";'
    config = {
        **_base_config(server_cert, "PLAIN"),
        "listener.name.sasl_ssl.plain.sasl.jaas.config": jaas,
    }
    with LocalCluster(3, config=config, listeners=LISTENERS) as cluster:
        _replicate(cluster)
        logs = _logs(cluster)
    assert "SASL PLAIN authenticated as User:broker on listener SASL_SSL" in logs
    assert BROKER_PASSWORD not in logs


def test_replication_with_scram_sha_512_over_sasl_ssl(server_cert: CertFiles) -> None:
    config = {
        **_base_config(server_cert, "SCRAM-SHA-512"),
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": _login("scram.ScramLoginModule")
        + ";",
    }
    with LocalCluster(3, config=config, listeners=LISTENERS) as cluster:
        _create_scram_user(cluster.bootstrap)
        _replicate(cluster)
        logs = _logs(cluster)
    assert "SASL SCRAM-SHA-512 authenticated as User:broker on listener SASL_SSL" in logs
    assert BROKER_PASSWORD not in logs
