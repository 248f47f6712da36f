"""The runnable examples in ``examples/`` work against a real broker, as a user would run them.

Each example runs as a subprocess (``python examples/x.py --bootstrap ...``, ``node``, ``bash``)
and is judged by its exit code and what it prints. Producer and consumer examples are run as
pairs on one topic, and what the consumer prints must equal what the producer reported
sending: same partitions, offsets, keys and values, in order within each partition.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
JS_MODULES = REPO / "tests" / "compat" / "js" / "node_modules"
VENV_BIN = Path(sys.executable).parent
TIMEOUT_S = 60

SENT_KP = re.compile(r"^sent partition=(\d+) offset=(\d+) key=(\S+) value=(.*)$")
READ_KP = re.compile(r"^partition=(\d+) offset=(\d+) key=(\S+) value=(.*)$")
DELIVERED = re.compile(r"^delivered topic=(\S+) partition=(\d+) offset=(\d+) key=(\S+)$")
READ_CONFLUENT = re.compile(r"^partition=(\d+) offset=(\d+) key=(\S+) value=(.*) headers=(\{.*\})$")
SENT_JS = re.compile(r"^sent topic=(\S+) partition=(\d+) baseOffset=(\d+)$")


def topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=15)


def run(
    command: list[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run an example the way a user would; the venv's bin dir leads PATH for the CLI tools."""
    full_env = dict(os.environ)
    full_env["PATH"] = f"{VENV_BIN}{os.pathsep}{full_env.get('PATH', '')}"
    full_env.pop("BOOTSTRAP_SERVERS", None)
    full_env.update(env or {})
    return subprocess.run(
        command,
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def run_python(
    example: str, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = run([sys.executable, str(EXAMPLES / example), *args], env=env)
    assert result.returncode == 0, f"{example} failed:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def matches(pattern: re.Pattern[str], stdout: str) -> list[tuple[str, ...]]:
    return [m.groups() for line in stdout.splitlines() if (m := pattern.match(line))]


def by_partition(
    records: list[tuple[int, int, str, str]],
) -> dict[int, list[tuple[int, str, str]]]:
    """(partition, offset, key, value) rows grouped per partition, kept in printed order."""
    grouped: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    for partition, offset, key, value in records:
        grouped[partition].append((offset, key, value))
    return dict(grouped)


def test_kafka_python_consumer_reads_what_the_producer_sent(broker: BrokerProcess) -> None:
    topic = topic_name("user-events")
    create_topic(broker.bootstrap, topic, 3)
    produced = run_python(
        "kafka_python_producer.py",
        "--bootstrap",
        broker.bootstrap,
        "--topic",
        topic,
        "--count",
        "12",
    )
    assert "produced 12 events" in produced.stdout
    assert "Warning" not in produced.stderr
    sent = [(int(p), int(o), k, json.loads(v)) for p, o, k, v in matches(SENT_KP, produced.stdout)]
    assert len(sent) == 12
    assert [v["seq"] for *_, v in sent] == list(range(12))
    # One user's events share a partition, so their offsets there count up from 0.
    for partition, rows in by_partition(sent).items():
        assert [o for o, _, _ in rows] == list(range(len(rows))), partition
    assert len({(k, p) for p, _, k, _ in sent}) == 3

    consumed = run_python(
        "kafka_python_consumer.py",
        "--bootstrap",
        broker.bootstrap,
        "--topic",
        topic,
        "--max-messages",
        "12",
        "--timeout-ms",
        "10000",
    )
    assert "consumed 12 messages" in consumed.stdout
    assert "Warning" not in consumed.stderr
    read = [(int(p), int(o), k, json.loads(v)) for p, o, k, v in matches(READ_KP, consumed.stdout)]
    assert by_partition(read) == by_partition(sent)


def test_kafka_python_consumer_stops_on_an_empty_topic(broker: BrokerProcess) -> None:
    topic = topic_name("empty")
    create_topic(broker.bootstrap, topic, 2)
    consumed = run_python(
        "kafka_python_consumer.py",
        "--bootstrap",
        broker.bootstrap,
        "--topic",
        topic,
        "--timeout-ms",
        "1000",
    )
    assert "consumed 0 messages" in consumed.stdout


def test_confluent_consumer_reads_all_100_orders(broker: BrokerProcess) -> None:
    topic = topic_name("orders")
    create_topic(broker.bootstrap, topic, 3)
    # The producer takes its broker from the environment, the consumer from --bootstrap.
    produced = run_python(
        "confluent_producer.py", "--topic", topic, env={"BOOTSTRAP_SERVERS": broker.bootstrap}
    )
    assert "produced 100 of 100 orders" in produced.stdout
    delivered = {
        (int(p), int(o), k) for t, p, o, k in matches(DELIVERED, produced.stdout) if t == topic
    }
    assert len(delivered) == 100

    consumed = run_python(
        "confluent_consumer.py", "--bootstrap", broker.bootstrap, "--topic", topic
    )
    assert "consumed 100 messages; reached the end of all 3 partitions" in consumed.stdout
    rows = matches(READ_CONFLUENT, consumed.stdout)
    assert len(rows) == 100
    assert {(int(p), int(o), k) for p, o, k, _, _ in rows} == delivered
    for *_, headers in rows:
        assert json.loads(headers) == {"event_type": "order_created", "source": "order-service"}
    orders = [json.loads(v) for _, _, _, v, _ in rows]
    assert sorted(o["order_id"] for o in orders) == [f"order-{i:04d}" for i in range(100)]
    # Within a partition offsets are dense and each customer's orders keep their order.
    per_partition: dict[int, list[int]] = defaultdict(list)
    per_customer: dict[str, list[str]] = defaultdict(list)
    for (p, o, key, _, _), order in zip(rows, orders, strict=True):
        per_partition[int(p)].append(int(o))
        assert key == order["customer_id"]
        per_customer[key].append(order["order_id"])
    for offsets in per_partition.values():
        assert offsets == list(range(len(offsets)))
    for ids in per_customer.values():
        assert ids == sorted(ids)


def test_confluent_consumer_ends_on_an_empty_topic(broker: BrokerProcess) -> None:
    topic = topic_name("quiet")
    create_topic(broker.bootstrap, topic, 2)
    consumed = run_python(
        "confluent_consumer.py", "--bootstrap", broker.bootstrap, "--topic", topic
    )
    assert "consumed 0 messages; reached the end of all 2 partitions" in consumed.stdout


def test_kafkajs_producer_example(broker: BrokerProcess) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed (make test-deps needs Node.js for kafkajs)")
    assert (JS_MODULES / "kafkajs").is_dir(), "kafkajs missing: run `make test-deps`"
    orders, audit = topic_name("js-orders"), topic_name("js-audit")
    command = [
        "node",
        str(EXAMPLES / "kafkajs_producer.js"),
        "--bootstrap",
        broker.bootstrap,
        "--topic",
        orders,
        "--audit-topic",
        audit,
    ]
    env = {"NODE_PATH": str(JS_MODULES)}
    sent_offsets: set[tuple[str, int, int]] = set()
    # The second run finds both topics in place and appends after the first run's messages.
    for attempt in range(2):
        result = run(command, env=env)
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
        assert "produced 6 messages to 2 topics" in result.stdout
        assert ("created topics" in result.stdout) == (attempt == 0)
        rows = matches(SENT_JS, result.stdout)
        assert {t for t, _, _ in rows} == {orders, audit}
        sent_offsets |= {(t, int(p), int(o)) for t, p, o in rows}

    read_orders = run_python(
        "confluent_consumer.py", "--bootstrap", broker.bootstrap, "--topic", orders
    )
    rows = matches(READ_CONFLUENT, read_orders.stdout)
    assert len(rows) == 10
    values = [json.loads(v) for _, _, _, v, _ in rows]
    assert sorted(v["orderId"] for v in values) == sorted([f"order-{i}" for i in range(5)] * 2)
    with_headers = [json.loads(h) for *_, h in rows if json.loads(h)]
    assert len(with_headers) == 6
    assert all(
        h == {"event-type": "order-created", "source": "order-service"} for h in with_headers
    )
    read_audit = run_python(
        "confluent_consumer.py", "--bootstrap", broker.bootstrap, "--topic", audit
    )
    audit_rows = matches(READ_CONFLUENT, read_audit.stdout)
    assert [(int(p), int(o), k) for p, o, k, _, _ in audit_rows] == [
        (0, 0, "audit"),
        (0, 1, "audit"),
    ]
    # Every base offset kafkajs reported is an offset that holds one of its messages.
    stored = {(orders, int(p), int(o)) for p, o, *_ in rows}
    stored |= {(audit, int(p), int(o)) for p, o, *_ in audit_rows}
    assert sent_offsets <= stored


def test_kcat_example(broker: BrokerProcess) -> None:
    if shutil.which("kcat") is None:
        pytest.skip("kcat is not installed (make test-deps apt-installs it)")
    topic = topic_name("kcat-demo")
    result = run(
        ["bash", str(EXAMPLES / "kcat.sh"), "--bootstrap", broker.bootstrap], env={"TOPIC": topic}
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    lines = result.stdout.splitlines()
    assert "alice signed up 0 0" in lines
    assert "bob placed an order 0 1" in lines
    assert "alice logged out 0 2" in lines
    assert f"  broker 1 at {broker.bootstrap} (controller)" in lines
    assert f'  topic "{topic}" with 1 partitions:' in lines


def test_cli_example(broker: BrokerProcess) -> None:
    topic = topic_name("my-topic")
    result = run(
        ["bash", str(EXAMPLES / "cli.sh")],
        env={"TOPIC": topic, "BOOTSTRAP_SERVERS": broker.bootstrap},
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    lines = result.stdout.splitlines()
    assert f"Created topic {topic}-native." in lines
    assert f"Created topic {topic}." in lines
    assert topic in lines and f"{topic}-native" in lines
    consumed = lines[
        lines.index("== kafka-console-consumer --from-beginning --max-messages 3 (key:value)") + 1 :
    ]
    # Three partitions: the console consumer interleaves them, but k1's two lines keep order.
    assert sorted(consumed) == ["k1:first message", "k1:third message", "k2:second message"]
    assert consumed.index("k1:first message") < consumed.index("k1:third message")
    assert "Processed a total of 3 messages" in result.stderr
