"""Shared helpers for the log compaction compat tests (``test_compaction*.py``).

The tests drive a real broker process with real clients and watch the cleaner from outside,
the way an operator would: through the broker's HTTP endpoint (``GET /v1/topics/{t}/cleaner``
for per-partition status, ``POST /v1/topics/{t}/compact`` to ask for a clean now) and through
the partition directories on disk (which segment is the active one, whether files changed).

Two facts of Kafka's cleaner shape every test here:

* The active segment is never cleaned, so a test that wants "everything it wrote" compacted
  first writes filler records (one key, :data:`FILLER_KEY`) until the partition rolls past the
  data (:func:`roll_past`). The filler key then appears several times in the uncleaned tail;
  the checks treat it separately.
* A tombstone survives the clean that first sees it for at least ``delete.retention.ms``
  (the delete horizon stamped into its batch); only a *later* clean after that horizon drops
  it, and a clean needs dirty data to be chosen, so tests roll once more after the horizon.

"Cleaned up to X" is read from the status: ``first_dirty_offset >= X`` (the cleaner checkpoint
moved past everything the test wrote) and ``last_clean_time_ms`` newer than a given time.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from txn_helpers import TP, WAIT_S, Rec

from moldau.testing import BrokerProcess

HOOK_ENV = "MOLDAU_TEST_CLEANER_HOOK"
STAGING_DIR = "cleaner-staging"  # where a clean writes its output before the swap
FILLER_KEY = b"~filler"
CLEAN_WAIT_S = 60.0

BROKER_CONFIG = {
    "group.initial.rebalance.delay.ms": "0",
    "log.cleaner.backoff.ms": "100",
    "log.cleaner.threads": "1",
}

Status = dict[str, Any]


# --- the broker ----------------------------------------------------------------------------


def compaction_broker(
    data_dir: Path,
    config: Mapping[str, str] | None = None,
    hook: str | None = None,
    *,
    cleaner: bool = True,
) -> BrokerProcess:
    """A broker (not started) with a short cleaner backoff; ``hook`` goes into
    ``MOLDAU_TEST_CLEANER_HOOK`` of its environment. The test kit gives its HTTP endpoint a
    free port (``broker.http_url``). ``cleaner=False`` starts it with ``log.cleaner.enable``
    off, for tests that must look at the log before any clean (a new log is all dirty, so
    the cleaner would start at once): :func:`restart_with_cleaner` turns it on."""
    broker = BrokerProcess(
        data_dir,
        config={**BROKER_CONFIG, "log.cleaner.enable": str(cleaner).lower(), **(config or {})},
    )
    set_hook(broker, hook)
    return broker


def restart_with_cleaner(broker: BrokerProcess, hook: str | None = None) -> BrokerProcess:
    """Clean shutdown, then start again with the cleaner on (and ``hook`` set)."""
    assert broker.stop() == 0
    broker.config["log.cleaner.enable"] = "true"
    set_hook(broker, hook)
    return broker.start()


def set_hook(broker: BrokerProcess, hook: str | None) -> None:
    """Set (or with ``None`` remove) the cleaner test hook for the broker's next start."""
    if hook is None:
        broker.env.pop(HOOK_ENV, None)
    else:
        broker.env[HOOK_ENV] = hook


def _http(method: str, url: str) -> Any:
    """One JSON request; retried while the endpoint refuses connections (a broker that just
    started may accept Kafka connections a moment before its HTTP endpoint)."""
    deadline = time.monotonic() + 10
    while True:
        request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.URLError as err:
            if not isinstance(err.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def cleaner_status(broker: BrokerProcess, topic: str) -> dict[int, Status]:
    """``GET /v1/topics/{topic}/cleaner``, by partition."""
    rows = _http("GET", f"{broker.http_url}/v1/topics/{topic}/cleaner")
    return {int(row["partition"]): row for row in rows}


def request_compact(broker: BrokerProcess, topic: str) -> int:
    """``POST /v1/topics/{topic}/compact``: how many partitions were queued."""
    return int(_http("POST", f"{broker.http_url}/v1/topics/{topic}/compact")["queued"])


def wait_cleaned(
    broker: BrokerProcess,
    topic: str,
    targets: Mapping[int, int],
    *,
    after_ms: Mapping[int, int] | None = None,
    timeout_s: float = CLEAN_WAIT_S,
) -> dict[int, Status]:
    """Poll the status until every partition in ``targets`` has its first dirty offset at or
    past its target, was cleaned after ``after_ms[p]`` (default: ever) and is not cleaning."""
    deadline = time.monotonic() + timeout_s
    status: dict[int, Status] = {}
    while True:
        status = cleaner_status(broker, topic)
        if all(_cleaned(status.get(p), t, (after_ms or {}).get(p, -1)) for p, t in targets.items()):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{topic} not cleaned up to {dict(targets)} within {timeout_s}s; status {status}"
                f"\nbroker output (tail):\n{broker.output()[-3000:]}"
            )
        time.sleep(0.1)


def _cleaned(row: Status | None, target: int, after_ms: int) -> bool:
    return (
        row is not None
        and not row["cleaning"]
        and row["first_dirty_offset"] >= target
        and row["last_clean_time_ms"] > after_ms
    )


def wait_for(predicate: Any, what: str, broker: BrokerProcess, timeout_s: float = WAIT_S) -> Any:
    """Poll ``predicate()`` until it returns something truthy, which is returned."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {what}\nbroker output (tail):\n{broker.output()[-3000:]}"
            )
        time.sleep(0.05)


# --- topics and files ----------------------------------------------------------------------


def create_compacted_topic(
    bootstrap: str, partitions: int, config: Mapping[str, str], prefix: str = "compact"
) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic_config = {"cleanup.policy": "compact", **config}
    futures = admin.create_topics([NewTopic(name, partitions, 1, config=topic_config)])
    futures[name].result(timeout=WAIT_S)
    return name


def partition_dir(broker: BrokerProcess, topic: str, partition: int) -> Path:
    return broker.data_dir / f"{topic}-{partition}"


def segment_bases(directory: Path) -> list[int]:
    """Base offsets of the segments in a partition directory (from ``<base>.log`` names)."""
    return sorted(int(p.stem) for p in directory.glob("*.log") if p.stem.isdigit())


def active_base(broker: BrokerProcess, topic: str, partition: int) -> int:
    bases = segment_bases(partition_dir(broker, topic, partition))
    return bases[-1] if bases else 0


def file_digests(directory: Path, pattern: str = "*.log") -> dict[str, str]:
    """name → sha256 of the files matching ``pattern``: did anything touch them?"""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob(pattern))
    }


# --- producing -----------------------------------------------------------------------------


def producer(bootstrap: str, **extra: Any) -> Producer:
    conf: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "linger.ms": 5,
        **extra,
    }
    return Producer(conf)


def produce_all(
    bootstrap: str, topic: str, writes: Iterable[tuple[int, bytes, bytes | None]], **extra: Any
) -> dict[tuple[int, bytes], int]:
    """Produce ``(partition, key, value)`` in order with confluent-kafka and wait for every
    acknowledgement; returns (partition, key) → offset of its *last* write."""
    last: dict[tuple[int, bytes], int] = {}
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            errors.append(err)
        else:
            k = (msg.partition(), msg.key())
            last[k] = max(last.get(k, -1), msg.offset())

    prod = producer(bootstrap, **extra)
    for n, (partition, key, value) in enumerate(writes):
        while True:
            try:
                prod.produce(topic, value, key=key, partition=partition, on_delivery=on_delivery)
                break
            except BufferError:
                prod.poll(0.05)
        if n % 1000 == 0:
            prod.poll(0)
    assert prod.flush(WAIT_S) == 0
    assert not errors, errors[:5]
    return last


def roll_past(
    broker: BrokerProcess, topic: str, targets: Mapping[int, int], value_bytes: int = 2048
) -> dict[int, bytes]:
    """Write :data:`FILLER_KEY` records into each partition until its active segment starts at
    or after ``targets[p]`` (so everything before it can be cleaned); returns the last filler
    value written per partition."""
    prod = producer(broker.bootstrap, **{"linger.ms": 0})
    last: dict[int, bytes] = {}
    counter = 0
    for partition, target in targets.items():
        deadline = time.monotonic() + WAIT_S
        while active_base(broker, topic, partition) < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}-{partition} did not roll past {target}")
            for _ in range(4):
                counter += 1
                value = f"filler-{counter}-".encode().ljust(value_bytes, b".")
                prod.produce(topic, value, key=FILLER_KEY, partition=partition)
                last[partition] = value
            assert prod.flush(WAIT_S) == 0
    return last


# --- reading -------------------------------------------------------------------------------


def table(records: Iterable[Rec]) -> dict[bytes | None, bytes]:
    """The key → value view a reader builds by replaying ``records`` (tombstones delete)."""
    view: dict[bytes | None, bytes] = {}
    for r in records:
        if r.value is None:
            view.pop(r.key, None)
        else:
            view[r.key] = r.value
    return view


def assert_offsets_increasing(records: Iterable[Rec]) -> None:
    last: dict[TP, int] = {}
    for r in records:
        tp = (r.topic, r.partition)
        assert r.offset > last.get(tp, -1), f"offset {r.offset} after {last[tp]} in {tp}"
        last[tp] = r.offset


def read_kafka_python(
    bootstrap: str, tps: Iterable[TP], start: Mapping[TP, int] | None = None
) -> list[Rec]:
    """Read ``tps`` from ``start`` (default: the beginning) to the current end with
    kafka-python; ``auto_offset_reset='none'`` makes an out-of-range position an error."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KTopicPartition

    tps = list(tps)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
        fetch_max_wait_ms=100,
    )
    out: list[Rec] = []
    try:
        ktps = [KTopicPartition(t, p) for t, p in tps]
        consumer.assign(ktps)
        for ktp in ktps:
            consumer.seek(ktp, (start or {}).get((ktp.topic, ktp.partition), 0))
        end = consumer.end_offsets(ktps)
        deadline = time.monotonic() + WAIT_S
        while any(consumer.position(ktp) < end[ktp] for ktp in ktps):
            if time.monotonic() > deadline:
                raise AssertionError(f"kafka-python did not reach {end}; got {len(out)} records")
            for records in consumer.poll(timeout_ms=200).values():
                out += [Rec(r.topic, r.partition, r.offset, r.key, r.value) for r in records]
    finally:
        consumer.close()
    return out
