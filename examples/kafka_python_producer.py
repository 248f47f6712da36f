"""Produce JSON user events with kafka-python, the way most Kafka tutorials do.

Run: python examples/kafka_python_producer.py [--bootstrap HOST:PORT] [--topic NAME] [--count N]

Every ``send`` returns a future; waiting on it with ``get(timeout=10)`` tells us which
partition the event landed in and at which offset. The producer is configured for safety
(``acks='all'`` plus idempotence, so a retried batch is never written twice) and batches a
little (``linger_ms=10``) so gzip has something to compress.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from kafka import KafkaProducer

# kafka-python 3 prefers kafka.serializer.Serializer objects but still takes the plain functions
# that tutorials (and kafka-python 2.x) use; keep the example portable and quiet.
warnings.filterwarnings("ignore", "key_serializer|value_serializer", DeprecationWarning)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("BOOTSTRAP_SERVERS", "localhost:9092"),
        help="broker HOST:PORT (default: $BOOTSTRAP_SERVERS or localhost:9092)",
    )
    parser.add_argument("--topic", default="user-events")
    parser.add_argument("--count", type=int, default=10, help="events to send")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap.split(","),
        # Values are dicts on our side and UTF-8 JSON on the wire; keys are plain strings.
        value_serializer=lambda value: json.dumps(value).encode("utf-8"),
        key_serializer=lambda key: key.encode("utf-8") if key is not None else None,
        acks="all",
        retries=3,
        linger_ms=10,
        compression_type="gzip",
        enable_idempotence=True,
    )
    print(f"producing {args.count} events to {args.topic!r} via {args.bootstrap}")
    actions = ["login", "view", "purchase", "logout"]
    for i in range(args.count):
        # Keying by user keeps each user's events in one partition, hence in order.
        user_id = f"user-{i % 3}"
        event = {"user_id": user_id, "action": actions[i % len(actions)], "seq": i}
        future = producer.send(
            args.topic,
            key=user_id,
            value=event,
            headers=[("source", b"kafka-python-example")],
        )
        metadata = future.get(timeout=10)
        print(
            f"sent partition={metadata.partition} offset={metadata.offset} "
            f"key={user_id} value={json.dumps(event)}"
        )
    producer.flush()
    producer.close()
    print(f"produced {args.count} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
