"""CQRS with confluent-kafka: a read model of the order events kept in a compacted topic.

Run: python examples/cqrs_read_model.py [--bootstrap HOST:PORT] [--events-topic NAME]
     [--read-model-topic NAME] [--group ID] [--forget CUSTOMER] [--max-events N]
     [--crash-after N] [--segment-bytes N] [--session-timeout-ms MS] [--timeout-s S]

Write some order events first: ``python examples/event_sourcing.py --orders 20``.

The write side appends events to ``order-events`` (keyed by order id). The read side wants
something else: per customer, their orders and what they spent. A *projector* consumes the
events in the consumer group ``customer-projector`` and keeps one record per customer in
``customer-orders``, a topic created with ``cleanup.policy=compact``: the broker's log cleaner
keeps only the latest record of each key, so the topic stays as big as the read model, not as
the history, and reading it to its end yields exactly the read model. The *query side*
(:func:`read_model`) does just that; any number of services can rebuild the view this way.

``--forget CUSTOMER`` deletes a customer: it appends a ``forgotten`` event for each of their
orders, and when a customer has no orders left the projector writes a *tombstone* (the
customer's key with a null value): readers drop the key, the cleaner drops the older records
of the key, and after ``delete.retention.ms`` the tombstone itself.

**Restarts.** The projector commits the event offsets it has processed after the read model
records they produced are written (``flush``), so a restarted projector resumes from its
committed offsets. A crash between the two (``--crash-after N`` simulates one) makes it see
some events again; each customer's record carries ``applied``, the offset of the last event
applied to it per event partition, so a replayed event is recognised and skipped. On start
the projector loads its state — the read model — from the compacted topic itself.

Customers' events come from several event partitions (events are keyed by order), so this
projector must be the only one: two instances would overwrite each other's records. To scale
out, key the events by customer, so that each instance owns the customers of its partitions.

``--max-events N`` stops the projector after N events (to show a resume); ``--segment-bytes``
sets the compacted topic's segment size when the example creates it (small segments let the
cleaner work on little data: it never touches the active segment).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

# One customer's record: {"customer_id", "orders": {order id: {"status", "total_cents"}},
# "spent_cents" (paid or shipped orders), "applied": {event partition: offset}}.
Summary = dict[str, Any]
CRASH_EXIT_CODE = 3


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("BOOTSTRAP_SERVERS", "localhost:9092"),
        help="broker HOST:PORT (default: $BOOTSTRAP_SERVERS or localhost:9092)",
    )
    parser.add_argument("--events-topic", default="order-events")
    parser.add_argument("--read-model-topic", default="customer-orders")
    parser.add_argument("--group", default="customer-projector", help="projector's group id")
    parser.add_argument("--forget", action="append", default=[], help="delete this customer")
    parser.add_argument("--max-events", type=int, default=None, help="stop after N events")
    parser.add_argument("--crash-after", type=int, default=None, help="die before a commit")
    parser.add_argument("--segment-bytes", type=int, default=16384, help="of a new read model")
    parser.add_argument("--session-timeout-ms", type=int, default=10000)
    parser.add_argument("--timeout-s", type=float, default=60.0, help="bound on the run")
    return parser.parse_args()


def ensure_compacted_topic(bootstrap: str, topic: str, segment_bytes: int) -> None:
    config = {
        "cleanup.policy": "compact",  # keep the latest record per key: a table, not a history
        "segment.bytes": str(segment_bytes),  # only closed segments are ever cleaned
        "min.cleanable.dirty.ratio": "0.1",  # clean once 10% of the log is superseded
    }
    admin = AdminClient({"bootstrap.servers": bootstrap})
    future = admin.create_topics([NewTopic(topic, 1, 1, config=config)])[topic]
    try:
        future.result(timeout=15)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
        return
    print(f"created compacted topic {topic!r} ({segment_bytes}-byte segments)")


def read_model(bootstrap: str, topic: str, timeout_s: float) -> tuple[dict[str, Summary], int]:
    """The query side: read the compacted topic to its end; the latest value of each key wins
    and a tombstone removes its key. Returns (read model, records read)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "customer-orders-reader",  # a label only: assign() joins no group
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    model: dict[str, Summary] = {}
    at_end: set[int] = set()
    records = 0
    deadline = time.monotonic() + timeout_s
    try:
        while len(at_end) < len(partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic!r} not read to its end in {timeout_s}s")
            msg = consumer.poll(timeout=1.0)
            if msg is None:
                continue
            error, partition = msg.error(), msg.partition()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"reading the read model failed: {error}")
                at_end.add(partition)
                continue
            at_end.discard(partition)
            records += 1
            customer_id, value = (msg.key() or b"").decode(), msg.value()
            if value is None:
                model.pop(customer_id, None)  # tombstone
            else:
                model[customer_id] = json.loads(value)
    finally:
        consumer.close()
    return model, records


def project(model: dict[str, Summary], owners: dict[str, str], msg: Message) -> str | None:
    """Apply one event to the read model; returns the customer whose record changed, if any.

    ``owners`` maps order id -> customer id (only ``created`` names the customer). An event at
    or below the customer's ``applied`` offset for its partition was applied before a crash
    and is skipped, so replaying events after a restart cannot count anything twice."""
    event = json.loads(msg.value() or b"null")
    kind, order_id = event["type"], event["order_id"]
    customer_id = event["customer_id"] if kind == "created" else owners.get(order_id)
    if customer_id is None:
        return None  # an order this model does not know (e.g. forgotten already)
    summary = model.setdefault(
        customer_id, {"customer_id": customer_id, "orders": {}, "spent_cents": 0, "applied": {}}
    )
    partition = str(msg.partition())
    if msg.offset() <= summary["applied"].get(partition, -1):
        return None  # applied before the restart
    summary["applied"][partition] = msg.offset()
    if kind == "forgotten":
        del summary["orders"][order_id], owners[order_id]
        if not summary["orders"]:
            del model[customer_id]  # nothing left of the customer: tombstone the record
            return customer_id
    elif kind == "created":
        summary["orders"][order_id] = {"status": "open", "total_cents": 0}
        owners[order_id] = customer_id
    elif kind == "item_added":
        summary["orders"][order_id]["total_cents"] += event["quantity"] * event["price_cents"]
    else:  # paid, shipped, cancelled
        summary["orders"][order_id]["status"] = kind
    summary["spent_cents"] = sum(
        o["total_cents"] for o in summary["orders"].values() if o["status"] in ("paid", "shipped")
    )
    return customer_id


def run_projector(args: argparse.Namespace) -> int:
    """Consume events from the committed offsets, write changed records, then commit."""
    model, _ = read_model(args.bootstrap, args.read_model_topic, args.timeout_s)
    owners = {o: c for c, summary in model.items() for o in summary["orders"]}
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",  # a new projector starts with the first event
            "enable.auto.commit": False,  # we commit after the read model is written
            "enable.partition.eof": True,
            "session.timeout.ms": args.session_timeout_ms,
        }
    )
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True})
    topic = args.events_topic
    partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
    resume = {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
    print(f"projector starts with {len(model)} customers; committed offsets {resume}")

    assigned: set[int] = set()
    at_end: set[int] = set()
    consumer.subscribe(
        [topic], on_assign=lambda _c, tps: assigned.update(tp.partition for tp in tps)
    )
    processed = 0
    deadline = time.monotonic() + args.timeout_s
    while not assigned or not at_end >= assigned:
        if time.monotonic() > deadline:
            print(f"timed out after {args.timeout_s}s")
            return 1
        positions: dict[int, int] = {}
        changed: set[str] = set()
        for msg in consumer.consume(num_messages=50, timeout=1.0):
            error, partition = msg.error(), msg.partition()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
                at_end.add(partition)
                continue
            if processed == args.max_events:
                break
            at_end.discard(partition)
            if (customer_id := project(model, owners, msg)) is not None:
                changed.add(customer_id)
            positions[partition] = msg.offset() + 1
            processed += 1
        # The records first, durably; only then the offsets. A crash in between replays events.
        for customer_id in sorted(changed):
            value = json.dumps(model[customer_id]) if customer_id in model else None
            producer.produce(args.read_model_topic, key=customer_id, value=value)
            print(f"{'wrote' if value else 'tombstoned'} {customer_id}")
        if producer.flush(30) != 0:
            print("read model records were not delivered")
            return 1
        if args.crash_after is not None and processed >= args.crash_after:
            print(f"crashing after {processed} events, before committing their offsets")
            os._exit(CRASH_EXIT_CODE)  # no close(): the group sees the member vanish
        if positions:
            offsets = [TopicPartition(topic, p, o) for p, o in positions.items()]
            consumer.commit(offsets=offsets, asynchronous=False)
        if processed == args.max_events:
            print(f"stopping after {processed} events (--max-events)")
            break
    consumer.close()
    print(f"projected {processed} events; committed offsets are at the end of what was read")
    return 0


def forget(args: argparse.Namespace) -> None:
    """The command side of "delete this customer": a ``forgotten`` event for each of their
    orders, keyed by the order id like the order's other events, so that in its partition it
    follows all of them (a single event keyed by customer would land in another partition and
    could be read before them). The read model says which orders the customer has; orders it
    has not seen yet are missed, which a real service would handle by forgetting them later."""
    model, _ = read_model(args.bootstrap, args.read_model_topic, args.timeout_s)
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True})
    for customer_id in args.forget:
        orders = sorted(model.get(customer_id, {}).get("orders", {}))
        for order_id in orders:
            event = {"type": "forgotten", "order_id": order_id, "reason": "customer deleted"}
            producer.produce(args.events_topic, key=order_id, value=json.dumps(event))
        print(f"appended forgotten events for {customer_id}: {len(orders)} orders")
    if producer.flush(30) != 0:
        raise RuntimeError("forgotten events were not delivered")


def main() -> int:
    args = parse_args()
    ensure_compacted_topic(args.bootstrap, args.read_model_topic, args.segment_bytes)
    if args.forget:
        forget(args)
    if (code := run_projector(args)) != 0:
        return code
    model, records = read_model(args.bootstrap, args.read_model_topic, args.timeout_s)
    print(f"query side: read {records} records of {args.read_model_topic!r} to its end")
    for customer_id in sorted(model):
        print(f"read-model {customer_id} {json.dumps(model[customer_id], sort_keys=True)}")
    print(f"read model holds {len(model)} customers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
