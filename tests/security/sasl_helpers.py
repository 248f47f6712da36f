"""Shared set-up of the SASL tests (helper S): broker configs, users, client settings.

Every SASL test broker has one SASL_PLAINTEXT listener (``--listen`` keeps the listener's
name and moves it to a free port), PLAIN users from a JAAS config, and SCRAM users written
offline into its data directory before it starts — the same path ``moldau user create
--data-dir`` takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from moldau.broker.auth.scram import make_scram_credential
from moldau.cluster.security_state import encode, scram_key
from moldau.cluster.security_store import LocalSecurityStore

ADMIN_PASSWORD = "admin-Secret-7f3a"
ALICE_PASSWORD = "alice-Secret-91c2"
SCRAM_PASSWORD = "scram-Secret-d4e8"
WRONG_PASSWORD = "wrong-Secret-0b5d"
SECRETS = (ADMIN_PASSWORD, ALICE_PASSWORD, SCRAM_PASSWORD, WRONG_PASSWORD)
"""Every password a test uses: none may ever show up in a broker log."""

PLAIN_JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    f'username="admin" password="{ADMIN_PASSWORD}" '
    f'user_admin="{ADMIN_PASSWORD}" user_alice="{ALICE_PASSWORD}";'
)


def sasl_broker_config(**extra: str) -> dict[str, str]:
    config = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.jaas.config": PLAIN_JAAS,
        "connection.failed.authentication.delay.ms": "100",
    }
    config.update(extra)
    return config


def add_scram_users(data_dir: Path, users: Mapping[str, str]) -> None:
    """Write SCRAM-SHA-256 and -512 credentials for ``users`` (name → password)."""
    store = LocalSecurityStore(data_dir)
    puts = {}
    for name, password in users.items():
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            credential = make_scram_credential(password, mechanism, 4096)
            puts[scram_key(name, mechanism)] = encode(credential.to_json())
    store.apply_now(puts, ())


def confluent_config(
    bootstrap: str, mechanism: str, username: str, password: str, **extra: Any
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": username,
        "sasl.password": password,
    }
    config.update(extra)
    return config


def python_client_config(mechanism: str, username: str, password: str) -> dict[str, Any]:
    """kafka-python and aiokafka spell the settings alike."""
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": username,
        "sasl_plain_password": password,
    }
