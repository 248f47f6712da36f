"""Bad SASL input is refused with Kafka's error codes, logged without secrets, and costs the
broker nothing more: wrong or unknown credentials, unknown mechanisms, skipped handshakes,
forged SCRAM messages, oversized tokens and brute-force loops."""

from __future__ import annotations

import base64
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import scramp
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v1 import MetadataRequest
from kio.schema.sasl_authenticate.v2 import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v0 import SaslHandshakeRequest as SaslHandshakeRequestV0
from kio.schema.sasl_handshake.v1 import SaslHandshakeRequest
from sasl_helpers import (
    ALICE_PASSWORD,
    SCRAM_PASSWORD,
    SECRETS,
    WRONG_PASSWORD,
    add_scram_users,
    confluent_config,
    sasl_broker_config,
)

from moldau.protocol.api import ApiKey
from moldau.testing import BrokerProcess
from moldau.testing.wire import WireClient

GENERIC = "Authentication failed during authentication due to invalid credentials"


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    process = BrokerProcess(config=sasl_broker_config())
    add_scram_users(process.data_dir, {"carol": SCRAM_PASSWORD})
    with process:
        yield process
        log = process.output()
    for secret in SECRETS:
        assert secret not in log


def _client(broker: BrokerProcess) -> WireClient:
    return WireClient(broker.host, broker.port, timeout_s=10)


def _handshake(client: WireClient, mechanism: str) -> Any:
    return client.request(ApiKey.SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism=mechanism))


def _authenticate(client: WireClient, token: bytes) -> Any:
    return client.request(ApiKey.SASL_AUTHENTICATE, 2, SaslAuthenticateRequest(auth_bytes=token))


def _plain_login(broker: BrokerProcess, user: str, password: str) -> tuple[Any, WireClient]:
    client = _client(broker)
    assert _handshake(client, "PLAIN").error_code == ErrorCode.none
    response = _authenticate(client, f"\0{user}\0{password}".encode())
    return response, client


def test_plain_success_over_the_wire(broker: BrokerProcess) -> None:
    response, client = _plain_login(broker, "alice", ALICE_PASSWORD)
    with client:
        assert response.error_code == ErrorCode.none
        metadata = client.request(ApiKey.METADATA, 1, MetadataRequest(topics=()))
        assert metadata.brokers


@pytest.mark.parametrize(
    ("user", "password"), [("alice", WRONG_PASSWORD), ("mallory", WRONG_PASSWORD)]
)
def test_plain_bad_credentials_are_refused_alike(
    broker: BrokerProcess, user: str, password: str
) -> None:
    response, client = _plain_login(broker, user, password)
    with client:
        assert response.error_code == ErrorCode.sasl_authentication_failed
        assert response.error_message.startswith(GENERIC)
        assert user not in response.error_message
        assert client.is_closed_by_peer()
    assert f"(user '{user}')" in broker.output()


def test_plain_authzid_of_another_user_is_refused(broker: BrokerProcess) -> None:
    client = _client(broker)
    with client:
        _handshake(client, "PLAIN")
        response = _authenticate(client, f"admin\0alice\0{ALICE_PASSWORD}".encode())
        assert response.error_code == ErrorCode.sasl_authentication_failed
        assert client.is_closed_by_peer()


def test_unknown_mechanism_is_refused_with_the_enabled_list(broker: BrokerProcess) -> None:
    client = _client(broker)
    with client:
        response = _handshake(client, "GSSAPI")
        assert response.error_code == ErrorCode.unsupported_sasl_mechanism
        assert set(response.mechanisms) == {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
        assert client.is_closed_by_peer()


def test_authenticate_before_handshake_is_illegal(broker: BrokerProcess) -> None:
    client = _client(broker)
    with client:
        response = _authenticate(client, f"\0alice\0{ALICE_PASSWORD}".encode())
        assert response.error_code == ErrorCode.illegal_sasl_state
        assert client.is_closed_by_peer()


def test_metadata_before_authentication_closes_the_connection(broker: BrokerProcess) -> None:
    client = _client(broker)
    with client:
        client.send_raw(client.encode(ApiKey.METADATA, 1, MetadataRequest(topics=()), 1))
        assert client.is_closed_by_peer()
    assert "METADATA (client 'wire-test') before SASL authentication" in broker.output()


def test_metadata_after_handshake_but_before_authentication_closes(
    broker: BrokerProcess,
) -> None:
    client = _client(broker)
    with client:
        _handshake(client, "SCRAM-SHA-512")
        client.send_raw(client.encode(ApiKey.METADATA, 1, MetadataRequest(topics=()), 9))
        assert client.is_closed_by_peer()


def test_oversized_token_closes_the_connection(broker: BrokerProcess) -> None:
    client = _client(broker)
    with client:
        _handshake(client, "PLAIN")
        client.send_raw(struct.pack(">i", 524288 + 1) + b"\0" * 1024)
        assert client.is_closed_by_peer()
    assert "before SASL authentication (sasl.server.max.receive.size is 524288)" in (
        broker.output()
    )


def _scram_first(client: WireClient, user: str, password: str, mechanism: str) -> Any:
    assert _handshake(client, mechanism).error_code == ErrorCode.none
    scram = scramp.ScramClient([mechanism], user, password)
    response = _authenticate(client, scram.get_client_first().encode())
    assert response.error_code == ErrorCode.none
    scram.set_server_first(response.auth_bytes.decode())
    return scram


def test_scram_success_over_the_wire_checks_the_server_signature(broker: BrokerProcess) -> None:
    client = _client(broker)
    with client:
        scram = _scram_first(client, "carol", SCRAM_PASSWORD, "SCRAM-SHA-256")
        response = _authenticate(client, scram.get_client_final().encode())
        assert response.error_code == ErrorCode.none
        scram.set_server_final(response.auth_bytes.decode())  # raises on a bad signature


def _replace_attribute(message: str, key: str, value: str) -> str:
    return ",".join(
        f"{key}={value}" if part.startswith(f"{key}=") else part for part in message.split(",")
    )


def test_scram_bad_nonce_is_refused(broker: BrokerProcess) -> None:
    client = _client(broker)
    with client:
        scram = _scram_first(client, "carol", SCRAM_PASSWORD, "SCRAM-SHA-512")
        final = scram.get_client_final()
        nonce = next(p[2:] for p in final.split(",") if p.startswith("r="))
        forged = _replace_attribute(final, "r", nonce[:-4] + "AAAA")
        response = _authenticate(client, forged.encode())
        assert response.error_code == ErrorCode.sasl_authentication_failed
        assert response.error_message.startswith(GENERIC)
        assert client.is_closed_by_peer()
    assert "nonce" in broker.output()


def test_scram_bad_proof_is_refused(broker: BrokerProcess) -> None:
    client = _client(broker)
    with client:
        scram = _scram_first(client, "carol", SCRAM_PASSWORD, "SCRAM-SHA-512")
        final = scram.get_client_final()
        proof = base64.b64decode(next(p[2:] for p in final.split(",") if p.startswith("p=")))
        bad = bytes([proof[0] ^ 1]) + proof[1:]
        forged = _replace_attribute(final, "p", base64.b64encode(bad).decode())
        response = _authenticate(client, forged.encode())
        assert response.error_code == ErrorCode.sasl_authentication_failed
        assert client.is_closed_by_peer()


def test_scram_wrong_password_and_unknown_user_look_the_same(broker: BrokerProcess) -> None:
    """An unknown user gets a salt and iteration count like any user, and fails at the proof:
    the exchange does not reveal which user names exist."""
    answers = []
    for user, password in (("carol", WRONG_PASSWORD), ("nobody", WRONG_PASSWORD)):
        client = _client(broker)
        with client:
            scram = _scram_first(client, user, password, "SCRAM-SHA-256")
            response = _authenticate(client, scram.get_client_final().encode())
            answers.append((response.error_code, response.error_message))
            assert client.is_closed_by_peer()
    assert answers[0] == answers[1]
    assert answers[0][0] == ErrorCode.sasl_authentication_failed


def test_unknown_user_gets_the_same_salt_twice(broker: BrokerProcess) -> None:
    salts = []
    for _ in range(2):
        client = _client(broker)
        with client:
            _handshake(client, "SCRAM-SHA-256")
            scram = scramp.ScramClient(["SCRAM-SHA-256"], "ghost", WRONG_PASSWORD)
            response = _authenticate(client, scram.get_client_first().encode())
            first = response.auth_bytes.decode()
            salts.append(next(p for p in first.split(",") if p.startswith("s=")))
    assert salts[0] == salts[1]


def test_handshake_v0_raw_plain_tokens(broker: BrokerProcess) -> None:
    client = _client(broker)
    with client:
        response = client.request(
            ApiKey.SASL_HANDSHAKE, 0, SaslHandshakeRequestV0(mechanism="PLAIN")
        )
        assert response.error_code == ErrorCode.none
        token = f"\0alice\0{ALICE_PASSWORD}".encode()
        client.send_raw(struct.pack(">i", len(token)) + token)
        assert client.read_frame() == b""
        metadata = client.request(ApiKey.METADATA, 1, MetadataRequest(topics=()))
        assert metadata.brokers


def test_handshake_v0_raw_wrong_password_closes(broker: BrokerProcess) -> None:
    client = _client(broker)
    with client:
        client.request(ApiKey.SASL_HANDSHAKE, 0, SaslHandshakeRequestV0(mechanism="PLAIN"))
        token = f"\0alice\0{WRONG_PASSWORD}".encode()
        client.send_raw(struct.pack(">i", len(token)) + token)
        assert client.is_closed_by_peer()


def test_confluent_kafka_wrong_password_reports_authentication_error(
    broker: BrokerProcess,
) -> None:
    from confluent_kafka import KafkaError, Producer

    errors: list[KafkaError] = []
    producer = Producer(
        confluent_config(
            broker.bootstrap,
            "SCRAM-SHA-512",
            "carol",
            WRONG_PASSWORD,
            error_cb=errors.append,
            log_level=0,
        )
    )
    for _ in range(100):
        producer.poll(0.1)
        if errors:
            break
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors)
    assert any(GENERIC in e.str() for e in errors)


def test_brute_force_does_not_stop_good_clients(broker: BrokerProcess) -> None:
    from confluent_kafka import Producer

    refused: list[int] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        response, client = _plain_login(broker, "alice", f"{WRONG_PASSWORD}-{i}")
        client.close()
        with lock:
            refused.append(int(response.error_code))

    producer = Producer(confluent_config(broker.bootstrap, "PLAIN", "alice", ALICE_PASSWORD))
    with ThreadPoolExecutor(max_workers=10) as pool:
        futures = [pool.submit(attempt, i) for i in range(50)]
        for i in range(20):
            producer.produce("brute-force-survivor", f"m{i}".encode())
        assert producer.flush(30) == 0
        for future in futures:
            future.result()
    assert refused == [ErrorCode.sasl_authentication_failed] * 50
    response, client = _plain_login(broker, "alice", ALICE_PASSWORD)
    with client:
        assert response.error_code == ErrorCode.none


def test_sasl_requests_on_a_plaintext_listener_are_illegal() -> None:
    with BrokerProcess() as plaintext, _client(plaintext) as client:
        assert _handshake(client, "PLAIN").error_code == ErrorCode.illegal_sasl_state
        response = _authenticate(client, f"\0alice\0{ALICE_PASSWORD}".encode())
        assert response.error_code == ErrorCode.illegal_sasl_state
        # the connection stays usable: PLAINTEXT needs no login
        assert client.request(ApiKey.METADATA, 1, MetadataRequest(topics=())).brokers
