"""Hostile and malformed input: the right error code or a closed connection, nothing lost,
and every other connection keeps being served."""

from __future__ import annotations

import datetime
import struct
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v9.request import MetadataRequest, MetadataRequestTopic
from kio.schema.produce.v8.request import PartitionProduceData, ProduceRequest, TopicProduceData

from moldau.protocol.records import NewRecord, build_batch
from moldau.testing import BrokerProcess
from moldau.testing.wire import WireClient, decode_response


@pytest.fixture(scope="module")
def seeded(broker: BrokerProcess) -> Iterator[tuple[BrokerProcess, str, list[bytes]]]:
    """A topic with acknowledged messages that no bad input may change."""
    topic = f"bad-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    values = [f"keep-{i}".encode() for i in range(50)]
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for value in values:
        producer.produce(topic, value, partition=0)
    assert producer.flush(15) == 0
    yield broker, topic, values


def assert_intact(broker: BrokerProcess, topic: str, values: list[bytes]) -> None:
    consumer = Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    got: list[bytes] = []
    for _ in range(200):
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            got.append(msg.value())
        if len(got) >= len(values):
            break
    consumer.close()
    assert got[: len(values)] == values


def still_serving(broker: BrokerProcess) -> None:
    with WireClient(broker.host, broker.port) as other:
        response = other.request(
            18, 3, ApiVersionsRequest(client_software_name="t", client_software_version="1")
        )
        assert response.error_code == ErrorCode.none


def produce_request(topic: str, records: bytes, acks: int = -1) -> ProduceRequest:
    return ProduceRequest(
        transactional_id=None,
        acks=acks,
        timeout=datetime.timedelta(seconds=10),
        topic_data=(
            TopicProduceData(
                name=topic, partition_data=(PartitionProduceData(index=0, records=records),)
            ),
        ),
    )


def partition_error(response: object) -> ErrorCode:
    return response.responses[0].partition_responses[0].error_code  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\xde\xad\xbe\xef" * 8, id="garbage"),
        pytest.param(struct.pack(">i", 200 * 1024 * 1024) + b"x" * 16, id="oversized-frame"),
        pytest.param(struct.pack(">i", -5), id="negative-length"),
        pytest.param(struct.pack(">ihhih", 10, 999, 0, 1, -1), id="unknown-api-key"),
        pytest.param(struct.pack(">ihhih", 10, 3, 99, 1, -1), id="unsupported-metadata-version"),
        pytest.param(struct.pack(">ihhih", 12, 0, 8, 1, -1) + b"\x00\x01", id="truncated-produce"),
        pytest.param(struct.pack(">i", 6) + b"\x00\x03\x00\x01\x00\x00", id="truncated-header"),
    ],
)
def test_broken_frames_close_only_that_connection(
    seeded: tuple[BrokerProcess, str, list[bytes]], payload: bytes
) -> None:
    broker, topic, values = seeded
    with WireClient(broker.host, broker.port) as bad:
        bad.send_raw(payload)
        assert bad.is_closed_by_peer()
    still_serving(broker)
    assert_intact(broker, topic, values)


def test_unknown_api_versions_version_is_answered_in_v0(broker: BrokerProcess) -> None:
    with WireClient(broker.host, broker.port) as client:
        client.send_raw(struct.pack(">ihhih", 10, 18, 77, 42, -1))
        frame = client.read_frame()
        response = decode_response(18, 0, 42, frame)
    assert response.error_code == ErrorCode.unsupported_version
    keys = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
    assert keys[18] == (0, 4)
    assert keys[0][0] == 0  # Produce advertised from 0 (KAFKA-18659)


def test_bad_crc_is_corrupt_message(seeded: tuple[BrokerProcess, str, list[bytes]]) -> None:
    broker, topic, values = seeded
    batch = bytearray(build_batch([NewRecord(key=b"k", value=b"v")]))
    batch[-1] ^= 0xFF  # flip a record byte: the CRC no longer matches
    with WireClient(broker.host, broker.port) as client:
        response = client.request(0, 8, produce_request(topic, bytes(batch)))
    assert partition_error(response) == ErrorCode.corrupt_message
    assert_intact(broker, topic, values)


def test_nonzero_base_offset_is_invalid_record(
    seeded: tuple[BrokerProcess, str, list[bytes]],
) -> None:
    broker, topic, values = seeded
    batch = build_batch([NewRecord(key=b"k", value=b"v")], base_offset=17)
    with WireClient(broker.host, broker.port) as client:
        response = client.request(0, 8, produce_request(topic, batch))
    assert partition_error(response) == ErrorCode.invalid_record
    assert_intact(broker, topic, values)


def test_control_batch_from_client_is_refused(
    seeded: tuple[BrokerProcess, str, list[bytes]],
) -> None:
    broker, topic, values = seeded
    batch = build_batch(
        [NewRecord(key=b"\x00\x00\x00\x01", value=b"\x00\x00\x00\x00\x00\x00")],
        is_control=True,
        is_transactional=True,
        producer_id=1,
        producer_epoch=0,
        base_sequence=0,
    )
    with WireClient(broker.host, broker.port) as client:
        response = client.request(0, 8, produce_request(topic, batch))
    assert partition_error(response) == ErrorCode.invalid_record
    assert_intact(broker, topic, values)


def test_oversized_record_is_message_too_large(
    seeded: tuple[BrokerProcess, str, list[bytes]],
) -> None:
    broker, topic, values = seeded
    batch = build_batch([NewRecord(key=None, value=b"z" * 2_000_000)])
    with WireClient(broker.host, broker.port) as client:
        response = client.request(0, 8, produce_request(topic, batch))
    assert partition_error(response) == ErrorCode.message_too_large
    assert_intact(broker, topic, values)


def test_truncated_batch_is_refused(seeded: tuple[BrokerProcess, str, list[bytes]]) -> None:
    broker, topic, values = seeded
    batch = build_batch([NewRecord(key=b"k", value=b"v" * 100)])
    with WireClient(broker.host, broker.port) as client:
        response = client.request(0, 8, produce_request(topic, batch[:-20]))
    assert partition_error(response) in (ErrorCode.corrupt_message, ErrorCode.invalid_record)
    assert_intact(broker, topic, values)


def test_produce_to_missing_topic_without_auto_create(fresh_broker: BrokerProcess) -> None:
    fresh_broker.config["auto.create.topics.enable"] = "false"
    fresh_broker.start()
    batch = build_batch([NewRecord(key=b"k", value=b"v")])
    with WireClient(fresh_broker.host, fresh_broker.port) as client:
        response = client.request(0, 8, produce_request("does-not-exist", batch))
        assert partition_error(response) == ErrorCode.unknown_topic_or_partition
        metadata = client.request(
            3,
            9,
            MetadataRequest(
                topics=(MetadataRequestTopic(name="does-not-exist"),),
                allow_auto_topic_creation=True,
                include_cluster_authorized_operations=False,
                include_topic_authorized_operations=False,
            ),
        )
        assert metadata.topics[0].error_code == ErrorCode.unknown_topic_or_partition
    still_serving(fresh_broker)


def test_invalid_topic_names_are_refused(broker: BrokerProcess) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for name in ["bad name", "x" * 250, "..", "sl/ash"]:
        future = admin.create_topics([NewTopic(name, 1, 1)])[name]
        with pytest.raises(Exception) as info:
            future.result(15)
        assert "TOPIC_EXCEPTION" in str(info.value)
