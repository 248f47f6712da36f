"""kafkajs 2.2.4 (Node) produces to and administers a real broker process.

kafkajs runs through the small scripts in ``tests/compat/js`` (one JSON request on stdin, one
JSON answer on stdout). Only gzip is tested among the codecs: it is the one kafkajs has built
in; snappy, lz4 and zstd need third-party codec plugins that the seed usage does not install.
kafkajs' consumer always joins a group, and groups are a later issue, so what kafkajs
produced is read back with confluent-kafka's ``assign`` and compared message by message.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

JS_DIR = Path(__file__).resolve().parent / "js"
TIMEOUT_S = 60
PARTITIONS = 3
BASE_TS = 1_700_000_000_000


@pytest.fixture(scope="module", autouse=True)
def _kafkajs_available() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed; kafkajs needs Node.js")
    assert (JS_DIR / "node_modules" / "kafkajs").is_dir(), "kafkajs missing: run `make test-deps`"


def run_js(script: str, request: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run(
        ["node", str(JS_DIR / script)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def admin(broker: BrokerProcess, *ops: dict[str, Any], retries: int | None = None) -> list[Any]:
    request: dict[str, Any] = {"brokers": [broker.bootstrap], "ops": list(ops)}
    if retries is not None:
        request["retries"] = retries
    results: list[Any] = run_js("admin.js", request)["results"]
    return results


def ok(result: dict[str, Any]) -> Any:
    assert "error" not in result, result
    return result["ok"]


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


@dataclass(frozen=True)
class Msg:
    partition: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int

    def to_request(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "key": b64(self.key),
            "value": b64(self.value),
            "headers": [[name, b64(value)] for name, value in self.headers],
            "timestamp": str(self.timestamp),
        }


def make_messages(n: int = 60) -> list[Msg]:
    messages = []
    for i in range(n):
        key = None if i % 5 == 0 else f"key-{i}".encode()
        headers = (("h1", f"v{i}".encode()), ("trace", b"\x00\xff")) if i % 3 == 0 else ()
        value = f"value-{i}-".encode() * (1 + i % 7)
        messages.append(Msg(i % PARTITIONS, key, value, headers, BASE_TS + i))
    return messages


def chunks(items: list[Msg], size: int) -> Iterator[list[Msg]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def produce(
    broker: BrokerProcess,
    topic: str,
    sends: list[list[Msg]],
    *,
    compression: str = "none",
    idempotent: bool = False,
    acks: int = -1,
) -> list[list[dict[str, Any]]]:
    request = {
        "brokers": [broker.bootstrap],
        "topic": topic,
        "compression": compression,
        "idempotent": idempotent,
        "acks": acks,
        "sends": [[m.to_request() for m in send] for send in sends],
    }
    results: list[list[dict[str, Any]]] = run_js("produce.js", request)["results"]
    return results


def create_topic(broker: BrokerProcess, partitions: int = PARTITIONS) -> str:
    name = f"kafkajs-{uuid.uuid4().hex[:10]}"
    topic = {"topic": name, "numPartitions": partitions, "replicationFactor": 1}
    assert ok(admin(broker, {"op": "createTopics", "args": {"topics": [topic]}})[0]) is True
    return name


def consume(
    broker: BrokerProcess, topic: str, count: int, partitions: int = PARTITIONS
) -> list[tuple[Msg, int]]:
    """Read ``count`` messages with confluent-kafka, assigned from offset 0 (no group)."""
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": "unused-assign-only",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[tuple[Msg, int]] = []
    try:
        for _ in range(300):
            if len(out) >= count:
                break
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            partition, offset, value = msg.partition(), msg.offset(), msg.value()
            assert partition is not None and offset is not None and value is not None
            # Consumed headers are (name, bytes) pairs; the stubs also allow produce()'s forms.
            headers = cast("tuple[tuple[str, bytes], ...]", tuple(msg.headers() or ()))
            _ts_type, ts = msg.timestamp()
            out.append((Msg(partition, msg.key(), value, headers, ts), offset))
    finally:
        consumer.close()
    return out


def check_partition_order(expected: list[Msg], got: list[tuple[Msg, int]]) -> None:
    for partition in range(PARTITIONS):
        want = [m for m in expected if m.partition == partition]
        have = [m for m, _ in got if m.partition == partition]
        assert len(have) == len(want), f"partition {partition}: {len(have)} != {len(want)}"
        for i, (w, h) in enumerate(zip(want, have, strict=True)):
            assert h == w, f"partition {partition} message {i}: {h} != {w}"
        offsets = [o for m, o in got if m.partition == partition]
        assert offsets == list(range(len(want)))


@pytest.mark.parametrize(
    ("compression", "idempotent", "acks"),
    [("none", False, 1), ("none", True, -1), ("gzip", False, -1), ("gzip", True, -1)],
)
def test_produce_round_trip(
    broker: BrokerProcess, compression: str, idempotent: bool, acks: int
) -> None:
    """Keys, null keys, binary headers and timestamps survive, in order, across many sends."""
    topic = create_topic(broker)
    expected = make_messages()
    sends = list(chunks(expected, 7))
    results = produce(
        broker, topic, sends, compression=compression, idempotent=idempotent, acks=acks
    )

    # Each send's RecordMetadata gives per partition the offset of its first message there.
    next_offset = dict.fromkeys(range(PARTITIONS), 0)
    for send, metadata in zip(sends, results, strict=True):
        partitions_sent = {m.partition for m in send}
        assert {r["partition"] for r in metadata} == partitions_sent
        for r in metadata:
            assert r["topicName"] == topic
            assert r["errorCode"] == 0
            assert int(r["baseOffset"]) == next_offset[r["partition"]]
        for m in send:
            next_offset[m.partition] += 1

    check_partition_order(expected, consume(broker, topic, len(expected)))


def test_keyed_messages_stay_together_in_order(broker: BrokerProcess) -> None:
    """Without explicit partitions kafkajs hashes keys; one key's messages keep their order."""
    topic = create_topic(broker)
    messages = [
        {"key": b64(f"customer-{i % 4}".encode()), "value": b64(f"order-{i:03d}".encode())}
        for i in range(40)
    ]
    run_js(
        "produce.js",
        {
            "brokers": [broker.bootstrap],
            "topic": topic,
            "compression": "gzip",
            "idempotent": True,
            "sends": [messages[:20], messages[20:]],
        },
    )
    got = consume(broker, topic, 40)
    assert len(got) == 40
    per_key: dict[bytes, list[tuple[int, bytes]]] = {}
    for m, _ in got:
        assert m.key is not None
        per_key.setdefault(m.key, []).append((m.partition, m.value))
    assert len(per_key) == 4
    for key, rows in per_key.items():
        assert len({p for p, _ in rows}) == 1, key
        assert [v for _, v in rows] == sorted(v for _, v in rows)
        assert len(rows) == 10


def test_admin_topic_lifecycle(broker: BrokerProcess) -> None:
    """createTopics, fetchTopicMetadata, fetchTopicOffsets, deleteTopics and listTopics."""
    suffix = uuid.uuid4().hex[:8]
    wide, narrow = f"kafkajs-wide-{suffix}", f"kafkajs-narrow-{suffix}"
    topics = [
        {"topic": wide, "numPartitions": 3, "replicationFactor": 1},
        {
            "topic": narrow,
            "numPartitions": 1,
            "replicationFactor": 1,
            "configEntries": [{"name": "retention.ms", "value": "3600000"}],
        },
    ]
    created, again, metadata, offsets = admin(
        broker,
        {"op": "createTopics", "args": {"topics": topics}},
        # kafkajs resolves createTopics to false when the topics already exist.
        {"op": "createTopics", "args": {"topics": topics[:1]}},
        {"op": "fetchTopicMetadata", "args": {"topics": [wide, narrow]}},
        {"op": "fetchTopicOffsets", "args": {"topic": wide}},
    )
    assert ok(created) is True
    assert ok(again) is False
    described = {t["name"]: t for t in ok(metadata)["topics"]}
    assert set(described) == {wide, narrow}
    assert len(described[narrow]["partitions"]) == 1
    partitions = sorted(described[wide]["partitions"], key=lambda p: p["partitionId"])
    assert [p["partitionId"] for p in partitions] == [0, 1, 2]
    for p in partitions:
        assert p["partitionErrorCode"] == 0
        assert p["leader"] == 1
        assert p["replicas"] == [1]
        assert p["isr"] == [1]
    empty = {o["partition"]: (o["low"], o["high"], o["offset"]) for o in ok(offsets)}
    assert empty == {0: ("0", "0", "0"), 1: ("0", "0", "0"), 2: ("0", "0", "0")}

    expected = make_messages(30)
    produce(broker, wide, [expected])
    after, by_time = admin(
        broker,
        {"op": "fetchTopicOffsets", "args": {"topic": wide}},
        # The first offset whose timestamp is at or after BASE_TS + 10 (message 10).
        {"op": "fetchTopicOffsetsByTimestamp", "args": {"topic": wide, "timestamp": BASE_TS + 10}},
    )
    ends = {o["partition"]: (o["low"], o["high"]) for o in ok(after)}
    assert ends == {0: ("0", "10"), 1: ("0", "10"), 2: ("0", "10")}
    firsts = {o["partition"]: o["offset"] for o in ok(by_time)}
    # Message i sits at offset i // 3 of partition i % 3; 10, 11, 12 are the first ones late
    # enough in partitions 1, 2 and 0.
    assert firsts == {0: "4", 1: "3", 2: "3"}

    deleted, listed = admin(
        broker,
        {"op": "deleteTopics", "args": {"topics": [wide, narrow]}},
        {"op": "listTopics"},
    )
    assert ok(deleted) is None
    assert wide not in ok(listed)
    assert narrow not in ok(listed)


def test_delete_unknown_topic_reports_unknown_topic(broker: BrokerProcess) -> None:
    (result,) = admin(
        broker,
        {"op": "deleteTopics", "args": {"topics": [f"kafkajs-missing-{uuid.uuid4().hex[:8]}"]}},
        retries=0,
    )
    assert "error" in result
    error = result["error"]
    while error["cause"] is not None:
        error = error["cause"]
    assert error["type"] == "UNKNOWN_TOPIC_OR_PARTITION"


def test_produce_to_a_confluent_written_topic_continues_its_offsets(
    broker: BrokerProcess,
) -> None:
    """kafkajs appends after another client's data; both are read back in one sequence."""
    topic = create_topic(broker, partitions=1)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(5):
        producer.produce(topic, f"librdkafka-{i}".encode(), partition=0, timestamp=BASE_TS + i)
    assert producer.flush(30) == 0
    js_messages = [Msg(0, b"k", f"kafkajs-{i}".encode(), (), BASE_TS + 5 + i) for i in range(5)]
    (metadata,) = produce(broker, topic, [js_messages], compression="gzip", idempotent=True)
    assert [int(r["baseOffset"]) for r in metadata] == [5]
    got = consume(broker, topic, 10, partitions=1)
    assert [o for _, o in got] == list(range(10))
    assert [m.value for m, _ in got] == [f"librdkafka-{i}".encode() for i in range(5)] + [
        f"kafkajs-{i}".encode() for i in range(5)
    ]
