"""SASL on the broker: listener settings, the mechanism registry, and one connection's state.

Kafka's server-side flow (``SaslServerAuthenticator``), which ``SaslAuthenticator`` follows:

1. ``SaslHandshake`` names a mechanism. An enabled one moves the connection to
   AUTHENTICATING; an unknown one is answered UNSUPPORTED_SASL_MECHANISM with the enabled
   list, and the connection is closed. With SaslHandshake v1 the tokens that follow travel in
   ``SaslAuthenticate`` requests; with v0 (pre-KIP-152 clients) they follow as raw
   length-prefixed frames, which the connection hands to ``evaluate_raw``.
2. ``SaslAuthenticate`` carries the mechanism's tokens. Success sets the session's principal
   and mechanism and, with ``connections.max.reauth.ms``, its ``reauth_deadline``; failure is
   SASL_AUTHENTICATION_FAILED with a message that says nothing about *why* (unknown user and
   wrong password read the same), and the connection is closed after
   ``connection.failed.authentication.delay.ms``. The reason goes to the broker log only.
3. Re-authentication (KIP-368): an authenticated connection may send SaslHandshake +
   SaslAuthenticate again at any time, with the same mechanism; it must end with the same
   principal, and refreshes the deadline. Past the deadline, the connection gates everything
   except the re-authentication requests.

A mechanism is a ``SaslServer``: ``evaluate(token) -> challenge`` until ``complete``, raising
``SaslAuthenticationError`` to refuse. ``MECHANISMS`` maps a name to its factory; the PLAIN
and SCRAM servers live in ``plain.py`` and ``scram.py``.

The per-connection authenticator is found from the request's ``Session`` through
``authenticator_of``: the connection registers it when a SASL connection is accepted, and
drops it when the connection goes away (``Session`` itself is a plain slotted dataclass).
"""

from __future__ import annotations

import enum
import logging
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode

from moldau.broker.auth.principal import KafkaPrincipal
from moldau.broker.auth.session import Session
from moldau.cluster.security_state import ScramCredential

if TYPE_CHECKING:
    from moldau.broker.config import BrokerConfig

log = logging.getLogger("moldau.security.sasl")

SUPPORTED_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
"""Every mechanism moldau implements (``sasl.enabled.mechanisms`` picks among them)."""

CredentialLookup = Callable[[str, str], ScramCredential | None]
"""``(user, mechanism) -> ScramCredential | None``: the current SCRAM credential of a user."""


class SaslAuthenticationError(Exception):
    """A refused login. ``reason`` is for the broker's log and never holds a secret; the
    client only ever sees ``client_message``, the same for every cause."""

    def __init__(self, reason: str, username: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.username = username


def client_failure_message(mechanism: str) -> str:
    """What a client is told for any failed login (Kafka's wording, which reveals nothing)."""
    return (
        "Authentication failed during authentication due to invalid credentials with SASL "
        f"mechanism {mechanism}"
    )


class SaslServer(ABC):
    """The server side of one SASL mechanism exchange on one connection."""

    mechanism: str = ""

    def __init__(self) -> None:
        self.complete = False
        self.username: str | None = None
        """The user the client claims (known once its first token is parsed); the
        authorization id once ``complete``."""

    @abstractmethod
    def evaluate(self, token: bytes) -> bytes:
        """Consume one client token, return the next challenge (b"" when none).

        Raises ``SaslAuthenticationError`` to refuse the login.
        """


@dataclass(frozen=True, slots=True)
class ListenerSaslConfig:
    """The SASL settings of one listener, from ``listener.name.<l>.<key>`` or ``<key>``."""

    listener_name: str
    enabled_mechanisms: tuple[str, ...]
    max_receive_size: int
    reauth_ms: int
    failed_auth_delay_ms: int
    plain_jaas_config: str | None = field(repr=False)
    plain_users_file: Path | None

    @classmethod
    def from_config(cls, config: BrokerConfig, listener_name: str) -> ListenerSaslConfig:
        def value(name: str) -> Any:
            return config.listener_value(listener_name, name)

        raw = value("sasl.enabled.mechanisms") or ""
        items = raw if isinstance(raw, (list, tuple)) else str(raw).split(",")
        mechanisms = tuple(m.strip().upper() for m in items if m.strip())
        jaas = value("plain.sasl.jaas.config") or value("sasl.jaas.config")
        users_file = value("moldau.sasl.plain.users.file")
        return cls(
            listener_name=listener_name,
            enabled_mechanisms=tuple(m for m in mechanisms if m in SUPPORTED_MECHANISMS),
            max_receive_size=int(value("sasl.server.max.receive.size")),
            reauth_ms=int(value("connections.max.reauth.ms")),
            failed_auth_delay_ms=int(value("connection.failed.authentication.delay.ms")),
            plain_jaas_config=str(jaas) if jaas else None,
            plain_users_file=Path(users_file) if users_file else None,
        )


_listener_configs: weakref.WeakKeyDictionary[BrokerConfig, dict[str, ListenerSaslConfig]] = (
    weakref.WeakKeyDictionary()
)


def listener_sasl_config(config: BrokerConfig, listener_name: str) -> ListenerSaslConfig:
    """``ListenerSaslConfig.from_config``, built once per (config, listener)."""
    per_listener = _listener_configs.setdefault(config, {})
    found = per_listener.get(listener_name)
    if found is None:
        found = per_listener[listener_name] = ListenerSaslConfig.from_config(config, listener_name)
    return found


MechanismFactory = Callable[[ListenerSaslConfig, CredentialLookup], SaslServer]


def _mechanisms() -> Mapping[str, MechanismFactory]:
    from moldau.broker.auth.plain import PlainSaslServer
    from moldau.broker.auth.scram import ScramSaslServer

    def plain(config: ListenerSaslConfig, _credentials: CredentialLookup) -> SaslServer:
        return PlainSaslServer.for_listener(config)

    def scram(mechanism: str) -> MechanismFactory:
        def make(_config: ListenerSaslConfig, credentials: CredentialLookup) -> SaslServer:
            return ScramSaslServer(mechanism, credentials)

        return make

    return {
        "PLAIN": plain,
        "SCRAM-SHA-256": scram("SCRAM-SHA-256"),
        "SCRAM-SHA-512": scram("SCRAM-SHA-512"),
    }


class SaslState(enum.Enum):
    """Where one connection is in the SASL exchange.

    HANDSHAKE: waiting for SaslHandshake (a new connection; allowed next: SaslHandshake).
    AUTHENTICATING: a mechanism was chosen; tokens flow until it completes or fails.
    AUTHENTICATED: logged in; a SaslHandshake starts re-authentication (→ AUTHENTICATING).
    FAILED: refused; the connection is being closed and nothing more is served.
    """

    HANDSHAKE = "handshake"
    AUTHENTICATING = "authenticating"
    AUTHENTICATED = "authenticated"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class AuthenticateResult:
    """What a SaslAuthenticate is answered with."""

    error_code: ErrorCode
    error_message: str | None
    auth_bytes: bytes
    session_lifetime_ms: int


class SaslAuthenticator:
    """One SASL connection's state machine (see the module docstring).

    ``failed`` tells the connection to answer the current request, wait
    ``config.failed_auth_delay_ms`` and close. ``raw_tokens`` is True while a SaslHandshake
    v0 exchange expects unframed tokens.
    """

    def __init__(
        self,
        session: Session,
        config: ListenerSaslConfig,
        credentials: CredentialLookup,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.config = config
        self._credentials = credentials
        self._clock = clock
        self.state = SaslState.HANDSHAKE
        self.server: SaslServer | None = None
        self.raw_tokens = False
        self._reauthenticating = False

    @property
    def failed(self) -> bool:
        return self.state is SaslState.FAILED

    # -- SaslHandshake -----------------------------------------------------------------

    def handshake(self, mechanism: str, version: int) -> tuple[ErrorCode, tuple[str, ...]]:
        """Answer a SaslHandshake: (error code, enabled mechanisms)."""
        enabled = self.config.enabled_mechanisms
        if self.state is SaslState.AUTHENTICATED:
            if version < 1:
                return self._fail_handshake(
                    ErrorCode.illegal_sasl_state, "SaslHandshake v0 cannot re-authenticate"
                )
            if mechanism != self.session.sasl_mechanism:
                return self._fail_handshake(
                    ErrorCode.illegal_sasl_state,
                    f"re-authentication may not change the mechanism "
                    f"({self.session.sasl_mechanism} to {mechanism!r})",
                )
            self._reauthenticating = True
        elif self.state is not SaslState.HANDSHAKE:
            return self._fail_handshake(
                ErrorCode.illegal_sasl_state, f"unexpected SaslHandshake in state {self.state}"
            )
        if mechanism not in enabled:
            return self._fail_handshake(
                ErrorCode.unsupported_sasl_mechanism,
                f"client asked for mechanism {mechanism!r}, enabled are {', '.join(enabled)}",
            )
        self.server = _mechanisms()[mechanism](self.config, self._credentials)
        self.state = SaslState.AUTHENTICATING
        self.raw_tokens = version == 0
        return ErrorCode.none, enabled

    def _fail_handshake(self, code: ErrorCode, reason: str) -> tuple[ErrorCode, tuple[str, ...]]:
        log.info(
            "SASL handshake refused on listener %s from %s: %s",
            self.config.listener_name,
            self.session.client_host,
            reason,
        )
        self.state = SaslState.FAILED
        return code, self.config.enabled_mechanisms

    # -- SaslAuthenticate ----------------------------------------------------------------

    def authenticate(self, token: bytes) -> AuthenticateResult:
        """Answer a SaslAuthenticate carrying ``token``."""
        if self.state is not SaslState.AUTHENTICATING or self.server is None or self.raw_tokens:
            self.state = SaslState.FAILED
            log.info(
                "SASL authentication refused on listener %s from %s: SaslAuthenticate "
                "without a SaslHandshake v1 before it",
                self.config.listener_name,
                self.session.client_host,
            )
            return AuthenticateResult(
                ErrorCode.illegal_sasl_state,
                "Unexpected SaslAuthenticate request: send SaslHandshake first",
                b"",
                0,
            )
        server = self.server
        try:
            challenge = server.evaluate(token)
        except SaslAuthenticationError as exc:
            self._log_failure(server, exc)
            self.state = SaslState.FAILED
            return AuthenticateResult(
                ErrorCode.sasl_authentication_failed,
                client_failure_message(server.mechanism),
                b"",
                0,
            )
        if not server.complete:
            return AuthenticateResult(ErrorCode.none, None, challenge, 0)
        return self._complete(server, challenge)

    def evaluate_raw(self, token: bytes) -> bytes | None:
        """A SaslHandshake v0 token (unframed). Returns the raw challenge to send, or None
        when the login failed (the connection then closes, as Kafka does: v0 has no way to
        carry an error)."""
        server = self.server
        if self.state is not SaslState.AUTHENTICATING or server is None:
            self.state = SaslState.FAILED
            return None
        try:
            challenge = server.evaluate(token)
        except SaslAuthenticationError as exc:
            self._log_failure(server, exc)
            self.state = SaslState.FAILED
            return None
        if server.complete:
            result = self._complete(server, challenge)
            if result.error_code != ErrorCode.none:
                return None
        return challenge

    def _complete(self, server: SaslServer, challenge: bytes) -> AuthenticateResult:
        principal = KafkaPrincipal.user(server.username or "")
        session = self.session
        if self._reauthenticating and principal != session.principal:
            self._log_failure(
                server,
                SaslAuthenticationError(
                    f"re-authentication as {principal} on a connection of {session.principal}",
                    server.username,
                ),
            )
            self.state = SaslState.FAILED
            return AuthenticateResult(
                ErrorCode.sasl_authentication_failed,
                "Cannot change principals during re-authentication",
                b"",
                0,
            )
        lifetime_ms = self.config.reauth_ms
        session.principal = principal
        session.authenticated = True
        session.sasl_mechanism = server.mechanism
        session.reauth_deadline = self._clock() + lifetime_ms / 1000 if lifetime_ms > 0 else None
        self.state = SaslState.AUTHENTICATED
        self.raw_tokens = False
        self.server = None
        log.info(
            "SASL %s %s as %s on listener %s from %s",
            server.mechanism,
            "re-authenticated" if self._reauthenticating else "authenticated",
            principal,
            self.config.listener_name,
            session.client_host,
        )
        self._reauthenticating = False
        return AuthenticateResult(ErrorCode.none, None, challenge, lifetime_ms)

    def _log_failure(self, server: SaslServer, exc: SaslAuthenticationError) -> None:
        username = exc.username if exc.username is not None else server.username
        log.info(
            "SASL %s authentication failed on listener %s from %s (user %r): %s",
            server.mechanism,
            self.config.listener_name,
            self.session.client_host,
            username,
            exc.reason,
        )

    # -- gating --------------------------------------------------------------------------

    def session_expired(self) -> bool:
        """True once an authenticated session is past ``reauth_deadline``."""
        deadline = self.session.reauth_deadline
        return deadline is not None and self._clock() >= deadline


_by_session: dict[int, SaslAuthenticator] = {}


def attach(authenticator: SaslAuthenticator) -> None:
    """Make ``authenticator`` the one ``authenticator_of(its session)`` finds."""
    _by_session[id(authenticator.session)] = authenticator


def detach(authenticator: SaslAuthenticator) -> None:
    if _by_session.get(id(authenticator.session)) is authenticator:
        del _by_session[id(authenticator.session)]


def authenticator_of(session: Session) -> SaslAuthenticator | None:
    """The SASL state of the connection ``session`` belongs to; None off SASL listeners."""
    found = _by_session.get(id(session))
    return found if found is not None and found.session is session else None
