"""Produce orders in transactions with confluent-kafka, aborting a batch that hits an error.

Run: python examples/confluent_transactions.py [--bootstrap HOST:PORT] [--topic NAME]
     [--transactional-id ID] [--count N] [--batch-size N] [--bad-order N]

The orders are written in transactions of ``--batch-size``: each batch becomes visible to
``read_committed`` consumers all at once when it commits. Order ``--bad-order`` fails
validation while its batch is being produced; that batch is aborted, so none of its orders
(not even those produced before the bad one) are ever seen by ``read_committed`` consumers,
and the run carries on with the next batch. ``--bad-order -1`` makes every batch commit.

librdkafka does the transaction bookkeeping itself: the first ``produce`` to a new partition
adds it to the transaction, ``commit_transaction()`` flushes every queued message first and
fails if one of them could not be delivered, and ``abort_transaction()`` drops the messages
still queued. Errors raised by the transactional calls carry a ``KafkaError`` that says
whether to retry the call, to abort the transaction, or (fatal: e.g. fenced by a newer
producer with the same transactional id) to give up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from confluent_kafka import KafkaError, KafkaException, Message, Producer


class InvalidOrder(Exception):
    """The application's own reason to abandon a transaction."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("BOOTSTRAP_SERVERS", "localhost:9092"),
        help="broker HOST:PORT (default: $BOOTSTRAP_SERVERS or localhost:9092)",
    )
    parser.add_argument("--topic", default="orders")
    parser.add_argument("--transactional-id", default="order-processor-1")
    parser.add_argument("--count", type=int, default=100, help="orders to produce")
    parser.add_argument("--batch-size", type=int, default=25, help="orders per transaction")
    parser.add_argument("--bad-order", type=int, default=60, help="order that fails (-1: none)")
    return parser.parse_args()


def on_delivery(err: KafkaError | None, msg: Message) -> None:
    """Delivered means written to the log, not committed: that comes with the transaction."""
    if err is not None:
        # Aborting purges what was still queued; those messages report _PURGE_QUEUE here.
        print(f"not delivered key={msg.key()!r}: {err.str()}")
        return
    key = msg.key()
    print(
        f"delivered topic={msg.topic()} partition={msg.partition()} offset={msg.offset()} "
        f"key={key.decode() if key is not None else None}"
    )


def commit(producer: Producer) -> None:
    """commit_transaction(), retrying what librdkafka says may be retried."""
    while True:
        try:
            producer.commit_transaction(30)
            return
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.retriable():
                continue
            raise  # txn_requires_abort() errors are aborted by the caller; fatal ones end the run


def main() -> int:
    args = parse_args()
    producer = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "transactional.id": args.transactional_id,
            "enable.idempotence": True,
        }
    )
    # Fences older producers with this id and finishes whatever transaction they left open.
    producer.init_transactions(30)
    print(f"producing {args.count} orders to {args.topic!r} via {args.bootstrap}")

    committed = aborted = failed = 0
    for txn, start in enumerate(range(0, args.count, args.batch_size), start=1):
        end = min(start + args.batch_size, args.count)
        producer.begin_transaction()
        try:
            for i in range(start, end):
                if i == args.bad_order:
                    raise InvalidOrder(f"order-{i:04d} has no customer")
                customer_id = f"customer-{i % 7}"
                order = {"order_id": f"order-{i:04d}", "customer_id": customer_id, "txn": txn}
                producer.produce(
                    args.topic,
                    key=customer_id.encode(),
                    value=json.dumps(order).encode(),
                    on_delivery=on_delivery,
                )
                producer.poll(0)  # serve delivery callbacks as we go
            commit(producer)
        except InvalidOrder as err:
            producer.abort_transaction(30)
            aborted += 1
            print(f"aborted transaction {txn}: orders {start}-{end - 1} ({err})")
            continue
        except KafkaException as exc:
            if not exc.args[0].txn_requires_abort():
                raise
            producer.abort_transaction(30)
            aborted += 1
            failed += 1
            print(f"aborted transaction {txn}: orders {start}-{end - 1} ({exc.args[0].str()})")
            continue
        committed += end - start
        print(f"committed transaction {txn}: orders {start}-{end - 1}")

    print(f"committed {committed} of {args.count} orders, aborted {aborted} transactions")
    # Aborting for the bad order is the plan; an abort the broker forced on us is a failure.
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
