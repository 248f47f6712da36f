"""Throwaway TLS material for tests: a CA, broker and client certificates as PEM files.

``TestCA(directory)`` makes a fresh certificate authority with ``trustme`` (a test
dependency) and writes its certificate to ``<directory>/<name>-ca.pem``; ``server_cert`` and
``client_cert`` issue leaf certificates signed by it and write each as a certificate file and
a key file. Every client library takes PEM files (``ssl.ca.location`` in librdkafka,
``ssl_cafile`` in kafka-python and aiokafka), and so does the broker, so one set of files
serves both ends.

A client certificate's subject is ``O=<organization>, OU=<unit>, CN=<common name>``; the
broker names such a client ``User:CN=<common name>,OU=<unit>,O=<organization>`` (RFC 2253
order), which ``CertFiles.principal`` spells out for assertions.

Nothing here imports the broker: the kit only writes files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CertFiles", "TestCA", "ssl_broker_config"]

DEFAULT_HOSTS = ("localhost", "127.0.0.1")
ORGANIZATION = "moldau-test"


@dataclass(frozen=True, slots=True)
class CertFiles:
    """One issued certificate: PEM paths of the certificate (leaf first, then any
    intermediates), of its private key, and of the CA that signed it."""

    certificate: Path
    key: Path
    ca: Path
    subject: str
    """RFC 2253 form of the subject, most specific first: ``CN=alice,OU=x,O=y``."""
    key_password: str | None = None

    @property
    def principal(self) -> str:
        """The Kafka principal a broker gives a client presenting this certificate."""
        return f"User:{self.subject}"

    def confluent_config(self) -> dict[str, str]:
        """librdkafka settings that present this certificate (add ``security.protocol``)."""
        config = {
            "ssl.ca.location": str(self.ca),
            "ssl.certificate.location": str(self.certificate),
            "ssl.key.location": str(self.key),
        }
        if self.key_password is not None:
            config["ssl.key.password"] = self.key_password
        return config


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "cert"


class TestCA:
    """A certificate authority for one test session; see the module docstring.

    ``__test__ = False`` keeps pytest from collecting the class despite its name.
    """

    __test__ = False

    def __init__(self, directory: Path, name: str = "moldau") -> None:
        import trustme

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self._ca: Any = trustme.CA(
            organization_name=ORGANIZATION, organization_unit_name=f"{name} test CA"
        )
        self.ca_path = self.directory / f"{_safe(name)}-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_path))

    def _issue(
        self,
        file_stem: str,
        hosts: tuple[str, ...],
        common_name: str | None,
        unit: str,
        key_password: str | None,
    ) -> CertFiles:
        leaf = self._ca.issue_cert(
            *hosts,
            common_name=common_name,
            organization_name=ORGANIZATION,
            organization_unit_name=unit,
        )
        stem = self.directory / _safe(file_stem)
        certificate = stem.with_name(stem.name + "-cert.pem")
        key = stem.with_name(stem.name + "-key.pem")
        with certificate.open("wb") as out:
            for blob in leaf.cert_chain_pems:
                out.write(blob.bytes())
        key_bytes = leaf.private_key_pem.bytes()
        if key_password is not None:
            key_bytes = _encrypt_key(key_bytes, key_password)
        key.write_bytes(key_bytes)
        subject = f"OU={unit},O={ORGANIZATION}"
        if common_name is not None:
            subject = f"CN={common_name},{subject}"
        return CertFiles(certificate, key, self.ca_path, subject, key_password)

    def server_cert(
        self,
        name: str = "broker",
        hosts: tuple[str, ...] = DEFAULT_HOSTS,
        *,
        key_password: str | None = None,
    ) -> CertFiles:
        """A broker certificate valid for ``hosts`` (host names and IP addresses); it can
        also act as a client certificate (inter-broker connections)."""
        return self._issue(f"{self.name}-{name}", hosts, name, "brokers", key_password)

    def client_cert(
        self, common_name: str, *, unit: str = "clients", key_password: str | None = None
    ) -> CertFiles:
        """A client certificate with subject ``CN=<common_name>,OU=<unit>,O=moldau-test``."""
        return self._issue(f"{self.name}-client-{common_name}", (), common_name, unit, key_password)


def _encrypt_key(pem: bytes, password: str) -> bytes:
    """The same private key, PEM-encoded and encrypted with ``password``."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    )


def ssl_broker_config(
    server: CertFiles, *, listener: str | None = None, client_auth: str | None = None
) -> dict[str, str]:
    """Broker ``ssl.*`` settings for ``server``'s files — for every TLS listener, or, with
    ``listener``, as ``listener.name.<listener>.ssl.*`` overrides for that one."""
    prefix = f"listener.name.{listener.lower()}." if listener else ""
    config = {
        f"{prefix}ssl.certificate.location": str(server.certificate),
        f"{prefix}ssl.key.location": str(server.key),
        f"{prefix}ssl.ca.location": str(server.ca),
    }
    if server.key_password is not None:
        config[f"{prefix}ssl.key.password"] = server.key_password
    if client_auth is not None:
        config[f"{prefix}ssl.client.auth"] = client_auth
    return config
