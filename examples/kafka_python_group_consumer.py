"""Consume JSON events with kafka-python as a member of the consumer group ``analytics-group``.

Run: python examples/kafka_python_group_consumer.py [--bootstrap HOST:PORT] [--topic NAME]
     [--group ID] [--manual-commit] [--max-messages N] [--timeout-ms MS]

Unlike ``kafka_python_consumer.py`` this consumer joins a group: the broker's group
coordinator shares the topic's partitions among all running copies of this program, and the
group's committed offsets remember how far it got. ``auto_offset_reset='earliest'`` only
applies when the group has no committed offset yet, so the first run reads from the start and
every later run resumes where the previous one stopped.

Two ways to commit:

- default, ``enable_auto_commit=True``: kafka-python commits the positions of what the loop has
  consumed every ``auto_commit_interval_ms`` and once more in ``close()``. Cheap, but a crash
  between two commits means the last few messages are read again by the next run.
- ``--manual-commit``, ``enable_auto_commit=False``: ``consumer.commit()`` after each message,
  a synchronous round trip that makes each processed message's progress durable before the
  next one is touched.

``consumer_timeout_ms`` ends the loop once no message has arrived for that long, and
``--max-messages`` after that many, which keeps the example bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from kafka import KafkaConsumer

# kafka-python 3 prefers kafka.serializer.Deserializer objects but still takes the plain functions
# that tutorials (and kafka-python 2.x) use; keep the example portable and quiet.
warnings.filterwarnings("ignore", "key_deserializer|value_deserializer", DeprecationWarning)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("BOOTSTRAP_SERVERS", "localhost:9092"),
        help="broker HOST:PORT (default: $BOOTSTRAP_SERVERS or localhost:9092)",
    )
    parser.add_argument("--topic", default="user-events")
    parser.add_argument("--group", default="analytics-group", help="consumer group id")
    parser.add_argument(
        "--manual-commit",
        action="store_true",
        help="disable auto-commit and commit synchronously after each message",
    )
    parser.add_argument("--max-messages", type=int, default=1000, help="stop after this many")
    parser.add_argument(
        "--timeout-ms", type=int, default=10000, help="stop after this long without a message"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap.split(","),
        group_id=args.group,
        value_deserializer=lambda value: json.loads(value.decode("utf-8")),
        key_deserializer=lambda key: key.decode("utf-8") if key is not None else None,
        auto_offset_reset="earliest",
        enable_auto_commit=not args.manual_commit,
        auto_commit_interval_ms=5000,
        consumer_timeout_ms=args.timeout_ms,
    )
    mode = "manual commit" if args.manual_commit else "auto-commit every 5 s"
    print(f"consuming {args.topic!r} in group {args.group!r} ({mode}) via {args.bootstrap}")
    count = 0
    for message in consumer:
        print(
            f"partition={message.partition} offset={message.offset} "
            f"key={message.key} value={json.dumps(message.value)}"
        )
        if args.manual_commit:
            # Commits the position after this message for every partition we own.
            consumer.commit()
        count += 1
        if count >= args.max_messages:
            break
    # With auto-commit on, close() commits what the loop consumed since the last auto-commit,
    # so the next run of the group starts right after the last message printed here.
    consumer.close()
    print(f"consumed {count} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
