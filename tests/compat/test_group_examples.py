"""The consumer-group examples in ``examples/`` work against a real broker, run as a user would.

Each example runs as a subprocess and is judged by its exit code, what it prints and what
the broker then holds: the messages a run prints must be exactly the ones produced since the
group's last commit (so a second run resumes and reads nothing old), ``kafka-consumer-groups
--describe`` must show LAG 0 once a run has consumed everything, and the batch consumer's
dead-letter topic must hold exactly the messages whose processing kept failing.

Messages are produced in-test without compression (kafkajs cannot decode snappy) and every
run is bounded by ``--max-messages`` with the exact number expected, so no run waits out an
idle timeout. The broker skips the initial rebalance delay so joins are quick.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
JS_MODULES = REPO / "tests" / "compat" / "js" / "node_modules"
VENV_BIN = Path(sys.executable).parent
TIMEOUT_S = 60

# partition, offset, key, value as every group example prints them.
READ = re.compile(r"^partition=(\d+) offset=(\d+) key=(\S+) value=(.*)$")
PROCESSED = re.compile(r"^processed partition=(\d+) offset=(\d+) (.*)$")
DEAD_LETTERED = re.compile(r"^dead-lettered partition=(\d+) offset=(\d+)$")

Record = tuple[int, int, str, object]  # partition, offset, key, decoded JSON value


@pytest.fixture(scope="module")
def group_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker for the module; each test uses its own topics and group ids."""
    data_dir = tmp_path_factory.mktemp("group-examples") / "data"
    proc = BrokerProcess(data_dir, config={"group.initial.rebalance.delay.ms": "0"})
    proc.start()
    yield proc
    proc.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=15)


def produce(bootstrap: str, topic: str, messages: list[tuple[str, bytes]]) -> list[Record]:
    """Send (key, value) pairs uncompressed; return where each landed, in send order."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    landed: dict[int, tuple[int, int]] = {}
    failures: list[KafkaError] = []

    def on_delivery(index: int) -> Callable[[KafkaError | None, Message], None]:
        def callback(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failures.append(err)
                return
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None
            landed[index] = (partition, offset)

        return callback

    for index, (key, value) in enumerate(messages):
        producer.produce(topic, key=key.encode(), value=value, on_delivery=on_delivery(index))
    assert producer.flush(15) == 0
    assert not failures
    records: list[Record] = []
    for index, (key, value) in enumerate(messages):
        partition, offset = landed[index]
        records.append((partition, offset, key, json_or_text(value)))
    return records


def json_or_text(value: bytes) -> object:
    try:
        return json.loads(value)
    except ValueError:
        return value.decode()


def orders(start: int, count: int) -> list[tuple[str, bytes]]:
    return [
        (f"customer-{i % 4}", json.dumps({"order_id": i, "amount": 5 + i}).encode())
        for i in range(start, start + count)
    ]


def run(
    command: list[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command as a user would; the venv's bin dir leads PATH for the CLI tools."""
    full_env = dict(os.environ)
    full_env["PATH"] = f"{VENV_BIN}{os.pathsep}{full_env.get('PATH', '')}"
    full_env.pop("BOOTSTRAP_SERVERS", None)
    full_env.update(env or {})
    result = subprocess.run(
        command,
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def run_python(example: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, str(EXAMPLES / example), *args])


def run_kafkajs(*args: str) -> subprocess.CompletedProcess[str]:
    return run(
        ["node", str(EXAMPLES / "kafkajs_group_consumer.js"), *args],
        env={"NODE_PATH": str(JS_MODULES)},
    )


def read_rows(stdout: str) -> list[Record]:
    """The messages a group example printed, as (partition, offset, key, value)."""
    rows: list[Record] = []
    for line in stdout.splitlines():
        if m := READ.match(line):
            p, o, k, v = m.groups()
            rows.append((int(p), int(o), k, json.loads(v)))
    return rows


def assert_same_messages(read: list[Record], sent: list[Record]) -> None:
    """Same set of messages, each once, in offset order within every partition."""
    assert sorted(read) == sorted(sent)
    assert len(set((p, o) for p, o, _, _ in read)) == len(read)
    for partition in {p for p, _, _, _ in read}:
        offsets = [o for p, o, _, _ in read if p == partition]
        assert offsets == sorted(offsets), partition


def describe_lag(bootstrap: str, group: str) -> dict[tuple[str, int], tuple[int, int, int]]:
    """``kafka-consumer-groups --describe``: (topic, partition) -> (current, log end, lag)."""
    result = run(
        ["kafka-consumer-groups", "--bootstrap-server", bootstrap, "--describe", "--group", group]
    )
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("GROUP "))
    assert header.split()[:6] == [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
    ]
    rows: dict[tuple[str, int], tuple[int, int, int]] = {}
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[0] == group:
            rows[(fields[1], int(fields[2]))] = (int(fields[3]), int(fields[4]), int(fields[5]))
    return rows


def assert_caught_up(bootstrap: str, group: str, topic: str, sent: list[Record]) -> None:
    """Every partition that holds data is committed at its log end: LAG 0."""
    rows = describe_lag(bootstrap, group)
    ends: dict[int, int] = {}
    for partition, offset, _, _ in sent:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    for partition, end in ends.items():
        assert rows[(topic, partition)] == (end, end, 0), rows


@pytest.mark.parametrize("manual_commit", [False, True], ids=["auto-commit", "manual-commit"])
def test_kafka_python_group_consumer_resumes_after_commit(
    group_broker: BrokerProcess, manual_commit: bool
) -> None:
    bootstrap = group_broker.bootstrap
    topic, group = unique("user-events"), unique("analytics-group")
    create_topic(bootstrap, topic, 3)
    mode = ["--manual-commit"] if manual_commit else []
    common = ["--bootstrap", bootstrap, "--topic", topic, "--group", group, *mode]

    first = produce(bootstrap, topic, orders(0, 9))
    result = run_python("kafka_python_group_consumer.py", *common, "--max-messages", "9")
    assert "consumed 9 messages" in result.stdout
    assert_same_messages(read_rows(result.stdout), first)
    # Manual mode commits each message itself; auto mode relies on close() committing.
    assert_caught_up(bootstrap, group, topic, first)

    second = produce(bootstrap, topic, orders(9, 4))
    result = run_python("kafka_python_group_consumer.py", *common, "--max-messages", "4")
    assert "consumed 4 messages" in result.stdout
    assert_same_messages(read_rows(result.stdout), second)
    assert_caught_up(bootstrap, group, topic, first + second)


def test_confluent_group_consumer_commits_each_message(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic, group = unique("orders"), unique("order-processor")
    create_topic(bootstrap, topic, 3)
    common = ["--bootstrap", bootstrap, "--topic", topic, "--group", group]

    first = produce(bootstrap, topic, orders(0, 10))
    result = run_python("confluent_group_consumer.py", *common, "--max-messages", "10")
    assert "assigned partitions [0, 1, 2]" in result.stdout
    assert "consumed 10 messages" in result.stdout
    assert_same_messages(read_rows(result.stdout), first)
    assert_caught_up(bootstrap, group, topic, first)

    second = produce(bootstrap, topic, orders(10, 5))
    result = run_python("confluent_group_consumer.py", *common, "--max-messages", "5")
    assert "consumed 5 messages" in result.stdout
    assert_same_messages(read_rows(result.stdout), second)
    assert_caught_up(bootstrap, group, topic, first + second)


def read_topic(
    bootstrap: str, topic: str
) -> list[tuple[bytes | None, bytes | None, dict[str, str]]]:
    """Every message of a one-partition topic, from the beginning: key, value, headers."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("dlq-reader"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    messages: list[tuple[bytes | None, bytes | None, dict[str, str]]] = []
    try:
        for _ in range(100):
            msg = consumer.poll(timeout=1.0)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                return messages
            raw_headers = msg.headers() or []
            pairs = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
            headers = {
                name: value.decode() if isinstance(value, bytes) else str(value)
                for name, value in pairs
            }
            messages.append((msg.key(), msg.value(), headers))
    finally:
        consumer.close()
    raise AssertionError(f"never reached the end of {topic}")


def test_confluent_batch_consumer_retries_and_dead_letters(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic, dlq, group = unique("orders"), unique("orders-dlq"), unique("batch")
    create_topic(bootstrap, topic, 2)
    create_topic(bootstrap, dlq, 1)
    common = ["--bootstrap", bootstrap, "--topic", topic, "--dlq-topic", dlq, "--group", group]

    batch = orders(0, 8)
    # Order 2 fails twice and then succeeds; orders 3 and 6 fail all three attempts; the
    # last message is not JSON at all.
    batch[2] = ("customer-2", json.dumps({"order_id": 2, "fail_attempts": 2}).encode())
    batch[3] = ("customer-3", json.dumps({"order_id": 3, "fail_attempts": 3}).encode())
    batch[6] = ("customer-2", json.dumps({"order_id": 6, "fail_attempts": 5}).encode())
    batch.append(("customer-9", b"this is not an order"))
    first = produce(bootstrap, topic, batch)
    failing = {(first[i][0], first[i][1]) for i in (3, 6, 8)}
    retried = (first[2][0], first[2][1])

    result = run_python("confluent_batch_consumer.py", *common, "--max-messages", "9")
    assert "processed 6 messages, dead-lettered 3" in result.stdout
    lines = result.stdout.splitlines()
    dead = {(int(p), int(o)) for p, o in (m.groups() for m in map(DEAD_LETTERED.match, lines) if m)}
    done = {(int(p), int(o)) for p, o, _ in (m.groups() for m in map(PROCESSED.match, lines) if m)}
    assert dead == failing
    assert done == {(p, o) for p, o, _, _ in first} - failing
    assert f"attempt 2 failed partition={retried[0]} offset={retried[1]}: " in result.stdout
    assert f"attempt 3 failed partition={retried[0]} offset={retried[1]}: " not in result.stdout
    assert_caught_up(bootstrap, group, topic, first)

    dead_letters = read_topic(bootstrap, dlq)
    expected = {(batch[i][0].encode(), batch[i][1]) for i in (3, 6, 8)}
    assert len(dead_letters) == 3
    assert {(key, value) for key, value, _ in dead_letters} == expected
    for _, _, headers in dead_letters:
        source = (int(headers["dlq.source.partition"]), int(headers["dlq.source.offset"]))
        assert source in failing and headers["dlq.source.topic"] == topic
        assert headers["dlq.error"]

    # A second run sees only the new messages; the dead-letter topic grows by the one failure.
    more = [
        ("customer-1", json.dumps({"order_id": 20}).encode()),
        ("customer-1", json.dumps({"order_id": 21, "fail_attempts": 3}).encode()),
    ]
    second = produce(bootstrap, topic, more)
    result = run_python("confluent_batch_consumer.py", *common, "--max-messages", "2")
    assert "processed 1 messages, dead-lettered 1" in result.stdout
    assert f"dead-lettered partition={second[1][0]} offset={second[1][1]}" in result.stdout
    assert_caught_up(bootstrap, group, topic, first + second)
    dead_letters = read_topic(bootstrap, dlq)
    assert [(key, value) for key, value, _ in dead_letters[3:]] == [
        (more[1][0].encode(), more[1][1])
    ]


@pytest.mark.parametrize("batch_mode", [False, True], ids=["eachMessage", "eachBatch"])
def test_kafkajs_group_consumer_resumes_after_commit(
    group_broker: BrokerProcess, batch_mode: bool
) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed (make test-deps needs Node.js for kafkajs)")
    assert (JS_MODULES / "kafkajs").is_dir(), "kafkajs missing: run `make test-deps`"
    bootstrap = group_broker.bootstrap
    topic, group = unique("js-orders"), unique("order-processing")
    create_topic(bootstrap, topic, 3)
    mode = ["--batch"] if batch_mode else []
    common = ["--bootstrap", bootstrap, "--topic", topic, "--group", group, *mode]

    first = produce(bootstrap, topic, orders(0, 9))
    result = run_kafkajs(*common, "--max-messages", "9")
    assert "assigned partitions [0, 1, 2]" in result.stdout
    assert "consumed 9 messages" in result.stdout
    assert_same_messages(read_rows(result.stdout), first)
    assert_caught_up(bootstrap, group, topic, first)

    # Stopping at --max-messages in the middle of what is there commits exactly that far.
    second = produce(bootstrap, topic, orders(9, 6))
    result = run_kafkajs(*common, "--max-messages", "2")
    part_one = read_rows(result.stdout)
    assert len(part_one) == 2
    result = run_kafkajs(*common, "--max-messages", "4")
    part_two = read_rows(result.stdout)
    assert_same_messages(part_one + part_two, second)
    assert_caught_up(bootstrap, group, topic, first + second)


def test_moldau_group_describe_reports_total_lag(group_broker: BrokerProcess) -> None:
    bootstrap = group_broker.bootstrap
    topic, group = unique("orders"), unique("order-processor")
    # One partition, so the four consumed messages are offsets 0-3 and two are left.
    create_topic(bootstrap, topic, 1)
    common = ["--bootstrap", bootstrap, "--topic", topic, "--group", group]
    produce(bootstrap, topic, orders(0, 6))
    run_python("confluent_group_consumer.py", *common, "--max-messages", "4")

    result = run(["moldau", "group", "describe", group, "--bootstrap", bootstrap, "-f", "json"])
    described = json.loads(result.stdout)
    assert described["state"] == "Empty"
    assert described["total_lag"] == 2
    assert [
        (row["topic"], row["partition"], row["current_offset"], row["log_end_offset"], row["lag"])
        for row in described["offsets"]
    ] == [(topic, 0, 4, 6, 2)]
