"""TLS settings and their failures: per-listener overrides, the RFC 2253 principal, the
inter-broker client settings, and one-line startup errors for bad PEM files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from moldau.broker.auth.tls import (
    TlsConfigError,
    client_context,
    peer_principal,
    server_context,
    subject_dn,
    tls_settings,
)
from moldau.broker.config import BrokerConfig
from moldau.broker.listeners import BrokerListeners, inter_broker_listener_name
from moldau.log.config import ConfigError
from moldau.testing import free_port
from moldau.testing.tls import CertFiles, TestCA, ssl_broker_config

TWO_LISTENERS = {
    "listeners": "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SSL:SSL",
}


def test_per_listener_keys_override_the_broker_wide_ones(server_cert: CertFiles) -> None:
    config = BrokerConfig(
        {
            **TWO_LISTENERS,
            **ssl_broker_config(server_cert),
            "listener.name.ssl.ssl.client.auth": "required",
            "listener.name.ssl.ssl.enabled.protocols": "TLSv1.3",
        }
    )
    settings = tls_settings(config, "SSL")
    assert settings.client_auth == "required"
    assert settings.enabled_protocols == ("TLSv1.3",)
    assert settings.certificate_location == str(server_cert.certificate)
    assert tls_settings(config, "PLAINTEXT").client_auth == "none"
    context = server_context(settings)
    assert context.minimum_version.name == "TLSv1_3"


def test_ssl_protocol_caps_the_highest_version(server_cert: CertFiles) -> None:
    config = BrokerConfig({**ssl_broker_config(server_cert), "ssl.protocol": "TLSv1.2"})
    context = server_context(tls_settings(config, "PLAINTEXT"))
    assert context.maximum_version.name == "TLSv1_2"


def test_tls_older_than_1_2_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"ssl\.enabled\.protocols"):
        BrokerConfig({"ssl.enabled.protocols": "TLSv1.1,TLSv1.2"})
    with pytest.raises(ConfigError, match=r"ssl\.client\.auth"):
        BrokerConfig({"ssl.client.auth": "sometimes"})


def test_subject_dn_is_rfc2253_most_specific_first() -> None:
    subject = (
        (("countryName", "DE"),),
        (("organizationName", "Acme, Inc."),),
        (("organizationalUnitName", "eng"), ("userId", "7")),
        (("commonName", " alice+bob "),),
    )
    assert subject_dn(subject) == "CN=\\ alice\\+bob\\ ,OU=eng+UID=7,O=Acme\\, Inc.,C=DE"


class _FakeSslObject:
    def __init__(self, certificate: dict[str, object]) -> None:
        self._certificate = certificate

    def getpeercert(self) -> dict[str, object]:
        return self._certificate


def test_principal_without_a_client_certificate_is_anonymous() -> None:
    assert str(peer_principal(None)) == "User:ANONYMOUS"
    assert str(peer_principal(_FakeSslObject({}))) == "User:ANONYMOUS"
    named = _FakeSslObject({"subject": ((("commonName", "alice"),),)})
    assert str(peer_principal(named)) == "User:CN=alice"


def test_client_context_checks_host_names_unless_turned_off(server_cert: CertFiles) -> None:
    config = BrokerConfig(ssl_broker_config(server_cert))
    assert client_context(tls_settings(config, "PLAINTEXT")).check_hostname
    off = BrokerConfig(
        {**ssl_broker_config(server_cert), "ssl.endpoint.identification.algorithm": ""}
    )
    assert not client_context(tls_settings(off, "PLAINTEXT")).check_hostname


# -- inter-broker listener ------------------------------------------------------------------


def test_inter_broker_listener_defaults_to_the_protocol_name_else_the_client_listener() -> None:
    assert inter_broker_listener_name(BrokerConfig(TWO_LISTENERS)) == "PLAINTEXT"
    only_ssl = BrokerConfig({"listeners": "SSL://127.0.0.1:9093"})
    assert inter_broker_listener_name(only_ssl) == "SSL"
    named = BrokerConfig({**TWO_LISTENERS, "inter.broker.listener.name": "ssl"})
    assert inter_broker_listener_name(named) == "SSL"


def test_inter_broker_listener_must_be_advertised() -> None:
    with pytest.raises(ConfigError, match="no listener INTERNAL"):
        inter_broker_listener_name(
            BrokerConfig({**TWO_LISTENERS, "inter.broker.listener.name": "INTERNAL"})
        )
    with pytest.raises(ConfigError, match="Only one of"):
        inter_broker_listener_name(
            BrokerConfig(
                {
                    **TWO_LISTENERS,
                    "inter.broker.listener.name": "SSL",
                    "security.inter.broker.protocol": "SSL",
                }
            )
        )


def test_sasl_inter_broker_credentials_come_from_the_listener_jaas_config(
    server_cert: CertFiles,
) -> None:
    base = {
        "listeners": "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9093",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "moldau.metadata": "etcd://127.0.0.1:2379",
        **ssl_broker_config(server_cert),
    }
    # A single node (no moldau.metadata) has no peers and needs no inter-broker login.
    single = {k: v for k, v in base.items() if k != "moldau.metadata"}
    assert BrokerListeners(BrokerConfig(single)).inter_broker_security.protocol == "PLAINTEXT"
    with pytest.raises(ConfigError, match=r"scram-sha-512\.sasl\.jaas\.config is not set"):
        BrokerListeners(BrokerConfig(base))
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="broker" password="s3cret";'
    )
    listeners = BrokerListeners(
        BrokerConfig({**base, "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas})
    )
    security = listeners.inter_broker_security
    assert security.protocol == "SASL_SSL"
    assert (security.sasl_mechanism, security.sasl_username) == ("SCRAM-SHA-512", "broker")
    assert security.sasl_password == "s3cret"
    assert "s3cret" not in repr(security)


# -- startup errors --------------------------------------------------------------------------


def _start_broker(tmp_path: Path, settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    args = [
        sys.executable,
        "-m",
        "moldau",
        "broker",
        "--data-dir",
        str(tmp_path / "data"),
        "--set",
        f"listeners=SSL://127.0.0.1:{free_port()}",
        "--set",
        "metrics.listen=",
    ]
    for key, value in settings.items():
        args += ["--set", f"{key}={value}"]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_missing_certificate_file_stops_the_broker(
    tmp_path: Path, server_cert: CertFiles
) -> None:
    settings = ssl_broker_config(server_cert)
    settings["ssl.certificate.location"] = str(tmp_path / "nope.pem")
    line = _one_error_line(_start_broker(tmp_path, settings))
    assert "ssl.certificate.location of listener SSL" in line
    assert "does not exist" in line


def test_a_key_that_does_not_match_the_certificate_stops_the_broker(
    tmp_path: Path, server_cert: CertFiles, alice_cert: CertFiles
) -> None:
    settings = {**ssl_broker_config(server_cert), "ssl.key.location": str(alice_cert.key)}
    line = _one_error_line(_start_broker(tmp_path, settings))
    assert "does not match the certificate" in line


def test_an_encrypted_key_needs_its_password(tmp_path: Path, tls_ca: TestCA) -> None:
    locked = tls_ca.server_cert("locked", key_password="k3y-pass")
    settings = ssl_broker_config(locked)
    settings["ssl.key.password"] = "Wr0ng-Pass-91"
    line = _one_error_line(_start_broker(tmp_path, settings))
    assert "ssl.key.password" in line
    assert "Wr0ng-Pass-91" not in line
    # With the right password the context builds.
    config = BrokerConfig({**ssl_broker_config(locked), "listeners": "SSL://127.0.0.1:9093"})
    server_context(tls_settings(config, "SSL"))


def test_a_ca_file_that_is_not_pem_stops_the_broker(tmp_path: Path, server_cert: CertFiles) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    settings = {**ssl_broker_config(server_cert), "ssl.ca.location": str(junk)}
    line = _one_error_line(_start_broker(tmp_path, settings))
    assert "ssl.ca.location of listener SSL" in line


def test_client_auth_without_a_ca_is_refused(server_cert: CertFiles) -> None:
    config = BrokerConfig(
        {
            "listeners": "SSL://127.0.0.1:9093",
            "ssl.certificate.location": str(server_cert.certificate),
            "ssl.key.location": str(server_cert.key),
            "ssl.client.auth": "required",
        }
    )
    with pytest.raises(TlsConfigError, match=r"ssl\.ca\.location"):
        BrokerListeners(config)
