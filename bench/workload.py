"""One produce and one fetch measurement with confluent-kafka (librdkafka).

The clock runs from the first ``produce()`` to the end of ``flush()``, and from ``assign()`` to
the last message consumed. Connections and metadata are set up before the clock starts, so a
cell measures steady-state throughput, not bootstrapping. The Python loop that calls
``produce()``/``consume()`` costs the same against either target; at 100-byte values it is
a large share of the total, which compresses ratios towards 1 (see docs/performance.md).
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass

PRODUCER_SETTINGS = {"linger.ms": 5, "batch.size": 1_048_576}
"""The benchmark's fixed producer settings (the matrix varies acks)."""

_STALL_S = 30.0


class BenchmarkError(RuntimeError):
    """A measurement could not complete (delivery failures, a stalled fetch)."""


@dataclass(frozen=True)
class Cell:
    """One point of the matrix."""

    value_bytes: int
    acks: str
    partitions: int

    @property
    def label(self) -> str:
        size = (
            f"{self.value_bytes // 1024} KiB"
            if self.value_bytes % 1024 == 0
            else (f"{self.value_bytes} B")
        )
        return f"{size}, acks={self.acks}, {self.partitions}p"

    @property
    def slug(self) -> str:
        return f"{self.value_bytes}b-acks{self.acks}-{self.partitions}p"


@dataclass(frozen=True)
class Result:
    messages: int
    value_bytes: int
    seconds: float

    @property
    def mb_per_s(self) -> float:
        """Payload (value) megabytes per second, 10^6 bytes."""
        return self.messages * self.value_bytes / self.seconds / 1e6

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.seconds


def produce(bootstrap: str, topic: str, cell: Cell, messages: int) -> Result:
    """Produce ``messages`` values of ``cell.value_bytes`` round-robin over the partitions."""
    from confluent_kafka import Producer

    failures: list[object] = []
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": cell.acks,
            **PRODUCER_SETTINGS,
            # a deep queue so the loop below rarely has to wait for room
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 2_097_151,
            "delivery.report.only.error": True,
            "on_delivery": lambda err, _msg: failures.append(err),
            "log_level": 3,
        }
    )
    producer.list_topics(topic, timeout=30)  # connect and learn the leaders off the clock
    value = os.urandom(cell.value_bytes)
    partitions = cell.partitions
    send = producer.produce
    start = time.perf_counter()
    for i in range(messages):
        while True:
            try:
                send(topic, value, partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.001)
    left = producer.flush(120)
    elapsed = time.perf_counter() - start
    if left:
        raise BenchmarkError(f"{left} messages still undelivered after flush")
    if failures:
        raise BenchmarkError(f"{len(failures)} deliveries failed, first: {failures[0]}")
    return Result(messages, cell.value_bytes, elapsed)


def fetch(bootstrap: str, topic: str, cell: Cell, messages: int) -> Result:
    """Consume ``messages`` messages from the beginning of every partition.

    Reads each partition from its low to its high watermark. When that retained window holds
    fewer messages than asked for (the mock cluster keeps only the tail of each partition),
    it starts over at the low watermarks until it has read ``messages`` in all. Re-reading
    costs one fetch round trip per pass; measured on the mock, a 5 MiB window read 20 times
    runs at the same rate as a single pass.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            # While data is there a fetch returns at once whatever this says; at the end of a
            # window (see above) a long poll would stall every pass for its full length.
            "fetch.wait.max.ms": 0,
            # librdkafka stops fetching while its local queue holds queued.min.messages and
            # then waits fetch.queue.backoff.ms (1 s by default) before it looks again; with
            # 100-byte values the Python loop drains the queue in a fraction of that, so the
            # default measures the back-off, not the broker (~20 MB/s against either target).
            "fetch.queue.backoff.ms": 10,
            "log_level": 3,
        }
    )
    try:
        starts: list[TopicPartition] = []
        window = 0
        for partition in range(cell.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10, cached=False
            )
            starts.append(TopicPartition(topic, partition, low))
            window += high - low
        if window <= 0:
            raise BenchmarkError(f"{topic} is empty")
        received = 0
        start = time.perf_counter()
        while received < messages:
            consumer.assign(starts)
            in_pass = 0
            goal = min(window, messages - received)
            last_progress = time.monotonic()
            while in_pass < goal:
                # never ask for more than is left: consume() waits to fill its batch
                batch = consumer.consume(min(10_000, goal - in_pass), 1.0)
                if not batch:
                    if time.monotonic() - last_progress > _STALL_S:
                        raise BenchmarkError(f"fetch stalled after {received + in_pass} messages")
                    continue
                for msg in batch:
                    if msg.error() is not None:
                        raise BenchmarkError(f"fetch error: {msg.error()}")
                in_pass += len(batch)
                last_progress = time.monotonic()
            received += in_pass
        elapsed = time.perf_counter() - start
    finally:
        consumer.close()
    return Result(received, cell.value_bytes, elapsed)
