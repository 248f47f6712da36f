"""SCRAM credentials and the SCRAM server, driven by scramp's client (no broker)."""

from __future__ import annotations

import hashlib

import pytest
import scramp

from moldau.broker.auth.sasl import SaslAuthenticationError
from moldau.broker.auth.scram import (
    ScramSaslServer,
    credential_from_salted_password,
    make_scram_credential,
)
from moldau.cluster.security_state import ScramCredential

MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_credential_matches_scramp(mechanism: str) -> None:
    salt = b"0123456789abcdef"
    ours = make_scram_credential("pencil", mechanism, 4096, salt)
    _salt, stored_key, server_key, iterations = scramp.ScramMechanism(mechanism).make_auth_info(
        "pencil", 4096, salt
    )
    assert (ours.stored_key, ours.server_key, ours.iterations) == (
        stored_key,
        server_key,
        iterations,
    )


def test_salted_password_path_gives_the_same_credential() -> None:
    salt = b"s" * 16
    salted = hashlib.pbkdf2_hmac("sha512", b"pencil", salt, 8192)
    assert credential_from_salted_password(
        "SCRAM-SHA-512", salt, salted, 8192
    ) == make_scram_credential("pencil", "SCRAM-SHA-512", 8192, salt)


@pytest.mark.parametrize(
    ("mechanism", "iterations"),
    [("SCRAM-SHA-1", 4096), ("SCRAM-SHA-256", 4095), ("SCRAM-SHA-512", 16385)],
)
def test_make_credential_refuses_bad_input(mechanism: str, iterations: int) -> None:
    with pytest.raises(ValueError):
        make_scram_credential("pw", mechanism, iterations)


def _lookup(users: dict[str, ScramCredential]):  # type: ignore[no-untyped-def]
    return lambda user, mechanism: users.get(user) if users.get(user) else None


def _exchange(server: ScramSaslServer, client: scramp.ScramClient) -> bytes:
    first = server.evaluate(client.get_client_first().encode())
    client.set_server_first(first.decode())
    return server.evaluate(client.get_client_final().encode())


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_login(mechanism: str) -> None:
    users = {"user,=odd": make_scram_credential("pencil", mechanism)}
    server = ScramSaslServer(mechanism, _lookup(users))
    client = scramp.ScramClient([mechanism], "user,=odd", "pencil")
    final = _exchange(server, client)
    client.set_server_final(final.decode())
    assert server.complete
    assert server.username == "user,=odd"


def test_wrong_password_and_unknown_user() -> None:
    users = {"alice": make_scram_credential("pencil", "SCRAM-SHA-256")}
    reasons = []
    for user in ("alice", "nobody"):
        server = ScramSaslServer("SCRAM-SHA-256", _lookup(users))
        client = scramp.ScramClient(["SCRAM-SHA-256"], user, "eraser")
        with pytest.raises(SaslAuthenticationError) as info:
            _exchange(server, client)
        assert info.value.username == user
        reasons.append(info.value.reason)
        assert not server.complete
    assert "unknown user" in reasons[1]
    assert "unknown user" not in reasons[0]


def test_garbage_is_refused() -> None:
    server = ScramSaslServer("SCRAM-SHA-256", _lookup({}))
    with pytest.raises(SaslAuthenticationError):
        server.evaluate(b"not scram at all")


def test_a_finished_exchange_takes_no_more_tokens() -> None:
    users = {"alice": make_scram_credential("pencil", "SCRAM-SHA-256")}
    server = ScramSaslServer("SCRAM-SHA-256", _lookup(users))
    _exchange(server, scramp.ScramClient(["SCRAM-SHA-256"], "alice", "pencil"))
    with pytest.raises(SaslAuthenticationError):
        server.evaluate(b"again")
