"""The broker process: composes metadata, logs and the listener, and owns background tasks.

``Broker`` is the composition root that handlers reach through ``ctx.broker``. It keeps the
operations that touch several layers (creating a topic = metadata + logs) in one place so that
CreateTopics, auto-creation in Metadata/Produce and CreatePartitions all share them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from kio.schema.errors import ErrorCode

from moldau.broker.config import BrokerConfig
from moldau.broker.errors import ApiError
from moldau.broker.handlers import load_all
from moldau.broker.notifier import AppendNotifier
from moldau.broker.producer_ids import ProducerIdManager
from moldau.cluster.metadata import (
    InvalidTopicError,
    MetadataStore,
    TopicImage,
    collides,
    validate_topic_name,
)
from moldau.log.config import ConfigError, LogConfig
from moldau.log.flusher import GroupCommitFlusher
from moldau.log.log import PartitionLog
from moldau.log.manager import LogManager

if TYPE_CHECKING:
    from moldau.broker.connection import KafkaConnection

log = logging.getLogger("moldau.broker")

MAX_PARTITIONS_PER_TOPIC = 10_000


class Broker:
    """One broker: config, metadata image, partition logs, listener, background tasks."""

    def __init__(self, config: BrokerConfig) -> None:
        load_all()
        self.config = config
        self.node_id = config.node_id
        self.data_dir = Path(config.data_dir)
        self.metadata = MetadataStore(self.data_dir, config.node_id, config.cluster_id)
        self.default_log_config = config.default_log_config()
        self.logs = LogManager(self.data_dir, self.default_log_config)
        self.flusher = GroupCommitFlusher()
        self.notifier = AppendNotifier()
        self.producer_ids = ProducerIdManager(self.data_dir)
        self.connections: set[KafkaConnection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    @property
    def cluster_id(self) -> str:
        return self.metadata.image.cluster_id

    @property
    def advertised(self) -> tuple[str, int]:
        return self.config.advertised_host, self.config.advertised_port

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        configs = {
            name: self.topic_log_config(topic) for name, topic in self.metadata.image.topics.items()
        }
        await asyncio.to_thread(self.logs.open_all, configs)
        for topic in self.metadata.image.topics.values():
            for partition in range(topic.partitions):
                self.logs.get_or_create_log(topic.name, partition, configs[topic.name])
        loop = asyncio.get_running_loop()
        from moldau.broker.connection import KafkaConnection

        self._server = await loop.create_server(
            lambda: KafkaConnection(self),
            self.config.listen_host,
            self.config.listen_port,
            reuse_address=True,
            backlog=1024,
        )
        self._tasks = [
            loop.create_task(self._retention_loop()),
            loop.create_task(self._flush_loop()),
        ]

    async def stop(self) -> None:
        """Clean shutdown: stop accepting, drop connections, flush and close every log."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.to_thread(self.logs.close)

    # -- topics --------------------------------------------------------------------------

    def topic_log_config(self, topic: TopicImage) -> LogConfig:
        return self.default_log_config.with_overrides(topic.configs)

    def get_log(self, topic: str, partition: int) -> PartitionLog | None:
        return self.logs.get_log(topic, partition)

    def validate_new_topic(
        self, name: str, partitions: int, replication_factor: int, configs: Mapping[str, str]
    ) -> None:
        """Raise ApiError as Kafka's CreateTopics would, without changing anything."""
        try:
            validate_topic_name(name)
        except InvalidTopicError as exc:
            raise ApiError(ErrorCode.invalid_topic_exception, str(exc)) from None
        image = self.metadata.image
        if name in image.topics:
            raise ApiError(ErrorCode.topic_already_exists, f"Topic '{name}' already exists.")
        for other in image.topics:
            if collides(name, other):
                raise ApiError(
                    ErrorCode.invalid_topic_exception,
                    f"Topic '{name}' collides with existing topic: {other}",
                )
        if partitions <= 0 or partitions > MAX_PARTITIONS_PER_TOPIC:
            raise ApiError(
                ErrorCode.invalid_partitions,
                f"Number of partitions must be between 1 and {MAX_PARTITIONS_PER_TOPIC}.",
            )
        if replication_factor <= 0:
            raise ApiError(
                ErrorCode.invalid_replication_factor, "Replication factor must be larger than 0."
            )
        if replication_factor > 1:
            raise ApiError(
                ErrorCode.invalid_replication_factor,
                f"Replication factor: {replication_factor} larger than available brokers: 1.",
            )
        try:
            self.default_log_config.with_overrides(configs)
        except ConfigError as exc:
            raise ApiError(ErrorCode.invalid_config, str(exc)) from None

    def create_topic(
        self,
        name: str,
        partitions: int | None = None,
        replication_factor: int | None = None,
        configs: Mapping[str, str] | None = None,
    ) -> TopicImage:
        """Create a topic (metadata first, then one log per partition)."""
        partitions = self.config.num_partitions if partitions in (None, -1) else partitions
        if replication_factor in (None, -1):
            replication_factor = self.config.default_replication_factor
        assert partitions is not None and replication_factor is not None
        configs = dict(configs or {})
        self.validate_new_topic(name, partitions, replication_factor, configs)
        topic = self.metadata.create_topic(name, partitions, configs, replication_factor)
        log_config = self.topic_log_config(topic)
        for partition in range(partitions):
            self.logs.get_or_create_log(name, partition, log_config)
        log.info("created topic %s with %d partitions", name, partitions)
        return topic

    def maybe_auto_create(self, name: str) -> TopicImage | None:
        """The topic, auto-created with broker defaults when allowed; None when not."""
        topic = self.metadata.image.topic(name)
        if topic is not None:
            return topic
        if not self.config.auto_create_topics_enable:
            return None
        return self.create_topic(name)

    def delete_topic(self, name: str) -> None:
        self.metadata.delete_topic(name)
        self.logs.delete_topic(name)
        log.info("deleted topic %s", name)

    def add_partitions(self, name: str, count: int) -> TopicImage:
        topic = self.metadata.set_partitions(name, count)
        config = self.topic_log_config(topic)
        for partition in range(count):
            self.logs.get_or_create_log(name, partition, config)
        return topic

    def set_topic_configs(self, name: str, configs: Mapping[str, str]) -> TopicImage:
        try:
            new_config = self.default_log_config.with_overrides(configs)
        except ConfigError as exc:
            raise ApiError(ErrorCode.invalid_config, str(exc)) from None
        topic = self.metadata.set_configs(name, configs)
        self.logs.update_topic_config(name, new_config)
        return topic

    def partitions_of(self, names: Iterable[str]) -> list[tuple[str, int]]:
        image = self.metadata.image
        return [
            (name, p)
            for name in names
            if (topic := image.topic(name)) is not None
            for p in range(topic.partitions)
        ]

    # -- background tasks ----------------------------------------------------------------

    async def _retention_loop(self) -> None:
        interval_s = max(self.config.log_retention_check_interval_ms, 10) / 1000
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.logs.retention_pass, int(time.time() * 1000))
            except Exception:
                log.exception("retention pass failed")

    async def _flush_loop(self) -> None:
        """Kafka's time-based flush policy (``flush.ms``) for logs that have one."""
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.flusher.flush_due(self.logs.all_logs(), int(time.time() * 1000))
            except Exception:
                log.exception("periodic flush failed")
