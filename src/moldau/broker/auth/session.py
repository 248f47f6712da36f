"""The security state of one connection: its listener, protocol and principal."""

from __future__ import annotations

from dataclasses import dataclass

from moldau.broker.auth.principal import ANONYMOUS, KafkaPrincipal

SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})


@dataclass(slots=True)
class Session:
    """Mutable per-connection security state, owned by ``KafkaConnection``.

    A PLAINTEXT or SSL connection is authenticated the moment it is accepted (SSL takes its
    principal from the client certificate when there is one). A SASL connection starts
    unauthenticated; until the SASL exchange succeeds only ApiVersions, SaslHandshake and
    SaslAuthenticate may be sent. ``reauth_deadline`` (``time.monotonic()`` seconds) is set
    when ``connections.max.reauth.ms`` applies: after it, the connection must
    re-authenticate before anything else is served.
    """

    listener_name: str
    security_protocol: str
    client_host: str
    principal: KafkaPrincipal = ANONYMOUS
    authenticated: bool = True
    sasl_mechanism: str | None = None
    reauth_deadline: float | None = None

    @classmethod
    def accepted(
        cls,
        listener_name: str,
        security_protocol: str,
        client_host: str,
        principal: KafkaPrincipal = ANONYMOUS,
    ) -> Session:
        """The session of a connection that was just accepted on a listener."""
        return cls(
            listener_name=listener_name,
            security_protocol=security_protocol,
            client_host=client_host,
            principal=principal,
            authenticated=security_protocol not in SASL_PROTOCOLS,
        )

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in SASL_PROTOCOLS

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in TLS_PROTOCOLS
