"""``moldau user create|list|delete``: offline into a stopped broker's data dir (then log in
with the new user), online through AdminClient, and one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import Runner

from moldau.testing import BrokerProcess

ADMIN_PASSWORD = "cli-admin-Secret-3b1"
USER_PASSWORD = "cli-user-Secret-8c4"
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    f'user_admin="{ADMIN_PASSWORD}";'
)


def _sasl_config() -> dict[str, str]:
    return {"listeners": "SASL_PLAINTEXT://127.0.0.1:0", "sasl.jaas.config": JAAS}


def _produce(bootstrap: str, mechanism: str, user: str, password: str) -> int:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism,
            "sasl.username": user,
            "sasl.password": password,
            "log_level": 0,
        }
    )
    producer.produce("cli-user-topic", b"x")
    return producer.flush(15)


def test_offline_create_then_log_in(moldau: Runner, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = moldau(
        "user", "create", "alice", "--password", USER_PASSWORD, "--data-dir", str(data_dir)
    )
    assert result.code == 0, result.err
    assert "Created SCRAM-SHA-512 credentials for user alice (8192 iterations)" in result.out
    assert USER_PASSWORD not in result.out + result.err
    listed = moldau("user", "list", "--data-dir", str(data_dir), "--format", "json")
    assert json.loads(listed.out) == [
        {"user": "alice", "mechanism": "SCRAM-SHA-512", "iterations": 8192}
    ]
    assert USER_PASSWORD not in (data_dir / "__security_metadata.json").read_text()
    with BrokerProcess(data_dir=data_dir, config=_sasl_config()) as broker:
        assert _produce(broker.bootstrap, "SCRAM-SHA-512", "alice", USER_PASSWORD) == 0
        log = broker.output()
    assert "SASL SCRAM-SHA-512 authenticated as User:alice" in log
    assert USER_PASSWORD not in log


def test_offline_password_from_stdin_and_file(moldau: Runner, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    piped = moldau(
        "user", "create", "bob", "-m", "scram-sha-256", "--data-dir", str(data_dir),
        stdin=USER_PASSWORD + "\n",
    )  # fmt: skip
    assert piped.code == 0, piped.err
    secret_file = tmp_path / "pw"
    secret_file.write_text(USER_PASSWORD + "\n")
    from_file = moldau(
        "user", "create", "bob", "--password-file", str(secret_file), "--iterations", "4096",
        "--data-dir", str(data_dir),
    )  # fmt: skip
    assert from_file.code == 0, from_file.err
    listed = moldau("user", "list", "--data-dir", str(data_dir))
    assert "SCRAM-SHA-256" in listed.out and "SCRAM-SHA-512" in listed.out
    from moldau.broker.auth.scram import make_scram_credential
    from moldau.cluster.security_store import LocalSecurityStore

    stored = LocalSecurityStore(data_dir).image.credential("bob", "SCRAM-SHA-256")
    assert stored is not None
    assert stored == make_scram_credential(USER_PASSWORD, "SCRAM-SHA-256", 8192, stored.salt)
    deleted = moldau("user", "delete", "bob", "--data-dir", str(data_dir))
    assert deleted.code == 0 and "SCRAM-SHA-256, SCRAM-SHA-512" in deleted.out
    assert moldau("user", "list", "--data-dir", str(data_dir), "-f", "json").out.strip() == "[]"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "x", "--password", "p", "-m", "MD5"], "unknown SCRAM mechanism 'MD5'"),
        (["create", "x", "--password", ""], "the password must not be empty"),
        (["create", "x", "--password", "p", "--password-file", "/nonexistent"], "either"),
        (["create", "x", "--password", "p", "-b", "h:1"], "either --data-dir"),
        (["delete", "ghost"], "user 'ghost' has no SCRAM credentials"),
        (["delete", "ghost", "-m", "SCRAM-SHA-256"], "has no SCRAM-SHA-256 credentials"),
    ],
)
def test_errors_are_one_line(moldau: Runner, tmp_path: Path, args: list[str], message: str) -> None:
    result = moldau("user", *args, "--data-dir", str(tmp_path / "d"))
    assert result.code != 0
    assert len(result.err_lines) == 1
    assert message in result.err
    assert "Traceback" not in result.err


@pytest.fixture(scope="module")
def sasl_broker() -> Iterator[BrokerProcess]:
    with BrokerProcess(config=_sasl_config()) as broker:
        yield broker


@pytest.mark.compat
def test_online_create_list_delete(
    moldau: Runner, sasl_broker: BrokerProcess, tmp_path: Path
) -> None:
    properties = tmp_path / "client.properties"
    properties.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        f"sasl.username=admin\nsasl.password={ADMIN_PASSWORD}\n"
    )
    common = ["-b", sasl_broker.bootstrap, "--command-config", str(properties)]
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        created = moldau(
            "user", "create", "carol", "--password", USER_PASSWORD, "-m", mechanism, *common
        )
        assert created.code == 0, created.err
    listed = moldau("user", "list", "-f", "json", *common)
    assert listed.code == 0, listed.err
    assert {(u["user"], u["mechanism"]) for u in json.loads(listed.out)} == {
        ("carol", "SCRAM-SHA-256"),
        ("carol", "SCRAM-SHA-512"),
    }
    assert _produce(sasl_broker.bootstrap, "SCRAM-SHA-256", "carol", USER_PASSWORD) == 0
    deleted = moldau("user", "delete", "carol", *common)
    assert deleted.code == 0, deleted.err
    assert moldau("user", "list", "-f", "json", *common).out.strip() == "[]"
    missing = moldau("user", "delete", "carol", "-m", "SCRAM-SHA-512", *common)
    assert missing.code == 1 and len(missing.err_lines) == 1
    assert "does not exist" in missing.err
    log = sasl_broker.output()
    assert USER_PASSWORD not in log and ADMIN_PASSWORD not in log


def test_online_without_credentials_fails_in_one_line(
    moldau: Runner, sasl_broker: BrokerProcess
) -> None:
    result = moldau("user", "list", "-b", sasl_broker.bootstrap, "--timeout-ms", "3000")
    assert result.code != 0
    assert len(result.err_lines) == 1
