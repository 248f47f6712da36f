"""``python -m bench.security``: what TLS and SASL_SSL cost in produce and fetch throughput.

One moldau broker process per invocation with three listeners side by side — PLAINTEXT, SSL
and SASL_SSL (SCRAM-SHA-512) — so every protocol is measured against the same broker, data
directory and machine state, in the same run:

- **Produce**: a confluent-kafka (librdkafka) producer sends N messages of 1 KiB (acks=1,
  linger 5 ms, no compression) to a fresh one-partition topic, first send to last
  acknowledgement.
- **Fetch**: a consumer assigned to that partition reads the same N messages back from
  offset 0 (no group), first poll to last message.

Each run measures the protocols in rotating order; the table gives medians over the runs and
each protocol's ratio to PLAINTEXT. The SCRAM user is created over the PLAINTEXT listener with
AlterUserScramCredentials before the first run; the TLS material is a throwaway CA
(``moldau.testing.tls``). The benchmark is only a client: the broker runs in its own process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from moldau.testing import BrokerProcess
from moldau.testing.tls import CertFiles, TestCA, ssl_broker_config

VALUE = b"x" * 1024
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL")
SCRAM_USER = "bench"
SCRAM_PASSWORD = "bench-Secret-3c7d"
SCRAM_MECHANISM = "SCRAM-SHA-512"


def start_broker(base: Path) -> tuple[BrokerProcess, dict[str, dict[str, Any]]]:
    """The broker with its three listeners, and the client settings of each."""
    ca = TestCA(base / "tls", "bench")
    server = ca.server_cert("broker")
    broker = BrokerProcess(
        base / "data",
        listeners={protocol: protocol for protocol in PROTOCOLS},
        config={
            **ssl_broker_config(server),
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        },
    )
    broker.start()
    create_scram_user(broker.bootstrap_for("PLAINTEXT"))
    return broker, client_settings(broker, server)


def create_scram_user(bootstrap: str) -> None:
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient({"bootstrap.servers": bootstrap})
    upsert = UserScramCredentialUpsertion(
        SCRAM_USER,
        ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096),
        SCRAM_PASSWORD.encode(),
    )
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(30)


def client_settings(broker: BrokerProcess, server: CertFiles) -> dict[str, dict[str, Any]]:
    tls = {"ssl.ca.location": str(server.ca)}
    return {
        "PLAINTEXT": {"bootstrap.servers": broker.bootstrap_for("PLAINTEXT")},
        "SSL": {
            "bootstrap.servers": broker.bootstrap_for("SSL"),
            "security.protocol": "SSL",
            **tls,
        },
        "SASL_SSL": {
            "bootstrap.servers": broker.bootstrap_for("SASL_SSL"),
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": SCRAM_MECHANISM,
            "sasl.username": SCRAM_USER,
            "sasl.password": SCRAM_PASSWORD,
            **tls,
        },
    }


def produce(settings: Mapping[str, Any], topic: str, messages: int) -> float:
    """Produce throughput in MB/s (payload bytes, 10^6) of one producer."""
    from confluent_kafka import Producer

    failures: list[object] = []
    producer = Producer(
        {
            **settings,
            "acks": "1",
            "linger.ms": 5,
            "compression.type": "none",
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 2_097_151,
            "delivery.report.only.error": True,
            "on_delivery": lambda err, _msg: failures.append(err),
        }
    )
    producer.produce(topic, VALUE)  # connect, authenticate, learn the leader off the clock
    producer.flush(30)
    started = time.perf_counter()
    for _ in range(messages):
        while True:
            try:
                producer.produce(topic, VALUE)
                break
            except BufferError:
                producer.poll(0.001)
    left = producer.flush(120)
    elapsed = time.perf_counter() - started
    if left or failures:
        raise RuntimeError(f"{left} undelivered, {len(failures)} failed deliveries")
    return messages * len(VALUE) / elapsed / 1e6


def fetch(settings: Mapping[str, Any], topic: str, messages: int) -> float:
    """Fetch throughput in MB/s of one consumer reading the topic from offset 0."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            **settings,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 10,
        }
    )
    try:
        # connect and authenticate off the clock (librdkafka prefetches once assigned)
        consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30, cached=False)
        started = time.perf_counter()
        consumer.assign([TopicPartition(topic, 0, 0)])
        got = 0
        deadline = time.monotonic() + 120
        while got < messages + 1 and time.monotonic() < deadline:
            batch = consumer.consume(10_000, 1.0)
            got += sum(1 for message in batch if message.error() is None)
        if got < messages + 1:
            raise RuntimeError(f"fetched {got} of {messages + 1} messages")
        elapsed = time.perf_counter() - started
    finally:
        consumer.close()
    return messages * len(VALUE) / elapsed / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.security", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per protocol (median)")
    parser.add_argument("--messages", type=int, default=100_000, help="1 KiB messages per run")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures: dict[str, dict[str, list[float]]] = {
        protocol: {"produce": [], "fetch": []} for protocol in PROTOCOLS
    }
    with tempfile.TemporaryDirectory(prefix="moldau-bench-security-") as tmp:
        broker, settings = start_broker(Path(tmp))
        try:
            for run in range(args.runs):
                order = PROTOCOLS[run % 3 :] + PROTOCOLS[: run % 3]
                for protocol in order:
                    topic = f"bench-{protocol.lower()}-{uuid.uuid4().hex[:8]}"
                    produced = produce(settings[protocol], topic, args.messages)
                    fetched = fetch(settings[protocol], topic, args.messages)
                    figures[protocol]["produce"].append(produced)
                    figures[protocol]["fetch"].append(fetched)
        finally:
            broker.close()
    if args.json:
        print(json.dumps(figures, indent=1))
    base = {kind: statistics.median(figures["PLAINTEXT"][kind]) for kind in ("produce", "fetch")}
    print(
        f"Produce (acks=1) and fetch, 1 KiB messages, {args.messages} per run, "
        f"median MB/s of {args.runs} runs, one broker with all three listeners:"
    )
    print("| protocol | produce MB/s | ratio | fetch MB/s | ratio |")
    print("|---|---:|---:|---:|---:|")
    for protocol in PROTOCOLS:
        produce_mb = statistics.median(figures[protocol]["produce"])
        fetch_mb = statistics.median(figures[protocol]["fetch"])
        print(
            f"| {protocol} | {produce_mb:.1f} | {produce_mb / base['produce']:.2f} "
            f"| {fetch_mb:.1f} | {fetch_mb / base['fetch']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
