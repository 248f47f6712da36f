"""Transactions on a compacted topic: the cleaner removes aborted data, keeps committed data.

A confluent transactional producer writes 40 transactions over a set of keys, every third one
aborted; some keys are written *only* by aborted transactions. Plain (non-transactional)
records of their own keys are interleaved. All of it is read with the cleaner off, then the
broker restarts with the cleaner on. After cleaning:

* read_uncommitted no longer sees any aborted record (Kafka drops aborted data when it
  cleans, so the difference between the isolation levels disappears): both isolation
  levels read the same records;
* the keys written only by aborted transactions are gone entirely;
* every committed (and plain) key has its latest committed value, and the read_committed
  view — latest value per key — is the same as before the clean; every record read after
  the clean was read, with the same offset, key and value, before it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from compaction_helpers import (
    FILLER_KEY,
    assert_offsets_increasing,
    compaction_broker,
    create_compacted_topic,
    restart_with_cleaner,
    roll_past,
    table,
    wait_cleaned,
)
from compaction_helpers import (
    producer as producer_for,
)
from txn_helpers import WAIT_S, Rec, latest_offsets, read_to_end, txn_producer

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

TRANSACTIONS = 40
KEYS_PER_TXN = 15
SHARED_KEYS = 10


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    proc = compaction_broker(tmp_path / "data", cleaner=False).start()
    yield proc
    proc.close()


def aborted(n: int) -> bool:
    return n % 3 == 1


def txn_writes(n: int) -> list[tuple[bytes, bytes]]:
    """Transaction n writes the shared keys and keys of its own (``own-<n>-…``)."""
    shared = [(f"shared-{k}".encode(), f"txn{n}-shared-{k}".encode()) for k in range(SHARED_KEYS)]
    own = [
        (f"own-{n}-{k}".encode(), f"txn{n}-own-{k}".encode())
        for k in range(KEYS_PER_TXN - SHARED_KEYS)
    ]
    return [(k, v.ljust(200, b".")) for k, v in shared + own]


def without_filler(records: list[Rec]) -> list[Rec]:
    return [r for r in records if r.key != FILLER_KEY]


def test_aborted_data_is_cleaned_away(broker: BrokerProcess) -> None:
    bootstrap = broker.bootstrap
    topic = create_compacted_topic(
        bootstrap,
        1,
        {"segment.bytes": str(16 * 1024), "min.cleanable.dirty.ratio": "0.01"},
    )
    tp = (topic, 0)
    producer = txn_producer(bootstrap, f"compact-{uuid.uuid4().hex[:6]}")
    plain_producer = producer_for(bootstrap)
    expected: dict[bytes, bytes] = {}
    for n in range(TRANSACTIONS):
        producer.begin_transaction()
        for k, v in txn_writes(n):
            producer.produce(topic, v, key=k, partition=0)
        # librdkafka drops unsent messages on abort: flush so that the aborted data is written.
        assert producer.flush(WAIT_S) == 0
        if aborted(n):
            producer.abort_transaction(WAIT_S)
        else:
            producer.commit_transaction(WAIT_S)
            expected.update(txn_writes(n))
        plain_key, plain_value = f"plain-{n % 4}".encode(), f"plain-{n}".encode()
        plain_producer.produce(topic, plain_value, key=plain_key, partition=0)
        assert plain_producer.flush(WAIT_S) == 0
        expected[plain_key] = plain_value
    aborted_values = {v for n in range(TRANSACTIONS) if aborted(n) for _, v in txn_writes(n)}
    aborted_only_keys = {k for n in range(TRANSACTIONS) if aborted(n) for k, _ in txn_writes(n)}
    aborted_only_keys -= set(expected)
    assert aborted_only_keys

    end = latest_offsets(bootstrap, [tp], committed=False)[tp]
    assert latest_offsets(bootstrap, [tp], committed=True)[tp] == end
    rc_before = without_filler(read_to_end(bootstrap, [tp], "read_committed"))
    ru_before = without_filler(read_to_end(bootstrap, [tp], "read_uncommitted"))
    assert table(rc_before) == expected
    assert aborted_values & {r.value for r in ru_before}, "the test wrote no aborted data"

    roll_past(broker, topic, {0: end})
    restart_with_cleaner(broker)
    wait_cleaned(broker, topic, {0: end})

    rc_after = read_to_end(bootstrap, [tp], "read_committed")
    ru_after = read_to_end(bootstrap, [tp], "read_uncommitted")
    assert_offsets_increasing(rc_after)
    assert_offsets_increasing(ru_after)
    same = without_filler(ru_after) == without_filler(rc_after)
    assert same, "aborted data still visible to read_uncommitted"
    data = without_filler(rc_after)
    assert not {r.value for r in data} & aborted_values
    assert not {r.key for r in data} & aborted_only_keys
    assert table(data) == table(rc_before) == expected
    assert {r.key: r.value for r in data} == expected  # one record per key
    assert len(data) == len(expected)
    assert set(data) <= set(rc_before)
