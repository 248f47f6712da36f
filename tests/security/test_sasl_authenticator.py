"""The per-connection SASL state machine, with a fake clock (no broker)."""

from __future__ import annotations

import pytest
from kio.schema.errors import ErrorCode

from moldau.broker.auth.sasl import (
    ListenerSaslConfig,
    SaslAuthenticator,
    SaslState,
    attach,
    authenticator_of,
    detach,
)
from moldau.broker.auth.session import Session
from moldau.broker.config import BrokerConfig, ConfigError

JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'user_alice="pw-a" user_bob="pw-b";'
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _config(**extra: str) -> ListenerSaslConfig:
    properties = {"listeners": "SASL_PLAINTEXT://127.0.0.1:0", "sasl.jaas.config": JAAS}
    properties.update(extra)
    return ListenerSaslConfig.from_config(BrokerConfig(properties), "SASL_PLAINTEXT")


def _authenticator(clock: Clock | None = None, **extra: str) -> SaslAuthenticator:
    session = Session.accepted("SASL_PLAINTEXT", "SASL_PLAINTEXT", "10.0.0.1")
    return SaslAuthenticator(
        session, _config(**extra), lambda user, mechanism: None, clock=clock or Clock()
    )


def test_listener_settings_and_overrides() -> None:
    config = _config(
        **{
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "connections.max.reauth.ms": "5000",
        }
    )
    assert config.enabled_mechanisms == ("SCRAM-SHA-512",)
    assert config.reauth_ms == 5000
    assert config.max_receive_size == 524288
    assert config.failed_auth_delay_ms == 100
    assert "pw-a" not in repr(config)


def test_per_mechanism_jaas_override_wins() -> None:
    config = _config(
        **{
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required user_zed=z;"
            )
        }
    )
    assert config.plain_jaas_config is not None and "user_zed" in config.plain_jaas_config


def test_login_sets_the_session() -> None:
    clock = Clock()
    auth = _authenticator(clock, **{"connections.max.reauth.ms": "2000"})
    assert not auth.session.authenticated
    assert auth.handshake("PLAIN", 1) == (
        ErrorCode.none,
        ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
    )
    result = auth.authenticate(b"\0alice\0pw-a")
    assert result.error_code == ErrorCode.none
    assert result.session_lifetime_ms == 2000
    session = auth.session
    assert (str(session.principal), session.authenticated, session.sasl_mechanism) == (
        "User:alice",
        True,
        "PLAIN",
    )
    assert session.reauth_deadline == clock.now + 2
    assert not auth.session_expired()
    clock.now += 2
    assert auth.session_expired()


def test_no_reauth_deadline_by_default() -> None:
    auth = _authenticator()
    auth.handshake("PLAIN", 1)
    assert auth.authenticate(b"\0alice\0pw-a").session_lifetime_ms == 0
    assert auth.session.reauth_deadline is None
    assert not auth.session_expired()


def test_failures_fail_the_connection() -> None:
    auth = _authenticator()
    auth.handshake("PLAIN", 1)
    result = auth.authenticate(b"\0alice\0nope")
    assert result.error_code == ErrorCode.sasl_authentication_failed
    assert auth.failed
    assert not auth.session.authenticated
    assert str(auth.session.principal) == "User:ANONYMOUS"


def test_unknown_mechanism_and_out_of_order_requests() -> None:
    auth = _authenticator()
    assert auth.handshake("GSSAPI", 1)[0] == ErrorCode.unsupported_sasl_mechanism
    assert auth.state is SaslState.FAILED
    auth = _authenticator()
    assert auth.authenticate(b"x").error_code == ErrorCode.illegal_sasl_state
    auth = _authenticator()
    auth.handshake("PLAIN", 1)
    assert auth.handshake("PLAIN", 1)[0] == ErrorCode.illegal_sasl_state


def test_disabled_mechanism_is_unsupported() -> None:
    auth = _authenticator(**{"sasl.enabled.mechanisms": "SCRAM-SHA-256"})
    code, mechanisms = auth.handshake("PLAIN", 1)
    assert (code, mechanisms) == (ErrorCode.unsupported_sasl_mechanism, ("SCRAM-SHA-256",))


def test_reauthentication_keeps_the_principal() -> None:
    clock = Clock()
    auth = _authenticator(clock, **{"connections.max.reauth.ms": "1000"})
    auth.handshake("PLAIN", 1)
    auth.authenticate(b"\0alice\0pw-a")
    clock.now += 5
    assert auth.session_expired()
    auth.handshake("PLAIN", 1)
    assert auth.authenticate(b"\0alice\0pw-a").error_code == ErrorCode.none
    assert not auth.session_expired()
    auth.handshake("PLAIN", 1)
    assert auth.authenticate(b"\0bob\0pw-b").error_code == ErrorCode.sasl_authentication_failed
    assert auth.failed


def test_handshake_v0_uses_raw_tokens() -> None:
    auth = _authenticator()
    auth.handshake("PLAIN", 0)
    assert auth.raw_tokens
    assert auth.authenticate(b"\0alice\0pw-a").error_code == ErrorCode.illegal_sasl_state
    auth = _authenticator()
    auth.handshake("PLAIN", 0)
    assert auth.evaluate_raw(b"\0alice\0pw-a") == b""
    assert auth.session.authenticated and not auth.raw_tokens
    auth = _authenticator()
    auth.handshake("PLAIN", 0)
    assert auth.evaluate_raw(b"\0alice\0bad") is None
    assert auth.failed


def test_registry_finds_the_authenticator_of_a_session() -> None:
    auth = _authenticator()
    attach(auth)
    assert authenticator_of(auth.session) is auth
    other = Session.accepted("X", "SASL_PLAINTEXT", "h")
    assert authenticator_of(other) is None
    detach(auth)
    assert authenticator_of(auth.session) is None


def test_listener_overrides_are_checked() -> None:

    with pytest.raises(ConfigError, match="not a broker key"):
        BrokerConfig({"listener.name.sasl_plaintext.no.such.key": "1"})
    with pytest.raises(ConfigError, match=r"connections\.max\.reauth\.ms"):
        BrokerConfig({"listener.name.sasl_plaintext.connections.max.reauth.ms": "-5"})
    config = BrokerConfig({"sasl.jaas.config": JAAS})
    assert "pw-a" not in repr(config)
