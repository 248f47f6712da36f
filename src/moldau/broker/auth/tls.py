"""TLS for SSL and SASL_SSL listeners: settings from PEM files, SSL contexts, the principal.

Kafka keeps keys in Java keystores; moldau takes PEM files under librdkafka's key names
(``ssl.certificate.location``, ``ssl.key.location``, ``ssl.key.password``,
``ssl.ca.location``) so that one set of files serves the broker and every client library.
Each key, like Kafka's, may be set per listener as ``listener.name.<listener>.<key>``.

The server side verifies client certificates against ``ssl.ca.location`` as
``ssl.client.auth`` says: ``required`` refuses a client without a trusted certificate during
the handshake, ``requested`` verifies one if the client sends it, ``none`` never asks. A
verified certificate's subject becomes the SSL connection's principal, written the way Java's
``X500Principal.getName()`` writes it (RFC 2253: the most specific name first, e.g.
``User:CN=alice,OU=eng,O=acme``), which is Kafka's default principal builder; without one
the principal is ``User:ANONYMOUS``. On SASL_SSL the principal comes from SASL instead.

The client side (``client_context``) is for inter-broker connections: it trusts
``ssl.ca.location``, checks the peer's host name unless
``ssl.endpoint.identification.algorithm`` is empty, and presents this broker's own
certificate, so a peer listener with ``ssl.client.auth=required`` lets it in.

Every problem with the files (missing, unreadable, not PEM, key not matching the certificate,
wrong key password) is a ``TlsConfigError`` — a ``ConfigError`` whose message is one line
naming the listener, the key and the file — raised when the broker builds its listeners, so
the broker refuses to start instead of failing its first handshake.
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from moldau.broker.auth.principal import ANONYMOUS, KafkaPrincipal
from moldau.log.config import ConfigError

if TYPE_CHECKING:
    from moldau.broker.config import BrokerConfig

__all__ = [
    "TlsConfigError",
    "TlsSettings",
    "client_context",
    "peer_principal",
    "server_context",
    "subject_dn",
    "tls_principal",
    "tls_settings",
]

log = logging.getLogger("moldau.security.tls")

_VERSIONS: Mapping[str, ssl.TLSVersion] = {
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH: Mapping[str, ssl.VerifyMode] = {
    "required": ssl.CERT_REQUIRED,
    "requested": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
}

# OpenSSL's long attribute names (what ``getpeercert()`` reports) to RFC 2253 keywords;
# attributes outside RFC 2253's list keep OpenSSL's name (Java would print the OID).
_RFC2253_KEYWORDS: Mapping[str, str] = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
_ESCAPED = frozenset(',+"\\<>;')


class TlsConfigError(ConfigError):
    """A TLS setting or file the broker cannot use; the message is one line."""


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """The TLS settings of one listener, after per-listener overrides."""

    listener_name: str
    certificate_location: str | None
    key_location: str | None
    key_password: str | None
    ca_location: str | None
    client_auth: str
    enabled_protocols: tuple[str, ...]
    protocol: str
    endpoint_identification_algorithm: str

    @property
    def minimum_version(self) -> ssl.TLSVersion:
        return min(_VERSIONS[p] for p in self.enabled_protocols)

    @property
    def maximum_version(self) -> ssl.TLSVersion:
        """Java's ``SSLContext.getInstance(ssl.protocol)`` caps the version it speaks."""
        highest = max(_VERSIONS[p] for p in self.enabled_protocols)
        cap = _VERSIONS.get(self.protocol)
        return highest if cap is None else min(highest, cap)

    def where(self, key: str) -> str:
        """How the user spells ``key`` for this listener, for error messages."""
        return f"{key} of listener {self.listener_name}"


def tls_settings(config: BrokerConfig, listener_name: str) -> TlsSettings:
    """The TLS settings of ``listener_name`` (``listener.name.<l>.ssl.*`` over ``ssl.*``)."""

    def value(key: str) -> Any:
        return config.listener_value(listener_name, key)

    def optional(key: str) -> str | None:
        raw = value(key)
        return str(raw).strip() or None if raw is not None else None

    protocols = tuple(p for p in str(value("ssl.enabled.protocols")).split(",") if p)
    if not protocols:
        raise TlsConfigError(f"ssl.enabled.protocols of listener {listener_name} is empty")
    return TlsSettings(
        listener_name=listener_name,
        certificate_location=optional("ssl.certificate.location"),
        key_location=optional("ssl.key.location"),
        key_password=optional("ssl.key.password"),
        ca_location=optional("ssl.ca.location"),
        client_auth=str(value("ssl.client.auth")),
        enabled_protocols=protocols,
        protocol=str(value("ssl.protocol")),
        endpoint_identification_algorithm=str(
            value("ssl.endpoint.identification.algorithm") or ""
        ).strip(),
    )


def _check_readable(settings: TlsSettings, key: str, path: str) -> None:
    if not os.path.exists(path):
        raise TlsConfigError(f"{settings.where(key)}: {path} does not exist")
    if os.path.isdir(path):
        raise TlsConfigError(f"{settings.where(key)}: {path} is a directory, not a PEM file")
    if not os.access(path, os.R_OK):
        raise TlsConfigError(f"{settings.where(key)}: {path} is not readable")


def _ssl_reason(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason).lower().replace("_", " ") if reason else str(exc)


def _load_identity(context: ssl.SSLContext, settings: TlsSettings, required: bool) -> None:
    """Load the certificate chain and key; the server needs them, a client may lack them."""
    certificate, key = settings.certificate_location, settings.key_location
    if certificate is None:
        if required:
            raise TlsConfigError(
                f"{settings.where('ssl.certificate.location')} is not set: an SSL listener "
                "needs a certificate (PEM)"
            )
        return
    _check_readable(settings, "ssl.certificate.location", certificate)
    if key is not None:
        _check_readable(settings, "ssl.key.location", key)
    password = settings.key_password
    try:
        context.load_cert_chain(certificate, key, password=password.encode() if password else "")
    except ssl.SSLError as exc:
        reason = _ssl_reason(exc)
        if "mismatch" in reason:
            problem = f"the key in {key} does not match the certificate in {certificate}"
        elif "bad decrypt" in reason or "bad password" in reason or _encrypted(key or certificate):
            problem = f"cannot decrypt the key in {key or certificate}: ssl.key.password is " + (
                "wrong" if password else "not set"
            )
        else:
            problem = f"cannot load {certificate} / {key or certificate}: {reason}"
        raise TlsConfigError(f"listener {settings.listener_name}: {problem}") from None
    except OSError as exc:
        raise TlsConfigError(
            f"listener {settings.listener_name}: cannot read {certificate}: {exc.strerror}"
        ) from None


def _encrypted(path: str) -> bool:
    """Whether a PEM file holds an encrypted private key (OpenSSL's error does not say)."""
    try:
        with open(path, "rb") as pem:
            return b"ENCRYPTED" in pem.read(1 << 16)
    except OSError:
        return False


def _load_ca(context: ssl.SSLContext, settings: TlsSettings) -> None:
    ca = settings.ca_location
    assert ca is not None
    _check_readable(settings, "ssl.ca.location", ca)
    try:
        context.load_verify_locations(cafile=ca)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(
            f"{settings.where('ssl.ca.location')}: {ca} holds no usable PEM certificate "
            f"({_ssl_reason(exc) if isinstance(exc, ssl.SSLError) else exc.strerror})"
        ) from None


def _base_context(purpose: int, settings: TlsSettings) -> ssl.SSLContext:
    context = ssl.SSLContext(purpose)
    context.minimum_version = settings.minimum_version
    context.maximum_version = settings.maximum_version
    if context.minimum_version > context.maximum_version:
        raise TlsConfigError(
            f"listener {settings.listener_name}: ssl.protocol {settings.protocol} is older than "
            f"every version in ssl.enabled.protocols ({','.join(settings.enabled_protocols)})"
        )
    return context


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """The server SSL context of an SSL or SASL_SSL listener (raises TlsConfigError)."""
    context = _base_context(ssl.PROTOCOL_TLS_SERVER, settings)
    _load_identity(context, settings, required=True)
    context.verify_mode = _CLIENT_AUTH[settings.client_auth]
    if settings.ca_location is not None:
        _load_ca(context, settings)
    elif settings.client_auth != "none":
        raise TlsConfigError(
            f"{settings.where('ssl.ca.location')} is not set, but ssl.client.auth is "
            f"{settings.client_auth}: client certificates need a CA to be verified against"
        )
    return context


def client_context(settings: TlsSettings) -> ssl.SSLContext:
    """An inter-broker client context: trust ``ssl.ca.location`` (else the system CAs), check
    host names per ``ssl.endpoint.identification.algorithm``, present our certificate."""
    context = _base_context(ssl.PROTOCOL_TLS_CLIENT, settings)
    algorithm = settings.endpoint_identification_algorithm.lower()
    if algorithm not in ("", "https"):
        raise TlsConfigError(
            f"{settings.where('ssl.endpoint.identification.algorithm')}: {algorithm!r} is not "
            "https or empty"
        )
    context.check_hostname = algorithm == "https"
    if settings.ca_location is not None:
        _load_ca(context, settings)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    _load_identity(context, settings, required=False)
    return context


# -- the principal of a TLS connection ----------------------------------------------------


def _escape(value: str) -> str:
    """RFC 2253 §2.4 escaping of an attribute value."""
    out = []
    for index, char in enumerate(value):
        leading = index == 0 and char in "# "
        trailing = index == len(value) - 1 and char == " "
        out.append("\\" + char if char in _ESCAPED or leading or trailing else char)
    return "".join(out)


def subject_dn(subject: Sequence[Sequence[tuple[str, str]]]) -> str:
    """RFC 2253 form of a ``getpeercert()['subject']``: RDNs most specific first (the
    reverse of the certificate's order), multi-valued RDNs joined by ``+``."""
    rdns = []
    for rdn in reversed(subject):
        parts = [f"{_RFC2253_KEYWORDS.get(name, name)}={_escape(value)}" for name, value in rdn]
        rdns.append("+".join(parts))
    return ",".join(rdns)


def peer_principal(ssl_object: Any) -> KafkaPrincipal:
    """The principal of an accepted TLS connection: ``User:<subject DN>`` of the verified
    client certificate, ``User:ANONYMOUS`` without one (``ssl_object`` from the transport's
    ``get_extra_info("ssl_object")``; None also gives ANONYMOUS)."""
    if ssl_object is None:
        return ANONYMOUS
    certificate = ssl_object.getpeercert()
    subject = certificate.get("subject") if certificate else None
    if not subject:
        return ANONYMOUS
    return KafkaPrincipal.user(subject_dn(subject))


def tls_principal(listener_name: str, peer: str, transport: Any) -> KafkaPrincipal:
    """The principal of a connection just accepted on an SSL listener, logged: at INFO when
    a client certificate authenticated it, at DEBUG for an anonymous one."""
    principal = peer_principal(transport.get_extra_info("ssl_object"))
    if principal == ANONYMOUS:
        log.debug("SSL connection from %s on %s without a client certificate", peer, listener_name)
    else:
        log.info(
            "SSL connection from %s on %s authenticated by certificate as %s",
            peer,
            listener_name,
            principal,
        )
    return principal
