"""Rebalance protocols with librdkafka (confluent-kafka): cooperative-sticky moves only what
must move; a static member restarting inside its session timeout causes no rebalance."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
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


@pytest.fixture(scope="module")
def rebalance_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    data_dir = tmp_path_factory.mktemp("rebalance") / "data"
    broker = BrokerProcess(data_dir, config={"group.initial.rebalance.delay.ms": "500"})
    broker.start()
    yield broker
    broker.close()


def describe(bootstrap: str, group: str) -> Any:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.describe_consumer_groups([group])[group].result(timeout=15)


def test_cooperative_sticky_moves_only_the_partitions_that_must_move(
    rebalance_broker: BrokerProcess, tmp_path: Path
) -> None:
    bootstrap = rebalance_broker.bootstrap
    topic = create_topic(bootstrap, PARTITIONS)
    group = f"coop-{uuid.uuid4().hex[:6]}"
    feed = Feed(bootstrap, topic, PARTITIONS)
    feed.produce(3)

    def member() -> Member:
        return Member("confluent", bootstrap, group, topic, tmp_path, strategy="cooperative")

    members = [member() for _ in range(3)]
    try:
        wait_until(lambda: balanced(members, PARTITIONS), "3 balanced members", members)
        wait_until(lambda: everything_read(feed, members), "the first records", members)
        before = {m.name: set(m.assignment or ()) for m in members}
        seen_events = {m.name: len(m.assignment_events()) for m in members}

        newcomer = member()
        everyone = [*members, newcomer]
        wait_until(lambda: balanced(everyone, PARTITIONS), "4 balanced members", everyone)
        moved = set(newcomer.assignment or ())
        assert len(moved) in (1, 2)
        revoked_total = 0
        for m in members:
            after = set(m.assignment or ())
            assert after <= before[m.name], f"{m.name} gained {after - before[m.name]}"
            new_events = m.assignment_events()[seen_events[m.name] :]
            revoked = [p for e in new_events for p in e["revoked"]]
            # Only what moves is revoked — never the whole assignment, as eager would.
            assert set(revoked) == before[m.name] - after
            revoked_total += len(revoked)
        assert revoked_total == len(moved)

        feed.produce(3)
        wait_until(lambda: everything_read(feed, everyone), "records after the rebalance", everyone)
        for m in everyone:
            m.terminate()
        check_reads(feed, everyone)
    finally:
        for m in members:
            m.close()
        if "newcomer" in locals():
            newcomer.close()


def test_static_member_restart_within_session_timeout_does_not_rebalance(
    rebalance_broker: BrokerProcess, tmp_path: Path
) -> None:
    bootstrap = rebalance_broker.bootstrap
    topic = create_topic(bootstrap, PARTITIONS)
    group = f"static-{uuid.uuid4().hex[:6]}"
    feed = Feed(bootstrap, topic, PARTITIONS)
    feed.produce(3)

    def member(instance: str) -> Member:
        return Member(
            "confluent",
            bootstrap,
            group,
            topic,
            tmp_path,
            instance_id=instance,
            session_timeout_ms=15000,
        )

    members = [member(f"instance-{i}") for i in range(3)]
    restarted: Member | None = None
    try:
        wait_until(
            lambda: (
                balanced(members, PARTITIONS) and all(len(m.assignment or ()) == 2 for m in members)
            ),
            "3 static members with 2 partitions each",
            members,
        )
        wait_until(lambda: everything_read(feed, members), "the first records", members)
        described = describe(bootstrap, group)
        ids_before = {m.group_instance_id: m.member_id for m in described.members}
        assert set(ids_before) == {"instance-0", "instance-1", "instance-2"}
        others = members[1:]
        events_before = {m.name: len(m.assignment_events()) for m in others}

        old = members[0]
        old_assignment = old.assignment
        old.terminate()  # a static member does not leave the group on close
        restarted = member("instance-0")
        everyone = [*members, restarted]
        wait_until(
            lambda: restarted is not None and restarted.assignment == old_assignment,
            "the restarted instance getting its partitions back",
            everyone,
        )
        for m in others:  # nobody else went through a rebalance
            assert len(m.assignment_events()) == events_before[m.name], m.assignment_events()

        described = describe(bootstrap, group)
        assert described.state.name == "STABLE"
        ids_after = {m.group_instance_id: m.member_id for m in described.members}
        assert set(ids_after) == set(ids_before)
        assert ids_after["instance-0"] != ids_before["instance-0"]
        assert ids_after["instance-1"] == ids_before["instance-1"]
        assert ids_after["instance-2"] == ids_before["instance-2"]

        feed.produce(3)
        wait_until(lambda: everything_read(feed, everyone), "records after the restart", everyone)
        check_reads(feed, everyone)
    finally:
        for m in members:
            m.close()
        if restarted is not None:
            restarted.close()
