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
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from kio.schema.errors import ErrorCode

from moldau.broker.config import BrokerConfig
from moldau.broker.errors import ApiError
from moldau.broker.handlers import load_all
from moldau.broker.http_server import HttpServer, start_http_server
from moldau.broker.notifier import AppendNotifier
from moldau.broker.producer_ids import ProducerIdManager
from moldau.broker.txn_markers import write_markers
from moldau.cluster.metadata import (
    InvalidTopicError,
    MetadataStore,
    TopicImage,
    collides,
    validate_topic_name,
)
from moldau.coordinator.group import (
    GROUP_METADATA_TOPIC,
    GroupCoordinatorConfig,
    GroupCoordinatorRuntime,
    TxnProducer,
)
from moldau.coordinator.txn import (
    TRANSACTION_STATE_TOPIC,
    TransactionCoordinatorRuntime,
    TxnCoordinatorConfig,
    TxnMarkerRequest,
)
from moldau.log.cleaner_manager import LogCleanerManager
from moldau.log.config import ConfigError, LogConfig
from moldau.log.errors import LogAppendError
from moldau.log.flusher import GroupCommitFlusher
from moldau.log.log import PartitionLog
from moldau.log.manager import LogManager
from moldau.log.origin import AppendOrigin
from moldau.protocol.records import NewRecord, build_batch

if TYPE_CHECKING:
    from moldau.broker.connection import KafkaConnection

log = logging.getLogger("moldau.broker")

MAX_PARTITIONS_PER_TOPIC = 10_000


async def _done() -> None:
    """An awaitable that is already complete."""


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
        self.cleaner = LogCleanerManager(
            self.logs,
            threads=config.log_cleaner_threads,
            dedupe_buffer_bytes=config.log_cleaner_dedupe_buffer_size,
            io_max_bytes_per_second=config.log_cleaner_io_max_bytes_per_second,
            backoff_ms=config.log_cleaner_backoff_ms,
            enabled=config.log_cleaner_enable,
        )
        self.flusher = GroupCommitFlusher()
        self.notifier = AppendNotifier()
        self.producer_ids = ProducerIdManager(self.data_dir)
        self.group_coordinator = GroupCoordinatorRuntime(
            self._group_coordinator_config(), self._append_group_records
        )
        self.txn_coordinator = TransactionCoordinatorRuntime(
            self._txn_coordinator_config(),
            self._append_txn_records,
            self._write_txn_markers,
            self.producer_ids.next_id,
        )
        self.connections: set[KafkaConnection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._http_server: HttpServer | None = None
        self._tasks: list[asyncio.Task[None]] = []

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

        if self.config.metrics_listen is not None:
            # Before the Kafka port: whoever waits for that port finds this one up too.
            host, port = self.config.metrics_listen
            self._http_server = await start_http_server(self, host, port)
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
        self.cleaner.start()
        self.group_coordinator.start()
        offsets_topic = self.metadata.image.topic(GROUP_METADATA_TOPIC)
        if offsets_topic is not None:
            # Single node: this broker coordinates every partition. Replay them in the
            # background; their groups answer COORDINATOR_LOAD_IN_PROGRESS meanwhile.
            for partition in range(offsets_topic.partitions):
                offsets_log = self.get_log(GROUP_METADATA_TOPIC, partition)
                if offsets_log is not None:
                    self._tasks.append(self.group_coordinator.load(partition, offsets_log))
        self.txn_coordinator.start()
        txn_topic = self.metadata.image.topic(TRANSACTION_STATE_TOPIC)
        if txn_topic is not None:
            for partition in range(txn_topic.partitions):
                txn_log = self.get_log(TRANSACTION_STATE_TOPIC, partition)
                if txn_log is not None:
                    self._tasks.append(self.txn_coordinator.load(partition, txn_log))

    async def stop(self) -> None:
        """Clean shutdown: stop accepting, drop connections, flush and close every log."""
        if self._http_server is not None:
            self._http_server.close()
            await self._http_server.wait_closed()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close()
        await self.txn_coordinator.close()
        await self.group_coordinator.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.cleaner.close()
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

    # -- group coordinator ---------------------------------------------------------------

    def _group_coordinator_config(self) -> GroupCoordinatorConfig:
        c = self.config
        existing = self.metadata.image.topic(GROUP_METADATA_TOPIC)
        return GroupCoordinatorConfig(
            min_session_timeout_ms=c.group_min_session_timeout_ms,
            max_session_timeout_ms=c.group_max_session_timeout_ms,
            initial_rebalance_delay_ms=c.group_initial_rebalance_delay_ms,
            max_size=c.group_max_size,
            consumer_heartbeat_interval_ms=c.group_consumer_heartbeat_interval_ms,
            consumer_session_timeout_ms=c.group_consumer_session_timeout_ms,
            consumer_max_size=c.group_consumer_max_size,
            consumer_assignors=c.group_consumer_assignors,
            offsets_retention_ms=c.offsets_retention_minutes * 60_000,
            offsets_retention_check_interval_ms=c.offsets_retention_check_interval_ms,
            # Once the topic exists its partition count decides placement, whatever the
            # config says now (Kafka: "fixed once the topic exists").
            num_partitions=(
                existing.partitions if existing is not None else c.offsets_topic_num_partitions
            ),
        )

    def ensure_offsets_topic(self) -> None:
        """Create ``__consumer_offsets`` on first use, as Kafka does, compacted."""
        if self.metadata.image.topic(GROUP_METADATA_TOPIC) is None:
            self.create_topic(
                GROUP_METADATA_TOPIC,
                self.group_coordinator.num_partitions,
                1,
                {
                    "cleanup.policy": "compact",
                    "segment.bytes": str(self.config.offsets_topic_segment_bytes),
                    "compression.type": "producer",
                },
            )
        self.group_coordinator.activate_all()

    def _append_group_records(
        self,
        partition: int,
        records: Sequence[NewRecord],
        producer: TxnProducer | None = None,
    ) -> Awaitable[None]:
        """The group coordinator's writes: append now, return the wait for durability.

        With ``producer`` the records are one transactional batch of that producer
        (TxnOffsetCommit): the log checks its epoch, and the offsets count only once the
        transaction's COMMIT marker follows."""
        if producer is None:
            return self._append_internal(GROUP_METADATA_TOPIC, partition, records)
        return self._append_internal(
            GROUP_METADATA_TOPIC,
            partition,
            records,
            producer_id=producer.producer_id,
            producer_epoch=producer.producer_epoch,
        )

    def _append_internal(
        self,
        topic: str,
        partition: int,
        records: Sequence[NewRecord],
        *,
        producer_id: int = -1,
        producer_epoch: int = -1,
    ) -> Awaitable[None]:
        """Append a coordinator's batch to an internal topic; return the durability wait."""
        internal_log = self.get_log(topic, partition)
        if internal_log is None:
            raise LogAppendError(
                ErrorCode.unknown_topic_or_partition, f"{topic}-{partition} does not exist"
            )
        now_ms = int(time.time() * 1000)
        batch = bytearray(
            build_batch(
                records,
                base_timestamp=now_ms,
                producer_id=producer_id,
                producer_epoch=producer_epoch,
                is_transactional=producer_id >= 0,
            )
        )
        info = internal_log.append_as_leader(
            batch, leader_epoch=0, now_ms=now_ms, origin=AppendOrigin.COORDINATOR
        )
        self.notifier.notify(topic, partition)
        return self.durable(internal_log, info.last_offset)

    def durable(self, partition_log: PartitionLog, last_offset: int) -> Awaitable[None]:
        """The wait an acks=all write owes its writer: a group-commit fsync covering
        ``last_offset``, or nothing with ``moldau.flush.on.acks.all=false`` (Kafka's lazy
        flush policy, as for acks=all produces with the same setting)."""
        if self.config.flush_on_ack_all:
            return self.flusher.wait_durable(partition_log, last_offset)
        self.flusher.maybe_flush(partition_log)
        return _done()

    # -- transaction coordinator ---------------------------------------------------------

    def _txn_coordinator_config(self) -> TxnCoordinatorConfig:
        c = self.config
        existing = self.metadata.image.topic(TRANSACTION_STATE_TOPIC)
        return TxnCoordinatorConfig(
            num_partitions=(
                existing.partitions
                if existing is not None
                else c.transaction_state_log_num_partitions
            ),
            max_timeout_ms=c.transaction_max_timeout_ms,
            abort_timed_out_interval_ms=(
                c.transaction_abort_timed_out_transaction_cleanup_interval_ms
            ),
            transactional_id_expiration_ms=c.transactional_id_expiration_ms,
            remove_expired_interval_ms=(
                c.transaction_remove_expired_transaction_cleanup_interval_ms
            ),
        )

    def ensure_transaction_state_topic(self) -> None:
        """Create ``__transaction_state`` on first use, as Kafka does, compacted."""
        if self.metadata.image.topic(TRANSACTION_STATE_TOPIC) is None:
            self.create_topic(
                TRANSACTION_STATE_TOPIC,
                self.txn_coordinator.num_partitions,
                1,
                {
                    "cleanup.policy": "compact",
                    "segment.bytes": str(self.config.transaction_state_log_segment_bytes),
                    "compression.type": "uncompressed",
                    "unclean.leader.election.enable": "false",
                },
            )
        self.txn_coordinator.activate_all()

    def _append_txn_records(self, partition: int, records: Sequence[NewRecord]) -> Awaitable[None]:
        return self._append_internal(TRANSACTION_STATE_TOPIC, partition, records)

    async def _write_txn_markers(
        self, request: TxnMarkerRequest
    ) -> dict[tuple[str, int], ErrorCode]:
        return await write_markers(
            self,
            producer_id=request.producer_id,
            producer_epoch=request.producer_epoch,
            coordinator_epoch=request.coordinator_epoch,
            commit=request.commit,
            partitions=request.partitions,
        )

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
