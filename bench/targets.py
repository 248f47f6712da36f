"""The brokers a benchmark runs against: a moldau broker process and librdkafka's mock cluster.

Both live in processes of their own, apart from the benchmark's clients, and both are reached
over loopback TCP, so the two sides of every ratio pay the same client and network costs.
A target is fresh for each cell of the matrix (a new broker with an empty data directory, a
new mock cluster), which keeps disk and memory use bounded and one cell from warming the next.
"""

from __future__ import annotations

import contextlib
import time
from types import TracebackType
from typing import Protocol

from bench.mock_cluster import MockCluster
from moldau.testing import BrokerProcess


class Target(Protocol):
    name: str
    bootstrap: str

    @property
    def pid(self) -> int | None: ...

    def create_topic(self, topic: str, partitions: int) -> None: ...

    def delete_topic(self, topic: str) -> None: ...

    def close(self) -> None: ...


def _wait_for_partitions(bootstrap: str, topic: str, partitions: int, timeout_s: float) -> None:
    """Block until metadata shows ``topic`` with ``partitions`` partitions, all led."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout_s
    seen = "nothing"
    while time.monotonic() < deadline:
        meta = admin.list_topics(topic, timeout=5).topics.get(topic)
        if meta is not None and meta.error is None:
            led = [p for p in meta.partitions.values() if p.leader >= 0]
            if len(meta.partitions) == partitions and len(led) == partitions:
                return
            seen = f"{len(meta.partitions)} partitions, {len(led)} led"
        elif meta is not None:
            seen = str(meta.error)
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} not ready with {partitions} partitions: {seen}")


class MoldauTarget:
    """A moldau broker process on a free port with a temporary data directory.

    Topics are made with CreateTopics when the broker has it; otherwise by auto-creation
    (a producer's Metadata request), which is why the broker starts with
    ``num.partitions`` set to the cell's partition count.
    """

    name = "moldau"

    def __init__(self, partitions: int, config: dict[str, str] | None = None) -> None:
        settings = {"num.partitions": str(partitions), **(config or {})}
        self.broker = BrokerProcess(config=settings).start()
        self.bootstrap = self.broker.bootstrap

    @property
    def pid(self) -> int | None:
        process = self.broker.process
        return None if process is None else process.pid

    def create_topic(self, topic: str, partitions: int) -> None:
        from confluent_kafka import KafkaException, Producer
        from confluent_kafka.admin import (  # type: ignore[attr-defined]
            AdminClient,
            NewTopic,
        )

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        try:
            futures = admin.create_topics([NewTopic(topic, partitions, 1)], request_timeout=15)
            futures[topic].result(20)
        except (KafkaException, TimeoutError):
            # no CreateTopics yet: let a producer's Metadata request auto-create it
            producer = Producer({"bootstrap.servers": self.bootstrap})
            producer.list_topics(topic, timeout=10)
        _wait_for_partitions(self.bootstrap, topic, partitions, 30)

    def delete_topic(self, topic: str) -> None:
        """Best effort: the whole data directory goes when the target closes anyway."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        with contextlib.suppress(KafkaException, TimeoutError):
            admin.delete_topics([topic], request_timeout=15)[topic].result(20)

    def close(self) -> None:
        self.broker.close()

    def __enter__(self) -> MoldauTarget:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class MockTarget:
    """librdkafka's mock cluster (one broker) in its host process; see ``bench.mock_cluster``.

    The mock keeps at most 5 MiB (and 100k batches) per partition in memory and drops older
    batches, so a fetch of everything produced finds only the tail. ``bench.workload.fetch``
    handles that by reading the retained window repeatedly.
    """

    name = "mock"

    def __init__(self) -> None:
        self.cluster = MockCluster().start()
        self.bootstrap = self.cluster.bootstrap

    @property
    def pid(self) -> int | None:
        return self.cluster.pid

    def create_topic(self, topic: str, partitions: int) -> None:
        self.cluster.create_topic(topic, partitions)
        _wait_for_partitions(self.bootstrap, topic, partitions, 30)

    def delete_topic(self, topic: str) -> None:
        self.cluster.delete_topic(topic)

    def close(self) -> None:
        self.cluster.stop()
