"""One consumer-group member, run as its own process so that tests can SIGKILL it.

Usage: ``python group_member.py '<json options>'`` with ``client`` ("confluent",
"kafka-python" or "aiokafka"), ``bootstrap``, ``group``, ``topic`` and optionally
``instance_id``, ``strategy`` ("eager" | "cooperative"), ``session_timeout_ms``.

It reports on stdout, one JSON object per line, flushed at once, each with ``t``, the wall
clock in seconds (comparable across processes):

- ``{"event": "ready"}`` once subscribed;
- ``{"event": "assignment", "partitions": [...], "added": [...], "revoked": [...]}`` after
  every change of its assignment (the whole assignment, and what changed);
- ``{"event": "msg", "p": partition, "o": offset}`` for every record it reads;
- ``{"event": "committed", "p": partition, "o": next_offset}`` once the synchronous commit
  of that record succeeded (every record is committed one by one, so the last
  ``committed`` line of a partition is exactly where a successor must resume);
- ``{"event": "closed"}`` after a clean close on SIGTERM (which leaves the group).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
from typing import Any


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


class Assignment:
    def __init__(self) -> None:
        self.current: set[int] = set()

    def revoke(self, partitions: list[int]) -> None:
        self.current -= set(partitions)
        emit("assignment", partitions=sorted(self.current), added=[], revoked=sorted(partitions))

    def add(self, partitions: list[int]) -> None:
        self.current |= set(partitions)
        emit("assignment", partitions=sorted(self.current), added=sorted(partitions), revoked=[])

    def replace(self, partitions: list[int]) -> None:
        added = sorted(set(partitions) - self.current)
        revoked = sorted(self.current - set(partitions))
        self.current = set(partitions)
        emit("assignment", partitions=sorted(self.current), added=added, revoked=revoked)


def run_confluent(opts: dict[str, Any], stop: threading.Event) -> None:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    config: dict[str, Any] = {
        "bootstrap.servers": opts["bootstrap"],
        "group.id": opts["group"],
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": opts.get("session_timeout_ms", 6000),
        "heartbeat.interval.ms": 500,
        "fetch.wait.max.ms": 100,
        "topic.metadata.refresh.interval.ms": 1000,
    }
    cooperative = opts.get("strategy") == "cooperative"
    if cooperative:
        config["partition.assignment.strategy"] = "cooperative-sticky"
    if opts.get("instance_id"):
        config["group.instance.id"] = opts["instance_id"]
    consumer = Consumer(config)
    assignment = Assignment()

    def on_assign(c: Any, partitions: list[Any]) -> None:
        if cooperative:
            assignment.add([p.partition for p in partitions])
        else:
            assignment.replace([p.partition for p in partitions])

    def on_revoke(c: Any, partitions: list[Any]) -> None:
        if cooperative:
            assignment.revoke([p.partition for p in partitions])
        else:
            assignment.replace([])

    consumer.subscribe([opts["topic"]], on_assign=on_assign, on_revoke=on_revoke)
    emit("ready")
    while not stop.is_set():
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        emit("msg", p=msg.partition(), o=msg.offset())
        tp = TopicPartition(msg.topic(), msg.partition(), msg.offset() + 1)
        try:
            consumer.commit(offsets=[tp], asynchronous=False)
        except KafkaException:
            continue  # e.g. a rebalance fenced this generation: the successor re-reads
        emit("committed", p=msg.partition(), o=msg.offset() + 1)
    consumer.close()
    emit("closed")


def run_kafka_python(opts: dict[str, Any], stop: threading.Event) -> None:
    from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata
    from kafka.errors import KafkaError

    consumer = KafkaConsumer(
        bootstrap_servers=opts["bootstrap"],
        group_id=opts["group"],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=opts.get("session_timeout_ms", 6000),
        heartbeat_interval_ms=500,
        fetch_max_wait_ms=100,
        metadata_max_age_ms=1000,
    )
    assignment = Assignment()

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        def on_partitions_revoked(self, revoked: Any) -> None:
            assignment.replace([])

        def on_partitions_assigned(self, assigned: Any) -> None:
            assignment.replace([tp.partition for tp in assigned])

    consumer.subscribe([opts["topic"]], listener=Listener())
    emit("ready")
    while not stop.is_set():
        batches = consumer.poll(timeout_ms=200, max_records=1)
        for tp, records in batches.items():
            for record in records:
                emit("msg", p=tp.partition, o=record.offset)
                try:
                    consumer.commit({tp: OffsetAndMetadata(record.offset + 1, None, -1)})
                except KafkaError:
                    continue
                emit("committed", p=tp.partition, o=record.offset + 1)
    consumer.close()
    emit("closed")


def run_aiokafka(opts: dict[str, Any], stop: threading.Event) -> None:
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
    from aiokafka.errors import KafkaError

    assignment = Assignment()

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        def on_partitions_revoked(self, revoked: Any) -> None:
            assignment.replace([])

        def on_partitions_assigned(self, assigned: Any) -> None:
            assignment.replace([tp.partition for tp in assigned])

    async def main() -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=opts["bootstrap"],
            group_id=opts["group"],
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=opts.get("session_timeout_ms", 6000),
            heartbeat_interval_ms=500,
            fetch_max_wait_ms=100,
            metadata_max_age_ms=1000,
        )
        consumer.subscribe([opts["topic"]], listener=Listener())
        await consumer.start()
        emit("ready")
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=1)
            for tp, records in batches.items():
                for record in records:
                    emit("msg", p=tp.partition, o=record.offset)
                    try:
                        await consumer.commit(
                            {TopicPartition(tp.topic, tp.partition): record.offset + 1}
                        )
                    except KafkaError:
                        continue
                    emit("committed", p=tp.partition, o=record.offset + 1)
        await consumer.stop()
        emit("closed")

    asyncio.run(main())


RUNNERS = {"confluent": run_confluent, "kafka-python": run_kafka_python, "aiokafka": run_aiokafka}


def main() -> None:
    opts = json.loads(sys.argv[1])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    RUNNERS[opts["client"]](opts, stop)


if __name__ == "__main__":
    main()
