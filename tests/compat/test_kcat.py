"""kcat (librdkafka's command-line client) against a real broker process.

kcat is driven exactly as people type it: ``-L`` for metadata, ``-P`` with ``-K:`` keys,
``-H`` headers and every ``-z`` codec, ``-C -o beginning -e -J`` to read back as JSON lines
that are compared message by message, ``-Q`` to look offsets up by timestamp and ``-o -N``
for offsets relative to the end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

TIMEOUT_S = 60
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
BASE_TS = 1_700_000_000_000


@pytest.fixture(scope="module", autouse=True)
def _kcat_available() -> None:
    if shutil.which("kcat") is None:
        pytest.skip("kcat is not installed (make test-deps apt-installs it)")


def kcat(broker: BrokerProcess, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["kcat", "-b", broker.bootstrap, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"kcat {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def kcat_json_lines(broker: BrokerProcess, *args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in kcat(broker, *args).splitlines() if line.strip()]


def create_topic(broker: BrokerProcess, partitions: int) -> str:
    name = f"kcat-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=15)
    return name


def test_kcat_is_installed() -> None:
    result = subprocess.run(
        ["kcat", "-V"], capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    assert result.returncode == 0
    assert "kcat - Apache Kafka producer and consumer tool" in result.stdout


def test_metadata_lists_broker_and_topics(broker: BrokerProcess) -> None:
    wide, narrow = create_topic(broker, 3), create_topic(broker, 1)
    metadata = json.loads(kcat(broker, "-L", "-J"))
    assert metadata["controllerid"] == 1
    assert metadata["brokers"] == [{"id": 1, "name": broker.bootstrap}]
    topics = {t["topic"]: t for t in metadata["topics"]}
    assert {wide, narrow} <= set(topics)
    partitions = sorted(topics[wide]["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in partitions] == [0, 1, 2]
    for p in partitions:
        assert p["leader"] == 1
        assert p["replicas"] == [{"id": 1}]
        assert p["isrs"] == [{"id": 1}]
    assert len(topics[narrow]["partitions"]) == 1

    text = kcat(broker, "-L", "-t", wide).splitlines()
    assert f"  broker 1 at {broker.bootstrap} (controller)" in text
    assert f'  topic "{wide}" with 3 partitions:' in text
    assert "    partition 2, leader 1, replicas: 1, isrs: 1" in text


@pytest.mark.parametrize("codec", CODECS)
def test_produce_and_consume_json(broker: BrokerProcess, codec: str) -> None:
    """Each partition gets its own kcat -P run: its own keys, headers and edge cases."""
    topic = create_topic(broker, 3)
    # (partition, headers for the whole run, input lines, expected (key, payload) pairs)
    runs: list[tuple[int, list[str], list[str], list[tuple[str | None, str]]]] = [
        (
            0,
            ["trace=abc", "source=kcat"],
            [f"key-{i}:value {i} " + "x" * i for i in range(20)],
            [(f"key-{i}", f"value {i} " + "x" * i) for i in range(20)],
        ),
        (
            1,
            [],
            # No delimiter: a null key. A leading delimiter: an empty key. A value may hold ':'.
            ["no-delimiter", ":empty key", "k:v:with:colons", "k:"],
            [(None, "no-delimiter"), ("", "empty key"), ("k", "v:with:colons"), ("k", "")],
        ),
        (2, ["only=one"], ["a:1", "b:2", "a:3"], [("a", "1"), ("b", "2"), ("a", "3")]),
    ]
    for partition, headers, lines, _ in runs:
        header_args = [arg for h in headers for arg in ("-H", h)]
        kcat(
            broker,
            *("-P", "-t", topic, "-p", str(partition), "-K:", "-z", codec, *header_args),
            stdin="".join(f"{line}\n" for line in lines),
        )

    got = kcat_json_lines(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-J")
    for partition, headers, _, expected in runs:
        have = [m for m in got if m["partition"] == partition]
        assert len(have) == len(expected), partition
        flat_headers = [part for h in headers for part in h.split("=", 1)]
        for offset, (message, (key, payload)) in enumerate(zip(have, expected, strict=True)):
            assert message["topic"] == topic
            assert message["offset"] == offset
            assert message["key"] == key
            assert message["payload"] == payload
            assert message.get("headers", []) == flat_headers
            assert message["tstype"] == "create"


def test_null_values_with_z_flag(broker: BrokerProcess) -> None:
    """-Z sends an empty value as NULL (a tombstone); kcat prints it back as JSON null."""
    topic = create_topic(broker, 1)
    kcat(broker, "-P", "-t", topic, "-K:", "-Z", stdin="gone:\nkept:value\n")
    got = kcat_json_lines(broker, "-C", "-t", topic, "-o", "beginning", "-e", "-J")
    assert [(m["key"], m["payload"]) for m in got] == [("gone", None), ("kept", "value")]


def produce_with_timestamps(broker: BrokerProcess, topic: str, partition: int, count: int) -> None:
    """Messages 1 s apart from BASE_TS; kcat -P cannot set timestamps, librdkafka can."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for i in range(count):
        producer.produce(topic, f"m{i}".encode(), partition=partition, timestamp=BASE_TS + i * 1000)
        producer.flush(30)
    assert producer.flush(30) == 0


def query_offset(broker: BrokerProcess, topic: str, partition: int, timestamp: int) -> int:
    answer = json.loads(kcat(broker, "-Q", "-J", "-t", f"{topic}:{partition}:{timestamp}"))
    entry = answer[topic][str(partition)]
    assert entry["partition"] == partition
    offset: int = entry["offset"]
    return offset


def test_query_offsets_by_timestamp(broker: BrokerProcess) -> None:
    topic = create_topic(broker, 2)
    produce_with_timestamps(broker, topic, partition=1, count=10)
    assert query_offset(broker, topic, 1, BASE_TS) == 0
    assert query_offset(broker, topic, 1, BASE_TS + 3000) == 3
    # Between two timestamps: the first message at or after it.
    assert query_offset(broker, topic, 1, BASE_TS + 3500) == 4
    assert query_offset(broker, topic, 1, BASE_TS - 1) == 0
    # Later than every message: Kafka answers -1.
    assert query_offset(broker, topic, 1, BASE_TS + 60_000) == -1
    # An empty partition has no message at or after any timestamp.
    assert query_offset(broker, topic, 0, BASE_TS) == -1

    text = kcat(broker, "-Q", "-t", f"{topic}:1:{BASE_TS + 7000}")
    assert f"{topic} [1] offset 7" in text.splitlines()


def test_relative_and_absolute_offsets(broker: BrokerProcess) -> None:
    topic = create_topic(broker, 2)
    for partition in (0, 1):
        lines = "".join(f"p{partition}-{i}\n" for i in range(10))
        kcat(broker, "-P", "-t", topic, "-p", str(partition), stdin=lines)

    last_two = kcat_json_lines(broker, "-C", "-t", topic, "-p", "0", "-o", "-2", "-e", "-J")
    assert [(m["offset"], m["payload"]) for m in last_two] == [(8, "p0-8"), (9, "p0-9")]

    # Without -p, -o -2 applies to every partition.
    every = kcat_json_lines(broker, "-C", "-t", topic, "-o", "-2", "-e", "-J")
    assert sorted((m["partition"], m["offset"]) for m in every) == [(0, 8), (0, 9), (1, 8), (1, 9)]

    middle = kcat_json_lines(broker, "-C", "-t", topic, "-p", "1", "-o", "5", "-c", "3", "-J")
    assert [(m["offset"], m["payload"]) for m in middle] == [(5, "p1-5"), (6, "p1-6"), (7, "p1-7")]

    formatted = kcat(broker, "-C", "-t", topic, "-p", "1", "-o", "end", "-e", "-f", "%o %s\n")
    assert formatted == ""
    tail = kcat(broker, "-C", "-t", topic, "-p", "0", "-o", "-1", "-e", "-f", "%p %o %s\n")
    assert tail == "0 9 p0-9\n"
