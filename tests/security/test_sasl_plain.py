"""PLAIN: JAAS config parsing, the users file, and RFC 4616 token checks (no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from moldau.broker.auth.plain import (
    JaasConfigError,
    PlainSaslServer,
    PlainUserTable,
    jaas_plain_users,
    parse_jaas_config,
    parse_users_file,
)
from moldau.broker.auth.sasl import SaslAuthenticationError

KAFKA_EXAMPLE = """
org.apache.kafka.common.security.plain.PlainLoginModule required
    username="admin"
    password="admin-secret"
    user_admin="admin-secret"
    user_alice="alice \\"quoted\\" secret";
"""


def test_jaas_config_as_kafka_writes_it() -> None:
    (entry,) = parse_jaas_config(KAFKA_EXAMPLE)
    assert entry.login_module == "org.apache.kafka.common.security.plain.PlainLoginModule"
    assert entry.control_flag == "required"
    assert entry.options["username"] == "admin"
    assert jaas_plain_users(KAFKA_EXAMPLE) == {
        "admin": "admin-secret",
        "alice": 'alice "quoted" secret',
    }


def test_jaas_users_of_other_modules_are_ignored() -> None:
    text = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required user_x=y;"
        " org.apache.kafka.common.security.plain.PlainLoginModule optional user_bob=pw;"
    )
    assert jaas_plain_users(text) == {"bob": "pw"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        'org.Module required user_a="b"',  # no ';'
        "org.Module maybe user_a=b;",  # bad flag
        "org.Module required user_a;",  # no value
        'org.Module required user_a="unterminated;',
    ],
)
def test_bad_jaas_configs_are_refused_without_quoting_values(text: str) -> None:
    with pytest.raises(JaasConfigError) as info:
        parse_jaas_config(text)
    assert '"b"' not in str(info.value)


def test_users_file_format() -> None:
    text = "# comment\n\nalice:pw:with:colons\nbob: spaced\nnot-a-line\n:nameless\n"
    assert parse_users_file(text) == {"alice": "pw:with:colons", "bob": " spaced"}


def test_users_file_changes_apply_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("alice:one\n")
    table = PlainUserTable({"admin": "a"}, path)
    assert table.password_of("alice") == "one"
    path.write_text("alice:two\ncarl:three\n")
    assert table.password_of("alice") == "two"
    assert table.password_of("carl") == "three"
    assert table.password_of("admin") == "a"
    path.unlink()
    assert table.password_of("alice") is None


def _server() -> PlainSaslServer:
    return PlainSaslServer(PlainUserTable({"alice": "secret"}, None))


def test_plain_accepts_the_right_password() -> None:
    server = _server()
    assert server.evaluate(b"\0alice\0secret") == b""
    assert server.complete
    assert server.username == "alice"


def test_plain_accepts_an_authzid_equal_to_the_user() -> None:
    server = _server()
    server.evaluate(b"alice\0alice\0secret")
    assert server.complete


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (b"\0alice\0wrong", "wrong password"),
        (b"\0bob\0secret", "unknown user"),
        (b"bob\0alice\0secret", "authorization id"),
        (b"\0alice", "malformed"),
        (b"\0alice\0secret\0more", "malformed"),
        (b"\0\0secret", "without a user name"),
        (b"\0alice\0", "without a password"),
        (b"\0\xff\0secret", "not UTF-8"),
    ],
)
def test_plain_refusals(token: bytes, reason: str) -> None:
    server = _server()
    with pytest.raises(SaslAuthenticationError) as info:
        server.evaluate(token)
    assert reason in info.value.reason
    assert "secret" not in info.value.reason
    assert not server.complete
