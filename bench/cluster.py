"""``python -m bench.cluster``: what replication costs, and how long a failover takes.

One local cluster (etcd + 3 brokers, ``moldau.testing.etcd_cluster``) per invocation:

- **Throughput**: a confluent-kafka (librdkafka) idempotent producer sends N messages of 1 KiB
  (linger 5 ms) to a one-partition topic, in three set-ups measured side by side in each run,
  in rotating order: RF=1 acks=1, RF=1 acks=all, RF=3 acks=all with min.insync.replicas=2.
  A fresh topic per measurement; medians over the runs, and each set-up's ratio to RF=1
  acks=all (the single-node durable baseline: the same fsync, no replication).
- **Failover**: a producer sends one acks=all message every 5 ms to an RF=3 topic; the leader
  is SIGKILLed, and the time from the kill to the first acknowledgement of a message sent
  after the kill is the failover time. The killed broker is restarted and the ISR waited for
  before the next kill. Median and max over the kills. It is dominated by the broker session
  (``broker.session.timeout.ms``, the etcd lease TTL: 3 s here, Kafka's default 9 s), after
  which the controller elects a new leader and clients find it.

The benchmark is only a client; every broker and etcd run in processes of their own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid

from confluent_kafka import Producer

from moldau.testing.etcd_cluster import LocalCluster

VALUE = b"x" * 1024
SETUPS = (
    ("RF=1 acks=1", 1, "1"),
    ("RF=1 acks=all", 1, "all"),
    ("RF=3 acks=all", 3, "all"),
)


def throughput(cluster: LocalCluster, replication: int, acks: str, messages: int) -> float:
    """Messages per second of one producer, first send to last acknowledgement."""
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    cluster.create_topic(topic, 1, replication, {"min.insync.replicas": str(min(2, replication))})
    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "acks": acks,
            "enable.idempotence": acks == "all",
            "linger.ms": 5,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    producer.produce(topic, VALUE)  # connect and learn the leader off the clock
    producer.flush(30)
    started = time.perf_counter()
    for _ in range(messages):
        while True:
            try:
                producer.produce(topic, VALUE)
                break
            except BufferError:
                producer.poll(0.01)
    if producer.flush(120) != 0:
        raise RuntimeError("messages left unacknowledged")
    return messages / (time.perf_counter() - started)


def failover_times(cluster: LocalCluster, kills: int) -> list[float]:
    topic = f"failover-{uuid.uuid4().hex[:8]}"
    cluster.create_topic(topic, 1, 3, {"min.insync.replicas": "2"})
    acked_at: list[tuple[float, float]] = []  # (sent, acknowledged)
    lock = threading.Lock()
    stop = threading.Event()
    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 0,
            "retry.backoff.ms": 50,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )

    def send() -> None:
        while not stop.is_set():
            sent = time.monotonic()

            def on_delivery(err: object, _msg: object, sent: float = sent) -> None:
                if err is None:
                    with lock:
                        acked_at.append((sent, time.monotonic()))

            producer.produce(topic, b"tick", on_delivery=on_delivery)
            producer.poll(0)
            time.sleep(0.005)
        producer.flush(60)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    results: list[float] = []
    try:
        time.sleep(2)
        for _ in range(kills):
            leader = cluster.leader_of(topic)
            killed_at = time.monotonic()
            cluster.broker(leader).kill()
            deadline = killed_at + 60
            recovered = None
            while recovered is None and time.monotonic() < deadline:
                time.sleep(0.05)
                with lock:
                    after = [ack for sent, ack in acked_at if sent > killed_at]
                if after:
                    recovered = min(after)
            if recovered is None:
                raise RuntimeError("no acknowledgement within 60 s of a leader kill")
            results.append(recovered - killed_at)
            cluster.broker(leader).start()
            cluster.wait_for(
                lambda: len(cluster.partitions(topic)[0].isr) == 3, 60, "the ISR to heal"
            )
            time.sleep(1)
    finally:
        stop.set()
        thread.join(60)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="throughput runs (median)")
    parser.add_argument("--messages", type=int, default=50_000, help="messages per run")
    parser.add_argument("--kills", type=int, default=10, help="leader kills for failover")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures: dict[str, list[float]] = {name: [] for name, _, _ in SETUPS}
    with LocalCluster(3, config={"leader.imbalance.check.interval.seconds": "300"}) as cluster:
        for run in range(args.runs):
            order = SETUPS[run % 3 :] + SETUPS[: run % 3]
            for name, replication, acks in order:
                figures[name].append(throughput(cluster, replication, acks, args.messages))
        failovers = failover_times(cluster, args.kills)
    baseline = statistics.median(figures["RF=1 acks=all"])
    if args.json:
        print(json.dumps({"throughput": figures, "failover_s": failovers}, indent=1))
    print(f"Produce, 1 KiB messages, {args.messages} per run, median of {args.runs} runs:")
    print("| set-up | msg/s | MB/s | ratio to RF=1 acks=all |")
    print("|---|---:|---:|---:|")
    for name, _, _ in SETUPS:
        median = statistics.median(figures[name])
        print(f"| {name} | {median:,.0f} | {median * 1024 / 1e6:.1f} | {median / baseline:.2f} |")
    print(
        f"Failover (leader SIGKILL → next acknowledged send), {len(failovers)} kills, "
        "broker.session.timeout.ms=3000: "
        f"median {statistics.median(failovers):.2f} s, max {max(failovers):.2f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
