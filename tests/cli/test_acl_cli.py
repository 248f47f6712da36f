"""``moldau acl add|list|remove`` against a broker with ACLs on: the admin (a super user,
through ``--command-config``) grants alice WRITE, lists and removes it; mistakes get one
line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import Runner
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.testing import BrokerProcess

ADMIN_PASSWORD = "acl-admin-Secret-71d"
ALICE_PASSWORD = "acl-alice-Secret-2e9"
JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    f'user_admin="{ADMIN_PASSWORD}" user_alice="{ALICE_PASSWORD}";'
)


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    config = {
        "listeners": "SASL_PLAINTEXT://127.0.0.1:0",
        "sasl.jaas.config": JAAS,
        "authorizer.class.name": "acl",
        "super.users": "User:admin",
    }
    with BrokerProcess(config=config) as process:
        yield process


@pytest.fixture
def admin_properties(tmp_path: Path) -> Path:
    path = tmp_path / "admin.properties"
    path.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="admin" password="{ADMIN_PASSWORD}";\n'
    )
    return path


def alice_produces(bootstrap: str, topic: str) -> KafkaError | None:
    errors: list[KafkaError | None] = []
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": "alice",
            "sasl.password": ALICE_PASSWORD,
            "message.timeout.ms": 10000,
            "log_level": 0,
        }
    )
    producer.produce(topic, b"x", on_delivery=lambda err, _m: errors.append(err))
    producer.flush(20)
    return errors[0] if errors else KafkaError(KafkaError._MSG_TIMED_OUT)


def test_add_list_remove(moldau: Runner, broker: BrokerProcess, admin_properties: Path) -> None:
    common = ["--bootstrap", broker.bootstrap, "--command-config", str(admin_properties)]
    topic = "acl-cli-orders"
    admin = AdminClient(
        {
            "bootstrap.servers": broker.bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": "admin",
            "sasl.password": ADMIN_PASSWORD,
        }
    )
    for future in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        future.result(20)
    error = alice_produces(broker.bootstrap, topic)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    added = moldau(
        "acl", "add", "--allow", "--principal", "User:alice", "--operation", "write",
        "--operation", "describe", "--topic", "acl-cli-", "--resource-pattern-type", "prefixed",
        *common,
    )  # fmt: skip
    assert added.code == 0, added.err
    assert "Added 2 ACL(s)." in added.out
    assert alice_produces(broker.bootstrap, topic) is None

    listed = moldau("acl", "list", "--principal", "User:alice", "--format", "json", *common)
    assert listed.code == 0, listed.err
    rows = json.loads(listed.out)
    assert {(r["operation"], r["resource_name"], r["pattern_type"]) for r in rows} == {
        ("WRITE", "acl-cli-", "PREFIXED"),
        ("DESCRIBE", "acl-cli-", "PREFIXED"),
    }

    removed = moldau(
        "acl", "remove", "--principal", "User:alice", "--topic", "acl-cli-",
        "--resource-pattern-type", "prefixed", "--format", "json", *common,
    )  # fmt: skip
    assert removed.code == 0, removed.err
    assert len(json.loads(removed.out)) == 2
    again = moldau("acl", "list", "--principal", "User:alice", "--format", "json", *common)
    assert json.loads(again.out) == []


def test_mistakes_get_one_line(moldau: Runner, broker: BrokerProcess) -> None:
    both = moldau("acl", "add", "--allow", "--deny", "--principal", "User:x", "--topic", "t")
    assert both.code == 2 and both.err.strip().count("\n") == 0
    assert "exactly one of --allow or --deny" in both.err
    bad_op = moldau(
        "acl", "add", "--allow", "--principal", "User:x", "--operation", "fly", "--topic", "t",
        "--bootstrap", broker.bootstrap,
    )  # fmt: skip
    assert bad_op.code == 2 and "unknown operation 'fly'" in bad_op.err
    everything = moldau("acl", "remove", "--bootstrap", broker.bootstrap)
    assert everything.code == 2 and "would remove every ACL" in everything.err
