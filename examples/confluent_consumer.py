"""Read a whole topic with confluent-kafka, from the beginning to the current end.

Run: python examples/confluent_consumer.py [--bootstrap HOST:PORT] [--topic NAME]
     [--timeout-s S]

No consumer group is involved: the consumer ``assign``s itself every partition of the topic
at ``OFFSET_BEGINNING`` and commits nothing. With ``enable.partition.eof`` librdkafka reports
"end of partition" as a pseudo-message carrying ``KafkaError._PARTITION_EOF``; the loop skips
those as data but uses them to stop once every partition has reached its end. A timeout
bounds the run should the broker be unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("BOOTSTRAP_SERVERS", "localhost:9092"),
        help="broker HOST:PORT (default: $BOOTSTRAP_SERVERS or localhost:9092)",
    )
    parser.add_argument("--topic", default="orders")
    parser.add_argument("--timeout-s", type=float, default=30.0, help="give up after this long")
    return parser.parse_args()


def headers_as_text(msg: Message) -> dict[str, str | None]:
    """A consumed message's headers, decoded; librdkafka hands them over as (name, bytes)."""
    headers = msg.headers() or []
    # The type stubs also allow the dict form that produce() accepts.
    pairs = headers.items() if isinstance(headers, dict) else headers
    return {name: value.decode() if isinstance(value, bytes) else value for name, value in pairs}


def main() -> int:
    args = parse_args()
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            # librdkafka insists on a group.id, but assign() never joins the group and
            # nothing is committed, so the name is only a label here.
            "group.id": "confluent-example-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    metadata = consumer.list_topics(args.topic, timeout=10)
    topic_metadata = metadata.topics[args.topic]
    if topic_metadata.error is not None:
        print(f"topic {args.topic!r} is not available: {topic_metadata.error}")
        consumer.close()
        return 1
    partitions = sorted(topic_metadata.partitions)
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])
    print(f"reading {args.topic!r} partitions {partitions} from the beginning via {args.bootstrap}")

    at_end: set[int] = set()
    count = 0
    deadline = time.monotonic() + args.timeout_s
    while len(at_end) < len(partitions) and time.monotonic() < deadline:
        msg = consumer.poll(timeout=1.0)
        if msg is None:
            continue
        error, partition = msg.error(), msg.partition()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF and partition is not None:
                at_end.add(partition)
                continue
            print(f"error: {error}")
            consumer.close()
            return 1
        # A partition that receives more data after its EOF is no longer at its end.
        at_end.discard(partition)
        key, raw_value = msg.key(), msg.value()
        key_text = key.decode() if key is not None else None
        value = json.loads(raw_value) if raw_value is not None else None
        headers = headers_as_text(msg)
        print(
            f"partition={partition} offset={msg.offset()} key={key_text} "
            f"value={json.dumps(value)} headers={json.dumps(headers)}"
        )
        count += 1
    consumer.close()
    if len(at_end) < len(partitions):
        print(f"timed out after {args.timeout_s}s with {count} messages read")
        return 1
    print(f"consumed {count} messages; reached the end of all {len(partitions)} partitions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
