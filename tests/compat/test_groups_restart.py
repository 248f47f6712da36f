"""Groups and committed offsets survive a broker restart, clean (SIGTERM) or not (SIGKILL):
the coordinator replays ``__consumer_offsets`` and everything acknowledged is back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

PARTITIONS = 2
WAIT_S = 60


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(tmp_path / "data", config={"group.initial.rebalance.delay.ms": "0"})
    broker.start()
    yield broker
    broker.close()


def restart(broker: BrokerProcess, how: str) -> None:
    if how == "sigkill":
        broker.kill()
    else:
        assert broker.stop() == 0
    broker.start()


def setup_topic(bootstrap: str, records_per_partition: int) -> str:
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result(timeout=15)
    produce(bootstrap, topic, records_per_partition)
    return topic


def produce(bootstrap: str, topic: str, per_partition: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for p in range(PARTITIONS):
        for i in range(per_partition):
            producer.produce(topic, value=f"{p}-{i}".encode(), partition=p)
    assert producer.flush(15) == 0


def group_consumer(bootstrap: str, group: str, **extra: Any) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "fetch.wait.max.ms": 100,
            **extra,
        }
    )


def consume(consumer: Consumer, count: int) -> list[tuple[int, int]]:
    """Read ``count`` records, committing each synchronously; returns (partition, offset)s."""
    got: list[tuple[int, int]] = []
    deadline = time.monotonic() + WAIT_S
    while len(got) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        got.append((msg.partition(), msg.offset()))
        consumer.commit(message=msg, asynchronous=False)
    assert len(got) == count, f"read {len(got)} of {count}"
    return got


def committed(bootstrap: str, group: str, topic: str) -> list[int]:
    consumer = group_consumer(bootstrap, group)
    try:
        tps = consumer.committed(
            [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=WAIT_S
        )
        return [tp.offset for tp in tps]
    finally:
        consumer.close()


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_committed_offsets_and_groups_survive_a_restart(
    restartable: BrokerProcess, how: str
) -> None:
    bootstrap = restartable.bootstrap
    topic = setup_topic(bootstrap, 5)
    group = f"g-{uuid.uuid4().hex[:6]}"
    standalone = f"standalone-{uuid.uuid4().hex[:6]}"

    consumer = group_consumer(bootstrap, group)
    consumer.subscribe([topic])
    consume(consumer, 6)
    consumer.close()
    before = committed(bootstrap, group, topic)
    assert sum(before) == 6

    manual = group_consumer(bootstrap, standalone)  # assign + commit: generation -1
    manual.commit(
        offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 4)], asynchronous=False
    )
    manual.close()

    restart(restartable, how)

    assert committed(bootstrap, group, topic) == before
    assert committed(bootstrap, standalone, topic) == [3, 4]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = {g.group_id for g in admin.list_consumer_groups().result(timeout=WAIT_S).valid}
    assert {group, standalone} <= listed

    # The group resumes exactly after its last commit.
    consumer = group_consumer(bootstrap, group)
    consumer.subscribe([topic])
    rest = consume(consumer, 10 - 6)
    consumer.close()
    assert sorted(rest) == sorted((p, o) for p in range(PARTITIONS) for o in range(before[p], 5))


def test_a_live_member_carries_on_across_a_broker_crash(restartable: BrokerProcess) -> None:
    bootstrap = restartable.bootstrap
    topic = setup_topic(bootstrap, 3)
    group = f"live-{uuid.uuid4().hex[:6]}"
    consumer = group_consumer(bootstrap, group)
    consumer.subscribe([topic])
    try:
        first = consume(consumer, 6)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        (member,) = admin.describe_consumer_groups([group])[group].result(timeout=WAIT_S).members

        restartable.kill()
        restartable.start()
        produce(bootstrap, topic, 3)
        second = consume(consumer, 6)
        assert not set(first) & set(second)  # nothing committed is read again
        assert sorted(second) == [(p, o) for p in range(PARTITIONS) for o in range(3, 6)]

        admin = AdminClient({"bootstrap.servers": bootstrap})
        described = admin.describe_consumer_groups([group])[group].result(timeout=WAIT_S)
        assert described.state.name == "STABLE"
        assert [m.member_id for m in described.members] == [member.member_id]
    finally:
        consumer.close()
