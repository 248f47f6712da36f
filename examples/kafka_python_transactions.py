"""Write orders and their audit trail atomically with a transactional kafka-python producer.

Run: python examples/kafka_python_transactions.py [--bootstrap HOST:PORT] [--topic NAME]
     [--audit-topic NAME] [--transactional-id ID] [--count N]

A transaction spans partitions and topics: every order goes to ``--topic`` and an audit
entry for it to ``--audit-topic``, and a ``read_committed`` consumer sees either all of them
or none. The run makes two transactions of ``--count`` orders each. The first commits. The
second hits a simulated error half-way and is aborted: its records were already written to
the partitions (a ``read_uncommitted`` consumer sees them), but the abort marker tells
``read_committed`` consumers to skip them.

``init_transactions()`` registers the transactional id with the transaction coordinator and
fences any older producer that used the same id (and aborts a transaction it left open), so
the id must be stable across restarts of one logical producer and unique between producers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from kafka import KafkaProducer

# kafka-python 3 prefers kafka.serializer.Serializer objects but still takes plain functions.
warnings.filterwarnings("ignore", "key_serializer|value_serializer", DeprecationWarning)


class SimulatedError(Exception):
    """Stands in for whatever can go wrong in the middle of a transaction."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("BOOTSTRAP_SERVERS", "localhost:9092"),
        help="broker HOST:PORT (default: $BOOTSTRAP_SERVERS or localhost:9092)",
    )
    parser.add_argument("--topic", default="orders")
    parser.add_argument("--audit-topic", default="order-audit")
    parser.add_argument("--transactional-id", default="order-writer-1")
    parser.add_argument("--count", type=int, default=4, help="orders per transaction")
    return parser.parse_args()


def send_order(producer: KafkaProducer, args: argparse.Namespace, txn: int, seq: int) -> None:
    """Send one order and its audit entry, and print where both landed."""
    customer_id = f"customer-{seq % 3}"
    order = {"order_id": f"order-{seq:04d}", "customer_id": customer_id, "txn": txn}
    audit = {"event": "order_created", "order_id": order["order_id"], "txn": txn}
    for topic, value in ((args.topic, order), (args.audit_topic, audit)):
        # Waiting on the future only says the record is in the log; it stays invisible to
        # read_committed consumers until the transaction commits.
        metadata = producer.send(topic, key=customer_id, value=value).get(timeout=10)
        print(
            f"sent txn={txn} topic={topic} partition={metadata.partition} "
            f"offset={metadata.offset} key={customer_id} value={json.dumps(value)}"
        )


def main() -> int:
    args = parse_args()
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap.split(","),
        value_serializer=lambda value: json.dumps(value).encode("utf-8"),
        key_serializer=lambda key: key.encode("utf-8") if key is not None else None,
        # A transactional producer is always idempotent; saying so documents the intent.
        transactional_id=args.transactional_id,
        enable_idempotence=True,
    )
    print(f"transactional id {args.transactional_id!r} via {args.bootstrap}")
    producer.init_transactions()

    # Transaction 1: everything succeeds, so everything becomes visible at once.
    producer.begin_transaction()
    for seq in range(args.count):
        send_order(producer, args, txn=1, seq=seq)
    producer.commit_transaction()
    print(f"committed transaction 1 with {args.count} orders")

    # Transaction 2: an error half-way; nothing of it may become visible.
    producer.begin_transaction()
    try:
        for seq in range(args.count, 2 * args.count):
            if seq - args.count == args.count // 2:
                raise SimulatedError(f"payment service unavailable at order-{seq:04d}")
            send_order(producer, args, txn=2, seq=seq)
        producer.commit_transaction()
        print(f"committed transaction 2 with {args.count} orders")
    except SimulatedError as err:
        producer.abort_transaction()
        print(f"aborted transaction 2: {err}")

    producer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
