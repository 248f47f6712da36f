"""Read JSON events back with kafka-python, without a consumer group.

Run: python examples/kafka_python_consumer.py [--bootstrap HOST:PORT] [--topic NAME]
     [--max-messages N] [--timeout-ms MS]

With ``group_id=None`` the consumer reads every partition of the topic itself and commits
nothing, so ``auto_offset_reset='earliest'`` starts it at the beginning of each partition on
every run. ``consumer_timeout_ms`` ends the ``for message in consumer`` loop once no message
has arrived for that long, which keeps the example bounded.
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
    parser.add_argument("--max-messages", type=int, default=100, help="stop after this many")
    parser.add_argument(
        "--timeout-ms", type=int, default=5000, help="stop after this long without a message"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap.split(","),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        key_deserializer=lambda key: key.decode("utf-8") if key is not None else None,
        value_deserializer=lambda value: json.loads(value.decode("utf-8")),
        consumer_timeout_ms=args.timeout_ms,
    )
    print(f"reading {args.topic!r} from the beginning via {args.bootstrap}")
    count = 0
    for message in consumer:
        print(
            f"partition={message.partition} offset={message.offset} "
            f"key={message.key} value={json.dumps(message.value)}"
        )
        count += 1
        if count >= args.max_messages:
            break
    consumer.close()
    print(f"consumed {count} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
