"""OffsetForLeaderEpoch and the leader gates of Produce/Fetch/ListOffsets, at the wire level.

A single-node broker leads every partition at leader epoch 0, so these check the answers a
client or a follower gets from the leader: epoch end offsets, the ``current_leader_epoch``
fencing, a follower fetch from a broker that is no replica, and acks=all refused when the
ISR is smaller than ``min.insync.replicas``.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.errors import ErrorCode
from kio.schema.fetch.v12.request import FetchPartition, FetchRequest, FetchTopic
from kio.schema.list_offsets.v7.request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kio.schema.offset_for_leader_epoch.v4.request import (
    OffsetForLeaderEpochRequest,
    OffsetForLeaderPartition,
    OffsetForLeaderTopic,
)
from kio.schema.produce.v8.request import PartitionProduceData, ProduceRequest, TopicProduceData

from moldau.protocol.api import ApiKey
from moldau.protocol.records import NewRecord, build_batch
from moldau.testing import BrokerProcess
from moldau.testing.wire import WireClient

OFFSET_FOR_LEADER_EPOCH = int(ApiKey.OFFSET_FOR_LEADER_EPOCH)


def create_topic(bootstrap: str, config: dict[str, str] | None = None) -> str:
    name = f"ofle-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config=config or {})])[name].result(15)
    return name


def produce(client: WireClient, topic: str, count: int, acks: int = 1) -> ErrorCode:
    records = build_batch([NewRecord(key=None, value=b"v", timestamp_ms=0)] * count)
    request = ProduceRequest(
        transactional_id=None,
        acks=acks,
        timeout=datetime.timedelta(seconds=10),
        topic_data=(
            TopicProduceData(
                name=topic, partition_data=(PartitionProduceData(index=0, records=records),)
            ),
        ),
    )
    response = client.request(0, 8, request)
    return ErrorCode(response.responses[0].partition_responses[0].error_code)


def epoch_request(
    topic: str, leader_epoch: int, current_leader_epoch: int = -1, replica_id: int = -1
) -> OffsetForLeaderEpochRequest:
    return OffsetForLeaderEpochRequest(
        replica_id=replica_id,
        topics=(
            OffsetForLeaderTopic(
                topic=topic,
                partitions=(
                    OffsetForLeaderPartition(
                        partition=0,
                        current_leader_epoch=current_leader_epoch,
                        leader_epoch=leader_epoch,
                    ),
                ),
            ),
        ),
    )


def epoch_answer(client: WireClient, request: OffsetForLeaderEpochRequest) -> tuple[int, int, int]:
    response = client.request(OFFSET_FOR_LEADER_EPOCH, 4, request)
    p = response.topics[0].partitions[0]
    return int(p.error_code), int(p.leader_epoch), int(p.end_offset)


def test_end_offset_of_the_current_epoch_is_the_log_end_offset(broker: BrokerProcess) -> None:
    topic = create_topic(broker.bootstrap)
    with WireClient(broker.host, broker.port) as client:
        assert produce(client, topic, 3) == ErrorCode.none
        assert epoch_answer(client, epoch_request(topic, 0)) == (ErrorCode.none, 0, 3)
        # an epoch later than any we know is undefined (Kafka's LeaderEpochFileCache)
        assert epoch_answer(client, epoch_request(topic, 7)) == (ErrorCode.none, -1, -1)
        assert epoch_answer(client, epoch_request(topic, 0, current_leader_epoch=0))[0] == 0
        assert epoch_answer(client, epoch_request(topic, 0, replica_id=3))[0] == 0


def test_offset_for_leader_epoch_errors(broker: BrokerProcess) -> None:
    topic = create_topic(broker.bootstrap)
    with WireClient(broker.host, broker.port) as client:
        assert epoch_answer(client, epoch_request(topic, 0, current_leader_epoch=1)) == (
            ErrorCode.unknown_leader_epoch,
            -1,
            -1,
        )
        assert epoch_answer(client, epoch_request("no-such-topic", 0)) == (
            ErrorCode.unknown_topic_or_partition,
            -1,
            -1,
        )


def test_offset_for_leader_epoch_v2(broker: BrokerProcess) -> None:
    from kio.schema.offset_for_leader_epoch.v2 import request as v2

    topic = create_topic(broker.bootstrap)
    with WireClient(broker.host, broker.port) as client:
        produce(client, topic, 2)
        request = v2.OffsetForLeaderEpochRequest(
            topics=(
                v2.OffsetForLeaderTopic(
                    topic=topic,
                    partitions=(
                        v2.OffsetForLeaderPartition(
                            partition=0, current_leader_epoch=0, leader_epoch=0
                        ),
                    ),
                ),
            )
        )
        p = client.request(OFFSET_FOR_LEADER_EPOCH, 2, request).topics[0].partitions[0]
    assert (p.error_code, p.leader_epoch, p.end_offset) == (ErrorCode.none, 0, 2)


def test_list_offsets_checks_the_current_leader_epoch(broker: BrokerProcess) -> None:
    topic = create_topic(broker.bootstrap)

    def list_latest(client: WireClient, current_leader_epoch: int) -> tuple[int, int, int]:
        request = ListOffsetsRequest(
            replica_id=-1,
            isolation_level=0,
            topics=(
                ListOffsetsTopic(
                    name=topic,
                    partitions=(
                        ListOffsetsPartition(
                            partition_index=0,
                            current_leader_epoch=current_leader_epoch,
                            timestamp=-1,
                        ),
                    ),
                ),
            ),
        )
        p = client.request(2, 7, request).topics[0].partitions[0]
        return int(p.error_code), int(p.offset), int(p.leader_epoch)

    with WireClient(broker.host, broker.port) as client:
        produce(client, topic, 2)
        assert list_latest(client, 0) == (ErrorCode.none, 2, 0)
        assert list_latest(client, 3)[0] == ErrorCode.unknown_leader_epoch


def test_fetch_from_a_broker_that_is_no_replica_is_refused(broker: BrokerProcess) -> None:
    topic = create_topic(broker.bootstrap)

    def fetch(client: WireClient, replica_id: int, current_leader_epoch: int = -1) -> int:
        request = FetchRequest(
            replica_id=replica_id,
            max_wait=datetime.timedelta(0),
            min_bytes=1,
            topics=(
                FetchTopic(
                    topic=topic,
                    partitions=(
                        FetchPartition(
                            partition=0,
                            current_leader_epoch=current_leader_epoch,
                            fetch_offset=0,
                            partition_max_bytes=1 << 20,
                        ),
                    ),
                ),
            ),
            forgotten_topics_data=(),
        )
        return int(client.request(1, 12, request).responses[0].partitions[0].error_code)

    with WireClient(broker.host, broker.port) as client:
        produce(client, topic, 1)
        assert fetch(client, -1) == ErrorCode.none
        assert fetch(client, 42) == ErrorCode.not_leader_or_follower
        assert fetch(client, -1, current_leader_epoch=1) == ErrorCode.unknown_leader_epoch


def test_fetch_from_a_diverged_position_answers_the_diverging_epoch(
    broker: BrokerProcess,
) -> None:
    topic = create_topic(broker.bootstrap)

    def fetch(client: WireClient, last_fetched_epoch: int) -> tuple[Any, bytes]:
        request = FetchRequest(
            replica_id=-1,
            max_wait=datetime.timedelta(0),
            min_bytes=1,
            topics=(
                FetchTopic(
                    topic=topic,
                    partitions=(
                        FetchPartition(
                            partition=0,
                            fetch_offset=1,
                            last_fetched_epoch=last_fetched_epoch,
                            partition_max_bytes=1 << 20,
                        ),
                    ),
                ),
            ),
            forgotten_topics_data=(),
        )
        p = client.request(1, 12, request).responses[0].partitions[0]
        assert p.error_code == ErrorCode.none
        return p.diverging_epoch, bytes(p.records or b"")

    with WireClient(broker.host, broker.port) as client:
        produce(client, topic, 1)
        produce(client, topic, 1)
        diverging, records = fetch(client, 0)
        assert (diverging.epoch, diverging.end_offset) == (-1, -1), "epoch 0 reaches offset 1"
        assert records
        # an epoch this log never had: the fetcher diverged, and gets no records
        diverging, records = fetch(client, 5)
        assert (diverging.epoch, diverging.end_offset) == (-1, -1)
        assert records == b""


def test_acks_all_needs_min_insync_replicas(broker: BrokerProcess) -> None:
    topic = create_topic(broker.bootstrap, {"min.insync.replicas": "2"})
    with WireClient(broker.host, broker.port) as client:
        assert produce(client, topic, 1, acks=-1) == ErrorCode.not_enough_replicas
        assert produce(client, topic, 1, acks=1) == ErrorCode.none
        assert produce(client, topic, 1, acks=-1) == ErrorCode.not_enough_replicas
