"""Produce 100 orders with confluent-kafka (librdkafka), reporting each delivery.

Run: python examples/confluent_producer.py [--bootstrap HOST:PORT] [--topic NAME] [--count N]

librdkafka sends in the background: ``produce`` only queues a message, and the delivery
callback runs later, from ``poll()`` or ``flush()``, once the broker has acknowledged (or
finally refused) it. Calling ``poll(0)`` after each ``produce`` serves callbacks as we go;
``flush()`` waits for the rest. The callback counts failures so the exit code tells the truth.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from confluent_kafka import KafkaError, Message, Producer


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("BOOTSTRAP_SERVERS", "localhost:9092"),
        help="broker HOST:PORT (default: $BOOTSTRAP_SERVERS or localhost:9092)",
    )
    parser.add_argument("--topic", default="orders")
    parser.add_argument("--count", type=int, default=100, help="orders to produce")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "client.id": "order-service",
            "acks": "all",
            "retries": 3,
            "retry.backoff.ms": 1000,
            "enable.idempotence": True,
            "compression.type": "snappy",
            "batch.size": 16384,
            "linger.ms": 10,
        }
    )
    failures = 0

    def delivery_callback(err: KafkaError | None, msg: Message) -> None:
        nonlocal failures
        if err is not None:
            failures += 1
            print(f"delivery failed: {err}")
            return
        key = msg.key()
        key_text = key.decode() if key is not None else None
        print(
            f"delivered topic={msg.topic()} partition={msg.partition()} offset={msg.offset()} "
            f"key={key_text}"
        )

    print(f"producing {args.count} orders to {args.topic!r} via {args.bootstrap}")
    for i in range(args.count):
        customer_id = f"customer-{i % 7}"
        order = {"order_id": f"order-{i:04d}", "customer_id": customer_id, "amount": 10 + i * 1.25}
        producer.produce(
            args.topic,
            # One customer's orders share a key, hence a partition, hence an order.
            key=customer_id.encode(),
            value=json.dumps(order).encode(),
            callback=delivery_callback,
            headers={"event_type": "order_created", "source": "order-service"},
        )
        producer.poll(0)
    remaining = producer.flush(30)
    if remaining:
        print(f"{remaining} orders still undelivered after 30s")
    print(f"produced {args.count - failures - remaining} of {args.count} orders")
    return 0 if failures == 0 and remaining == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
