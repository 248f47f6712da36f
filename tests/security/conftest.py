"""Shared fixtures of the security tests: a test CA with broker and client certificates, and
brokers with named PLAINTEXT / SSL listeners.

The CA and certificates are made once per session (``moldau.testing.tls``); each broker
fixture is module-scoped, so a module's tests share one broker process. A test that needs
another layout builds its own ``BrokerProcess(listeners=..., config=...)`` with
``ssl_broker_config``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from moldau.testing import BrokerProcess
from moldau.testing.tls import CertFiles, TestCA, ssl_broker_config

SSL_LISTENERS = {"PLAINTEXT": "PLAINTEXT", "SSL": "SSL"}


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="session")
def tls_ca(tls_dir: Path) -> TestCA:
    """The CA every test broker and client trusts."""
    return TestCA(tls_dir, "moldau")


@pytest.fixture(scope="session")
def other_ca(tls_dir: Path) -> TestCA:
    """A second CA nobody trusts: its certificates must be refused."""
    return TestCA(tls_dir, "stranger")


@pytest.fixture(scope="session")
def server_cert(tls_ca: TestCA) -> CertFiles:
    """The brokers' certificate (localhost and 127.0.0.1)."""
    return tls_ca.server_cert("broker")


@pytest.fixture(scope="session")
def alice_cert(tls_ca: TestCA) -> CertFiles:
    """A client certificate: subject CN=alice,OU=clients,O=moldau-test."""
    return tls_ca.client_cert("alice")


@pytest.fixture(scope="module")
def ssl_broker(server_cert: CertFiles) -> Iterator[BrokerProcess]:
    """A broker with a PLAINTEXT and an SSL listener; client certificates requested."""
    broker = BrokerProcess(
        listeners=SSL_LISTENERS,
        config=ssl_broker_config(server_cert, listener="SSL", client_auth="requested"),
    )
    with broker:
        yield broker


@pytest.fixture(scope="module")
def mtls_broker(server_cert: CertFiles) -> Iterator[BrokerProcess]:
    """A broker whose SSL listener requires a client certificate signed by ``tls_ca``."""
    broker = BrokerProcess(
        listeners=SSL_LISTENERS,
        config=ssl_broker_config(server_cert, listener="SSL", client_auth="required"),
    )
    with broker:
        yield broker
