"""The event-sourcing and CQRS examples in ``examples/`` work against a real broker.

Each example runs as a subprocess, as a user would run it, and is judged by what the broker
then holds, read back here with confluent-kafka and folded by this module's own, simpler
code: the order states ``event_sourcing.py`` prints must be what its events add up to, and
the read model ``cqrs_read_model.py`` prints must be both what the event topic adds up to
(per customer, with nothing counted twice across a projector crash) and what its compacted
topic yields when read to its end — also after the broker's log cleaner has compacted it,
which must change how many records there are and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
TIMEOUT_S = 90
CLEAN_TIMEOUT_S = 60

STATE = re.compile(r"^state (\{.*\})$")
READ_MODEL = re.compile(r"^read-model (\S+) (\{.*\})$")
SKIPPED = re.compile(r"^skipped partition=(\d+) offset=(\d+) (\w+): (.*)$")

# partition, offset, key, value (None for a tombstone), in partition order
Record = tuple[int, int, str | None, bytes | None]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """A broker whose cleaner looks for work often, so a requested clean starts promptly."""
    data_dir = tmp_path_factory.mktemp("broker") / "data"
    config = {"group.initial.rebalance.delay.ms": "0", "log.cleaner.backoff.ms": "200"}
    proc = BrokerProcess(data_dir, config=config)
    proc.start()
    yield proc
    proc.close()


def run_python(example: str, *args: str, returncode: int = 0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("BOOTSTRAP_SERVERS", None)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / example), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == returncode, f"{example}:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def read_topic(bootstrap: str, topic: str) -> list[Record]:
    """Every record of every partition, from the beginning to the end librdkafka reports."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("check"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    records: list[Record] = []
    at_end: set[int] = set()
    try:
        for _ in range(400):
            msg = consumer.poll(timeout=0.5)
            if msg is None:
                continue
            error, partition, offset = msg.error(), msg.partition(), msg.offset()
            assert partition is not None
            if error is not None:
                assert error.code() == KafkaError._PARTITION_EOF, error
                at_end.add(partition)
                if len(at_end) == len(partitions):
                    return sorted(records, key=lambda r: (r[0], r[1]))
                continue
            at_end.discard(partition)
            assert offset is not None
            key = msg.key()
            records.append((partition, offset, key.decode() if key else None, msg.value()))
    finally:
        consumer.close()
    raise AssertionError(f"never reached the end of {topic}: {records}")


def events_of(bootstrap: str, topic: str) -> list[tuple[int, int, str | None, dict[str, Any]]]:
    return [(p, o, k, json.loads(v or b"null")) for p, o, k, v in read_topic(bootstrap, topic)]


def fold_orders(events: list[tuple[int, int, str | None, dict[str, Any]]]) -> dict[str, Any]:
    """Each order's state from its events: the examples keep every event of an order in one
    partition, so partition order is the order's own order."""
    orders: dict[str, dict[str, Any]] = {}
    for _, _, key, event in events:
        order_id = event["order_id"]
        assert key == order_id
        if event["type"] == "created":
            orders[order_id] = {
                "order_id": order_id, "customer_id": event["customer_id"], "status": "open",
                "items": {}, "total_cents": 0, "version": 0,
            }  # fmt: skip
        elif event["type"] == "forgotten":
            del orders[order_id]
            continue
        order = orders[order_id]
        order["version"] += 1
        if event["type"] == "item_added":
            order["items"][event["sku"]] = order["items"].get(event["sku"], 0) + event["quantity"]
            order["total_cents"] += event["quantity"] * event["price_cents"]
        elif event["type"] != "created":
            order["status"] = event["type"]
    return orders


def fold_customers(events: list[tuple[int, int, str | None, dict[str, Any]]]) -> dict[str, Any]:
    """The read model the projector must end with: per customer with an order left, the
    orders' status and total, the spend on paid and shipped orders, and per event partition
    the offset of the last event that touched the customer."""
    owner = {e["order_id"]: e["customer_id"] for *_, e in events if e["type"] == "created"}
    orders = fold_orders(events)
    model: dict[str, Any] = {}
    for order in orders.values():
        summary = model.setdefault(
            order["customer_id"],
            {"customer_id": order["customer_id"], "orders": {}, "spent_cents": 0, "applied": {}},
        )
        summary["orders"][order["order_id"]] = {
            "status": order["status"], "total_cents": order["total_cents"],
        }  # fmt: skip
        if order["status"] in ("paid", "shipped"):
            summary["spent_cents"] += order["total_cents"]
    for partition, offset, _, event in events:
        summary = model.get(owner[event["order_id"]])
        if summary is not None:
            applied = summary["applied"]
            applied[str(partition)] = max(applied.get(str(partition), -1), offset)
    return model


def latest_per_key(records: list[Record]) -> dict[str, Any]:
    model: dict[str, Any] = {}
    for _, _, key, value in records:
        assert key is not None, "a compacted topic holds keyed records only"
        if value is None:
            model.pop(key, None)
        else:
            model[key] = json.loads(value)
    return model


def printed_states(stdout: str) -> dict[str, Any]:
    states = [json.loads(m.group(1)) for m in map(STATE.match, stdout.splitlines()) if m]
    return {state["order_id"]: state for state in states}


def printed_read_model(stdout: str) -> dict[str, Any]:
    rows = [m.groups() for m in map(READ_MODEL.match, stdout.splitlines()) if m]
    return {customer: json.loads(value) for customer, value in rows}


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        tps = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=15)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in tps}


def end_offsets(records: list[Record], partitions: int) -> dict[int, int]:
    ends = dict.fromkeys(range(partitions), 0)
    for partition, offset, _, _ in records:
        ends[partition] = max(ends[partition], offset + 1)
    return ends


def test_event_sourcing_example_rebuilds_every_order_from_its_events(
    broker: BrokerProcess,
) -> None:
    bootstrap, topic = broker.bootstrap, unique("order-events")
    common = ["--bootstrap", bootstrap, "--topic", topic]
    first = run_python("event_sourcing.py", *common, "--orders", "12")
    assert "replayed 0 events: 0 orders exist, 0 were created" in first.stdout
    assert "the rebuilt state equals the state the writer kept" in first.stdout
    events = events_of(bootstrap, topic)
    assert printed_states(first.stdout) == fold_orders(events)
    assert sorted(printed_states(first.stdout)) == [f"order-{i:04d}" for i in range(12)]
    # Every order's events sit in one partition, creation first; every fate occurs.
    partitions: dict[str, set[int]] = {}
    for partition, _, key, _ in events:
        partitions.setdefault(str(key), set()).add(partition)
    assert all(len(p) == 1 for p in partitions.values())
    assert {s["status"] for s in printed_states(first.stdout).values()} == {
        "open", "paid", "shipped", "cancelled"
    }  # fmt: skip

    # A second run replays the twelve, numbers the new orders after them, rebuilds all.
    second = run_python("event_sourcing.py", *common, "--orders", "3")
    assert f"replayed {len(events)} events: 12 orders exist, 12 were created" in second.stdout
    states = printed_states(second.stdout)
    assert sorted(states) == [f"order-{i:04d}" for i in range(15)]
    assert states == fold_orders(events_of(bootstrap, topic))
    assert {k: states[k] for k in printed_states(first.stdout)} == printed_states(first.stdout)


def test_event_sourcing_example_skips_an_event_that_does_not_apply(
    broker: BrokerProcess,
) -> None:
    bootstrap, topic = broker.bootstrap, unique("order-events")
    common = ["--bootstrap", bootstrap, "--topic", topic]
    before = printed_states(run_python("event_sourcing.py", *common, "--orders", "5").stdout)
    assert before["order-0002"]["status"] == "cancelled"
    # A buggy writer ships a cancelled order.
    producer = Producer({"bootstrap.servers": bootstrap})
    bad = {"type": "shipped", "order_id": "order-0002", "carrier": "post"}
    producer.produce(topic, key="order-0002", value=json.dumps(bad))
    assert producer.flush(15) == 0

    replay = run_python("event_sourcing.py", *common, "--orders", "0")
    skipped = [m.groups() for m in map(SKIPPED.match, replay.stdout.splitlines()) if m]
    # Reported by both replays of the run, at the offset where it sits.
    records = read_topic(bootstrap, topic)
    partition, offset = next((p, o) for p, o, _, v in records if json.loads(v or b"") == bad)
    assert (
        skipped
        == [(str(partition), str(offset), "shipped", "order-0002 is cancelled, cannot be shipped")]
        * 2
    )
    assert printed_states(replay.stdout) == before
    assert "the rebuilt state equals the state the writer kept" in replay.stdout


@dataclass
class CqrsRun:
    """What the CQRS scenario left behind, for the tests that judge it."""

    events_topic: str
    read_model_topic: str
    group: str
    printed: dict[str, Any]
    stdout: str


@pytest.fixture(scope="module")
def cqrs_run(broker: BrokerProcess) -> CqrsRun:
    """Events of 10 orders; the projector stops after 15 events; a restart resumes from the
    committed offsets; more events; a projector crashes between writing the read model and
    committing, and the restart must not count the events it sees again twice; last,
    customer-1 is forgotten."""
    bootstrap = broker.bootstrap
    events, read_model, group = unique("order-events"), unique("customer-orders"), unique("proj")
    orders = ["--bootstrap", bootstrap, "--topic", events]
    cqrs = [
        "--bootstrap", bootstrap, "--events-topic", events, "--read-model-topic", read_model,
        "--group", group, "--segment-bytes", "1024", "--session-timeout-ms", "6000",
    ]  # fmt: skip
    run_python("event_sourcing.py", *orders, "--orders", "10")

    stopped = run_python("cqrs_read_model.py", *cqrs, "--max-events", "15")
    assert f"created compacted topic {read_model!r} (1024-byte segments)" in stopped.stdout
    assert "stopping after 15 events (--max-events)" in stopped.stdout
    committed = {p: o for p, o in committed_offsets(bootstrap, group, events).items() if o >= 0}
    assert sum(committed.values()) == 15

    # The restart resumes from those offsets and projects the rest, each event once.
    resumed = run_python("cqrs_read_model.py", *cqrs)
    assert f"committed offsets {dict(sorted(committed.items()))}" in resumed.stdout
    total = len(read_topic(bootstrap, events))
    assert f"projected {total - 15} events;" in resumed.stdout
    assert printed_read_model(resumed.stdout) == fold_customers(events_of(bootstrap, events))

    # One more item for an order whose creation is projected and committed, then five new
    # orders. A crash after writing the read model but before committing makes the restart
    # see those events again: the new orders start over from their creation anyway, but the
    # item would be counted twice if the projector did not recognise it ("applied").
    late_item = {"type": "item_added", "order_id": "order-0004", "sku": "sku-99",
                 "quantity": 1, "price_cents": 100}  # fmt: skip
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(events, key="order-0004", value=json.dumps(late_item))
    assert producer.flush(15) == 0
    run_python("event_sourcing.py", *orders, "--orders", "5")
    at_end = committed_offsets(bootstrap, group, events)
    new_events = len(read_topic(bootstrap, events)) - sum(at_end.values())
    crashed = run_python(
        "cqrs_read_model.py", *cqrs, "--crash-after", str(new_events), returncode=3
    )
    assert "before committing their offsets" in crashed.stdout
    assert "wrote customer-0" in crashed.stdout  # order-0004's customer, with the item
    assert committed_offsets(bootstrap, group, events) == at_end
    recovered = run_python("cqrs_read_model.py", *cqrs)
    assert f"committed offsets {dict(sorted(at_end.items()))}" in recovered.stdout
    assert f"projected {new_events} events;" in recovered.stdout
    model = printed_read_model(recovered.stdout)
    assert model == fold_customers(events_of(bootstrap, events))
    assert model["customer-0"]["orders"]["order-0004"]["total_cents"] == 998 + 100

    final = run_python("cqrs_read_model.py", *cqrs, "--forget", "customer-1")
    assert "appended forgotten events for customer-1: 4 orders" in final.stdout
    assert "tombstoned customer-1" in final.stdout
    return CqrsRun(events, read_model, group, printed_read_model(final.stdout), final.stdout)


def test_cqrs_projection_matches_the_events(broker: BrokerProcess, cqrs_run: CqrsRun) -> None:
    events = events_of(broker.bootstrap, cqrs_run.events_topic)
    assert cqrs_run.printed == fold_customers(events)
    assert sorted(cqrs_run.printed) == ["customer-0", "customer-2", "customer-3"]
    # The group's committed offsets are the end of the event topic.
    records = read_topic(broker.bootstrap, cqrs_run.events_topic)
    assert committed_offsets(broker.bootstrap, cqrs_run.group, cqrs_run.events_topic) == (
        end_offsets(records, 3)
    )


def test_cqrs_compacted_topic_yields_the_printed_read_model(
    broker: BrokerProcess, cqrs_run: CqrsRun
) -> None:
    records = read_topic(broker.bootstrap, cqrs_run.read_model_topic)
    assert latest_per_key(records) == cqrs_run.printed
    # customer-1 had records; its last one is the tombstone that hides them.
    assert [v for _, _, k, v in records if k == "customer-1"][-1] is None
    # The cleaner may have compacted the topic since the example read it (the ratio is low):
    # fewer records now, never more.
    printed_count = re.search(r"query side: read (\d+) records", cqrs_run.stdout)
    assert printed_count is not None and len(records) <= int(printed_count.group(1))


def cleaner_status(broker: BrokerProcess, topic: str) -> list[dict[str, Any]] | None:
    """The cleaner's per-partition status, or None when this broker has no such endpoint."""
    try:
        with urllib.request.urlopen(f"{broker.http_url}/v1/topics/{topic}/cleaner", timeout=5) as r:
            status: list[dict[str, Any]] = json.load(r)
            return status
    except urllib.error.HTTPError as exc:
        if exc.code == 404:  # the topic exists: the route does not
            return None
        raise
    except ConnectionError:
        return None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionError):
            return None
        raise


def request_clean(broker: BrokerProcess, topic: str) -> int:
    request = urllib.request.Request(
        f"{broker.http_url}/v1/topics/{topic}/compact", data=b"", method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(json.load(response)["queued"])


def test_cqrs_read_model_is_unchanged_by_a_clean(broker: BrokerProcess, cqrs_run: CqrsRun) -> None:
    topic = cqrs_run.read_model_topic
    if cleaner_status(broker, topic) is None:
        pytest.skip(f"the broker has no cleaner status endpoint ({broker.http_url}/v1/...) yet")
    before = read_topic(broker.bootstrap, topic)
    # The cleaner may already have cleaned on its own (min.cleanable.dirty.ratio=0.1); a
    # requested clean ignores the ratio and takes whatever is dirty now.
    assert request_clean(broker, topic) == 1
    deadline = time.monotonic() + CLEAN_TIMEOUT_S
    while True:
        (status,) = cleaner_status(broker, topic) or [{}]
        if status.get("last_clean_time_ms", -1) >= 0 and not status.get("cleaning"):
            break
        assert status.get("uncleanable_reason") is None, status
        assert time.monotonic() < deadline, f"no clean of {topic} finished: {status}"
        time.sleep(0.2)

    after = read_topic(broker.bootstrap, topic)
    # Offsets are dense as written, so gaps show what the clean dropped: superseded records
    # (a 1 KiB segment holds a few, every customer was written several times) ...
    offsets = [o for _, o, _, _ in after]
    assert offsets == sorted(set(offsets))
    assert len(after) < offsets[-1] + 1
    assert set(after) <= set(before)
    # ... but what the topic means did not change, for this reader or the example's query.
    assert latest_per_key(after) == cqrs_run.printed
    again = run_python(
        "cqrs_read_model.py", "--bootstrap", broker.bootstrap, "--events-topic",
        cqrs_run.events_topic, "--read-model-topic", topic, "--group", cqrs_run.group,
    )  # fmt: skip
    assert "projected 0 events;" in again.stdout
    assert f"query side: read {len(after)} records" in again.stdout
    assert printed_read_model(again.stdout) == cqrs_run.printed
