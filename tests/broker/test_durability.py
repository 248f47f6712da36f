"""Acknowledged writes survive clean restarts, crashes and torn segment tails; retention works."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.testing import BrokerProcess


def create_topic(bootstrap: str, partitions: int = 2, config: dict[str, str] | None = None) -> str:
    name = f"dur-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(15)
    return name


def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    partitions: int = 2,
    acks: str = "all",
    batch_messages: int = 10000,
) -> list[tuple[int, int]]:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": acks,
            "linger.ms": 2,
            "enable.idempotence": acks == "all",
            "batch.num.messages": batch_messages,
        }
    )
    acked: list[tuple[int, int]] = []

    def on_delivery(err: KafkaError | None, msg: object) -> None:
        assert err is None, err
        acked.append((msg.partition(), msg.offset()))  # type: ignore[attr-defined]

    for i, value in enumerate(values):
        producer.produce(topic, value, partition=i % partitions, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    return acked


def consume_all(
    bootstrap: str, topic: str, partitions: int = 2, expect: int | None = None
) -> dict[int, list[tuple[int, bytes]]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
    at_end: set[int] = set()
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                    total = sum(len(v) for v in out.values())
                    if len(at_end) == partitions and (expect is None or total >= expect):
                        break
                    continue
                raise AssertionError(msg.error())
            at_end.discard(msg.partition())
            out[msg.partition()].append((msg.offset(), msg.value()))
    finally:
        consumer.close()
    return out


def test_clean_restart_keeps_every_acknowledged_message(fresh_broker: BrokerProcess) -> None:
    fresh_broker.start()
    topic = create_topic(fresh_broker.bootstrap)
    values = [f"m{i}".encode() for i in range(500)]
    acked = produce(fresh_broker.bootstrap, topic, values)
    assert len(acked) == len(values)
    assert fresh_broker.stop() == 0
    assert (fresh_broker.data_dir / ".kafka_cleanshutdown").exists()
    meta_before = (fresh_broker.data_dir / "meta.properties").read_text()
    fresh_broker.start()
    assert (fresh_broker.data_dir / "meta.properties").read_text() == meta_before
    got = consume_all(fresh_broker.bootstrap, topic, expect=len(values))
    for p in range(2):
        assert [v for _, v in got[p]] == values[p::2]
        assert [o for o, _ in got[p]] == list(range(len(values[p::2])))
    # Offsets continue after the restart.
    more = produce(fresh_broker.bootstrap, topic, [b"after"], partitions=1)
    assert more == [(0, 250)]


def test_crash_keeps_every_acks_all_message(fresh_broker: BrokerProcess) -> None:
    fresh_broker.start()
    topic = create_topic(fresh_broker.bootstrap)
    values = [f"crash-{i}".encode() * 10 for i in range(2000)]
    acked = produce(fresh_broker.bootstrap, topic, values)
    assert len(acked) == len(values)
    fresh_broker.kill()
    fresh_broker.start()
    got = consume_all(fresh_broker.bootstrap, topic, expect=len(values))
    for p in range(2):
        assert [v for _, v in got[p]] == values[p::2]


def _segment_files(data_dir: Path, topic: str, partition: int) -> list[Path]:
    return sorted((data_dir / f"{topic}-{partition}").glob("*.log"))


def test_torn_tail_is_truncated_on_recovery(fresh_broker: BrokerProcess) -> None:
    fresh_broker.start()
    topic = create_topic(fresh_broker.bootstrap, partitions=1)
    values = [f"v{i}".encode() * 50 for i in range(100)]
    producer = Producer(
        {"bootstrap.servers": fresh_broker.bootstrap, "linger.ms": 0, "acks": "all"}
    )
    for value in values:  # one batch per message, so the tail batch is small
        producer.produce(topic, value, partition=0)
        producer.flush(10)
    fresh_broker.kill()
    segment = _segment_files(fresh_broker.data_dir, topic, 0)[-1]
    size = segment.stat().st_size
    with segment.open("r+b") as handle:
        handle.truncate(size - 30)  # tear the last batch
        handle.seek(0, 2)
    for index in segment.parent.glob("*.index"):
        index.write_bytes(b"\x07" * 13)  # a corrupt index must be rebuilt too
    fresh_broker.start()
    got = consume_all(fresh_broker.bootstrap, topic, partitions=1, expect=len(values) - 1)
    assert [v for _, v in got[0]] == values[:-1]
    acked = produce(fresh_broker.bootstrap, topic, [b"next"], partitions=1)
    assert acked == [(0, len(values) - 1)]


def test_garbage_after_last_batch_is_dropped(fresh_broker: BrokerProcess) -> None:
    fresh_broker.start()
    topic = create_topic(fresh_broker.bootstrap, partitions=1)
    values = [f"g{i}".encode() for i in range(20)]
    produce(fresh_broker.bootstrap, topic, values, partitions=1)
    fresh_broker.kill()
    segment = _segment_files(fresh_broker.data_dir, topic, 0)[-1]
    with segment.open("ab") as handle:
        handle.write(b"\x00\x00\x00\x00\x00\x00\x00\x99" + b"\xab" * 100)
    fresh_broker.start()
    got = consume_all(fresh_broker.bootstrap, topic, partitions=1, expect=len(values))
    assert [v for _, v in got[0]] == values


def wait_for_log_start_above_zero(bootstrap: str, topic: str) -> tuple[int, int]:
    """Poll partition 0's watermarks until retention moved the log start (bounded wait)."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    deadline = time.monotonic() + 30
    low = high = 0
    while time.monotonic() < deadline:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)
        if low > 0:
            break
        time.sleep(0.2)
    consumer.close()
    return low, high


def test_retention_by_size_removes_old_segments(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data", config={"log.retention.check.interval.ms": "200"})
    with broker:
        topic = create_topic(
            broker.bootstrap,
            partitions=1,
            config={"segment.bytes": "20000", "retention.bytes": "40000"},
        )
        values = [b"r" * 1000 for _ in range(300)]
        produce(broker.bootstrap, topic, values, partitions=1, batch_messages=5)
        low, high = wait_for_log_start_above_zero(broker.bootstrap, topic)
        assert low > 0 and high == 300
        remaining = sum(f.stat().st_size for f in _segment_files(broker.data_dir, topic, 0))
        assert remaining < 300 * 1000


def test_retention_by_time_removes_old_segments(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data", config={"log.retention.check.interval.ms": "200"})
    with broker:
        topic = create_topic(
            broker.bootstrap,
            partitions=1,
            config={"segment.bytes": "5000", "retention.ms": "1000"},
        )
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
        old_ts = int(time.time() * 1000) - 3_600_000
        for _ in range(50):
            producer.produce(topic, b"t" * 500, partition=0, timestamp=old_ts)
        producer.flush(10)
        low, _high = wait_for_log_start_above_zero(broker.bootstrap, topic)
        assert low > 0
