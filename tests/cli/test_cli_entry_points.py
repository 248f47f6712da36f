"""Each console script really runs: one subprocess per entry point name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from moldau.testing import BrokerProcess

BIN = Path(sys.executable).parent


def _run(name: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / name), *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_moldau_script(broker: BrokerProcess) -> None:
    result = _run("moldau", "cluster", "info", "-b", broker.bootstrap, "-f", "json")
    assert result.returncode == 0, result.stderr
    assert f'"port":{broker.port}' in result.stdout


def test_python_dash_m_keeps_the_exit_code() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "moldau", "topic", "create"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: Missing argument")


@pytest.mark.parametrize("suffix", ["", ".sh"])
def test_kafka_scripts(broker: BrokerProcess, suffix: str) -> None:
    topic = f"entry-points{suffix.replace('.', '-')}"
    bs = ("--bootstrap-server", broker.bootstrap)
    created = _run(f"kafka-topics{suffix}", "--create", "--topic", topic, "--partitions", "1", *bs)
    assert created.returncode == 0, created.stderr
    assert created.stdout == f"Created topic {topic}.\n"

    configs = _run(
        f"kafka-configs{suffix}",
        *bs,
        "--entity-type",
        "topics",
        "--entity-name",
        topic,
        "--alter",
        "--add-config",
        "retention.ms=60000",
    )
    assert configs.returncode == 0, configs.stderr
    assert configs.stdout == f"Completed updating config for topic {topic}.\n"

    produced = _run(f"kafka-console-producer{suffix}", *bs, "--topic", topic, stdin="one\ntwo\n")
    assert produced.returncode == 0, produced.stderr

    consumed = _run(
        f"kafka-console-consumer{suffix}",
        *bs,
        "--topic",
        topic,
        "--from-beginning",
        "--max-messages",
        "2",
    )
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout == "one\ntwo\n"
    assert consumed.stderr.strip().endswith("Processed a total of 2 messages")

    groups = _run(f"kafka-consumer-groups{suffix}", *bs, "--list")
    assert groups.returncode == 0, groups.stderr

    transactions = _run(f"kafka-transactions{suffix}", *bs, "list")
    assert transactions.returncode == 0, transactions.stderr
    assert transactions.stdout.split()[:4] == [
        "TransactionalId",
        "Coordinator",
        "ProducerId",
        "TransactionState",
    ]


def test_kafka_script_bad_flag_is_one_line() -> None:
    result = _run("kafka-topics.sh", "--bootstrap-server", "localhost:1", "--lst")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
