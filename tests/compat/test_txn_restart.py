"""Open transactions across a broker restart, clean (SIGTERM) and crash (SIGKILL).

Before the restart: one transaction committed, and two left open with their data written —
one by a producer that stays alive (long transaction timeout), one by a producer process that
is SIGKILLed (a few seconds' timeout). After the restart the coordinator has recovered both: the
surviving producer's commit succeeds (librdkafka retries across the outage), and the abandoned
transaction is aborted by the timeout (the broker checks every 500 ms). Then the LSO reaches
the high watermark, a read_committed consumer reads to the end, everything committed is there
and nothing of the aborted transaction is visible.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from txn_helpers import (
    WAIT_S,
    all_partitions,
    create_topics,
    kill_process,
    latest_offsets,
    open_txn_in_subprocess,
    read_to_end,
    txn_producer,
    wait_until,
)

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

PARTITIONS = 2
PER_PARTITION = 4
ABANDONED_TIMEOUT_MS = 3000


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[BrokerProcess]:
    broker = BrokerProcess(
        tmp_path / "data",
        config={
            "group.initial.rebalance.delay.ms": "0",
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": "500",
        },
    )
    broker.start()
    yield broker
    broker.close()


def tagged(tag: str) -> list[tuple[int, bytes]]:
    return [(p, f"{tag}-{p}-{i}".encode()) for p in range(PARTITIONS) for i in range(PER_PARTITION)]


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_open_transactions_survive_a_broker_restart(restartable: BrokerProcess, how: str) -> None:
    bootstrap = restartable.bootstrap
    (topic,) = create_topics(bootstrap, PARTITIONS, prefix="txn-restart")
    tps = all_partitions({topic: PARTITIONS})

    before = txn_producer(bootstrap, f"before-{uuid.uuid4().hex[:6]}")
    before.begin_transaction()
    for p, value in tagged("before"):
        before.produce(topic, value, key=b"k", partition=p)
    before.commit_transaction(WAIT_S)

    survivor = txn_producer(
        bootstrap,
        f"survivor-{uuid.uuid4().hex[:6]}",
        **{"transaction.timeout.ms": 60_000, "message.timeout.ms": 60_000},
    )
    survivor.begin_transaction()
    for p, value in tagged("survivor"):
        survivor.produce(topic, value, key=b"k", partition=p)
    assert survivor.flush(WAIT_S) == 0

    gone_id = f"gone-{uuid.uuid4().hex[:6]}"
    gone = open_txn_in_subprocess(
        bootstrap, gone_id, topic, PARTITIONS, PER_PARTITION, ABANDONED_TIMEOUT_MS
    )
    kill_process(gone)

    # Both transactions are open: the LSO is stuck at the survivor's first offsets.
    assert latest_offsets(bootstrap, tps, committed=True) == {tp: PER_PARTITION + 1 for tp in tps}

    if how == "sigkill":
        restartable.kill()
    else:
        assert restartable.stop() == 0
    restartable.start()

    survivor.commit_transaction(WAIT_S)

    def stable() -> bool:
        rc = latest_offsets(bootstrap, tps, committed=True)
        return rc == latest_offsets(bootstrap, tps, committed=False)

    wait_until(stable, what="the abandoned transaction to be aborted (LSO == HW)")
    # before: data + marker; survivor: data + marker; gone: data + marker.
    high = latest_offsets(bootstrap, tps, committed=False)
    assert high == {tp: 3 * (PER_PARTITION + 1) for tp in tps}

    committed = read_to_end(bootstrap, tps, "read_committed")
    want = sorted(v for _, v in tagged("before") + tagged("survivor"))
    assert sorted(r.value for r in committed) == want
    assert not [r for r in committed if r.value and r.value.startswith(gone_id.encode())]

    uncommitted = read_to_end(bootstrap, tps, "read_uncommitted")
    assert len(uncommitted) == 3 * PARTITIONS * PER_PARTITION  # the aborted data is kept
