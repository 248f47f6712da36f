"""KIP-848 with a real client: confluent-kafka consumers with ``group.protocol=consumer``.

Three members (separate processes, this file run as a script) on a 6-partition topic split
the partitions two each through ConsumerGroupHeartbeat; one closes (leaving with member
epoch -1) and the other two take over its partitions; every record is read, committed one
by one with the member epoch, and none is read after a commit past it was acknowledged.
``AdminClient.describe_consumer_groups`` (ConsumerGroupDescribe) shows the members.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from group_members import (
    Feed,
    Member,
    balanced,
    check_reads,
    create_topic,
    everything_read,
    wait_until,
)

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

PARTITIONS = 6


class ConsumerProtocolMember(Member):
    """A member process running :func:`run_member` (this file as a script)."""

    def __init__(self, bootstrap: str, group: str, topic: str, log_dir: Path) -> None:
        opts = {"bootstrap": bootstrap, "group": group, "topic": topic}
        self.client = "confluent-consumer-protocol"
        self.name = f"kip848-{uuid.uuid4().hex[:6]}"
        self.stderr_path = log_dir / f"{self.name}.stderr"
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, json.dumps(opts)],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()


@pytest.fixture(scope="module")
def kip848_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(tmp_path_factory.mktemp("kip848") / "data")
    broker.start()
    yield broker
    broker.close()


def test_consumer_protocol_members_share_partitions_and_take_over_on_leave(
    kip848_broker: BrokerProcess, tmp_path: Path
) -> None:
    from confluent_kafka.admin import AdminClient

    bootstrap = kip848_broker.bootstrap
    topic = create_topic(bootstrap, PARTITIONS)
    group = f"kip848-{uuid.uuid4().hex[:6]}"
    feed = Feed(bootstrap, topic, PARTITIONS)
    feed.produce(5)
    members = [ConsumerProtocolMember(bootstrap, group, topic, tmp_path) for _ in range(3)]
    try:
        wait_until(
            lambda: (
                balanced(members, PARTITIONS) and all(len(m.assignment or ()) == 2 for m in members)
            ),
            "3 members with 2 partitions each",
            members,
        )
        wait_until(lambda: everything_read(feed, members), "the first records", members)

        admin = AdminClient({"bootstrap.servers": bootstrap})
        described = admin.describe_consumer_groups([group])[group].result(timeout=15)
        assert described.type.name == "CONSUMER"
        assert len(described.members) == 3
        held = sorted(
            tp.partition for m in described.members for tp in m.assignment.topic_partitions
        )
        assert held == list(range(PARTITIONS))

        leaver, *rest = members
        leaver.terminate()
        assert leaver.has("closed")
        wait_until(
            lambda: balanced(rest, PARTITIONS) and all(len(m.assignment or ()) == 3 for m in rest),
            "2 members with 3 partitions each",
            members,
        )
        feed.produce(5)
        wait_until(lambda: everything_read(feed, members), "records after the leave", members)
        check_reads(feed, members)

        described = admin.describe_consumer_groups([group])[group].result(timeout=15)
        assert len(described.members) == 2
    finally:
        for member in members:
            member.close()


def test_broker_restart_keeps_offsets_and_the_group(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data")
    broker.start()
    members: list[Member] = []
    try:
        bootstrap = broker.bootstrap
        topic = create_topic(bootstrap, PARTITIONS)
        group = f"kip848-restart-{uuid.uuid4().hex[:6]}"
        feed = Feed(bootstrap, topic, PARTITIONS)
        feed.produce(3)
        members.append(ConsumerProtocolMember(bootstrap, group, topic, tmp_path))
        wait_until(lambda: everything_read(feed, members), "records before the restart", members)
        broker.restart()
        feed = Feed(bootstrap, topic, PARTITIONS)
        feed.end_offsets = [3] * PARTITIONS
        feed.produce(3)
        wait_until(lambda: everything_read(feed, members), "records after the restart", members)
        check_reads(feed, members)
        # Nothing before the restart was read again: the commits survived it.
        reads = members[0].reads()
        assert len(reads) == len(set(reads)) == feed.total
    finally:
        for member in members:
            member.close()
        broker.close()


# -- the member process ----------------------------------------------------------------------


def emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, "t": time.time(), **fields}) + "\n")
    sys.stdout.flush()


def run_member(opts: dict[str, Any], stop: threading.Event) -> None:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": opts["bootstrap"],
            "group.id": opts["group"],
            "group.protocol": "consumer",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    current: set[int] = set()

    def on_assign(_c: Any, partitions: list[Any]) -> None:
        added = {p.partition for p in partitions}
        current.update(added)
        emit("assignment", partitions=sorted(current), added=sorted(added), revoked=[])

    def on_revoke(_c: Any, partitions: list[Any]) -> None:
        revoked = {p.partition for p in partitions}
        current.difference_update(revoked)
        emit("assignment", partitions=sorted(current), added=[], revoked=sorted(revoked))

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
            continue
        emit("committed", p=msg.partition(), o=msg.offset() + 1)
    consumer.close()
    emit("closed")


if __name__ == "__main__":
    stop_event = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
    run_member(json.loads(sys.argv[1]), stop_event)
