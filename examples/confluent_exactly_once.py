"""Consume, transform and produce exactly once with confluent-kafka transactions.

Run: python examples/confluent_exactly_once.py [--bootstrap HOST:PORT] [--input-topic NAME]
     [--output-topic NAME] [--group ID] [--transactional-id ID] [--batch-size N]
     [--max-messages N] [--idle-s S] [--timeout-s S] [--session-timeout-ms MS]
     [--crash-after N]

Reads orders from ``--input-topic`` in the consumer group ``--group``, adds VAT to each and
writes the result to ``--output-topic``. Each batch of up to ``--batch-size`` input messages
is one transaction holding both the output records and the group's new input offsets
(``send_offsets_to_transaction``): they commit together or not at all. So whatever happens,
every input order ends up in the output exactly once as far as ``read_committed`` readers
can tell. If the processor dies mid-batch, its restart (same transactional id) aborts the
open transaction in ``init_transactions()`` and the group resumes from the offsets of the
last committed batch, so the batch is processed again and its first attempt stays invisible.

The consumer reads with ``isolation.level=read_committed`` (so it never processes another
processor's aborted output when topics are chained) and never commits by itself.

``--crash-after N`` simulates a crash for demonstrations and tests: after producing its Nth
output record the process flushes the open transaction's records to the broker and exits
at once (exit code 3) without committing or aborting. The run otherwise ends after
``--max-messages``, after ``--idle-s`` without input since partitions were assigned, or after
``--timeout-s`` in all.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("BOOTSTRAP_SERVERS", "localhost:9092"),
        help="broker HOST:PORT (default: $BOOTSTRAP_SERVERS or localhost:9092)",
    )
    parser.add_argument("--input-topic", default="orders")
    parser.add_argument("--output-topic", default="orders-with-vat")
    parser.add_argument("--group", default="order-enricher", help="consumer group id")
    parser.add_argument("--transactional-id", default="order-enricher-1")
    parser.add_argument("--batch-size", type=int, default=10, help="messages per transaction")
    parser.add_argument("--max-messages", type=int, default=1000, help="stop after this many")
    parser.add_argument("--idle-s", type=float, default=5.0, help="stop when idle this long")
    parser.add_argument("--timeout-s", type=float, default=60.0, help="stop after this long")
    parser.add_argument("--session-timeout-ms", type=int, default=45000)
    parser.add_argument("--crash-after", type=int, default=-1, help="die after N outputs")
    return parser.parse_args()


def transform(msg: Message) -> bytes:
    """The processing step: add VAT, and say which input record this output came from."""
    order = json.loads(msg.value() or b"{}")
    order["amount_with_vat"] = round(float(order.get("amount", 0)) * 1.2, 2)
    order["source"] = f"{msg.partition()}:{msg.offset()}"
    return json.dumps(order).encode()


def next_offsets(batch: list[Message]) -> list[TopicPartition]:
    """The offsets to commit for a batch: one past the last message of each partition."""
    last: dict[tuple[str, int], int] = {}
    for msg in batch:
        key = (msg.topic() or "", msg.partition() or 0)
        last[key] = max(last.get(key, -1), msg.offset() or 0)
    return [
        TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in last.items()
    ]


def rewind(consumer: Consumer) -> None:
    """After an abort, go back to the last committed offsets and process the batch again."""
    for tp in consumer.committed(consumer.assignment(), timeout=10):
        if tp.offset >= 0:
            consumer.seek(tp)


def main() -> int:
    args = parse_args()
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,  # offsets are committed by the transaction
            "isolation.level": "read_committed",
            "session.timeout.ms": args.session_timeout_ms,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "transactional.id": args.transactional_id,
            "enable.idempotence": True,
        }
    )
    producer.init_transactions(30)

    assigned_at: float | None = None

    def on_assign(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
        nonlocal assigned_at
        assigned_at = time.monotonic()
        print(f"assigned partitions {sorted(tp.partition for tp in partitions)}")

    consumer.subscribe([args.input_topic], on_assign=on_assign)
    print(f"processing {args.input_topic!r} -> {args.output_topic!r} in group {args.group!r}")

    processed = transactions = produced = 0
    started = time.monotonic()
    last_input_at: float | None = None
    while processed < args.max_messages:
        now = time.monotonic()
        idle_since = last_input_at or assigned_at
        if idle_since is not None and now - idle_since >= args.idle_s:
            break
        if now - started >= args.timeout_s:
            print(f"timed out after {args.timeout_s}s")
            break
        want = min(args.batch_size, args.max_messages - processed)
        batch = consumer.consume(num_messages=want, timeout=1.0)
        for msg in batch:
            if msg.error() is not None:
                raise KafkaException(msg.error())
        if not batch:
            continue
        last_input_at = time.monotonic()

        producer.begin_transaction()
        try:
            for msg in batch:
                producer.produce(args.output_topic, key=msg.key(), value=transform(msg))
                produced += 1
                print(f"transformed partition={msg.partition()} offset={msg.offset()}")
                if produced == args.crash_after:
                    producer.flush(10)
                    print("crashing in the middle of a transaction", flush=True)
                    os._exit(3)
            # The group's new position travels inside the transaction, so the output and
            # the consumed offsets become durable together.
            producer.send_offsets_to_transaction(
                next_offsets(batch), consumer.consumer_group_metadata(), 30
            )
            producer.commit_transaction(30)
        except KafkaException as exc:
            if not exc.args[0].txn_requires_abort():
                raise  # fatal, e.g. fenced by a newer instance with our transactional id
            print(f"aborting transaction: {exc.args[0].str()}")
            producer.abort_transaction(30)
            rewind(consumer)
            continue
        processed += len(batch)
        transactions += 1
        print(f"committed transaction with {len(batch)} messages")

    consumer.close()
    print(f"processed {processed} messages in {transactions} transactions")
    if assigned_at is None:
        print("never received a partition assignment")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
