"""Process orders in batches with confluent-kafka, retrying failures and dead-lettering the rest.

Run: python examples/confluent_batch_consumer.py [--bootstrap HOST:PORT] [--topic NAME]
     [--dlq-topic NAME] [--group ID] [--max-messages N] [--idle-s S] [--timeout-s S]

Each round ``consume(num_messages=100)`` fetches up to 100 messages; every message is
processed with up to 3 attempts, and one that still fails is produced to the dead-letter
topic (``orders-dlq``) with headers saying where it came from and why it failed. Only once
the whole batch is either processed or safely in the dead-letter topic (``flush()``) does
the consumer ``commit()``: a crash before that re-reads the batch rather than losing it, so
processing should be idempotent.

"Processing" here fails on purpose so the retry and dead-letter paths run: an order whose
JSON carries ``"fail_attempts": N`` fails its first N attempts (N >= 3 ends in the
dead-letter topic), and a value that is not JSON fails every attempt.

The run ends after ``--max-messages`` (the last batch asks for no more than that), once no
message has arrived for ``--idle-s`` since partitions were assigned, or after ``--timeout-s``
in all.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

MAX_ATTEMPTS = 3


class ProcessingError(Exception):
    """Processing an order failed; the attempt may be retried."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("BOOTSTRAP_SERVERS", "localhost:9092"),
        help="broker HOST:PORT (default: $BOOTSTRAP_SERVERS or localhost:9092)",
    )
    parser.add_argument("--topic", default="orders")
    parser.add_argument("--dlq-topic", default="orders-dlq", help="dead-letter topic")
    parser.add_argument("--group", default="order-batch-processor", help="consumer group id")
    parser.add_argument("--max-messages", type=int, default=1000, help="stop after this many")
    parser.add_argument(
        "--idle-s", type=float, default=5.0, help="stop after this long without a message"
    )
    parser.add_argument("--timeout-s", type=float, default=60.0, help="stop after this long")
    return parser.parse_args()


def process(msg: Message, attempt: int) -> str:
    """The business logic: validate the order; fail as the order itself asks (see above)."""
    raw = msg.value()
    try:
        order = json.loads(raw) if raw is not None else None
    except ValueError as exc:
        raise ProcessingError(f"not JSON: {exc}") from exc
    if not isinstance(order, dict):
        raise ProcessingError("not a JSON object")
    if attempt <= int(order.get("fail_attempts", 0)):
        raise ProcessingError(f"simulated failure on attempt {attempt}")
    return json.dumps(order)


def process_with_retries(msg: Message) -> tuple[str | None, str | None]:
    """(result, None) on success, (None, last error) after MAX_ATTEMPTS failed attempts."""
    last_error = ""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return process(msg, attempt), None
        except ProcessingError as exc:
            last_error = str(exc)
            print(
                f"attempt {attempt} failed partition={msg.partition()} offset={msg.offset()}: "
                f"{last_error}"
            )
            # A real service would back off here before retrying.
    return None, last_error


def main() -> int:
    args = parse_args()
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    dlq = Producer({"bootstrap.servers": args.bootstrap, "acks": "all"})
    dlq_failures = 0

    def on_dlq_delivery(err: KafkaError | None, msg: Message) -> None:
        nonlocal dlq_failures
        if err is not None:
            dlq_failures += 1
            print(f"dead-letter delivery failed: {err}")

    assigned_at: float | None = None

    def on_assign(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
        nonlocal assigned_at
        assigned_at = time.monotonic()
        print(f"assigned partitions {sorted(tp.partition for tp in partitions)}")

    consumer.subscribe([args.topic], on_assign=on_assign)
    print(f"consuming {args.topic!r} in batches in group {args.group!r} via {args.bootstrap}")

    processed = dead_lettered = 0
    started = time.monotonic()
    last_message_at: float | None = None
    while processed + dead_lettered < args.max_messages:
        now = time.monotonic()
        idle_since = last_message_at or assigned_at
        if idle_since is not None and now - idle_since >= args.idle_s:
            break
        if now - started >= args.timeout_s:
            print(f"timed out after {args.timeout_s}s")
            break
        wanted = min(100, args.max_messages - processed - dead_lettered)
        batch = consumer.consume(num_messages=wanted, timeout=1.0)
        records = [m for m in batch if m.error() is None]
        for msg in batch:
            error = msg.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                print(f"error: {error}")
                consumer.close()
                return 1
        if not records:
            continue
        last_message_at = time.monotonic()
        print(f"batch of {len(records)} messages")
        for msg in records:
            result, error_text = process_with_retries(msg)
            if result is not None:
                processed += 1
                print(f"processed partition={msg.partition()} offset={msg.offset()} {result}")
                continue
            dead_lettered += 1
            print(f"dead-lettered partition={msg.partition()} offset={msg.offset()}")
            dlq.produce(
                args.dlq_topic,
                key=msg.key(),
                value=msg.value(),
                headers=[
                    ("dlq.error", (error_text or "").encode()),
                    ("dlq.source.topic", args.topic.encode()),
                    ("dlq.source.partition", str(msg.partition()).encode()),
                    ("dlq.source.offset", str(msg.offset()).encode()),
                ],
                callback=on_dlq_delivery,
            )
            dlq.poll(0)
        # The batch is only done once its dead letters are stored; then move the group on.
        if dlq.flush(30) > 0 or dlq_failures > 0:
            print("dead-letter topic unavailable; not committing this batch")
            consumer.close()
            return 1
        consumer.commit(asynchronous=False)
        print(f"committed batch of {len(records)}")
    consumer.close()
    print(f"processed {processed} messages, dead-lettered {dead_lettered} to {args.dlq_topic!r}")
    if assigned_at is None:
        print("never received a partition assignment")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
