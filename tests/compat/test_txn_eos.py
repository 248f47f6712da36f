"""Exactly-once consume-transform-produce across a processor crash.

``txn_processor.py`` (confluent-kafka, ``send_offsets_to_transaction`` with the consumer's group
metadata) runs as a real subprocess. It is SIGKILLed after its k-th transaction wrote output but
before it committed, then restarted with the same transactional id. The restarted instance
fences the dead one, whose open transaction the coordinator aborts (output records and pending
offsets alike), and resumes from the group's last committed offsets. Afterwards the output, read
with read_committed, holds every input record exactly once, and the group's committed offsets
equal the input's end offsets.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
from txn_helpers import (
    WAIT_S,
    all_partitions,
    create_topics,
    produce_plain,
    read_to_end,
)

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

PARTITIONS = 2
PER_PARTITION = 20
PER_TXN = 5
HANG_AT = 3
PROCESSOR = Path(__file__).with_name("txn_processor.py")


def start_processor(
    bootstrap: str, source: str, sink: str, group: str, txn_id: str, hang_at: int = -1
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(PROCESSOR),
            "--bootstrap",
            bootstrap,
            "--input",
            source,
            "--output",
            sink,
            "--group",
            group,
            "--transactional-id",
            txn_id,
            "--per-txn",
            str(PER_TXN),
            "--hang-at",
            str(hang_at),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_until(proc: subprocess.Popen[str], wanted: str) -> list[str]:
    """The processor's lines up to and including ``wanted`` (fails if it exits first)."""
    assert proc.stdout is not None
    lines: list[str] = []
    while True:
        line = proc.stdout.readline()
        if not line:
            proc.wait(10)
            raise AssertionError(f"processor exited {proc.returncode} before {wanted!r}: {lines}")
        lines.append(line.rstrip("\n"))
        if lines[-1] == wanted:
            return lines


def test_crash_mid_transaction_then_restart_is_exactly_once(broker: BrokerProcess) -> None:
    bootstrap = broker.bootstrap
    source, sink = create_topics(bootstrap, PARTITIONS, PARTITIONS, prefix="eos")
    inputs = {p: [f"in-{p}-{i}".encode() for i in range(PER_PARTITION)] for p in range(PARTITIONS)}
    for p, vals in inputs.items():
        produce_plain(bootstrap, source, p, vals)
    group = f"eos-{uuid.uuid4().hex[:6]}"
    txn_id = f"eos-processor-{uuid.uuid4().hex[:6]}"

    first = start_processor(bootstrap, source, sink, group, txn_id, hang_at=HANG_AT)
    try:
        lines = read_until(first, f"in-txn {HANG_AT}")
    finally:
        first.kill()
        first.communicate(timeout=10)
    assert f"committed {HANG_AT - 1}" in lines

    second = start_processor(bootstrap, source, sink, group, txn_id)
    try:
        out, _ = second.communicate(timeout=120)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate(timeout=10)
    assert second.returncode == 0, out
    assert out.splitlines()[-1] == "done", out

    expected = sorted(v.upper() for vals in inputs.values() for v in vals)
    sink_tps = all_partitions({sink: PARTITIONS})
    output = read_to_end(bootstrap, sink_tps, "read_committed")
    assert sorted(r.value for r in output) == expected  # no duplicate, none missing
    for r in output:  # transformed in place: same partition as its input
        assert r.value is not None and r.value.lower() in inputs[r.partition]

    # The killed transaction's output was really written, and then aborted.
    uncommitted = read_to_end(bootstrap, sink_tps, "read_uncommitted")
    assert len(uncommitted) > len(expected)

    ends = {p: PER_PARTITION for p in range(PARTITIONS)}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(source, p) for p in range(PARTITIONS)]
    )
    listed = admin.list_consumer_group_offsets([request], require_stable=True)
    result = listed[group].result(WAIT_S)
    assert {tp.partition: tp.offset for tp in result.topic_partitions} == ends

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        committed = consumer.committed(
            [TopicPartition(source, p) for p in range(PARTITIONS)], timeout=WAIT_S
        )
    finally:
        consumer.close()
    assert {tp.partition: tp.offset for tp in committed} == ends
