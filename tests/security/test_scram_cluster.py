"""SCRAM credentials live in etcd in a cluster: a user created through one broker logs in on
another, and a deletion through the second locks the user out of the first."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import scramp
from kio.schema.alter_user_scram_credentials.v0.request import (
    AlterUserScramCredentialsRequest,
    ScramCredentialDeletion,
    ScramCredentialUpsertion,
)
from kio.schema.errors import ErrorCode
from kio.schema.sasl_authenticate.v2 import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v1 import SaslHandshakeRequest
from kio.static.primitive import i8, i32
from sasl_helpers import ADMIN_PASSWORD, SECRETS, sasl_broker_config

from moldau.broker.auth.scram import salted_password
from moldau.protocol.api import ApiKey
from moldau.testing import BrokerProcess
from moldau.testing.etcd import EtcdProcess
from moldau.testing.etcd_cluster import TEST_DEFAULTS
from moldau.testing.wire import WireClient

CLUSTER_PASSWORD = "cluster-Secret-2d9c"


@pytest.fixture(scope="module")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[BrokerProcess]]:
    base: Path = tmp_path_factory.mktemp("scram-cluster")
    etcd = EtcdProcess(base / "etcd")
    etcd.start()
    processes = [
        BrokerProcess(
            base / f"broker-{node}" / "data",
            node_id=node,
            config={**TEST_DEFAULTS, **sasl_broker_config()},
            extra_args=("--metadata", etcd.metadata_url),
        )
        for node in (1, 2)
    ]
    try:
        for process in processes:
            process.start()
        yield processes
    finally:
        logs = []
        for process in processes:
            process.close()
            logs.append(process.output())
        etcd.close()
    for log in logs:
        for secret in (*SECRETS, CLUSTER_PASSWORD):
            assert secret not in log


def _handshake(client: WireClient, mechanism: str) -> None:
    response = client.request(ApiKey.SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism=mechanism))
    assert response.error_code == ErrorCode.none


def _authenticate(client: WireClient, token: bytes) -> tuple[ErrorCode, bytes]:
    response = client.request(
        ApiKey.SASL_AUTHENTICATE, 2, SaslAuthenticateRequest(auth_bytes=token)
    )
    return response.error_code, response.auth_bytes


def _alter(broker: BrokerProcess, request: AlterUserScramCredentialsRequest) -> ErrorCode:
    with WireClient(broker.host, broker.port) as client:
        _handshake(client, "PLAIN")
        code, _ = _authenticate(client, f"\0admin\0{ADMIN_PASSWORD}".encode())
        assert code == ErrorCode.none
        response = client.request(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, 0, request)
        return response.results[0].error_code


def _scram_login(broker: BrokerProcess) -> bool:
    with WireClient(broker.host, broker.port) as client:
        _handshake(client, "SCRAM-SHA-512")
        scram = scramp.ScramClient(["SCRAM-SHA-512"], "hank", CLUSTER_PASSWORD)
        code, first = _authenticate(client, scram.get_client_first().encode())
        assert code == ErrorCode.none
        scram.set_server_first(first.decode())
        code, _ = _authenticate(client, scram.get_client_final().encode())
        return code == ErrorCode.none


def _eventually(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting until {what}")


def test_credentials_are_shared_by_the_cluster(brokers: list[BrokerProcess]) -> None:
    first, second = brokers
    salt = b"cluster-salt-123"
    upsertion = ScramCredentialUpsertion(
        name="hank",
        mechanism=i8(2),
        iterations=i32(4096),
        salt=salt,
        salted_password=salted_password("SCRAM-SHA-512", CLUSTER_PASSWORD, salt, 4096),
    )
    request = AlterUserScramCredentialsRequest(deletions=(), upsertions=(upsertion,))
    assert _alter(first, request) == ErrorCode.none
    _eventually(lambda: _scram_login(second), "broker 2 knows the user")
    deletion = ScramCredentialDeletion(name="hank", mechanism=i8(2))
    request = AlterUserScramCredentialsRequest(deletions=(deletion,), upsertions=())
    assert _alter(second, request) == ErrorCode.none
    _eventually(lambda: not _scram_login(first), "broker 1 forgot the user")
