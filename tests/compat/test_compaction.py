"""Log compaction end to end: a compacted topic and the internal topics, real clients.

``test_latest_value_per_key_survives_cleaning``: 100 keys x 1,000 updates on a two-partition
compacted topic with 64 KiB segments, written by confluent-kafka (lz4) and kafka-python
(gzip); some keys are deleted at the end, some deleted half way and written again. The
cleaner, left to itself (``min.cleanable.dirty.ratio=0.01``), compacts everything behind the
active segment. Then a full read holds exactly one record per key — the latest value, or for
a deleted key its tombstone (kept for ``delete.retention.ms``) — with offsets strictly
increasing; after the delete horizon and one more clean the deleted keys are gone. Consumers
that were part way through, positioned at offsets the clean removed, read on without an
error (``auto.offset.reset`` is "error"/"none", so an out-of-range answer would fail them) and
end with the latest value of every key written after their position.

``test_internal_topics_are_compacted``: ``__consumer_offsets`` after many commits of the same
offsets and ``__transaction_state`` after many transactions of one transactional id shrink
when cleaned, and a broker restarted after a crash still knows the latest committed offset
and the transactional id's producer id and epoch.
"""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from compaction_helpers import (
    FILLER_KEY,
    active_base,
    assert_offsets_increasing,
    cleaner_status,
    compaction_broker,
    create_compacted_topic,
    produce_all,
    read_kafka_python,
    request_compact,
    roll_past,
    table,
    wait_cleaned,
)
from confluent_kafka import Consumer, KafkaError, TopicPartition
from txn_helpers import WAIT_S, Rec, latest_offsets, read_to_end, txn_producer

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

KEYS = 100
UPDATES = 1000
KAFKA_PYTHON_FROM = 900  # rounds from here on are written by kafka-python
PARTITIONS = 2
DELETED_AT_END = range(0, 15)
DELETED_HALF_WAY = range(15, 25)  # tombstone after round 499, then written again
PART_WAY_ROUND = 300  # part-way consumers start at the offset of this round's first record
DELETE_RETENTION_MS = 5000


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    proc = compaction_broker(tmp_path / "data").start()
    yield proc
    proc.close()


def key(k: int) -> bytes:
    return f"key-{k:03d}".encode()


def partition_of(k: int) -> int:
    return k % PARTITIONS


def update(k: int, i: int) -> bytes:
    return f"{k}:{i}".encode()


def writes(rounds: range) -> Iterator[tuple[int, bytes, bytes | None]]:
    for i in rounds:
        for k in range(KEYS):
            yield partition_of(k), key(k), update(k, i)
            if i == UPDATES // 2 - 1 and k in DELETED_HALF_WAY:
                yield partition_of(k), key(k), None


def expected_latest() -> dict[bytes, bytes | None]:
    return {key(k): None if k in DELETED_AT_END else update(k, UPDATES - 1) for k in range(KEYS)}


def write_with_kafka_python(bootstrap: str, topic: str, rounds: range) -> None:
    from kafka import KafkaProducer

    prod = KafkaProducer(
        bootstrap_servers=bootstrap, compression_type="gzip", linger_ms=5, acks="all"
    )
    try:
        futures = [prod.send(topic, value=v, key=k, partition=p) for p, k, v in writes(rounds)]
        prod.flush(WAIT_S)
        for future in futures:
            future.get(timeout=WAIT_S)
    finally:
        prod.close(timeout=5)


def part_way_consumer(bootstrap: str, start_at: dict[int, int], topic: str) -> Consumer:
    """A confluent consumer positioned at ``start_at`` that fetches little at a time, so that
    most of what it reads is fetched after the clean."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"part-way-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
            "fetch.wait.max.ms": 100,
            "fetch.max.bytes": 4096,
            "message.max.bytes": 4096,
            "max.partition.fetch.bytes": 4096,
            "queued.max.messages.kbytes": 16,
            "queued.min.messages": 1,
        }
    )
    consumer.assign([TopicPartition(topic, p, o) for p, o in start_at.items()])
    return consumer


def poll_records(consumer: Consumer, count: int | None, topic: str) -> list[Rec]:
    """``count`` records, or (``None``) everything up to EOF on every partition; any consumer
    error (an out-of-range position included) fails the test."""
    out: list[Rec] = []
    waiting = set(range(PARTITIONS))
    deadline = time.monotonic() + WAIT_S
    while (count is None and waiting) or (count is not None and len(out) < count):
        assert time.monotonic() < deadline, f"stuck after {len(out)} records"
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                waiting.discard(msg.partition())
                continue
            raise AssertionError(f"consumer error: {err}")
        out.append(Rec(topic, msg.partition(), msg.offset(), msg.key(), msg.value()))
    return out


def main_records(records: list[Rec]) -> list[Rec]:
    return [r for r in records if r.key != FILLER_KEY]


def test_latest_value_per_key_survives_cleaning(broker: BrokerProcess) -> None:
    bootstrap = broker.bootstrap
    topic = create_compacted_topic(
        bootstrap,
        PARTITIONS,
        {
            "segment.bytes": str(64 * 1024),
            "min.cleanable.dirty.ratio": "0.01",
            "delete.retention.ms": str(DELETE_RETENTION_MS),
        },
    )
    tps = [(topic, p) for p in range(PARTITIONS)]

    first = produce_all(
        bootstrap, topic, writes(range(PART_WAY_ROUND)), **{"compression.type": "lz4"}
    )
    part_way = {p: first[(p, key(p))] + 1 for p in range(PARTITIONS)}  # after round 299 of key p
    produce_all(
        bootstrap,
        topic,
        writes(range(PART_WAY_ROUND, KAFKA_PYTHON_FROM)),
        **{"compression.type": "lz4"},
    )
    write_with_kafka_python(bootstrap, topic, range(KAFKA_PYTHON_FROM, UPDATES))
    produce_all(bootstrap, topic, [(partition_of(k), key(k), None) for k in DELETED_AT_END])
    # No clean can stamp the tombstones' delete horizon earlier than this.
    earliest_horizon_ms = time.time() * 1000 + DELETE_RETENTION_MS
    end_of_data = {p: o for (_, p), o in latest_offsets(bootstrap, tps, committed=False).items()}

    # Consumers part way through: they read a little now and the rest after the clean.
    confluent_reader = part_way_consumer(bootstrap, part_way, topic)
    seen = poll_records(confluent_reader, 50, topic)

    roll_past(broker, topic, end_of_data)
    status = wait_cleaned(broker, topic, end_of_data)

    full = read_to_end(bootstrap, tps, "read_uncommitted")
    read_before_horizon = time.time() * 1000 < earliest_horizon_ms
    assert_offsets_increasing(full)
    main = main_records(full)
    assert len(main) == len({r.key for r in main}), "a key appears twice in the cleaned log"
    latest = expected_latest()
    got = {r.key: r.value for r in main}
    live = {k: v for k, v in latest.items() if v is not None}
    assert {k: v for k, v in got.items() if v is not None} == live
    assert set(got) <= set(latest)
    if read_before_horizon:  # tombstones stay at least delete.retention.ms after the clean
        assert {k for k, v in got.items() if v is None} == {key(k) for k in DELETED_AT_END}
    for r in main:
        assert r.key is not None and r.partition == partition_of(int(r.key[4:])), r

    try:
        seen += poll_records(confluent_reader, None, topic)
    finally:
        confluent_reader.close()
    kp_seen = read_kafka_python(bootstrap, tps, {(topic, p): o for p, o in part_way.items()})

    # Part-way readers: no error, offsets increasing, and the latest value of every key whose
    # latest record is after their position.
    want_part_way = {
        r.key: r.value for r in main if r.value is not None and r.offset >= part_way[r.partition]
    }
    for name, records in (("confluent", seen), ("kafka-python", kp_seen)):
        assert_offsets_increasing(records)
        view = table(main_records(records))
        assert {k: view.get(k) for k in want_part_way} == want_part_way, name
        assert not set(view) & {key(k) for k in DELETED_AT_END}, name
        assert all(r.offset >= part_way[r.partition] for r in records), name
    # kafka-python started after the clean: it reads exactly the cleaned log's suffix.
    assert main_records(kp_seen) == [r for r in main if r.offset >= part_way[r.partition]]

    # After the delete horizon, one more clean (it needs dirty data: roll again) drops the
    # tombstones.
    horizon_ms = max(s["last_clean_time_ms"] for s in status.values()) + DELETE_RETENTION_MS
    while time.time() * 1000 <= horizon_ms + 100:
        time.sleep(0.1)
    now_end = {p: o for (_, p), o in latest_offsets(bootstrap, tps, committed=False).items()}
    last_filler = roll_past(broker, topic, now_end)
    assert request_compact(broker, topic) == PARTITIONS
    wait_cleaned(
        broker,
        topic,
        now_end,
        after_ms={p: s["last_clean_time_ms"] for p, s in status.items()},
    )

    for reader in ("confluent", "kafka-python"):
        if reader == "confluent":
            final = read_to_end(bootstrap, tps, "read_uncommitted")
        else:
            final = read_kafka_python(bootstrap, tps)
        assert_offsets_increasing(final)
        main = main_records(final)
        assert {r.key: r.value for r in main} == live, reader
        assert len(main) == len(live), f"{reader}: duplicates or tombstones left"
        for p in range(PARTITIONS):
            in_p = [r for r in final if r.partition == p and r.key == FILLER_KEY]
            assert in_p[-1].value == last_filler[p], reader


# --- the internal topics -------------------------------------------------------------------


INTERNAL_CONFIG = {
    "offsets.topic.num.partitions": "1",
    "offsets.topic.segment.bytes": str(8 * 1024),
    "transaction.state.log.num.partitions": "1",
    "transaction.state.log.segment.bytes": str(8 * 1024),
}
COMMITS = 1200
TRANSACTIONS = 300


def count_records(bootstrap: str, topic: str) -> list[Rec]:
    return read_to_end(bootstrap, [(topic, 0)], "read_uncommitted")


def txn_state(records: list[Rec], transactional_id: str) -> tuple[int, int]:
    """(producer id, epoch) of the latest ``__transaction_state`` record of the id (Kafka's
    TransactionLogValue: int16 version, int64 producer id, int16 epoch, ...)."""
    wanted = struct.pack(">hh", 0, len(transactional_id)) + transactional_id.encode()
    mine = [r for r in records if r.key == wanted and r.value is not None]
    assert mine, f"no __transaction_state record for {transactional_id}"
    value = mine[-1].value
    assert value is not None
    _, producer_id, epoch = struct.unpack_from(">hqh", value)
    return producer_id, epoch


def clean_internal(broker: BrokerProcess, topic: str) -> None:
    target = {0: active_base(broker, topic, 0)}
    assert target[0] > 0, f"{topic} never rolled a segment"
    assert request_compact(broker, topic) == 1
    wait_cleaned(broker, topic, target)


def test_internal_topics_are_compacted(tmp_path: Path) -> None:
    broker = compaction_broker(tmp_path / "data", INTERNAL_CONFIG).start()
    try:
        bootstrap = broker.bootstrap
        topic = create_compacted_topic(bootstrap, 2, {})
        group = f"g-{uuid.uuid4().hex[:6]}"
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        try:
            for i in range(1, COMMITS + 1):
                consumer.commit(
                    offsets=[TopicPartition(topic, 0, i), TopicPartition(topic, 1, 2 * i)],
                    asynchronous=False,
                )
        finally:
            consumer.close()

        txn_id = f"t-{uuid.uuid4().hex[:6]}"
        prod = txn_producer(bootstrap, txn_id)
        for i in range(TRANSACTIONS):
            prod.begin_transaction()
            prod.produce(topic, f"v{i}".encode(), key=b"txn", partition=0)
            prod.commit_transaction(WAIT_S)

        # Written: one record per committed partition per commit, and at least three state
        # transitions (Ongoing, PrepareCommit, CompleteCommit) per transaction; the cleaner
        # may already be at work, so these counts are what was written, not what is there.
        pid, epoch = txn_state(count_records(bootstrap, "__transaction_state"), txn_id)
        clean_internal(broker, "__consumer_offsets")
        clean_internal(broker, "__transaction_state")
        offsets_after = count_records(bootstrap, "__consumer_offsets")
        txn_after = count_records(bootstrap, "__transaction_state")
        assert len(offsets_after) < COMMITS // 2  # of 2 * COMMITS written
        assert len(txn_after) < TRANSACTIONS // 2  # of 3 * TRANSACTIONS written
        assert_offsets_increasing(offsets_after)
        assert_offsets_increasing(txn_after)
        assert txn_state(txn_after, txn_id) == (pid, epoch)
        for name in ("__consumer_offsets", "__transaction_state"):
            row: dict[str, Any] = cleaner_status(broker, name)[0]
            assert row["last_clean"] is not None and row["uncleanable_reason"] is None, row

        broker.kill()
        broker.start()

        checker = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        try:
            committed = checker.committed(
                [TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=WAIT_S
            )
        finally:
            checker.close()
        assert [(tp.partition, tp.offset) for tp in committed] == [(0, COMMITS), (1, 2 * COMMITS)]

        # The transactional id is remembered: a new producer fences the old epoch (same
        # producer id, epoch + 1) and can still commit.
        again = txn_producer(bootstrap, txn_id)
        again.begin_transaction()
        again.produce(topic, b"after-restart", key=b"txn", partition=0)
        again.commit_transaction(WAIT_S)
        assert txn_state(count_records(bootstrap, "__transaction_state"), txn_id) == (
            pid,
            epoch + 1,
        )
    finally:
        broker.close()
