"""``moldau quota set|remove|list`` against a real broker; mistakes get one line."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from cli_helpers import Runner

from moldau.testing import BrokerProcess


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with BrokerProcess() as process:
        yield process


def listed(moldau: Runner, broker: BrokerProcess, *filters: str) -> list[dict[str, object]]:
    result = moldau("quota", "list", *filters, "--format", "json", "--bootstrap", broker.bootstrap)
    assert result.code == 0, result.err
    rows = json.loads(result.out)
    assert isinstance(rows, list)
    return rows


def test_set_list_remove(moldau: Runner, broker: BrokerProcess) -> None:
    b = ("--bootstrap", broker.bootstrap)
    done = moldau(
        "quota", "set", "--user", "alice", "--producer-byte-rate", "1048576",
        "--request-percentage", "25", *b,
    )  # fmt: skip
    assert done.code == 0, done.err
    assert "/users/alice" in done.out and "producer_byte_rate=1048576" in done.out
    assert moldau("quota", "set", "--user-default", "--client-id", "app",
                  "--consumer-byte-rate", "2048", *b).code == 0  # fmt: skip
    rows = listed(moldau, broker)
    alice = {"producer_byte_rate": 1048576, "request_percentage": 25.0}
    assert {"entity": {"user": "alice"}, "quotas": alice} in rows
    assert {"entity": {"client-id": "app", "user": None},
            "quotas": {"consumer_byte_rate": 2048}} in rows  # fmt: skip
    assert listed(moldau, broker, "--user", "alice", "--strict") == [
        {"entity": {"user": "alice"}, "quotas": alice}
    ]
    text = moldau("quota", "list", "--user-default", *b)
    assert text.code == 0 and "/users/<default>/clients/app" in text.out

    removed = moldau("quota", "remove", "--user", "alice", "--key", "request_percentage", *b)
    assert removed.code == 0, removed.err
    assert listed(moldau, broker, "--user", "alice", "--strict") == [
        {"entity": {"user": "alice"}, "quotas": {"producer_byte_rate": 1048576}}
    ]
    assert moldau("quota", "remove", "--user", "alice", "--key", "producer_byte_rate", *b).code == 0
    assert listed(moldau, broker, "--user", "alice", "--strict") == []


def test_unknown_key_is_refused_in_one_line(moldau: Runner, broker: BrokerProcess) -> None:
    result = moldau(
        "quota", "set", "--client-id", "x", "--set", "bogus_rate=5", "--bootstrap", broker.bootstrap
    )
    assert result.code != 0
    assert len(result.err_lines) == 1
    assert "INVALID_REQUEST" in result.err and "bogus_rate" in result.err
    assert listed(moldau, broker, "--client-id", "x") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("quota", "set", "--producer-byte-rate", "5"), "name an entity"),
        (("quota", "set", "--user", "a"), "nothing to set"),
        (("quota", "set", "--user", "a", "--user-default", "--producer-byte-rate", "5"), "either"),
        (("quota", "set", "--user", "a", "--set", "noequals"), "KEY=VALUE"),
        (("quota", "set", "--user", "a", "--set", "producer_byte_rate=fast"), "number"),
    ],
)
def test_usage_mistakes(
    moldau: Runner, broker: BrokerProcess, args: tuple[str, ...], message: str
) -> None:
    result = moldau(*args, "--bootstrap", broker.bootstrap)
    assert result.code == 2
    assert len(result.err_lines) == 1 and message in result.err


def test_no_broker_is_one_line(moldau: Runner) -> None:
    result = moldau("quota", "list", "--bootstrap", "127.0.0.1:1", "--timeout-ms", "500")
    assert result.code != 0
    assert len(result.err_lines) == 1 and "cannot connect" in result.err
