"""Event sourcing with confluent-kafka: orders stored as events, their state rebuilt by replay.

Run: python examples/event_sourcing.py [--bootstrap HOST:PORT] [--topic NAME]
     [--partitions N] [--orders N] [--timeout-s S]

Nothing stores "the current order". The topic ``order-events`` holds what happened to each
order — ``created``, ``item_added``, ``paid``, ``shipped``, ``cancelled`` — keyed by the order
id, so every event of one order lands in one partition and keeps its order there. The current
state of every order is a fold of :func:`apply` over those events from the beginning of the
topic; nothing else is needed to rebuild it, on any machine, at any time.

A run (1) replays the topic to learn the orders that exist, (2) writes the events of
``--orders`` new orders, checking each against the state first (a shipped order cannot be
cancelled: the writer validates, the log only records facts), (3) replays the whole topic
again from scratch and prints every order's state, which must equal what the writer kept in
memory. ``--orders 0`` only replays. A ``forgotten`` event (``cqrs_read_model.py --forget``
writes them when a customer is deleted) erases an order from the state altogether. An event
the fold cannot apply (written by a buggy writer) is reported and skipped: the log is
history, and the replay must still finish.

The producer is idempotent, so a retried send can neither duplicate an event nor put two events
of one order out of order. The replay ``assign``s itself every partition at the beginning and
joins no group: it commits nothing, because it always starts over.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

Event = dict[str, Any]


class InvalidEvent(Exception):
    """The event does not follow from the order's current state."""


@dataclass
class Order:
    """The state of one order: what every event of it so far adds up to."""

    order_id: str
    customer_id: str
    status: str = "open"  # open -> paid -> shipped; open or paid -> cancelled
    items: dict[str, int] = field(default_factory=dict)  # sku -> quantity
    total_cents: int = 0
    version: int = 1  # events applied; also the order's own event count


def apply(orders: dict[str, Order], event: Event) -> None:
    """Apply one event to the state of all orders, or raise InvalidEvent and change nothing."""
    kind, order_id = event["type"], event["order_id"]
    if kind == "created":
        if order_id in orders:
            raise InvalidEvent(f"{order_id} already exists")
        orders[order_id] = Order(order_id, event["customer_id"])
        return
    order = orders.get(order_id)
    if order is None:
        raise InvalidEvent(f"{order_id} does not exist")
    if kind == "forgotten":
        del orders[order_id]  # erasure (the customer asked to be deleted): no state is left
        return
    if kind == "item_added":
        if order.status != "open":
            raise InvalidEvent(f"{order_id} is {order.status}, cannot add items")
        order.items[event["sku"]] = order.items.get(event["sku"], 0) + event["quantity"]
        order.total_cents += event["quantity"] * event["price_cents"]
    elif kind == "paid":
        if order.status != "open" or event["amount_cents"] != order.total_cents:
            raise InvalidEvent(f"{order_id} is {order.status} with {order.total_cents} cents due")
        order.status = "paid"
    elif kind == "shipped":
        if order.status != "paid":
            raise InvalidEvent(f"{order_id} is {order.status}, cannot be shipped")
        order.status = "shipped"
    elif kind == "cancelled":
        if order.status not in ("open", "paid"):
            raise InvalidEvent(f"{order_id} is {order.status}, cannot be cancelled")
        order.status = "cancelled"
    else:
        raise InvalidEvent(f"unknown event type {kind!r}")
    order.version += 1


def order_script(number: int, customers: int = 4) -> list[Event]:
    """The events of order ``number``: a few items, then a fate that depends on the number."""
    rng = random.Random(number)  # the same order always gets the same items
    order_id = f"order-{number:04d}"
    events: list[Event] = [
        {"type": "created", "order_id": order_id, "customer_id": f"customer-{number % customers}"}
    ]
    total = 0
    for _ in range(rng.randint(1, 3)):
        quantity, price = rng.randint(1, 3), rng.choice([499, 1299, 2500])
        sku = f"sku-{rng.randint(1, 20):02d}"
        events.append(
            {"type": "item_added", "order_id": order_id, "sku": sku, "quantity": quantity,
             "price_cents": price}
        )  # fmt: skip
        total += quantity * price
    fate = ["shipped", "paid", "cancelled", "paid-then-cancelled", "open"][number % 5]
    if fate != "open" and fate != "cancelled":
        events.append({"type": "paid", "order_id": order_id, "amount_cents": total})
    if fate == "shipped":
        events.append({"type": "shipped", "order_id": order_id, "carrier": "post"})
    if "cancelled" in fate:
        events.append({"type": "cancelled", "order_id": order_id, "reason": "customer asked"})
    return events


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("BOOTSTRAP_SERVERS", "localhost:9092"),
        help="broker HOST:PORT (default: $BOOTSTRAP_SERVERS or localhost:9092)",
    )
    parser.add_argument("--topic", default="order-events")
    parser.add_argument("--partitions", type=int, default=3, help="if the topic is created")
    parser.add_argument("--orders", type=int, default=10, help="new orders to write (0: none)")
    parser.add_argument("--timeout-s", type=float, default=30.0, help="bound on each replay")
    return parser.parse_args()


def ensure_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    future = admin.create_topics([NewTopic(topic, partitions, 1)])[topic]
    try:
        future.result(timeout=15)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise
        return
    print(f"created topic {topic!r} with {partitions} partitions")


def replay(bootstrap: str, topic: str, timeout_s: float) -> tuple[dict[str, Order], int, int]:
    """Fold every event of the topic, from its beginning to its current end.

    Returns the orders, the number of events applied and the number of orders ever created
    (more than exist once a customer was deleted: new order numbers continue from there)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "order-replay",  # a label only: assign() joins no group
            "enable.auto.commit": False,
            "enable.partition.eof": True,  # tells us when a partition is read to its end
        }
    )
    partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    orders: dict[str, Order] = {}
    at_end: set[int] = set()
    events = created = 0
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
                    raise RuntimeError(f"replay failed: {error}")
                at_end.add(partition)
                continue
            at_end.discard(partition)
            event = json.loads(msg.value() or b"null")
            try:
                apply(orders, event)
                events += 1
                created += event["type"] == "created"
            except InvalidEvent as err:
                print(f"skipped partition={partition} offset={msg.offset()} {event['type']}: {err}")
    finally:
        consumer.close()
    return orders, events, created


def main() -> int:
    args = parse_args()
    ensure_topic(args.bootstrap, args.topic, args.partitions)
    orders, events, created = replay(args.bootstrap, args.topic, args.timeout_s)
    print(f"replayed {events} events: {len(orders)} orders exist, {created} were created")

    if args.orders > 0:
        producer = Producer(
            {"bootstrap.servers": args.bootstrap, "enable.idempotence": True, "linger.ms": 5}
        )
        first = created  # order numbers continue where the last run stopped
        for number in range(first, first + args.orders):
            for event in order_script(number):
                apply(orders, event)  # validate against the current state before appending
                producer.produce(args.topic, key=event["order_id"], value=json.dumps(event))
                producer.poll(0)
        if producer.flush(30) != 0:
            print("some events were not delivered")
            return 1
        print(f"appended the events of orders {first}-{first + args.orders - 1}")

    # The state is derived data: throw it away and rebuild it from the log alone.
    rebuilt, events, _ = replay(args.bootstrap, args.topic, args.timeout_s)
    for order_id in sorted(rebuilt):
        print(f"state {json.dumps(asdict(rebuilt[order_id]), sort_keys=True)}")
    print(f"rebuilt {len(rebuilt)} orders from {events} events")
    if rebuilt != orders:
        print("the rebuilt state differs from the state the writer kept")
        return 1
    print("the rebuilt state equals the state the writer kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
