"""The transaction examples in ``examples/`` work against a real broker, run as a user would.

Each example runs as a subprocess and is judged by what the broker then holds, read back
with confluent-kafka consumers of both isolation levels: a ``read_committed`` consumer must
see every record of the committed transactions, at the partition and offset the example
reported, and nothing of the aborted ones; a ``read_uncommitted`` consumer also sees the
aborted data records (they are in the log; only the abort marker hides them). The
consume-transform-produce example must turn every input into exactly one visible output
and leave the group's committed offsets at the end of the input, also when it dies in the
middle of a transaction and is restarted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
JS_MODULES = REPO / "tests" / "compat" / "js" / "node_modules"
TIMEOUT_S = 90

SENT_KP = re.compile(
    r"^sent txn=(\d+) topic=(\S+) partition=(\d+) offset=(\d+) key=(\S+) value=(.*)$"
)
DELIVERED = re.compile(r"^delivered topic=(\S+) partition=(\d+) offset=(\d+) key=(\S+)$")
COMMITTED_BATCH = re.compile(r"^committed transaction with (\d+) messages$")
SENT_JS = re.compile(r"^sent txn=(\d+) topic=(\S+) partition=(\d+) baseOffset=(\d+)$")

# topic, partition, offset, key, value (JSON text, exactly as written)
Record = tuple[str, int, int, str | None, str]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=15)


def run(
    command: list[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
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


def run_python(example: str, *args: str, returncode: int = 0) -> subprocess.CompletedProcess[str]:
    result = run([sys.executable, str(EXAMPLES / example), *args])
    assert result.returncode == returncode, f"{example}:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def read_topic(bootstrap: str, topic: str, partitions: int, isolation: str) -> list[Record]:
    """Every record of a topic a consumer of the given isolation level is given, to the end.

    The end is where librdkafka reports end-of-partition: the last stable offset for
    read_committed, the high watermark for read_uncommitted."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("txn-check"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    records: list[Record] = []
    at_end: set[int] = set()
    try:
        for _ in range(200):
            msg = consumer.poll(timeout=0.5)
            if msg is None:
                continue
            error = msg.error()
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                at_end.add(partition)
                if len(at_end) == partitions:
                    return records
                continue
            at_end.discard(partition)
            assert offset is not None
            key = msg.key()
            value = (msg.value() or b"").decode()
            records.append((topic, partition, offset, key.decode() if key else None, value))
    finally:
        consumer.close()
    raise AssertionError(f"never reached the end of {topic} ({isolation}): {records}")


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in tps}


def test_kafka_python_transactions_example(broker: BrokerProcess) -> None:
    bootstrap = broker.bootstrap
    orders, audit = unique("orders"), unique("order-audit")
    create_topic(bootstrap, orders, 3)
    create_topic(bootstrap, audit, 1)
    result = run_python(
        "kafka_python_transactions.py",
        "--bootstrap",
        bootstrap,
        "--topic",
        orders,
        "--audit-topic",
        audit,
        "--transactional-id",
        unique("order-writer"),
        "--count",
        "4",
    )
    assert "committed transaction 1 with 4 orders" in result.stdout
    assert "aborted transaction 2: payment service unavailable at order-0006" in result.stdout
    sent: dict[int, set[Record]] = {1: set(), 2: set()}
    for line in result.stdout.splitlines():
        if m := SENT_KP.match(line):
            txn, topic, p, o, k, v = m.groups()
            assert json.loads(v)["txn"] == int(txn)
            sent[int(txn)].add((topic, int(p), int(o), k, v))
    # Four orders and four audit entries committed; two of each sent before the error.
    assert len(sent[1]) == 8 and len(sent[2]) == 4

    committed = set(read_topic(bootstrap, orders, 3, "read_committed"))
    committed |= set(read_topic(bootstrap, audit, 1, "read_committed"))
    assert committed == sent[1]
    everything = read_topic(bootstrap, orders, 3, "read_uncommitted")
    everything += read_topic(bootstrap, audit, 1, "read_uncommitted")
    assert sorted(everything) == sorted(sent[1] | sent[2])


def test_confluent_transactions_example(broker: BrokerProcess) -> None:
    bootstrap = broker.bootstrap
    topic, txn_id = unique("orders"), unique("order-processor")
    create_topic(bootstrap, topic, 3)
    common = ["--bootstrap", bootstrap, "--topic", topic, "--transactional-id", txn_id]
    result = run_python("confluent_transactions.py", *common)
    lines = result.stdout.splitlines()
    assert "committed 75 of 100 orders, aborted 1 transactions" in lines
    assert "aborted transaction 3: orders 50-74 (order-0060 has no customer)" in lines
    for txn, (first, last) in {1: (0, 24), 2: (25, 49), 4: (75, 99)}.items():
        assert f"committed transaction {txn}: orders {first}-{last}" in lines
    delivered = {
        (t, int(p), int(o), k)
        for t, p, o, k in (m.groups() for m in map(DELIVERED.match, lines) if m)
    }

    committed = read_topic(bootstrap, topic, 3, "read_committed")
    orders = [json.loads(v) for *_, v in committed]
    ids = sorted(int(order["order_id"].split("-")[1]) for order in orders)
    assert ids == [*range(50), *range(75, 100)]
    # Every visible order is where the delivery report put it, under its customer's key.
    assert {(t, p, o, k) for t, p, o, k, _ in committed} <= delivered
    for (*_, key, _), order in zip(committed, orders, strict=True):
        assert key == order["customer_id"]
    # Only orders 50-59, produced before the bad one, can be in the log beyond those.
    seen = read_topic(bootstrap, topic, 3, "read_uncommitted")
    extra = {json.loads(v)["order_id"] for *_, v in seen}
    extra -= {f"order-{i:04d}" for i in ids}
    assert extra <= {f"order-{i:04d}" for i in range(50, 60)}

    # A second run with the same transactional id takes over and appends ten more.
    more = run_python(
        "confluent_transactions.py",
        *common,
        "--count",
        "10",
        "--batch-size",
        "5",
        "--bad-order",
        "-1",
    )
    assert "committed 10 of 10 orders, aborted 0 transactions" in more.stdout
    assert len(read_topic(bootstrap, topic, 3, "read_committed")) == 85


def produce_orders(bootstrap: str, topic: str, start: int, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for i in range(start, start + count):
        value = json.dumps({"order_id": i, "amount": 10 + i})
        producer.produce(topic, key=f"customer-{i % 4}".encode(), value=value.encode())
    assert producer.flush(15) == 0


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("watermarks")})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def assert_exactly_once(bootstrap: str, source: str, sink: str, group: str) -> list[Record]:
    """Every input record has exactly one visible output; the group is at the input's end."""
    inputs = read_topic(bootstrap, source, 3, "read_committed")
    outputs = read_topic(bootstrap, sink, 2, "read_committed")
    sources = sorted(json.loads(v)["source"] for *_, v in outputs)
    assert sources == sorted(f"{p}:{o}" for _, p, o, _, _ in inputs)
    by_source = {f"{p}:{o}": (k, json.loads(v)) for _, p, o, k, v in inputs}
    for _, _, _, key, text in outputs:
        value = json.loads(text)
        in_key, in_value = by_source[value["source"]]
        assert key == in_key
        assert value["order_id"] == in_value["order_id"]
        assert value["amount_with_vat"] == round(in_value["amount"] * 1.2, 2)
    assert committed_offsets(bootstrap, group, source, 3) == end_offsets(bootstrap, source, 3)
    return outputs


def test_confluent_exactly_once_example(broker: BrokerProcess) -> None:
    bootstrap = broker.bootstrap
    source, sink, group = unique("orders"), unique("orders-with-vat"), unique("enricher")
    create_topic(bootstrap, source, 3)
    create_topic(bootstrap, sink, 2)
    common = [
        "--bootstrap", bootstrap, "--input-topic", source, "--output-topic", sink,
        "--group", group, "--transactional-id", unique("enricher"), "--batch-size", "7",
    ]  # fmt: skip
    produce_orders(bootstrap, source, 0, 30)
    result = run_python("confluent_exactly_once.py", *common, "--max-messages", "30")
    assert "processed 30 messages in " in result.stdout
    assert len(assert_exactly_once(bootstrap, source, sink, group)) == 30

    # A second run resumes from the transactionally committed offsets.
    produce_orders(bootstrap, source, 30, 10)
    result = run_python("confluent_exactly_once.py", *common, "--max-messages", "10")
    assert "processed 10 messages in " in result.stdout
    assert len(assert_exactly_once(bootstrap, source, sink, group)) == 40


def test_confluent_exactly_once_example_survives_a_crash(broker: BrokerProcess) -> None:
    bootstrap = broker.bootstrap
    source, sink, group = unique("orders"), unique("orders-with-vat"), unique("enricher")
    create_topic(bootstrap, source, 3)
    create_topic(bootstrap, sink, 2)
    common = [
        "--bootstrap", bootstrap, "--input-topic", source, "--output-topic", sink,
        "--group", group, "--transactional-id", unique("enricher"), "--batch-size", "5",
        # The restart waits for the dead member's session to expire before it gets partitions.
        "--session-timeout-ms", "6000",
    ]  # fmt: skip
    produce_orders(bootstrap, source, 0, 20)
    crashed = run_python("confluent_exactly_once.py", *common, "--crash-after", "13", returncode=3)
    assert "crashing in the middle of a transaction" in crashed.stdout
    done_before = sum(
        int(m.group(1)) for m in map(COMMITTED_BATCH.match, crashed.stdout.splitlines()) if m
    )
    assert 0 < done_before < 13
    # The open transaction's records are in the log, but read_committed stops before them.
    assert len(read_topic(bootstrap, sink, 2, "read_committed")) == done_before
    assert len(read_topic(bootstrap, sink, 2, "read_uncommitted")) == 13

    # The restart aborts the dead instance's transaction and redoes that batch.
    result = run_python(
        "confluent_exactly_once.py", *common, "--max-messages", str(20 - done_before)
    )
    assert f"processed {20 - done_before} messages in " in result.stdout
    assert len(assert_exactly_once(bootstrap, source, sink, group)) == 20
    assert len(read_topic(bootstrap, sink, 2, "read_uncommitted")) == 20 + 13 - done_before


def test_kafkajs_transactions_example(broker: BrokerProcess) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed (make test-deps needs Node.js for kafkajs)")
    assert (JS_MODULES / "kafkajs").is_dir(), "kafkajs missing: run `make test-deps`"
    bootstrap = broker.bootstrap
    orders, audit = unique("js-orders"), unique("js-audit")
    source, group = unique("js-requests"), unique("js-order-writer")
    create_topic(bootstrap, source, 1)
    command = [
        "node", str(EXAMPLES / "kafkajs_transactions.js"), "--bootstrap", bootstrap,
        "--topic", orders, "--audit-topic", audit, "--transactional-id", unique("js-writer"),
        "--count", "4", "--group", group, "--source-topic", source,
    ]  # fmt: skip
    result = run(command, env={"NODE_PATH": str(JS_MODULES)})
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    lines = result.stdout.splitlines()
    assert f"created topics {orders}, {audit}" in lines
    assert "committed transaction 1 with 4 orders" in lines
    assert "aborted transaction 2: payment service unavailable at order-6" in lines
    sent = [
        (int(t), topic, int(p), int(o))
        for t, topic, p, o in (m.groups() for m in map(SENT_JS.match, lines) if m)
    ]
    # Transaction 1: one batch per topic from offset 0; transaction 2: orders 4 and 5, one
    # record per send, after transaction 1's commit marker at offset 4.
    assert sorted(sent) == sorted(
        [(1, orders, 0, 0), (1, audit, 0, 0)]
        + [(2, topic, 0, offset) for topic in (orders, audit) for offset in (5, 6)]
    )

    for topic in (orders, audit):
        committed = read_topic(bootstrap, topic, 1, "read_committed")
        assert [(o, k) for _, _, o, k, _ in committed] == [
            (i, f"customer-{i % 3}") for i in range(4)
        ]
        values = [json.loads(v) for *_, v in committed]
        assert [(v["orderId"], v["txn"]) for v in values] == [(f"order-{i}", 1) for i in range(4)]
        uncommitted = read_topic(bootstrap, topic, 1, "read_uncommitted")
        assert [o for _, _, o, _, _ in uncommitted] == [0, 1, 2, 3, 5, 6]
    # The group's offset is the committed transaction's, not the aborted one's.
    assert committed_offsets(bootstrap, group, source, 1) == {0: 4}
