#!/usr/bin/env bash
# Produce, consume and inspect a topic with kcat (formerly kafkacat).
#
# Run: examples/kcat.sh [--bootstrap HOST:PORT]   (or BOOTSTRAP_SERVERS=HOST:PORT)
#      TOPIC=name overrides the topic (default kcat-demo).
#
# kcat is librdkafka's command-line client: -P produces lines from stdin, -C consumes,
# -L lists metadata. The topic is auto-created by the first produce (the broker's
# auto.create.topics.enable is on by default, as in Kafka).
set -euo pipefail

BOOTSTRAP="${BOOTSTRAP_SERVERS:-localhost:9092}"
if [[ "${1:-}" == "--bootstrap" && -n "${2:-}" ]]; then
  BOOTSTRAP="$2"
fi
TOPIC="${TOPIC:-kcat-demo}"

echo "== produce three keyed lines to $TOPIC (-K: splits key:value)"
printf 'alice:signed up\nbob:placed an order\nalice:logged out\n' |
  kcat -P -b "$BOOTSTRAP" -t "$TOPIC" -K:

echo "== consume from the beginning, exit at the end (-e): key value partition offset"
kcat -C -b "$BOOTSTRAP" -t "$TOPIC" -o beginning -e -q -f '%k %s %p %o\n'

echo "== metadata (-L)"
kcat -L -b "$BOOTSTRAP" -t "$TOPIC"
