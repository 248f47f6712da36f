"""read_committed consumers stop at the last stable offset (LSO) while a transaction is open.

Layout of the one partition: plain records at 0..2, the open transaction's records at 3..4, then
plain records at 5..6 appended after it. While the transaction is open the LSO is 3: a
read_committed consumer gets 0..2 and nothing more (not even the later plain records), and
ListOffsets LATEST with read_committed answers 3 while read_uncommitted answers the high
watermark 7. When the transaction ends (marker at 7) the same consumer, still polling, moves on:
it receives 3..6 after a commit, or only 5..6 after an abort; the LSO becomes 8.
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from txn_helpers import (
    WAIT_S,
    create_topics,
    latest_offsets,
    poll_count,
    poll_to_end,
    produce_plain,
    reader,
    txn_producer,
    wait_until,
)

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "abort"])
def test_read_committed_waits_at_the_lso(broker: BrokerProcess, commit: bool) -> None:
    bootstrap = broker.bootstrap
    (topic,) = create_topics(bootstrap, 1, prefix="lso")
    tp = (topic, 0)
    produce_plain(bootstrap, topic, 0, [b"before-0", b"before-1", b"before-2"])

    producer = txn_producer(bootstrap, f"lso-{uuid.uuid4().hex[:6]}", **{"linger.ms": 0})
    producer.begin_transaction()
    producer.produce(topic, b"txn-0", key=b"k", partition=0)
    producer.produce(topic, b"txn-1", key=b"k", partition=0)
    assert producer.flush(WAIT_S) == 0
    produce_plain(bootstrap, topic, 0, [b"after-0", b"after-1"])

    assert latest_offsets(bootstrap, [tp], committed=False) == {tp: 7}
    assert latest_offsets(bootstrap, [tp], committed=True) == {tp: 3}

    consumer = reader(bootstrap, "read_committed")
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        stable = poll_to_end(consumer, [tp])
        assert [(r.offset, r.value) for r in stable] == [
            (0, b"before-0"),
            (1, b"before-1"),
            (2, b"before-2"),
        ]
        # Still nothing past the LSO after a few more fetch rounds.
        assert poll_count_or_none(consumer) == []

        if commit:
            producer.commit_transaction(WAIT_S)
            want = [(3, b"txn-0"), (4, b"txn-1"), (5, b"after-0"), (6, b"after-1")]
        else:
            producer.abort_transaction(WAIT_S)
            want = [(5, b"after-0"), (6, b"after-1")]
        rest = poll_count(consumer, len(want))
        assert [(r.offset, r.value) for r in rest] == want
    finally:
        consumer.close()

    wait_until(
        lambda: latest_offsets(bootstrap, [tp], committed=True) == {tp: 8},
        what="LSO to pass the marker",
    )
    assert latest_offsets(bootstrap, [tp], committed=False) == {tp: 8}


def poll_count_or_none(consumer: Consumer, rounds: int = 5) -> list[tuple[int, bytes]]:
    """Records delivered during a few short polls (expected: none)."""
    got: list[tuple[int, bytes]] = []
    for _ in range(rounds):
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            got.append((msg.offset(), msg.value()))
    return got
