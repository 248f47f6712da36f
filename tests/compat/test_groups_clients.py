"""Consumer groups with real clients: confluent-kafka, kafka-python, aiokafka and kafkajs.

Each client runs three members (separate processes) on a 6-partition topic: each gets two
partitions; one closes cleanly (LeaveGroup) and the other two take its partitions at once;
one is SIGKILLed and the last takes over when the dead member's session expires. Through it
all, no record is skipped and none is read after a commit past it was acknowledged.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

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
CLIENTS = ["confluent", "kafka-python", "aiokafka", "kafkajs"]


@pytest.fixture(scope="module")
def group_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    data_dir = tmp_path_factory.mktemp("groups") / "data"
    broker = BrokerProcess(data_dir, config={"group.initial.rebalance.delay.ms": "500"})
    broker.start()
    yield broker
    broker.close()


@pytest.mark.parametrize("client", CLIENTS)
def test_three_members_share_six_partitions_and_survive_leave_and_crash(
    group_broker: BrokerProcess, client: str, tmp_path: Path
) -> None:
    if client == "kafkajs" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    bootstrap = group_broker.bootstrap
    topic = create_topic(bootstrap, PARTITIONS)
    group = f"group-{client}-{uuid.uuid4().hex[:6]}"
    feed = Feed(bootstrap, topic, PARTITIONS)
    feed.produce(5)
    members = [Member(client, bootstrap, group, topic, tmp_path) for _ in range(3)]
    try:
        wait_until(
            lambda: (
                balanced(members, PARTITIONS) and all(len(m.assignment or ()) == 2 for m in members)
            ),
            "3 members with 2 partitions each",
            members,
        )
        wait_until(lambda: everything_read(feed, members), "the first records", members)

        # A clean leave: the two others split its partitions, 3 each.
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

        # A crash: once its session expires the survivor owns everything.
        victim, survivor = rest
        feed.produce(5)
        victim.kill()
        wait_until(
            lambda: survivor.assignment == list(range(PARTITIONS)),
            "the survivor owning all partitions",
            members,
        )
        feed.produce(5)
        wait_until(lambda: everything_read(feed, members), "every record", members)
        survivor.terminate()
        check_reads(feed, members)
    finally:
        for member in members:
            member.close()
