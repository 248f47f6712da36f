"""The cluster metadata image and its single-node store.

The image is immutable: ``MetadataImage`` holds topics (name, id, partition count, config
overrides) and the cluster id; every change produces a new image via a ``replace``, which is
then persisted and swapped in atomically. Readers (Metadata, Fetch...) take the current image
once per request and so never see half an update.

Single node: the image lives in ``<data_dir>/__cluster_metadata.json`` (written to a temp file,
fsynced, renamed) plus Kafka's ``meta.properties`` (``cluster.id``, ``node.id``,
``version=1``), so the cluster id is stable across restarts. The etcd store for clusters
implements the same ``MetadataStore`` surface later.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from moldau.cluster.state import BrokerRegistration, PartitionState

MAX_TOPIC_NAME_LENGTH = 249
_LEGAL_TOPIC_CHARS = re.compile(r"^[a-zA-Z0-9._-]+$")
INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})
SINGLE_NODE_LEADER_EPOCH = 0
"""Leader epoch of every partition while there is one broker and so no elections; the
cluster issue replaces it with per-partition epochs in the image."""


class InvalidTopicError(ValueError):
    """A topic name Kafka would refuse (INVALID_TOPIC_EXCEPTION)."""


def validate_topic_name(name: str) -> None:
    """Kafka's rules (``Topic.validate``): non-empty, not '.'/'..', ≤249 chars, [a-zA-Z0-9._-]."""
    if not name:
        raise InvalidTopicError("Topic name is illegal, it can't be empty")
    if name in (".", ".."):
        raise InvalidTopicError('Topic name cannot be "." or ".."')
    if len(name) > MAX_TOPIC_NAME_LENGTH:
        raise InvalidTopicError(
            f"Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LENGTH} characters"
        )
    if not _LEGAL_TOPIC_CHARS.match(name):
        raise InvalidTopicError(
            f"Topic name {name!r} is illegal, it contains a character other than "
            "ASCII alphanumerics, '.', '_' and '-'"
        )


def collides(name: str, other: str) -> bool:
    """Kafka refuses topics whose names differ only in '.' vs '_' (metric names collide)."""
    return name != other and name.replace(".", "_") == other.replace(".", "_")


@dataclass(frozen=True, slots=True)
class TopicImage:
    name: str
    topic_id: uuid.UUID
    partitions: int
    configs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    replication_factor: int = 1

    @property
    def is_internal(self) -> bool:
        return self.name in INTERNAL_TOPICS


@dataclass(frozen=True, slots=True)
class MetadataImage:
    """Everything a broker knows about the cluster, as one immutable value.

    ``partitions`` maps a topic name to its partition states in partition order; ``brokers``
    holds the live registrations; ``controller_id`` is -1 while no controller is elected. A
    single-node store fills them with this broker as the only replica, leader and controller.
    """

    cluster_id: str
    topics: Mapping[str, TopicImage]
    brokers: Mapping[int, BrokerRegistration] = field(default_factory=lambda: MappingProxyType({}))
    partitions: Mapping[str, tuple[PartitionState, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    controller_id: int = -1

    def topic(self, name: str) -> TopicImage | None:
        return self.topics.get(name)

    def partition(self, topic: str, partition: int) -> PartitionState | None:
        states = self.partitions.get(topic)
        if states is None or not 0 <= partition < len(states):
            return None
        return states[partition]

    def topic_by_id(self, topic_id: uuid.UUID) -> TopicImage | None:
        for topic in self.topics.values():
            if topic.topic_id == topic_id:
                return topic
        return None


def new_cluster_id() -> str:
    """22-char URL-safe base64 of a random UUID, like Kafka's ``Uuid.randomUuid().toString()``."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class MetadataStore:
    """Single-node metadata store: the current image, persisted in the data directory.

    Only the broker's admin paths call the mutators, and they run on the event loop, so no
    locking is needed; each mutator validates, builds a new image, persists it, then swaps.
    """

    FILE_NAME = "__cluster_metadata.json"

    def __init__(self, data_dir: Path, node_id: int, cluster_id: str | None = None) -> None:
        self._data_dir = data_dir
        self._node_id = node_id
        self._image = self._load(cluster_id)

    @property
    def image(self) -> MetadataImage:
        return self._image

    # -- persistence -------------------------------------------------------------------

    def _load(self, cluster_id_override: str | None) -> MetadataImage:
        self._data_dir.mkdir(parents=True, exist_ok=True)
        meta = self._read_meta_properties()
        cluster_id = meta.get("cluster.id") or cluster_id_override or new_cluster_id()
        if cluster_id_override and cluster_id != cluster_id_override:
            raise ValueError(
                f"The data directory belongs to cluster {cluster_id}, "
                f"not the configured cluster.id {cluster_id_override}"
            )
        path = self._data_dir / self.FILE_NAME
        topics: dict[str, TopicImage] = {}
        if path.exists():
            raw = json.loads(path.read_text())
            for item in raw.get("topics", []):
                topic = TopicImage(
                    name=item["name"],
                    topic_id=uuid.UUID(item["id"]),
                    partitions=int(item["partitions"]),
                    configs=MappingProxyType(dict(item.get("configs", {}))),
                    replication_factor=int(item.get("replication_factor", 1)),
                )
                topics[topic.name] = topic
        image = self._with_local_partitions(
            MetadataImage(cluster_id=cluster_id, topics=MappingProxyType(topics))
        )
        if not meta:
            self._write_meta_properties(cluster_id)
        return image

    def _read_meta_properties(self) -> dict[str, str]:
        path = self._data_dir / "meta.properties"
        result: dict[str, str] = {}
        if not path.exists():
            return result
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                result[key.strip()] = value.strip()
        return result

    def _write_meta_properties(self, cluster_id: str) -> None:
        text = f"#moldau metadata\nversion=1\ncluster.id={cluster_id}\nnode.id={self._node_id}\n"
        atomic_write(self._data_dir / "meta.properties", text.encode())

    def _persist(self, image: MetadataImage) -> None:
        payload = {
            "version": 1,
            "topics": [
                {
                    "name": t.name,
                    "id": str(t.topic_id),
                    "partitions": t.partitions,
                    "replication_factor": t.replication_factor,
                    "configs": dict(t.configs),
                }
                for t in sorted(image.topics.values(), key=lambda t: t.name)
            ],
        }
        atomic_write(self._data_dir / self.FILE_NAME, json.dumps(payload, indent=1).encode())
        self._image = self._with_local_partitions(image)

    def _with_local_partitions(self, image: MetadataImage) -> MetadataImage:
        """Single node: this broker is every partition's only replica, leader and ISR, at
        leader epoch 0, and the controller."""
        node = self._node_id
        state = PartitionState(replicas=(node,), isr=(node,), leader=node)
        partitions = {name: (state,) * t.partitions for name, t in image.topics.items()}
        return replace(
            image,
            partitions=MappingProxyType(partitions),
            controller_id=node,
        )

    # -- mutations ---------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int,
        configs: Mapping[str, str],
        replication_factor: int = 1,
        topic_id: uuid.UUID | None = None,
    ) -> TopicImage:
        topic = TopicImage(
            name=name,
            topic_id=topic_id or uuid.uuid4(),
            partitions=partitions,
            configs=MappingProxyType(dict(configs)),
            replication_factor=replication_factor,
        )
        topics = dict(self._image.topics)
        topics[name] = topic
        self._persist(replace(self._image, topics=MappingProxyType(topics)))
        return topic

    def delete_topic(self, name: str) -> None:
        topics = dict(self._image.topics)
        topics.pop(name, None)
        self._persist(replace(self._image, topics=MappingProxyType(topics)))

    def set_partitions(self, name: str, partitions: int) -> TopicImage:
        return self._update(name, partitions=partitions)

    def set_configs(self, name: str, configs: Mapping[str, str]) -> TopicImage:
        return self._update(name, configs=MappingProxyType(dict(configs)))

    def _update(self, name: str, **changes: object) -> TopicImage:
        current = self._image.topics[name]
        topic = replace(current, **changes)  # type: ignore[arg-type]
        topics = dict(self._image.topics)
        topics[name] = topic
        self._persist(replace(self._image, topics=MappingProxyType(topics)))
        return topic


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
