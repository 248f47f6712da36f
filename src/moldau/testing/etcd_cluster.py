"""A local moldau cluster for tests and benchmarks: one etcd and N broker processes.

Everything is a real process on loopback, started exactly as a user would (``moldau broker
--metadata etcd://…``); the kit talks to the brokers over the wire only (confluent_kafka's
admin client, and a raw Metadata request for the leader epochs that client does not show).
The defaults make failures show up fast: a 3 s broker session (etcd lease), a 3 s replica
lag limit, and small internal topics.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import kio.schema.metadata.v9.request as metadata_request
from kio.schema.types import TopicName

from moldau.testing.broker import BrokerProcess
from moldau.testing.etcd import EtcdProcess
from moldau.testing.wire import WireClient

METADATA_API_KEY = 3
METADATA_VERSION = 9

TEST_DEFAULTS: Mapping[str, str] = {
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    "replica.lag.time.max.ms": "3000",
    "leader.imbalance.check.interval.seconds": "5",
    "group.initial.rebalance.delay.ms": "0",
    "offsets.topic.num.partitions": "3",
    "transaction.state.log.num.partitions": "3",
}


@dataclass(frozen=True, slots=True)
class PartitionView:
    """One partition as a broker's Metadata answer shows it."""

    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


class LocalCluster:
    """etcd plus brokers 1..n, each in its own directory under ``base_dir``.

    ``listeners`` (listener name → security protocol) gives every broker those named
    listeners on free ports (see ``BrokerProcess``); the kit itself talks to the first one,
    so list a PLAINTEXT listener first.
    """

    def __init__(
        self,
        n: int = 3,
        *,
        config: Mapping[str, str] | None = None,
        racks: Sequence[str] | None = None,
        base_dir: Path | None = None,
        listeners: Mapping[str, str] | None = None,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if base_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="moldau-cluster-")
            base_dir = Path(self._tmp.name)
        self.base_dir = base_dir
        self.etcd = EtcdProcess(base_dir / "etcd")
        self.paused: set[int] = set()
        settings = {**TEST_DEFAULTS, **(config or {})}
        self.brokers: dict[int, BrokerProcess] = {}
        for node_id in range(1, n + 1):
            broker_config = dict(settings)
            if racks is not None:
                broker_config["broker.rack"] = racks[node_id - 1]
            self.brokers[node_id] = BrokerProcess(
                base_dir / f"broker-{node_id}" / "data",
                node_id=node_id,
                config=broker_config,
                extra_args=("--metadata", self.etcd.metadata_url),
                listeners=listeners,
            )

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values())

    def bootstrap_for(self, listener_name: str) -> str:
        """Every broker's ``host:port`` on one named listener."""
        return ",".join(b.bootstrap_for(listener_name) for b in self.brokers.values())

    def broker(self, node_id: int) -> BrokerProcess:
        return self.brokers[node_id]

    def start(self, timeout_s: float = 60.0) -> LocalCluster:
        self.etcd.start()
        for broker in self.brokers.values():
            broker.start()
        self.wait_for(
            lambda: self.registered_brokers() == set(self.brokers),
            timeout_s,
            "every broker registered",
        )
        return self

    def running(self) -> list[int]:
        """Brokers whose process is alive and not paused."""
        return [
            node
            for node, b in self.brokers.items()
            if b.process is not None and b.process.poll() is None and node not in self.paused
        ]

    def pause(self, node_id: int) -> None:
        """SIGSTOP a broker (it keeps its sockets, so the kit stops asking it things)."""
        self.paused.add(node_id)
        self.brokers[node_id].pause()

    def resume(self, node_id: int) -> None:
        self.brokers[node_id].resume()
        self.paused.discard(node_id)

    # -- looking at the cluster ---------------------------------------------------------

    def _wire(self, node_id: int | None = None) -> WireClient:
        candidates = [node_id] if node_id is not None else self.running()
        last: Exception | None = None
        for node in candidates:
            broker = self.brokers[node]
            try:
                return WireClient(broker.host, broker.port, timeout_s=5.0)
            except OSError as exc:
                last = exc
        raise ConnectionError(f"no broker reachable: {last}")

    def metadata_response(self, topics: Sequence[str] | None, node_id: int | None = None) -> Any:
        request = metadata_request.MetadataRequest(
            topics=None
            if topics is None
            else tuple(metadata_request.MetadataRequestTopic(name=TopicName(t)) for t in topics),
            allow_auto_topic_creation=False,
            include_cluster_authorized_operations=False,
            include_topic_authorized_operations=False,
        )
        with self._wire(node_id) as client:
            return client.request(METADATA_API_KEY, METADATA_VERSION, request)

    def registered_brokers(self, node_id: int | None = None) -> set[int]:
        try:
            response = self.metadata_response([], node_id)
        except (OSError, ConnectionError):
            return set()
        return {int(b.node_id) for b in response.brokers}

    def partitions(self, topic: str, node_id: int | None = None) -> dict[int, PartitionView]:
        """The topic's partitions as one broker (any running one by default) sees them."""
        response = self.metadata_response([topic], node_id)
        views: dict[int, PartitionView] = {}
        for entry in response.topics:
            for p in entry.partitions:
                views[int(p.partition_index)] = PartitionView(
                    leader=int(p.leader_id),
                    leader_epoch=int(p.leader_epoch),
                    replicas=tuple(int(r) for r in p.replica_nodes),
                    isr=tuple(int(r) for r in p.isr_nodes),
                )
        return views

    metadata = partitions

    def wait_for_full_isr(self, topic: str, timeout_s: float = 60.0) -> None:
        """Until every partition of ``topic`` has all its replicas in sync."""
        self.wait_for(
            lambda: all(set(v.isr) == set(v.replicas) for v in self.partitions(topic).values()),
            timeout_s,
            f"{topic}'s ISR to hold every replica",
        )

    def leader_of(self, topic: str, partition: int = 0) -> int:
        return self.partitions(topic)[partition].leader

    def wait_for(
        self, predicate: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if predicate():
                    return
            time.sleep(0.2)
        raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 3,
        configs: Mapping[str, str] | None = None,
    ) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics(
            [NewTopic(name, partitions, replication_factor, config=dict(configs or {}))]
        )
        futures[name].result(30)
        self.wait_for(
            lambda: (
                all(v.leader >= 0 for v in self.partitions(name).values())
                and len(self.partitions(name)) == partitions
            ),
            30,
            f"leaders of {name}",
        )

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        for node in list(self.paused):
            self.resume(node)
        for broker in self.brokers.values():
            with contextlib.suppress(Exception):
                broker.stop(timeout_s=15)
        with contextlib.suppress(Exception):
            self.etcd.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.close()  # a broker that failed to start must not leave the others running
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextlib.contextmanager
def local_cluster(n: int = 3, **kwargs: object) -> Iterator[LocalCluster]:
    cluster = LocalCluster(n, **kwargs)  # type: ignore[arg-type]
    with cluster:
        yield cluster
