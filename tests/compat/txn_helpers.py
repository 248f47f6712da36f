"""Shared helpers for the transaction compat tests (``test_txn_*.py``).

Everything here talks to a real broker over TCP with confluent-kafka: creating topics, reading a
set of partitions *to its end* under either isolation level, and asking ListOffsets for the
latest offset per isolation level. "To its end" is what lets a test say "the consumer saw none"
or "saw all": librdkafka signals partition EOF when its fetch position reaches the end offset the
broker reports, which is the high watermark for read_uncommitted and the last stable offset for
read_committed, so a reader that stops at EOF has seen exactly what that isolation level exposes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from confluent_kafka import Consumer, IsolationLevel, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

WAIT_S = 30.0

TP = tuple[str, int]


class Rec(NamedTuple):
    """One consumed record, with the offset the broker gave it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def create_topics(bootstrap: str, *partition_counts: int, prefix: str = "txn") -> list[str]:
    """New topics with random names, one per partition count; waits until each exists."""
    names = [f"{prefix}-{uuid.uuid4().hex[:10]}" for _ in partition_counts]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(n, c, 1) for n, c in zip(names, partition_counts, strict=True)]
    )
    for name in names:
        futures[name].result(timeout=WAIT_S)
    return names


def all_partitions(topics: Mapping[str, int]) -> list[TP]:
    """[(topic, p) ...] for ``{topic: partition_count}``."""
    return [(t, p) for t, count in topics.items() for p in range(count)]


def wait_until(predicate: Callable[[], bool], timeout_s: float = WAIT_S, what: str = "") -> None:
    """Poll ``predicate`` until it holds; fail the test (naming ``what``) if it never does."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.1)


def txn_producer(bootstrap: str, transactional_id: str, **extra: Any) -> Producer:
    """A confluent transactional producer, initialised (InitProducerId done)."""
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "transactional.id": transactional_id,
        "linger.ms": 5,
        **extra,
    }
    producer = Producer(conf)
    producer.init_transactions(WAIT_S)
    return producer


def produce_plain(bootstrap: str, topic: str, partition: int, values: Iterable[bytes]) -> None:
    """Non-transactional records, acknowledged before returning."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for value in values:
        producer.produce(topic, value, key=b"plain", partition=partition)
    assert producer.flush(WAIT_S) == 0


def reader(bootstrap: str, isolation: str, **extra: Any) -> Consumer:
    """An assign-only confluent consumer that reports partition EOF."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"txn-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
            "fetch.wait.max.ms": 100,
            **extra,
        }
    )


def poll_to_end(consumer: Consumer, tps: Iterable[TP], timeout_s: float = WAIT_S) -> list[Rec]:
    """Poll until every partition in ``tps`` has reported EOF once; the records seen so far."""
    waiting = set(tps)
    out: list[Rec] = []
    deadline = time.monotonic() + timeout_s
    while waiting:
        if time.monotonic() > deadline:
            raise AssertionError(f"no EOF within {timeout_s}s for {sorted(waiting)}; got {out}")
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                waiting.discard((msg.topic(), msg.partition()))
                continue
            raise AssertionError(f"consumer error: {err}")
        out.append(Rec(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value()))
    return out


def poll_count(consumer: Consumer, count: int, timeout_s: float = WAIT_S) -> list[Rec]:
    """Poll until ``count`` records arrived (EOF events ignored)."""
    out: list[Rec] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"got {len(out)} of {count} records: {out}")
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                continue
            raise AssertionError(f"consumer error: {err}")
        out.append(Rec(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value()))
    return out


def read_to_end(
    bootstrap: str, tps: Iterable[TP], isolation: str, timeout_s: float = WAIT_S
) -> list[Rec]:
    """Everything ``isolation`` ("read_committed"/"read_uncommitted") exposes in ``tps`` now."""
    tps = list(tps)
    consumer = reader(bootstrap, isolation)
    try:
        consumer.assign([TopicPartition(t, p, 0) for t, p in tps])
        return poll_to_end(consumer, tps, timeout_s)
    finally:
        consumer.close()


def latest_offsets(bootstrap: str, tps: Iterable[TP], *, committed: bool) -> dict[TP, int]:
    """ListOffsets LATEST per partition: the LSO when ``committed``, else the high watermark."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    level = IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
    futures = admin.list_offsets(
        {TopicPartition(t, p): OffsetSpec.latest() for t, p in tps},
        isolation_level=level,
        request_timeout=WAIT_S,
    )
    return {(tp.topic, tp.partition): f.result(WAIT_S).offset for tp, f in futures.items()}


def values(records: Iterable[Rec]) -> list[bytes | None]:
    return [r.value for r in records]


def by_partition(records: Iterable[Rec]) -> dict[TP, list[Rec]]:
    out: dict[TP, list[Rec]] = {}
    for r in records:
        out.setdefault((r.topic, r.partition), []).append(r)
    return out


def assert_no_control_records(records: Iterable[Rec]) -> None:
    """A control record (COMMIT/ABORT marker) leaking as data has a 4-byte key starting
    with version 0 and a short value; no test record has an empty or such key/value."""
    for r in records:
        assert r.key, f"record without key (control record leaked?): {r}"
        assert r.value, f"record without value (control record leaked?): {r}"
        assert r.key not in (b"\x00\x00\x00\x00", b"\x00\x00\x00\x01"), f"control key: {r}"


_OPEN_TXN_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from confluent_kafka import Producer
    bootstrap, txn_id, topic, partitions, count, timeout_ms = sys.argv[1:7]
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id,
                  "transaction.timeout.ms": int(timeout_ms),
                  "message.timeout.ms": int(timeout_ms)})
    p.init_transactions(30)
    p.begin_transaction()
    for part in range(int(partitions)):
        for i in range(int(count)):
            p.produce(topic, f"{txn_id}-{part}-{i}".encode(), key=b"gone", partition=part)
    assert p.flush(30) == 0
    print("open", flush=True)
    time.sleep(3600)
    """
)


def open_txn_in_subprocess(
    bootstrap: str, transactional_id: str, topic: str, partitions: int, count: int, timeout_ms: int
) -> subprocess.Popen[str]:
    """A process that writes ``count`` records per partition in a transaction it never ends,
    returned once the records are acknowledged; the caller SIGKILLs it (a producer that went
    away, leaving its transaction to the coordinator's timeout)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _OPEN_TXN_SCRIPT,
            bootstrap,
            transactional_id,
            topic,
            str(partitions),
            str(count),
            str(timeout_ms),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "open":
        proc.kill()
        rest = proc.communicate(timeout=10)[0]
        raise AssertionError(f"open-txn helper failed: {line}{rest}")
    return proc


def kill_process(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a helper subprocess and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)
