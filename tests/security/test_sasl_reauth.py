"""Re-authentication (KIP-368): ``connections.max.reauth.ms`` bounds a SASL session; clients
re-authenticate on the same connection, and a connection that does not is closed at its next
request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v1 import MetadataRequest
from kio.schema.sasl_authenticate.v1 import SaslAuthenticateRequest as SaslAuthenticateV1
from kio.schema.sasl_authenticate.v2 import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v1 import SaslHandshakeRequest
from sasl_helpers import (
    ADMIN_PASSWORD,
    ALICE_PASSWORD,
    SCRAM_PASSWORD,
    SECRETS,
    add_scram_users,
    confluent_config,
    sasl_broker_config,
)

from moldau.protocol.api import ApiKey
from moldau.protocol.messages import millis
from moldau.testing import BrokerProcess
from moldau.testing.wire import WireClient

REAUTH_MS = 2000


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    process = BrokerProcess(
        config=sasl_broker_config(**{"connections.max.reauth.ms": str(REAUTH_MS)})
    )
    add_scram_users(process.data_dir, {"carol": SCRAM_PASSWORD})
    with process:
        yield process
        log = process.output()
    for secret in SECRETS:
        assert secret not in log


def _plain(client: WireClient, user: str, password: str, version: int = 2) -> Any:
    handshake = client.request(ApiKey.SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism="PLAIN"))
    assert handshake.error_code == ErrorCode.none
    request_type = SaslAuthenticateRequest if version == 2 else SaslAuthenticateV1
    token = f"\0{user}\0{password}".encode()
    return client.request(ApiKey.SASL_AUTHENTICATE, version, request_type(auth_bytes=token))


def _metadata(client: WireClient) -> Any:
    return client.request(ApiKey.METADATA, 1, MetadataRequest(topics=()))


def test_session_lifetime_is_announced(broker: BrokerProcess) -> None:
    with WireClient(broker.host, broker.port) as client:
        response = _plain(client, "alice", ALICE_PASSWORD, version=1)
        assert response.error_code == ErrorCode.none
        assert millis(response.session_lifetime) == REAUTH_MS


def test_expired_session_is_closed_at_the_next_request(broker: BrokerProcess) -> None:
    with WireClient(broker.host, broker.port) as client:
        assert _plain(client, "alice", ALICE_PASSWORD).error_code == ErrorCode.none
        assert _metadata(client).brokers
        time.sleep(REAUTH_MS / 1000 + 0.5)
        client.send_raw(client.encode(ApiKey.METADATA, 1, MetadataRequest(topics=()), 77))
        assert client.is_closed_by_peer()
    assert "after the SASL session expired" in broker.output()


def test_reauthentication_extends_the_session(broker: BrokerProcess) -> None:
    with WireClient(broker.host, broker.port) as client:
        assert _plain(client, "alice", ALICE_PASSWORD).error_code == ErrorCode.none
        time.sleep(REAUTH_MS / 1000 + 0.5)
        # Past the deadline: re-authentication is still allowed, and serves again after.
        assert _plain(client, "alice", ALICE_PASSWORD).error_code == ErrorCode.none
        assert _metadata(client).brokers
    assert "SASL PLAIN re-authenticated as User:alice" in broker.output()


def test_reauthentication_as_another_principal_fails(broker: BrokerProcess) -> None:
    with WireClient(broker.host, broker.port) as client:
        assert _plain(client, "alice", ALICE_PASSWORD).error_code == ErrorCode.none
        response = _plain(client, "admin", ADMIN_PASSWORD)
        assert response.error_code == ErrorCode.sasl_authentication_failed
        assert client.is_closed_by_peer()


def test_reauthentication_with_another_mechanism_fails(broker: BrokerProcess) -> None:
    with WireClient(broker.host, broker.port) as client:
        assert _plain(client, "alice", ALICE_PASSWORD).error_code == ErrorCode.none
        response = client.request(
            ApiKey.SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism="SCRAM-SHA-256")
        )
        assert response.error_code == ErrorCode.illegal_sasl_state
        assert client.is_closed_by_peer()


@pytest.mark.compat
@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_confluent_kafka_keeps_producing_across_reauthentication(
    broker: BrokerProcess, mechanism: str
) -> None:
    from confluent_kafka import Producer

    user, password = (
        ("alice", ALICE_PASSWORD) if mechanism == "PLAIN" else ("carol", SCRAM_PASSWORD)
    )
    errors: list[Any] = []
    producer = Producer(
        confluent_config(broker.bootstrap, mechanism, user, password, error_cb=errors.append)
    )
    topic = f"reauth-{mechanism.lower()}"
    sent = 0
    deadline = time.monotonic() + 3 * REAUTH_MS / 1000
    while time.monotonic() < deadline:
        producer.produce(topic, f"m{sent}".encode())
        sent += 1
        assert producer.flush(10) == 0
        time.sleep(0.1)
    assert errors == []
    assert f"SASL {mechanism} re-authenticated as User:{user}" in broker.output()


@pytest.mark.compat
def test_kafka_python_keeps_producing_across_reauthentication(broker: BrokerProcess) -> None:
    from kafka import KafkaProducer
    from sasl_helpers import python_client_config

    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        **python_client_config("SCRAM-SHA-256", "carol", SCRAM_PASSWORD),
    )
    try:
        deadline = time.monotonic() + 3 * REAUTH_MS / 1000
        sent = 0
        while time.monotonic() < deadline:
            producer.send("reauth-kafka-python", f"m{sent}".encode()).get(timeout=10)
            sent += 1
            time.sleep(0.1)
    finally:
        producer.close()
    assert "SASL SCRAM-SHA-256 re-authenticated as User:carol" in broker.output()
