"""Process orders with confluent-kafka in the group ``order-processor``, committing by hand.

Run: python examples/confluent_group_consumer.py [--bootstrap HOST:PORT] [--topic NAME]
     [--group ID] [--max-messages N] [--idle-s S] [--timeout-s S]

``subscribe`` hands partition assignment to the group coordinator: start several copies and
they split the topic's partitions between them. Auto-commit is off, so the loop commits
synchronously (``commit(asynchronous=False)``) after processing each order; the committed
offset never runs ahead of the work done, and a restarted consumer continues right after the
last processed order. ``session.timeout.ms`` is how long the coordinator waits for heartbeats
before declaring a silent member dead; ``max.poll.interval.ms`` how long the application may
go between two ``poll`` calls before librdkafka itself leaves the group.

The run ends after ``--max-messages``, or once no message has arrived for ``--idle-s`` since
partitions were assigned, or after ``--timeout-s`` in all.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("BOOTSTRAP_SERVERS", "localhost:9092"),
        help="broker HOST:PORT (default: $BOOTSTRAP_SERVERS or localhost:9092)",
    )
    parser.add_argument("--topic", default="orders")
    parser.add_argument("--group", default="order-processor", help="consumer group id")
    parser.add_argument("--max-messages", type=int, default=1000, help="stop after this many")
    parser.add_argument(
        "--idle-s", type=float, default=5.0, help="stop after this long without a message"
    )
    parser.add_argument("--timeout-s", type=float, default=60.0, help="stop after this long")
    return parser.parse_args()


def process(value: bytes | None) -> str:
    """Stand-in for real work: describe the order."""
    order = json.loads(value) if value is not None else None
    return json.dumps(order)


def main() -> int:
    args = parse_args()
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "max.poll.interval.ms": 300000,
            "session.timeout.ms": 45000,
        }
    )
    # The idle clock starts at the first assignment: joining the group takes a moment.
    assigned_at: float | None = None

    def on_assign(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
        nonlocal assigned_at
        assigned_at = time.monotonic()
        print(f"assigned partitions {sorted(tp.partition for tp in partitions)}")

    consumer.subscribe([args.topic], on_assign=on_assign)
    print(f"consuming {args.topic!r} in group {args.group!r} via {args.bootstrap}")

    count = 0
    started = time.monotonic()
    last_message_at: float | None = None
    while count < args.max_messages:
        now = time.monotonic()
        idle_since = last_message_at or assigned_at
        if idle_since is not None and now - idle_since >= args.idle_s:
            break
        if now - started >= args.timeout_s:
            print(f"timed out after {args.timeout_s}s")
            break
        msg = consumer.poll(timeout=1.0)
        if msg is None:
            continue
        error = msg.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                continue  # only reported with enable.partition.eof; not an error
            print(f"error: {error}")
            consumer.close()
            return 1
        last_message_at = time.monotonic()
        key = msg.key()
        key_text = key.decode() if key is not None else None
        print(
            f"partition={msg.partition()} offset={msg.offset()} key={key_text} "
            f"value={process(msg.value())}"
        )
        # Processing is done: make the new position durable before the next order.
        consumer.commit(asynchronous=False)
        count += 1
    # close() leaves the group at once, so the partitions move to the other members now
    # rather than after the session timeout.
    consumer.close()
    print(f"consumed {count} messages")
    if assigned_at is None:
        print("never received a partition assignment")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
