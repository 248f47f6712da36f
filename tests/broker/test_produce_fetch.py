"""Produce and Fetch behaviour checked at the wire level against a real broker process."""

from __future__ import annotations

import datetime
import threading
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.errors import ErrorCode
from kio.schema.fetch.v11.request import FetchPartition, FetchRequest, FetchTopic

from moldau.protocol.record_batch import CODEC_LZ4, CODEC_NONE, iter_batches
from moldau.protocol.records import decode_records
from moldau.testing import BrokerProcess
from moldau.testing.wire import WireClient, decode_response


def create_topic(bootstrap: str, config: dict[str, str] | None = None) -> str:
    name = f"pf-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config=config or {})])[name].result(15)
    return name


def fetch_request(topic: str, offset: int, *, max_wait_ms: int, min_bytes: int) -> FetchRequest:
    return FetchRequest(
        replica_id=-1,
        max_wait=datetime.timedelta(milliseconds=max_wait_ms),
        min_bytes=min_bytes,
        max_bytes=1 << 20,
        isolation_level=0,
        session_id=0,
        session_epoch=-1,
        topics=(
            FetchTopic(
                topic=topic,
                partitions=(
                    FetchPartition(
                        partition=0,
                        current_leader_epoch=-1,
                        fetch_offset=offset,
                        log_start_offset=-1,
                        partition_max_bytes=1 << 20,
                    ),
                ),
            ),
        ),
        forgotten_topics_data=(),
        rack_id="",
    )


def test_long_poll_returns_data_that_arrives_while_waiting(broker: BrokerProcess) -> None:
    """A Fetch with min_bytes=1 and a long max_wait waits for the next append instead of
    answering empty: the response carries a record produced after the Fetch was sent."""
    topic = create_topic(broker.bootstrap)
    with WireClient(broker.host, broker.port, timeout_s=30) as client:
        correlation_id = client.next_correlation_id()
        client.send_raw(
            client.encode(
                1, 11, fetch_request(topic, 0, max_wait_ms=20_000, min_bytes=1), correlation_id
            )
        )

        def produce_later() -> None:
            producer = Producer({"bootstrap.servers": broker.bootstrap})
            producer.produce(topic, b"arrived-later", partition=0)
            producer.flush(10)

        thread = threading.Thread(target=produce_later)
        thread.start()
        response = decode_response(1, 11, correlation_id, client.read_frame())
        thread.join()
    partition = response.responses[0].partitions[0]
    assert partition.error_code == ErrorCode.none
    records = partition.records
    assert records, "the long poll answered without the record produced while it waited"
    (pos, header), *_ = list(iter_batches(records))
    assert [r.value for r in decode_records(records, pos, header)] == [b"arrived-later"]


def test_fetch_past_the_end_is_offset_out_of_range(broker: BrokerProcess) -> None:
    topic = create_topic(broker.bootstrap)
    with WireClient(broker.host, broker.port) as client:
        response = client.request(1, 11, fetch_request(topic, 5, max_wait_ms=0, min_bytes=0))
    assert response.responses[0].partitions[0].error_code == ErrorCode.offset_out_of_range


def _stored_codecs(data_dir: Path, topic: str) -> set[int]:
    codecs: set[int] = set()
    for segment in (data_dir / f"{topic}-0").glob("*.log"):
        data = segment.read_bytes()
        codecs |= {header.compression for _pos, header in iter_batches(data)}
    return codecs


def test_topic_compression_type_recompresses_on_the_broker(fresh_broker: BrokerProcess) -> None:
    fresh_broker.start()
    topic = create_topic(fresh_broker.bootstrap, {"compression.type": "lz4"})
    plain = create_topic(fresh_broker.bootstrap)
    producer = Producer({"bootstrap.servers": fresh_broker.bootstrap, "compression.type": "gzip"})
    for i in range(50):
        producer.produce(topic, f"value-{i}".encode() * 20, partition=0)
    producer.flush(10)
    raw = Producer({"bootstrap.servers": fresh_broker.bootstrap, "compression.type": "none"})
    raw.produce(plain, b"as sent", partition=0)
    raw.flush(10)
    fresh_broker.stop()
    assert _stored_codecs(fresh_broker.data_dir, topic) == {CODEC_LZ4}
    assert _stored_codecs(fresh_broker.data_dir, plain) == {CODEC_NONE}
    fresh_broker.start()
    with WireClient(fresh_broker.host, fresh_broker.port) as client:
        response = client.request(1, 11, fetch_request(topic, 0, max_wait_ms=0, min_bytes=0))
    records = response.responses[0].partitions[0].records
    values = [
        r.value
        for pos, header in iter_batches(records)
        for r in decode_records(records, pos, header)
    ]
    assert values == [f"value-{i}".encode() * 20 for i in range(50)]
