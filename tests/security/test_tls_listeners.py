"""SSL listeners next to PLAINTEXT ones: client certificates, principals, advertised
endpoints per listener, and garbage on the TLS port — against real broker processes."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import time
import uuid

import pytest

from moldau.testing import BrokerProcess
from moldau.testing.tls import CertFiles, TestCA

pytestmark = pytest.mark.compat

_API_VERSIONS_V0 = struct.pack(">hhih", 18, 0, 7, -1)
"""ApiVersions v0 request header (correlation id 7, null client id) and empty body."""


def _host_port(bootstrap: str) -> tuple[str, int]:
    host, _, port = bootstrap.rpartition(":")
    return host, int(port)


def _context(ca: CertFiles, client: CertFiles | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.ca))
    if client is not None:
        context.load_cert_chain(str(client.certificate), str(client.key))
    return context


def _api_versions(sock: socket.socket) -> int:
    """Send ApiVersions v0 and return the response's correlation id."""
    sock.sendall(struct.pack(">i", len(_API_VERSIONS_V0)) + _API_VERSIONS_V0)
    (size,) = struct.unpack(">i", _read_exactly(sock, 4))
    (correlation_id,) = struct.unpack_from(">i", _read_exactly(sock, size))
    return int(correlation_id)


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed by the broker")
        data += chunk
    return data


def _tls_api_versions(bootstrap: str, context: ssl.SSLContext) -> int:
    """An ApiVersions round trip over TLS; raises OSError (SSLError) when refused."""
    host, port = _host_port(bootstrap)
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as sock,
    ):
        return _api_versions(sock)


def _confluent_ok(bootstrap: str, extra: dict[str, str]) -> bool:
    """Whether a confluent-kafka admin client gets Metadata over SSL with ``extra``."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(
        {"bootstrap.servers": bootstrap, "security.protocol": "SSL", "log_level": 0, **extra}
    )
    try:
        admin.list_topics(timeout=5)
    except KafkaException:
        return False
    return True


def _wait_for_log(broker: BrokerProcess, *texts: str, timeout_s: float = 10) -> bool:
    """Whether a line of the broker's log soon holds every one of ``texts``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(all(t in line for t in texts) for line in broker.output().splitlines()):
            return True
        time.sleep(0.1)
    return False


# -- ssl.client.auth=required -----------------------------------------------------------


def test_required_client_auth_refuses_a_client_without_a_certificate(
    mtls_broker: BrokerProcess, server_cert: CertFiles
) -> None:
    with pytest.raises(OSError):
        _tls_api_versions(mtls_broker.bootstrap_for("SSL"), _context(server_cert, None))
    assert _wait_for_log(
        mtls_broker, "on listener SSL from 127.0.0.1:", "PEER_DID_NOT_RETURN_A_CERTIFICATE"
    )
    assert not _confluent_ok(
        mtls_broker.bootstrap_for("SSL"), {"ssl.ca.location": str(server_cert.ca)}
    )


def test_required_client_auth_accepts_a_certificate_from_the_ca(
    mtls_broker: BrokerProcess, alice_cert: CertFiles
) -> None:
    assert (
        _tls_api_versions(mtls_broker.bootstrap_for("SSL"), _context(alice_cert, alice_cert)) == 7
    )
    assert _confluent_ok(mtls_broker.bootstrap_for("SSL"), alice_cert.confluent_config())


def test_a_certificate_from_another_ca_is_refused(
    mtls_broker: BrokerProcess, other_ca: TestCA, alice_cert: CertFiles
) -> None:
    mallory = other_ca.client_cert("mallory")
    # Trusts the broker, but presents a certificate the broker's CA did not sign.
    with pytest.raises(OSError):
        _tls_api_versions(mtls_broker.bootstrap_for("SSL"), _context(alice_cert, mallory))
    assert not _confluent_ok(
        mtls_broker.bootstrap_for("SSL"),
        {**mallory.confluent_config(), "ssl.ca.location": str(alice_cert.ca)},
    )
    assert "CN=mallory" not in mtls_broker.output()
    assert _wait_for_log(mtls_broker, "SSL handshake failed: CERTIFICATE_VERIFY_FAILED")


def test_the_plaintext_listener_needs_no_certificate(mtls_broker: BrokerProcess) -> None:
    host, port = _host_port(mtls_broker.bootstrap_for("PLAINTEXT"))
    with socket.create_connection((host, port), timeout=10) as sock:
        assert _api_versions(sock) == 7


# -- principal ----------------------------------------------------------------------------


def test_the_ssl_principal_is_the_certificate_subject(
    ssl_broker: BrokerProcess, tls_ca: TestCA
) -> None:
    name = f"user-{uuid.uuid4().hex[:6]}"
    cert = tls_ca.client_cert(name, unit="team-a")
    _tls_api_versions(ssl_broker.bootstrap_for("SSL"), _context(cert, cert))
    assert cert.principal == f"User:CN={name},OU=team-a,O=moldau-test"
    assert _wait_for_log(ssl_broker, f"authenticated by certificate as {cert.principal}")


def test_requested_client_auth_lets_a_client_in_without_a_certificate(
    ssl_broker: BrokerProcess, server_cert: CertFiles
) -> None:
    assert _tls_api_versions(ssl_broker.bootstrap_for("SSL"), _context(server_cert, None)) == 7


# -- listeners and advertised endpoints --------------------------------------------------


def _metadata_brokers(bootstrap: str, extra: dict[str, str]) -> set[str]:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, **extra})
    metadata = admin.list_topics(timeout=10)
    return {f"{b.host}:{b.port}" for b in metadata.brokers.values()}


def test_each_listener_advertises_its_own_endpoint(
    ssl_broker: BrokerProcess, alice_cert: CertFiles
) -> None:
    plaintext, tls = ssl_broker.bootstrap_for("PLAINTEXT"), ssl_broker.bootstrap_for("SSL")
    assert plaintext != tls
    assert _metadata_brokers(plaintext, {}) == {plaintext}
    assert _metadata_brokers(
        tls, {"security.protocol": "SSL", **alice_cert.confluent_config()}
    ) == {tls}


def test_plaintext_and_ssl_listeners_serve_the_same_data(
    ssl_broker: BrokerProcess, alice_cert: CertFiles
) -> None:
    from confluent_kafka import Consumer, Producer

    topic = f"both-{uuid.uuid4().hex[:8]}"
    producer = Producer({"bootstrap.servers": ssl_broker.bootstrap_for("PLAINTEXT")})
    producer.produce(topic, b"over plaintext")
    assert producer.flush(30) == 0
    tls_config = {
        "bootstrap.servers": ssl_broker.bootstrap_for("SSL"),
        "security.protocol": "SSL",
        **alice_cert.confluent_config(),
    }
    producer = Producer(tls_config)
    producer.produce(topic, b"over ssl")
    assert producer.flush(30) == 0
    got: list[bytes] = []
    for config in ({"bootstrap.servers": ssl_broker.bootstrap_for("PLAINTEXT")}, tls_config):
        consumer = Consumer(
            {**config, "group.id": f"g-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"}
        )
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        seen: list[bytes] = []
        try:
            while len(seen) < 2 and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    seen.append(message.value())
        finally:
            consumer.close()
        got += seen
    assert got == [b"over plaintext", b"over ssl"] * 2


# -- bad input on the TLS port -----------------------------------------------------------


def test_garbage_on_the_ssl_port_disturbs_no_other_connection(
    ssl_broker: BrokerProcess, alice_cert: CertFiles
) -> None:
    host, port = _host_port(ssl_broker.bootstrap_for("SSL"))
    context = _context(alice_cert, alice_cert)
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as good,
    ):
        assert _api_versions(good) == 7
        for garbage in (
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            struct.pack(">i", 12) + _API_VERSIONS_V0,  # plaintext Kafka on the TLS port
            bytes(range(256)) * 64,
            b"\x16\x03\x01\x7f\xff" + b"\x00" * 1000,  # a TLS record header, then nonsense
        ):
            with socket.create_connection((host, port), timeout=10) as bad:
                bad.sendall(garbage)
                bad.settimeout(10)
                with contextlib.suppress(OSError):
                    while bad.recv(4096):
                        pass  # the broker answers with a TLS alert or just closes
        # The established TLS connection and new ones are still served.
        assert _api_versions(good) == 7
    assert _tls_api_versions(ssl_broker.bootstrap_for("SSL"), context) == 7
    assert "Traceback" not in ssl_broker.output()
