"""``moldau partitions``: plans in Kafka's format, reassignment and leader election against a
real 3-broker cluster (etcd + broker processes), and one-line errors for bad input."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import Runner

from moldau.cli.admin import BrokerInfo, ClusterInfo, PartitionLeadership
from moldau.cli.common import CliError
from moldau.cli.partitions import PlanEntry, parse_plan, plan_document, propose
from moldau.cluster.state import BrokerRegistration
from moldau.testing.broker import free_port
from moldau.testing.etcd_cluster import LocalCluster

# -- plans, without a cluster ------------------------------------------------------------------


def layout(**topics: list[tuple[int, ...]]) -> ClusterInfo:
    partitions = tuple(
        PartitionLeadership(name, p, replicas[0], replicas, replicas)
        for name, assignment in topics.items()
        for p, replicas in enumerate(assignment)
    )
    brokers = tuple(BrokerInfo(i, "127.0.0.1", 9091 + i) for i in (1, 2, 3, 4))
    return ClusterInfo("c", 1, brokers, len(topics), tuple(topics), partitions)


def test_a_plan_reads_back_what_plan_document_wrote() -> None:
    entries = [PlanEntry("b", 0, (3, 1)), PlanEntry("a", 1, (1, 2, 3))]
    text = json.dumps(plan_document(entries))
    assert parse_plan(text, "plan") == sorted(entries, key=lambda e: e.key)
    assert json.loads(text)["version"] == 1


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("{", "not valid JSON"),
        ('{"version":2,"partitions":[]}', "unsupported plan version"),
        ('{"partitions":[]}', "non-empty list"),
        ('{"partitions":[{"topic":"t","partition":0,"replicas":[]}]}', "'replicas'"),
        ('{"partitions":[{"topic":"t","partition":-1,"replicas":[1]}]}', "'partition'"),
        ('{"partitions":[{"topic":"t","partition":0,"replicas":[1,1]}]}', "duplicate broker"),
        (
            '{"partitions":[{"topic":"t","partition":0,"replicas":[1]},'
            '{"topic":"t","partition":0,"replicas":[2]}]}',
            "more than once",
        ),
        (
            '{"partitions":[{"topic":"t","partition":0,"replicas":[1],"log_dirs":["/x"]}]}',
            "log dirs",
        ),
    ],
)
def test_a_bad_plan_is_refused_in_one_sentence(text: str, complaint: str) -> None:
    with pytest.raises(CliError) as caught:
        parse_plan(text, "plan.json")
    assert complaint in caught.value.message
    assert caught.value.exit_code == 2


def test_propose_places_every_partition_on_the_given_brokers_with_its_replication() -> None:
    cluster = layout(t=[(1, 2), (2, 3), (3, 1)], u=[(1, 2, 3)], other=[(1,)])
    brokers = [BrokerRegistration(i, "h", 1, rack=r) for i, r in ((2, "x"), (3, "y"), (4, "x"))]
    plan = propose(cluster, ["t", "u"], brokers, rng=random.Random(7))
    assert [e.key for e in plan] == [("t", 0), ("t", 1), ("t", 2), ("u", 0)]
    for entry in plan:
        assert set(entry.replicas) <= {2, 3, 4}
        assert len(set(entry.replicas)) == len(entry.replicas)
        assert len(entry.replicas) == (2 if entry.topic == "t" else 3)
    for entry in plan[:3]:  # rack-aware: two replicas never share rack x
        assert {2, 4} != set(entry.replicas)
    leaders = {e.replicas[0] for e in plan[:3]}
    assert leaders == {2, 3, 4}  # preferred leadership spread over the brokers


def test_propose_refuses_more_replicas_than_brokers_and_unknown_topics() -> None:
    cluster = layout(t=[(1, 2, 3)])
    two = [BrokerRegistration(i, "h", 1) for i in (1, 2)]
    with pytest.raises(CliError, match="larger than the 2 broker"):
        propose(cluster, ["t"], two)
    with pytest.raises(CliError, match="topic 'nope' does not exist"):
        propose(cluster, ["nope"], two)


def test_reassign_needs_exactly_one_action(moldau: Runner, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(plan_document([PlanEntry("t", 0, (1,))])))
    nobody = f"127.0.0.1:{free_port()}"
    for flags in ((), ("--execute", "--verify")):
        result = moldau("partitions", "reassign", "--plan", str(plan), *flags, "-b", nobody)
        assert result.code == 2
        assert result.err_lines == ["error: give exactly one of --execute, --verify or --cancel"]


def test_elect_leaders_partition_needs_a_topic(moldau: Runner) -> None:
    result = moldau("partitions", "elect-leaders", "--partition", "0", "-b", "127.0.0.1:1")
    assert result.code == 2
    assert result.err_lines == ["error: --partition needs --topic"]


# -- against a cluster -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(3, racks=["r1", "r2", "r3"]) as running:
        yield running


def test_generate_proposes_a_plan_in_kafkas_format(
    moldau: Runner, cluster: LocalCluster, topic_name: str
) -> None:
    cluster.create_topic(topic_name, 4, 2)
    args = ("partitions", "generate", "--topics", topic_name, "--brokers", "2,3")
    result = moldau(*args, "-b", cluster.bootstrap, "--format", "json")
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    assert plan["version"] == 1
    assert [(p["topic"], p["partition"]) for p in plan["partitions"]] == [
        (topic_name, i) for i in range(4)
    ]
    assert all(sorted(p["replicas"]) == [2, 3] for p in plan["partitions"])
    text = moldau(*args, "-b", cluster.bootstrap)
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert lines[0] == "Current partition replica assignment"
    assert "Proposed partition reassignment configuration" in lines
    current = json.loads(lines[1])["partitions"]
    assert all(len(p["replicas"]) == 2 for p in current)


def test_generate_names_a_broker_that_is_not_in_the_cluster(
    moldau: Runner, cluster: LocalCluster, topic_name: str
) -> None:
    cluster.create_topic(topic_name, 1, 1)
    result = moldau(
        "partitions",
        "generate",
        "--topics",
        topic_name,
        "--brokers",
        "1,9",
        "-b",
        cluster.bootstrap,
    )
    assert result.code == 2
    assert result.err_lines == ["error: brokers not in the cluster: 9 (brokers: 1,2,3)"]


def test_reassign_execute_moves_replicas_and_verify_sees_it_done(
    moldau: Runner, cluster: LocalCluster, topic_name: str, tmp_path: Path
) -> None:
    cluster.create_topic(topic_name, 1, 2)
    before = cluster.metadata(topic_name)[0].replicas
    target = (*(b for b in (1, 2, 3) if b not in before), before[0])
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(plan_document([PlanEntry(topic_name, 0, target)])))
    boot = ("-b", cluster.bootstrap, "--timeout-ms", "30000")
    result = moldau("partitions", "reassign", "--plan", str(plan), "--execute", *boot)
    assert result.code == 0, result.err
    assert f"Successfully started partition reassignments for {topic_name}-0" in result.out
    rollback = json.loads(result.out.splitlines()[2])
    assert rollback["partitions"][0]["replicas"] == list(before)

    def verified() -> dict[str, object]:
        answer = moldau(
            "partitions", "reassign", "--plan", str(plan), "--verify", *boot, "-f", "json"
        )
        assert answer.code == 0, answer.err
        document = json.loads(answer.out)
        assert isinstance(document, dict)
        return document

    cluster.wait_for(lambda: verified()["complete"], 60, "the reassignment to complete")
    assert cluster.metadata(topic_name)[0].replicas == target
    listing = moldau("partitions", "list-reassignments", "--topic", topic_name, *boot, "-f", "json")
    assert listing.code == 0, listing.err
    assert json.loads(listing.out) == []
    text = moldau("partitions", "reassign", "--plan", str(plan), "--verify", *boot)
    assert f"Reassignment of partition {topic_name}-0 is completed." in text.out


def test_reassign_to_a_missing_broker_is_refused_before_anything_moves(
    moldau: Runner, cluster: LocalCluster, topic_name: str, tmp_path: Path
) -> None:
    cluster.create_topic(topic_name, 2, 1)
    plan = tmp_path / "plan.json"
    entries = [PlanEntry(topic_name, 0, (1,)), PlanEntry(topic_name, 1, (7,))]
    plan.write_text(json.dumps(plan_document(entries)))
    result = moldau(
        "partitions", "reassign", "--plan", str(plan), "--execute", "-b", cluster.bootstrap
    )
    assert result.code == 2
    assert result.err_lines == [
        "error: the plan names brokers that are not in the cluster: 7 (brokers: 1,2,3)"
    ]
    listing = moldau("partitions", "list-reassignments", "-b", cluster.bootstrap, "-f", "json")
    assert listing.code == 0, listing.err
    assert [r for r in json.loads(listing.out) if r["topic"] == topic_name] == []


def test_elect_leaders_makes_the_preferred_replica_lead(
    moldau: Runner, cluster: LocalCluster, topic_name: str
) -> None:
    cluster.create_topic(topic_name, 2, 3)
    cluster.wait_for_full_isr(topic_name)
    boot = ("-b", cluster.bootstrap, "--timeout-ms", "30000")
    result = moldau("partitions", "elect-leaders", "--topic", topic_name, *boot, "-f", "json")
    assert result.code == 0, result.err
    outcomes = json.loads(result.out)
    assert [(o["topic"], o["partition"]) for o in outcomes] == [(topic_name, 0), (topic_name, 1)]
    assert all(o["error_code"] in (0, 84) for o in outcomes)  # elected, or not needed
    view = cluster.metadata(topic_name)
    assert all(view[p].leader == view[p].replicas[0] for p in (0, 1))
    one = moldau("partitions", "elect-leaders", "--topic", topic_name, "--partition", "1", *boot)
    assert one.code == 0, one.err
    assert f"{topic_name}-1" in one.out
    assert f"{topic_name}-0" not in one.out


def test_elect_leaders_of_a_missing_partition_is_one_line(
    moldau: Runner, cluster: LocalCluster, topic_name: str
) -> None:
    cluster.create_topic(topic_name, 1, 1)
    result = moldau(
        "partitions",
        "elect-leaders",
        "--topic",
        topic_name,
        "--partition",
        "5",
        "-b",
        cluster.bootstrap,
    )
    assert result.code == 2
    assert result.err_lines == [f"error: topic '{topic_name}' has no partition 5"]


def test_list_reassignments_says_when_there_are_none(moldau: Runner, cluster: LocalCluster) -> None:
    deadline = time.monotonic() + 30
    result = moldau("partitions", "list-reassignments", "-b", cluster.bootstrap)
    while "No partition reassignments in progress." not in result.out:
        assert time.monotonic() < deadline, result.out  # other tests' moves finish quickly
        time.sleep(0.5)
        result = moldau("partitions", "list-reassignments", "-b", cluster.bootstrap)
    assert result.code == 0
