"""Bad input to a compacted topic and its cleaner, with real clients and real files.

* Keyless records cannot be compacted, so Kafka refuses them on a compacted topic with
  INVALID_RECORD; the produce fails with that code (confluent-kafka and kafka-python), nothing
  is appended, and the broker goes on serving keyed produce.
* A tombstone for a key never written is harmless: a tombstone like any other, gone after
  the delete horizon and one more clean, and the other keys are untouched.
* A segment corrupted on disk while the broker was down (after a clean shutdown nothing is
  re-validated on start, as in Kafka): the cleaner reports the partition uncleanable with a
  log line naming it, never rewrites it (its files stay byte for byte), and cleans the other
  partitions of the topic.
* The disk filling up mid-clean (test hook ``enospc=4096``: the clean's output fails with
  ENOSPC after 4 KiB): the old segments stay as they were, consumers read everything, and
  produce keeps working.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from compaction_helpers import (
    FILLER_KEY,
    STAGING_DIR,
    assert_offsets_increasing,
    cleaner_status,
    compaction_broker,
    create_compacted_topic,
    file_digests,
    partition_dir,
    produce_all,
    request_compact,
    roll_past,
    segment_bases,
    table,
    wait_cleaned,
    wait_for,
)
from confluent_kafka import KafkaError, Producer
from txn_helpers import WAIT_S, Rec, latest_offsets, read_to_end

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    proc = compaction_broker(tmp_path / "data").start()
    yield proc
    proc.close()


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    tps = [(topic, p) for p in range(partitions)]
    return {p: o for (_, p), o in latest_offsets(bootstrap, tps, committed=False).items()}


def without_filler(records: list[Rec]) -> list[Rec]:
    return [r for r in records if r.key != FILLER_KEY]


# --- keyless records -----------------------------------------------------------------------


def test_keyless_records_are_refused(broker: BrokerProcess) -> None:
    bootstrap = broker.bootstrap
    topic = create_compacted_topic(bootstrap, 1, {})
    errors: list[Any] = []

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "retries": 0})
    producer.produce(topic, b"no key", partition=0, on_delivery=lambda err, msg: errors.append(err))
    producer.flush(WAIT_S)
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() == KafkaError.INVALID_RECORD, errors[0]

    from kafka import KafkaProducer
    from kafka.errors import InvalidRecordError

    kp = KafkaProducer(bootstrap_servers=bootstrap, retries=0)
    try:
        with pytest.raises(InvalidRecordError):
            kp.send(topic, value=b"no key either", partition=0).get(timeout=WAIT_S)
    finally:
        kp.close(timeout=5)

    assert end_offsets(bootstrap, topic, 1) == {0: 0}, "a keyless record was appended"
    produce_all(bootstrap, topic, [(0, b"k", b"keyed")])
    records = read_to_end(bootstrap, [(topic, 0)], "read_uncommitted")
    assert [(r.offset, r.key, r.value) for r in records] == [(0, b"k", b"keyed")]


# --- a tombstone for a key never written ---------------------------------------------------


def test_tombstone_for_a_key_never_written(broker: BrokerProcess) -> None:
    bootstrap = broker.bootstrap
    retention_ms = 500
    topic = create_compacted_topic(
        bootstrap,
        1,
        {"segment.bytes": str(8 * 1024), "delete.retention.ms": str(retention_ms)},
    )
    writes: list[tuple[int, bytes, bytes | None]] = []
    for i in range(20):
        writes += [(0, f"k{k}".encode(), f"v{k}-{i}".encode().ljust(100)) for k in range(10)]
        if i == 10:
            writes.append((0, b"ghost", None))
    produce_all(bootstrap, topic, writes)
    expected = table(Rec(topic, 0, 0, k, v) for _, k, v in writes)
    assert b"ghost" not in expected

    end = end_offsets(bootstrap, topic, 1)
    roll_past(broker, topic, end)
    assert request_compact(broker, topic) == 1
    first = wait_cleaned(broker, topic, end)
    records = without_filler(read_to_end(bootstrap, [(topic, 0)], "read_uncommitted"))
    assert table(records) == expected
    assert [r.value for r in records if r.key == b"ghost"] in ([], [None])

    horizon_ms = first[0]["last_clean_time_ms"] + retention_ms
    while time.time() * 1000 <= horizon_ms + 100:
        time.sleep(0.05)
    end = end_offsets(bootstrap, topic, 1)
    roll_past(broker, topic, end)
    assert request_compact(broker, topic) == 1
    wait_cleaned(broker, topic, end, after_ms={0: first[0]["last_clean_time_ms"]})
    records = without_filler(read_to_end(bootstrap, [(topic, 0)], "read_uncommitted"))
    assert_offsets_increasing(records)
    assert not [r for r in records if r.key == b"ghost"]
    assert {r.key: r.value for r in records} == expected
    assert len(records) == len(expected)


# --- a corrupt segment ---------------------------------------------------------------------

PARTITIONS = 3
CORRUPT = 1


def test_corrupt_segment_is_skipped(tmp_path: Path) -> None:
    broker = compaction_broker(tmp_path / "data", cleaner=False).start()
    try:
        bootstrap = broker.bootstrap
        topic = create_compacted_topic(bootstrap, PARTITIONS, {"segment.bytes": str(8 * 1024)})
        writes = [
            (p, f"k{k}".encode(), f"{p}-{k}-{i}".encode().ljust(150, b"-"))
            for i in range(15)
            for k in range(20)
            for p in range(PARTITIONS)
        ]
        # Small batches, so that each partition has several segments.
        produce_all(bootstrap, topic, writes, **{"linger.ms": 0, "batch.num.messages": 5})
        expected = {
            p: table(Rec(topic, p, 0, k, v) for q, k, v in writes if q == p)
            for p in range(PARTITIONS)
        }
        end = end_offsets(bootstrap, topic, PARTITIONS)
        roll_past(broker, topic, end)
        assert broker.stop() == 0

        directory = partition_dir(broker, topic, CORRUPT)
        bases = segment_bases(directory)
        assert len(bases) >= 3
        victim = directory / f"{bases[1]:020d}.log"
        data = bytearray(victim.read_bytes())
        middle = len(data) // 2
        data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
        victim.write_bytes(bytes(data))
        digests = file_digests(directory)

        broker.config["log.cleaner.enable"] = "true"
        broker.start()
        cleaned = [p for p in range(PARTITIONS) if p != CORRUPT]
        wait_cleaned(broker, topic, {p: end[p] for p in cleaned})
        reason = wait_for(
            lambda: cleaner_status(broker, topic)[CORRUPT]["uncleanable_reason"],
            "the corrupt partition to be marked uncleanable",
            broker,
        )
        assert isinstance(reason, str), reason
        status = cleaner_status(broker, topic)[CORRUPT]
        assert status["last_clean_time_ms"] == -1, status
        assert not status["cleaning"], status

        assert file_digests(directory) == digests, "the cleaner rewrote a corrupt partition"
        assert not (directory / STAGING_DIR).exists()
        assert not list(directory.glob("*.swap"))
        lines = [
            line
            for line in broker.output().splitlines()
            if f"{topic}-{CORRUPT}" in line
            and any(w in line.lower() for w in ("corrupt", "crc", "invalid", "uncleanable"))
        ]
        assert lines, f"no log line about the corrupt partition:\n{broker.output()[-3000:]}"

        for p in cleaned:
            records = without_filler(read_to_end(bootstrap, [(topic, p)], "read_uncommitted"))
            assert_offsets_increasing(records)
            assert {r.key: r.value for r in records} == expected[p]
            assert len(records) == len(expected[p])

        produce_all(bootstrap, topic, [(CORRUPT, b"after", b"still served")])
    finally:
        broker.close()


# --- the disk filling up -------------------------------------------------------------------


def test_disk_full_mid_clean(tmp_path: Path) -> None:
    broker = compaction_broker(tmp_path / "data", hook="enospc=4096").start()
    try:
        bootstrap = broker.bootstrap
        topic = create_compacted_topic(bootstrap, 1, {"segment.bytes": str(16 * 1024)})
        writes: list[tuple[int, bytes, bytes | None]] = [
            (0, f"k{k}".encode(), f"{k}-{i}".encode().ljust(100, b"-"))
            for i in range(5)
            for k in range(300)
        ]
        produce_all(bootstrap, topic, writes)
        end = end_offsets(bootstrap, topic, 1)
        roll_past(broker, topic, end)
        directory = partition_dir(broker, topic, 0)
        closed = segment_bases(directory)[:-1]
        digests = {
            name: digest
            for name, digest in file_digests(directory).items()
            if int(name.split(".")[0]) in closed
        }

        assert request_compact(broker, topic) == 1

        def failures() -> int:
            out = broker.output().lower()
            return out.count("no space left") + out.count("enospc")

        wait_for(lambda: failures() >= 2, "two failed cleans (ENOSPC)", broker)
        assert broker.process is not None and broker.process.poll() is None

        now = {n: d for n, d in file_digests(directory).items() if n in digests}
        assert now == digests, "old segments changed by a clean that failed"
        assert cleaner_status(broker, topic)[0]["last_clean_time_ms"] == -1

        records = without_filler(read_to_end(bootstrap, [(topic, 0)], "read_uncommitted"))
        assert_offsets_increasing(records)
        assert [(r.key, r.value) for r in records] == [(k, v) for _, k, v in writes]

        produce_all(bootstrap, topic, [(0, b"after", b"disk full")])
        records = read_to_end(bootstrap, [(topic, 0)], "read_uncommitted")
        assert (records[-1].key, records[-1].value) == (b"after", b"disk full")
    finally:
        broker.close()
