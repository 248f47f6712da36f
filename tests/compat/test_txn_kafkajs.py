"""kafkajs 2.2.4 transactions against a real broker process, read back by kafkajs consumers.

``js/transactions.js`` runs a kafkajs transactional producer (idempotent, one request in
flight) through a list of transactions on partition 0 of a topic, each committed or aborted,
and then reads the topic with kafkajs consumers. A ``readUncommitted: false`` consumer (the
read_committed isolation level, kafkajs' default) must see exactly the committed records at
the offsets the producer was told; a ``readUncommitted: true`` one sees every data record,
aborted ones included, and never a control record (the COMMIT/ABORT markers take one offset
each, so the data offsets show a gap after every transaction). Offsets sent with
``sendOffsets`` count for the group only when their transaction commits.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

JS_DIR = Path(__file__).resolve().parent / "js"
TIMEOUT_S = 90


@pytest.fixture(scope="module", autouse=True)
def _kafkajs_available() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed; kafkajs needs Node.js")
    assert (JS_DIR / "node_modules" / "kafkajs").is_dir(), "kafkajs missing: run `make test-deps`"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=15)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def run_transactions(request: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run(
        ["node", str(JS_DIR / "transactions.js")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"transactions.js failed:\n{result.stdout}\n{result.stderr}"
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def txn(action: str, values: list[bytes], **extra: Any) -> dict[str, Any]:
    messages = [{"key": b64(b"k-" + v), "value": b64(v)} for v in values]
    return {"action": action, "messages": messages, **extra}


def reader(read_uncommitted: bool, stop_after: bytes) -> dict[str, Any]:
    return {
        "groupId": unique("txn-reader"),
        "readUncommitted": read_uncommitted,
        "stopAfterValue": b64(stop_after),
        "timeoutMs": 30000,
    }


def read_values(read: dict[str, Any]) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every message a reader was given, in delivery order."""
    assert not read["timedOut"], read
    assert all(m["partition"] == 0 for m in read["messages"])
    return [(int(m["offset"]), unb64(m["key"]), unb64(m["value"])) for m in read["messages"]]


def test_read_committed_sees_committed_transactions_only(broker: BrokerProcess) -> None:
    topic = unique("js-txn")
    create_topic(broker.bootstrap, topic)
    first = [b"a0", b"a1", b"a2"]
    aborted = [b"b0", b"b1", b"b2"]
    last = [b"c0", b"c1"]
    answer = run_transactions(
        {
            "brokers": [broker.bootstrap],
            "topic": topic,
            "transactionalId": unique("js-writer"),
            "transactions": [txn("commit", first), txn("abort", aborted), txn("commit", last)],
            "readers": [reader(False, b"c1"), reader(True, b"c1")],
        }
    )
    # Each transaction's records are one batch; its marker takes the offset after it.
    base_offsets = [int(meta[0]["baseOffset"]) for meta in answer["sent"]]
    assert base_offsets == [0, 4, 8]

    committed, uncommitted = (read_values(r) for r in answer["reads"])
    assert committed == [
        (0, b"k-a0", b"a0"),
        (1, b"k-a1", b"a1"),
        (2, b"k-a2", b"a2"),
        (8, b"k-c0", b"c0"),
        (9, b"k-c1", b"c1"),
    ]
    # read_uncommitted: all data records, the aborted ones too, but no marker (3 and 7).
    assert [(o, v) for o, _, v in uncommitted] == [
        (0, b"a0"),
        (1, b"a1"),
        (2, b"a2"),
        (4, b"b0"),
        (5, b"b1"),
        (6, b"b2"),
        (8, b"c0"),
        (9, b"c1"),
    ]


def committed_offset(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        (tp,) = consumer.committed([TopicPartition(topic, 0)], timeout=15)
    finally:
        consumer.close()
    assert tp.error is None, tp.error
    return int(tp.offset)


def test_send_offsets_count_only_when_the_transaction_commits(broker: BrokerProcess) -> None:
    topic, source, group = unique("js-txn-out"), unique("js-txn-in"), unique("js-processor")
    create_topic(broker.bootstrap, topic)
    create_topic(broker.bootstrap, source)

    def offsets(offset: int) -> dict[str, Any]:
        return {"groupId": group, "topic": source, "partition": 0, "offset": offset}

    answer = run_transactions(
        {
            "brokers": [broker.bootstrap],
            "topic": topic,
            "transactionalId": unique("js-processor"),
            "transactions": [
                txn("commit", [b"x0", b"x1"], offsets=offsets(2)),
                txn("abort", [b"y0"], offsets=offsets(3)),
            ],
            "readers": [reader(False, b"x1")],
        }
    )
    assert [v for _, _, v in read_values(answer["reads"][0])] == [b"x0", b"x1"]
    # The aborted transaction's offset 3 never reached the group.
    assert committed_offset(broker.bootstrap, group, source) == 2

    # A later committed transaction moves it on.
    run_transactions(
        {
            "brokers": [broker.bootstrap],
            "topic": topic,
            "transactionalId": unique("js-processor"),
            "transactions": [txn("commit", [b"z0"], offsets=offsets(5))],
        }
    )
    assert committed_offset(broker.bootstrap, group, source) == 5
