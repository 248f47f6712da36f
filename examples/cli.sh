#!/usr/bin/env bash
# Manage a topic and move a few messages with moldau's command line tools.
#
# Run: examples/cli.sh [--bootstrap HOST:PORT]   (or BOOTSTRAP_SERVERS=HOST:PORT)
#      with the virtualenv active (`source .venv/bin/activate`), which puts `moldau` and the
#      Kafka-compatible `kafka-topics`, `kafka-console-producer` and `kafka-console-consumer`
#      on PATH. TOPIC=name overrides the topic (default my-topic).
#
# The kafka-* tools take Apache Kafka's own flags, so scripts written for Kafka's
# distribution keep working; `moldau` is the shorter native spelling of the same operations.
set -euo pipefail

BOOTSTRAP="${BOOTSTRAP_SERVERS:-localhost:9092}"
if [[ "${1:-}" == "--bootstrap" && -n "${2:-}" ]]; then
  BOOTSTRAP="$2"
fi
TOPIC="${TOPIC:-my-topic}"

echo "== moldau topic create ${TOPIC}-native"
moldau topic create "${TOPIC}-native" --partitions 1 --if-not-exists --bootstrap "$BOOTSTRAP"

echo "== kafka-topics --create $TOPIC"
kafka-topics --create --topic "$TOPIC" --bootstrap-server "$BOOTSTRAP" \
  --partitions 3 --replication-factor 1

echo "== kafka-topics --list"
kafka-topics --list --bootstrap-server "$BOOTSTRAP"

echo "== kafka-console-producer (key:value lines)"
printf 'k1:first message\nk2:second message\nk1:third message\n' |
  kafka-console-producer --bootstrap-server "$BOOTSTRAP" --topic "$TOPIC" \
    --property parse.key=true --property key.separator=:

echo "== kafka-console-consumer --from-beginning --max-messages 3 (key:value)"
kafka-console-consumer --bootstrap-server "$BOOTSTRAP" --topic "$TOPIC" \
  --from-beginning --max-messages 3 --timeout-ms 10000 --property print.key=true --property key.separator=:
