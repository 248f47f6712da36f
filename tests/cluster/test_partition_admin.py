"""ElectLeaders, AlterPartitionReassignments and ListPartitionReassignments against a real
3-broker cluster, driven by confluent-kafka's admin client and raw requests."""

from __future__ import annotations

from pathlib import Path

import kio.schema.alter_partition_reassignments.v0.request as alter
import kio.schema.list_partition_reassignments.v0.request as listing
from confluent_kafka import ElectionType, TopicPartition
from confluent_kafka.admin import AdminClient
from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import i32

from moldau.testing.etcd_cluster import LocalCluster
from moldau.testing.wire import WireClient

NO_REASSIGNMENT_IN_PROGRESS = 85
INVALID_REPLICA_ASSIGNMENT = 39


def alter_request(
    topic: str, replicas: list[int] | None
) -> alter.AlterPartitionReassignmentsRequest:
    return alter.AlterPartitionReassignmentsRequest(
        topics=(
            alter.ReassignableTopic(
                name=TopicName(topic),
                partitions=(
                    alter.ReassignablePartition(
                        partition_index=i32(0),
                        replicas=None if replicas is None else tuple(BrokerId(r) for r in replicas),
                    ),
                ),
            ),
        ),
    )


def test_elect_and_reassign(tmp_path: Path) -> None:
    config = {"auto.leader.rebalance.enable": "false"}
    with LocalCluster(3, config=config, base_dir=tmp_path) as cluster:
        cluster.create_topic("adm", 1, 3)
        preferred = cluster.partitions("adm")[0].replicas[0]
        assert cluster.leader_of("adm") == preferred
        cluster.broker(preferred).stop()
        cluster.wait_for(lambda: cluster.leader_of("adm") not in (preferred, -1), 30)
        cluster.broker(preferred).start()
        cluster.wait_for(lambda: len(cluster.partitions("adm")[0].isr) == 3, 60)
        assert cluster.leader_of("adm") != preferred  # no automatic rebalance here
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        result = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition("adm", 0)]).result(30)
        assert result[TopicPartition("adm", 0)] is None  # no error
        cluster.wait_for(lambda: cluster.leader_of("adm") == preferred, 30)
        again = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition("adm", 0)]).result(30)
        assert "ELECTION_NOT_NEEDED" in str(again[TopicPartition("adm", 0)])

        broker = cluster.broker(1)
        with WireClient(broker.host, broker.port) as client:
            missing = client.request(45, 0, alter_request("adm", [1, 2, 7]))
            assert missing.responses[0].partitions[0].error_code == INVALID_REPLICA_ASSIGNMENT
            cancel = client.request(45, 0, alter_request("adm", None))
            assert cancel.responses[0].partitions[0].error_code == NO_REASSIGNMENT_IN_PROGRESS
            target = [3, 1, 2]
            done = client.request(45, 0, alter_request("adm", target))
            assert done.responses[0].partitions[0].error_code == 0
            cluster.wait_for(lambda: cluster.partitions("adm")[0].replicas == (3, 1, 2), 30)
            ongoing = client.request(46, 0, listing.ListPartitionReassignmentsRequest(topics=None))
            assert ongoing.error_code == 0 and ongoing.topics == ()
