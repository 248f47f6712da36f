"""Fault scenarios of a replicated cluster (issue 6), checked with the queue checker.

Every scenario runs real processes: one etcd and 3 (or 4) brokers on loopback, driven by
confluent-kafka (librdkafka) idempotent producers with acks=all against topics with
replication factor 3 and min.insync.replicas=2. After the faults a fresh consumer reads
everything back and ``History.check`` decides: every acknowledged send read back at its
offset, no offset with two values, no duplicates, reads never going backwards.

``MOLDAU_FAULT_LOOPS=long`` runs the full loops (five leader kills, longer loads); the default
run keeps them short so the suite stays within its time budget.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kio.schema.alter_partition_reassignments.v0.request as reassign_request
import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from history import History
from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import i32

from moldau.testing.etcd_cluster import LocalCluster
from moldau.testing.wire import WireClient

pytestmark = pytest.mark.slow

LONG = os.environ.get("MOLDAU_FAULT_LOOPS", "") == "long"
SAFE = {"min.insync.replicas": "2"}
TXN_PROCESSOR = Path(__file__).parent.parent / "compat" / "txn_processor.py"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with LocalCluster(3, base_dir=tmp_path) as running:
        yield running


class Load:
    """A background idempotent acks=all producer writing unique values, recorded in a
    History; ``pause_s`` between sends keeps it light on a 2-core machine."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        history: History,
        *,
        pause_s: float = 0.003,
        timeout_ms: int = 120_000,
    ) -> None:
        self.topic = topic
        self.history = history
        self.pause_s = pause_s
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": timeout_ms,
                "retry.backoff.ms": 100,
                # A paused (SIGSTOPped) leader keeps its connections open and never answers:
                # the producer notices only when a request times out.
                "request.timeout.ms": 8000,
                # ...and librdkafka drops such a connection only after socket.timeout.ms
                # (60 s by default), which alone made one scenario take over a minute.
                "socket.timeout.ms": 10000,
            }
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._prefix = uuid.uuid4().hex[:6]
        self.sent = 0

    def _run(self) -> None:
        callback = self.history.delivery_callback()
        while not self._stop.is_set():
            value = f"{self._prefix}-{self.sent}".encode()
            self.history.sent(value)
            try:
                self.producer.produce(self.topic, value, on_delivery=callback)
            except BufferError:
                self.producer.poll(0.1)
                continue
            self.sent += 1
            self.producer.poll(0)
            time.sleep(self.pause_s)

    def start(self) -> Load:
        self._thread.start()
        return self

    def acked(self) -> int:
        return len(self.history.acked)

    def wait_acked_more(self, than: int, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.acked() <= than:
            time.sleep(0.1)
        assert self.acked() > than, f"no acknowledgement after {than} within {timeout_s}s"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.producer.flush(90)


def read_back(bootstrap: str, topic: str, history: History, session: int, timeout_s: float = 60):
    """Read ``topic`` from the beginning with a fresh consumer until every acknowledged value
    has been seen (or the time is up), recording each read."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"verify-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    wanted = set(history.acked)
    seen: set[bytes] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not wanted <= seen:
            for message in consumer.consume(500, 0.5):
                if message.error() is None:
                    value = message.value() or b""
                    history.read(session, message.partition(), message.offset(), value)
                    seen.add(value)
    finally:
        consumer.close()


def wait_leader_change(cluster: LocalCluster, topic: str, old: int, timeout_s: float = 30):
    cluster.wait_for(
        lambda: cluster.leader_of(topic) not in (old, -1), timeout_s, f"a new leader of {topic}"
    )


def wait_full_isr(cluster: LocalCluster, topic: str, size: int = 3, timeout_s: float = 60):
    cluster.wait_for(
        lambda: all(len(v.isr) == size for v in cluster.partitions(topic).values()),
        timeout_s,
        f"{topic}'s ISR back to {size}",
    )


# -- 1. leader killed repeatedly -------------------------------------------------------------


def test_sigkill_of_the_leader_loses_no_acknowledged_write(cluster: LocalCluster) -> None:
    cluster.create_topic("kills", 1, 3, SAFE)
    history = History()
    load = Load(cluster.bootstrap, "kills", history).start()
    kills = 5 if LONG else 2
    try:
        load.wait_acked_more(50)
        for _ in range(kills):
            leader = cluster.leader_of("kills")
            cluster.broker(leader).kill()
            wait_leader_change(cluster, "kills", leader)
            before = load.acked()
            load.wait_acked_more(before)  # producing goes on with the new leader
            cluster.broker(leader).start()
            wait_full_isr(cluster, "kills")
    finally:
        load.stop()
    read_back(cluster.bootstrap, "kills", history, session=1)
    history.check().assert_ok()
    assert len(history.acked) > 100


# -- 2. rolling restart ------------------------------------------------------------------------


def test_rolling_restart_keeps_writes_and_committed_offsets(cluster: LocalCluster) -> None:
    cluster.create_topic("rolling", 3, 3, SAFE)
    history = History()
    load = Load(cluster.bootstrap, "rolling", history).start()
    group = f"g-{uuid.uuid4().hex[:6]}"
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        load.wait_acked_more(100)
        consumer.subscribe(["rolling"])
        read = 0
        deadline = time.monotonic() + 30
        while read < 50 and time.monotonic() < deadline:
            read += sum(1 for m in consumer.consume(100, 0.5) if m.error() is None)
        consumer.commit(asynchronous=False)
        committed = {
            tp.partition: tp.offset for tp in consumer.committed(consumer.assignment(), timeout=10)
        }
        consumer.close()
        assert any(offset > 0 for offset in committed.values())
        for node_id in list(cluster.brokers):
            before = load.acked()
            assert cluster.broker(node_id).stop() == 0  # SIGTERM: a clean, prompt shutdown
            cluster.broker(node_id).start()
            wait_full_isr(cluster, "rolling")
            load.wait_acked_more(before)
    finally:
        load.stop()
    check = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group})
    after = check.committed([TopicPartition("rolling", p) for p in committed], timeout=30)
    check.close()
    assert {tp.partition: tp.offset for tp in after} == committed
    read_back(cluster.bootstrap, "rolling", history, session=1)
    history.check().assert_ok()


# -- 3. ISR below min.insync.replicas --------------------------------------------------------


def test_acks_all_is_refused_while_the_isr_is_too_small(cluster: LocalCluster) -> None:
    cluster.create_topic("isr", 1, 3, SAFE)
    history = History()
    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": 6000,
        }
    )
    callback = history.delivery_callback()
    for i in range(20):
        producer.produce("isr", b"before-%d" % i, on_delivery=callback)
    assert producer.flush(30) == 0
    leader = cluster.leader_of("isr")
    followers = [n for n in cluster.brokers if n != leader]
    for node in followers:
        cluster.pause(node)
    try:
        cluster.wait_for(lambda: cluster.partitions("isr", leader)[0].isr == (leader,), 30)
        refused = [b"during-%d" % i for i in range(10)]
        for value in refused:
            history.sent(value)
            producer.produce("isr", value, on_delivery=callback)
        producer.flush(30)
        assert not any(value in history.acked for value in refused)
        assert all(value in history.failed for value in refused)
    finally:
        for node in followers:
            cluster.resume(node)
    wait_full_isr(cluster, "isr")
    for i in range(20):
        producer.produce("isr", b"after-%d" % i, on_delivery=callback)
    assert producer.flush(30) == 0
    assert all(b"after-%d" % i in history.acked for i in range(20))
    read_back(cluster.bootstrap, "isr", history, session=1)
    history.check().assert_ok()


# -- 4. a paused leader is fenced ------------------------------------------------------------


def test_a_leader_paused_past_its_lease_is_fenced_and_truncated(cluster: LocalCluster) -> None:
    cluster.create_topic("fence", 1, 3, SAFE)
    history = History()
    load = Load(cluster.bootstrap, "fence", history).start()
    try:
        load.wait_acked_more(50)
        old = cluster.leader_of("fence")
        old_epoch = cluster.partitions("fence")[0].leader_epoch
        cluster.pause(old)
        wait_leader_change(cluster, "fence", old)
        load.wait_acked_more(load.acked())
        # A producer that only knows the old leader: whatever it sends right after the old
        # leader wakes up must not be acknowledged by a deposed leader.
        stale = Producer(
            {
                "bootstrap.servers": cluster.broker(old).bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": 10000,
            }
        )
        cluster.resume(old)
        stale_callback = history.delivery_callback()
        for i in range(10):
            value = b"stale-%d" % i
            history.sent(value)
            stale.produce("fence", value, on_delivery=stale_callback)
        stale.flush(30)
        new_epoch = cluster.partitions("fence")[0].leader_epoch
        assert new_epoch > old_epoch
        # The old leader rejoins as a follower (its log cut to the new leader's), and as the
        # preferred replica it gets leadership back: reading then reads its log.
        wait_full_isr(cluster, "fence")
        cluster.wait_for(lambda: cluster.leader_of("fence") == old, 60, "preferred leader back")
        load.wait_acked_more(load.acked())
    finally:
        load.stop()
    read_back(cluster.bootstrap, "fence", history, session=1)
    history.check().assert_ok()


# -- 5. no ISR member alive: offline ---------------------------------------------------------


def test_a_partition_without_live_isr_members_stays_offline(cluster: LocalCluster) -> None:
    cluster.create_topic("offline", 1, 3, SAFE)
    history = History()
    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": 5000,
        }
    )
    callback = history.delivery_callback()
    leader = cluster.leader_of("offline")
    lagging = next(n for n in cluster.brokers if n != leader)
    cluster.broker(lagging).kill()
    cluster.wait_for(lambda: len(cluster.partitions("offline")[0].isr) == 2, 30)
    for i in range(30):
        producer.produce("offline", b"v-%d" % i, on_delivery=callback)
    assert producer.flush(30) == 0  # acked by the two ISR members
    isr_members = [n for n in cluster.brokers if n != lagging]
    for node in isr_members:
        cluster.broker(node).kill()
    cluster.broker(lagging).start()
    cluster.wait_for(lambda: cluster.registered_brokers(lagging) == {lagging}, 30)
    time.sleep(2)  # give the controller every chance to (wrongly) elect the lagging replica
    offline = cluster.partitions("offline", lagging)[0]
    assert offline.leader == -1
    # The ISR keeps its last member: both killed brokers if the controller saw them go at
    # once, else only the one that died last (the other left the ISR while it still led).
    assert offline.isr and set(offline.isr) <= set(isr_members)
    producer.produce("offline", b"while-offline", on_delivery=callback)
    producer.flush(10)
    assert b"while-offline" not in history.acked
    returning = offline.isr[0]
    cluster.broker(returning).start()
    cluster.wait_for(lambda: cluster.leader_of("offline") == returning, 60, "ISR leader")
    cluster.broker(next(n for n in isr_members if n != returning)).start()
    read_back(cluster.bootstrap, "offline", history, session=1)
    history.check().assert_ok()


# -- 6. etcd killed and restarted ------------------------------------------------------------


def test_etcd_killed_and_restarted_during_produce_and_topic_creation(
    cluster: LocalCluster,
) -> None:
    cluster.create_topic("meta", 3, 3, SAFE)
    history = History()
    load = Load(cluster.bootstrap, "meta", history).start()
    leaders: dict[tuple[str, int, int], set[int]] = {}
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            for node in cluster.running():
                try:
                    views = cluster.partitions("meta", node)
                except Exception:
                    continue
                for p, view in views.items():
                    if view.leader >= 0:
                        leaders.setdefault(("meta", p, view.leader_epoch), set()).add(view.leader)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        load.wait_acked_more(100)
        cluster.etcd.kill()
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        during = admin.create_topics([NewTopic("made-while-down", 1, 3)], request_timeout=5)
        time.sleep(6 if LONG else 4)  # longer than the 3 s lease: every broker steps down
        cluster.etcd.start()
        load.wait_acked_more(load.acked())
        with pytest.raises(KafkaException):
            during["made-while-down"].result(30)
        cluster.create_topic("made-after", 1, 3, SAFE)
    finally:
        load.stop()
        sampling.set()
        sampler.join(10)
    two_leaders = {key: nodes for key, nodes in leaders.items() if len(nodes) > 1}
    assert not two_leaders, f"two leaders at one epoch: {two_leaders}"
    read_back(cluster.bootstrap, "meta", history, session=1)
    history.check().assert_ok()


# -- 7. reassignment while producing -----------------------------------------------------------


def reassign(cluster: LocalCluster, topic: str, partition: int, replicas: list[int]) -> int:
    request = reassign_request.AlterPartitionReassignmentsRequest(
        topics=(
            reassign_request.ReassignableTopic(
                name=TopicName(topic),
                partitions=(
                    reassign_request.ReassignablePartition(
                        partition_index=i32(partition),
                        replicas=tuple(BrokerId(r) for r in replicas),
                    ),
                ),
            ),
        ),
    )
    broker = cluster.broker(1)
    with WireClient(broker.host, broker.port) as client:
        response = client.request(45, 0, request)
    return int(response.responses[0].partitions[0].error_code)


def test_reassignment_while_producing_loses_nothing(tmp_path: Path) -> None:
    with LocalCluster(4, base_dir=tmp_path) as cluster:
        cluster.create_topic("moving", 1, 3, SAFE)
        history = History()
        load = Load(cluster.bootstrap, "moving", history).start()
        try:
            load.wait_acked_more(100)
            current = cluster.partitions("moving")[0].replicas
            spare = next(n for n in cluster.brokers if n not in current)
            target = [spare, *current[1:]]
            assert reassign(cluster, "moving", 0, [1, 2, 99]) == 39  # INVALID_REPLICA_ASSIGNMENT
            assert reassign(cluster, "moving", 0, target) == 0
            cluster.wait_for(
                lambda: (
                    cluster.partitions("moving")[0].replicas == tuple(target)
                    and len(cluster.partitions("moving")[0].isr) == 3
                ),
                60,
                "the reassignment to finish",
            )
            load.wait_acked_more(load.acked())
        finally:
            load.stop()
        read_back(cluster.bootstrap, "moving", history, session=1)
        history.check().assert_ok()


# -- 8. consumer group and transactions across a leader kill ------------------------------


PROCESSOR_SILENCE_S = 45.0
"""A processor that prints nothing for this long is treated as stuck and restarted."""


class OutputLines:
    """A child's stdout lines through a reader thread, so the test can wait with a timeout
    (a blocking ``readline`` cannot honour the test's own deadline)."""

    def __init__(self, stream: Any) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: Any) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put("")  # end of output
        stream.close()

    def get_line(self, timeout_s: float) -> str:
        """The next line; "" at end of output or after ``timeout_s`` of silence."""
        try:
            return self._lines.get(timeout=timeout_s)
        except queue.Empty:
            return ""


def output_lines(process: subprocess.Popen[str]) -> OutputLines:
    assert process.stdout is not None
    return OutputLines(process.stdout)


def run_processor(cluster: LocalCluster, tid: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(TXN_PROCESSOR),
            "--bootstrap",
            cluster.bootstrap,
            "--input",
            "eos-in",
            "--output",
            "eos-out",
            "--group",
            "eos-group",
            "--transactional-id",
            tid,
            "--per-txn",
            "20",
            "--timeout-s",
            "90",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def test_exactly_once_processing_survives_a_leader_kill(cluster: LocalCluster) -> None:
    cluster.create_topic("eos-in", 1, 3, SAFE)
    cluster.create_topic("eos-out", 1, 3, SAFE)
    count = 600 if LONG else 300
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for i in range(count):
        producer.produce("eos-in", b"in-%04d" % i, key=b"k%d" % i)
    assert producer.flush(30) == 0
    processor = run_processor(cluster, "eos-tid")
    lines = output_lines(processor)
    killed = False
    outcome = ""
    restarts = 0
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        line = lines.get_line(PROCESSOR_SILENCE_S)
        if not line:
            # The processor stopped (a commit failed across the failover), or went silent
            # (a transaction stalled: see the issue 6 closing note): a restarted one fences
            # it and resumes from the committed offsets, as a real deployment would.
            if processor.poll() is None:
                processor.kill()
            processor.wait(30)
            restarts += 1
            assert restarts <= 3, "the processor keeps failing"
            processor = run_processor(cluster, "eos-tid")
            lines = output_lines(processor)
            continue
        if line.startswith("committed 3") and not killed:
            killed = True
            victim = cluster.leader_of("eos-out")
            cluster.broker(victim).kill()
            wait_leader_change(cluster, "eos-out", victim)
            cluster.broker(victim).start()
        if line.strip() == "done":
            outcome = "done"
            break
    processor.wait(30)
    assert killed and outcome == "done"
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": f"eos-verify-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe(["eos-out"])
    values: list[bytes] = []
    read_deadline = time.monotonic() + 60
    while len(values) < count and time.monotonic() < read_deadline:
        values += [m.value() or b"" for m in consumer.consume(500, 0.5) if m.error() is None]
    consumer.close()
    assert sorted(values) == sorted(b"IN-%04d" % i for i in range(count))
    check = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "eos-group"})
    committed = check.committed([TopicPartition("eos-in", 0)], timeout=30)
    check.close()
    assert committed[0].offset == count
