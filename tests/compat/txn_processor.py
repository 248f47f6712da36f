"""A consume-transform-produce processor (confluent-kafka), run as a subprocess by test_txn_eos.

It reads ``input`` in consumer group ``group`` (read_committed), writes each record upper-cased
to ``output`` (same partition and key) and commits the consumed offsets with
``send_offsets_to_transaction`` inside the same transaction, at most ``per_txn`` records per
transaction. It prints one line per step so the test can follow it:

    ready            init_transactions done, subscribed
    in-txn <k>       transaction k's output records are acknowledged, not yet committed
    committed <k>    transaction k committed (output + offsets)
    done             committed positions reached the input's end offsets

With ``--hang-at k`` it stops for good after printing ``in-txn k`` (the test SIGKILLs it there:
a crash in the middle of a transaction). A restarted instance with the same transactional id
fences the dead one; the coordinator aborts its open transaction, and the group resumes from
the last committed offsets, so every input record lands in the output exactly once.
"""

from __future__ import annotations

import argparse
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--transactional-id", required=True)
    parser.add_argument("--per-txn", type=int, default=5)
    parser.add_argument("--hang-at", type=int, default=-1)
    parser.add_argument("--timeout-s", type=float, default=60.0)
    args = parser.parse_args()

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "fetch.wait.max.ms": 100,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "transactional.id": args.transactional_id,
            "transaction.timeout.ms": 30_000,
            "linger.ms": 5,
        }
    )
    producer.init_transactions(30)
    metadata = consumer.list_topics(args.input, timeout=30)
    partitions = sorted(metadata.topics[args.input].partitions)
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(args.input, p), 30)[1] for p in partitions
    }
    consumer.subscribe([args.input])
    print("ready", flush=True)

    txn = 0
    deadline = time.monotonic() + args.timeout_s
    while time.monotonic() < deadline:
        messages = [m for m in consumer.consume(args.per_txn, 0.5) if m.error() is None]
        if not messages:
            if finished(consumer, args.input, ends):
                print("done", flush=True)
                consumer.close()
                return 0
            continue
        txn += 1
        producer.begin_transaction()
        for m in messages:
            producer.produce(
                args.output, (m.value() or b"").upper(), key=m.key(), partition=m.partition()
            )
        if producer.flush(30) != 0:
            raise SystemExit("output records not acknowledged")
        print(f"in-txn {txn}", flush=True)
        if txn == args.hang_at:
            time.sleep(3600)
        # Only partitions this transaction consumed from have a meaningful position.
        consumed = {m.partition() for m in messages}
        positions = [
            tp for tp in consumer.position(consumer.assignment()) if tp.partition in consumed
        ]
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        try:
            producer.commit_transaction(30)
        except KafkaException as exc:
            print(f"commit failed {exc}", flush=True)
            return 2
        print(f"committed {txn}", flush=True)
    print("timeout", flush=True)
    return 1


def finished(consumer: Consumer, topic: str, ends: dict[int, int]) -> bool:
    """The group's committed offsets reached the input's end offsets on every partition."""
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=10)
    except KafkaException:
        return False  # e.g. offsets still unstable (a transaction is pending): ask again later
    return all(tp.offset >= ends[tp.partition] for tp in committed)


if __name__ == "__main__":
    sys.exit(main())
