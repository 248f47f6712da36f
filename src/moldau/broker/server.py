"""The broker process: composes metadata, logs and the listener, and owns background tasks.

``Broker`` is the composition root that handlers reach through ``ctx.broker``. It keeps the
operations that touch several layers (creating a topic = metadata + logs) in one place so that
CreateTopics, auto-creation in Metadata/Produce and CreatePartitions all share them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from kio.schema.errors import ErrorCode

from moldau.broker.auth.authorizer import ACL_AUTHORIZER_NAMES, AclAuthorizer, parse_super_users
from moldau.broker.config import BrokerConfig
from moldau.broker.errors import ApiError
from moldau.broker.handlers import load_all
from moldau.broker.http_server import HttpServer, start_http_server
from moldau.broker.listeners import BrokerListeners
from moldau.broker.notifier import AppendNotifier
from moldau.broker.peers import PeerClients
from moldau.broker.producer_ids import ClusterProducerIdManager, ProducerIdManager, ProducerIds
from moldau.broker.quotas import QuotaManager
from moldau.broker.txn_markers import write_markers
from moldau.cluster.metadata import (
    InvalidTopicError,
    MetadataImage,
    MetadataStore,
    TopicImage,
    collides,
    validate_topic_name,
)
from moldau.cluster.replica_manager import (
    PartitionError,
    ReplicaManager,
    ReplicationConfig,
    RoleChanges,
)
from moldau.cluster.security_store import LocalSecurityStore, SecurityStore
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
    from moldau.cluster.controller import Controller
    from moldau.cluster.etcd_store import ClusterMetadataStore
    from moldau.cluster.partition import Partition
    from moldau.cluster.replica_fetcher import ReplicaFetcherManager

log = logging.getLogger("moldau.broker")

MAX_PARTITIONS_PER_TOPIC = 10_000
STOP_STEP_TIMEOUT_S = 10.0
"""A shutdown step that hangs (a peer that never answers) must not keep the process alive."""
INTERNAL_WRITE_TIMEOUT_MS = 5_000
"""How long a coordinator's write waits for the ISR (Kafka's offsets.commit.timeout.ms)."""

_T = TypeVar("_T")


def _always() -> bool:
    return True


async def _done() -> None:
    """An awaitable that is already complete."""


class Broker:
    """One broker: config, metadata image, partition logs, listener, background tasks.

    Two modes share every code path below the metadata store. Single node (no
    ``moldau.metadata``): the image lives in the data directory and names this broker as
    every partition's only replica and leader. Cluster (``--metadata etcd://…``): the image
    comes from etcd by watch, a ``Controller`` may run here, followers fetch from leaders.
    Either way ``_apply_image`` turns each new image into log, replica-role and coordinator
    changes, so that a topic created by this broker and one created elsewhere take the same
    route.
    """

    def __init__(self, config: BrokerConfig) -> None:
        load_all()
        self.config = config
        self.node_id = config.node_id
        self.data_dir = Path(config.data_dir)
        # First: bad TLS files stop the broker before anything is opened or registered.
        self.listeners = BrokerListeners(config)
        self.cluster_store: ClusterMetadataStore | None = None
        self.controller: Controller | None = None
        self.fetchers: ReplicaFetcherManager | None = None
        self.local_metadata: MetadataStore | None = None
        self.security_store: SecurityStore
        if config.metadata_endpoints:
            from moldau.cluster.etcd_security_store import EtcdSecurityStore

            self.cluster_store = self._make_cluster_store()
            self.security_store = EtcdSecurityStore(self.cluster_store.client, config.etcd_prefix)
        else:
            self.local_metadata = MetadataStore(self.data_dir, config.node_id, config.cluster_id)
            self.security_store = LocalSecurityStore(self.data_dir)
        self.authorizer = self._make_authorizer()
        self.quotas = QuotaManager(
            config.get("quota.window.num"), config.get("quota.window.size.seconds")
        )
        self.quotas.update(self.security_store.image)
        self.security_store.subscribe(self.quotas.update)
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
        replication = self._replication_config()
        store = self.cluster_store
        if store is not None:
            from moldau.cluster.replica_fetcher import ReplicaFetcherManager

            self.fetchers = ReplicaFetcherManager(
                replication,
                self._broker_address,
                on_append=self.notifier.notify,
                security=self.listeners.inter_broker_security,
            )
            self.producer_ids: ProducerIds = ClusterProducerIdManager(store.allocate_producer_ids)
        else:
            self.producer_ids = ProducerIdManager(self.data_dir)
        self.replicas = ReplicaManager(
            replication,
            self.logs,
            log_config_for=self._log_config_for,
            alter_partition=store.compare_and_set_partition if store is not None else None,
            fetchers=self.fetchers,
            on_high_watermark=self.notifier.notify,
            lease_valid=store.lease_valid if store is not None else _always,
        )
        self.peers = PeerClients(
            self.node_id, self.inter_broker_endpoint, self.listeners.inter_broker_security
        )
        self._applied_image: MetadataImage | None = None
        self._build_coordinators()
        self.connections: set[KafkaConnection] = set()
        self._http_server: HttpServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._creating_internal: set[str] = set()

    def _make_authorizer(self) -> AclAuthorizer | None:
        """The ACL authorizer when ``authorizer.class.name`` asks for one, following the
        security store's ACLs; None (everything allowed) otherwise."""
        name = str(self.config.get("authorizer.class.name") or "").strip()
        if not name:
            return None
        if name not in ACL_AUTHORIZER_NAMES:
            raise ConfigError(
                f"Invalid value {name} for configuration authorizer.class.name: moldau's "
                "authorizer is 'acl' (Kafka's StandardAuthorizer class name is accepted too)"
            )
        try:
            super_users = parse_super_users(self.config.get("super.users"))
        except ValueError as exc:
            raise ConfigError(f"Invalid value for configuration super.users: {exc}") from None
        authorizer = AclAuthorizer(
            super_users, allow_if_no_acl=bool(self.config.get("allow.everyone.if.no.acl.found"))
        )
        authorizer.update(self.security_store.image)
        self.security_store.subscribe(authorizer.update)
        return authorizer

    def _make_cluster_store(self) -> ClusterMetadataStore:
        from moldau.cluster.etcd_store import ClusterMetadataStore
        from moldau.cluster.state import BrokerRegistration, ListenerEndpoint

        c = self.config
        registration = BrokerRegistration(
            node_id=c.node_id,
            host=c.advertised_host,
            port=c.advertised_port,
            rack=c.broker_rack,
            incarnation=uuid.uuid4().hex,
            endpoints=tuple(
                ListenerEndpoint(e.listener_name, e.host, e.port, e.security_protocol)
                for e in self.listeners.advertised_endpoints()
            ),
        )
        return ClusterMetadataStore(
            c.metadata_endpoints,
            node_id=c.node_id,
            registration=registration,
            data_dir=self.data_dir,
            session_timeout_ms=c.broker_session_timeout_ms,
            heartbeat_interval_ms=c.broker_heartbeat_interval_ms,
            prefix=c.etcd_prefix,
            cluster_id=c.cluster_id,
            startup_timeout_s=c.etcd_startup_timeout_ms / 1000,
        )

    def _replication_config(self) -> ReplicationConfig:
        c = self.config
        return ReplicationConfig(
            node_id=c.node_id,
            replica_lag_time_max_ms=c.replica_lag_time_max_ms,
            replica_fetch_wait_max_ms=c.replica_fetch_wait_max_ms,
            replica_fetch_min_bytes=c.replica_fetch_min_bytes,
            replica_fetch_max_bytes=c.replica_fetch_max_bytes,
            replica_fetch_response_max_bytes=c.replica_fetch_response_max_bytes,
            replica_fetch_backoff_ms=c.replica_fetch_backoff_ms,
        )

    def _build_coordinators(self) -> None:
        """(Re)build both coordinator runtimes; their partition counts come from the image,
        so in cluster mode this runs again once the store has loaded it."""
        self.group_coordinator = GroupCoordinatorRuntime(
            self._group_coordinator_config(), self._append_group_records
        )
        self.txn_coordinator = TransactionCoordinatorRuntime(
            self._txn_coordinator_config(),
            self._append_txn_records,
            self._write_txn_markers,
            self.producer_ids.next_id,
        )

    @property
    def metadata(self) -> MetadataStore | ClusterMetadataStore:
        """The metadata store; handlers read ``broker.metadata.image``."""
        if self.cluster_store is not None:
            return self.cluster_store
        assert self.local_metadata is not None
        return self.local_metadata

    @property
    def is_cluster(self) -> bool:
        return self.cluster_store is not None

    @property
    def cluster_id(self) -> str:
        return self.metadata.image.cluster_id

    @property
    def advertised(self) -> tuple[str, int]:
        """Where clients of the client listener reach us (the bound port for port 0)."""
        return self.advertised_for(self.config.listener_name) or (
            self.config.advertised_host,
            self.config.advertised_port,
        )

    def advertised_for(self, listener_name: str | None) -> tuple[str, int] | None:
        """Our advertised endpoint on ``listener_name`` (None: that listener is not
        advertised); None as the name means the client listener."""
        if listener_name is None:
            return self.advertised
        return self.listeners.advertised(listener_name)

    def _broker_address(self, node_id: int) -> tuple[str, int] | None:
        """A peer's endpoint on the inter-broker listener (replica fetchers, markers)."""
        registration = self.metadata.image.brokers.get(node_id)
        if registration is None:
            return None
        return registration.endpoint(self.listeners.inter_broker_listener_name)

    def inter_broker_endpoint(self, node_id: int) -> tuple[str, int] | None:
        """Where another broker's requests to ``node_id`` go: its inter-broker listener."""
        if node_id == self.node_id:
            return self.advertised_for(self.listeners.inter_broker_listener_name)
        return self._broker_address(node_id)

    def broker_endpoint(
        self, node_id: int, listener_name: str | None = None
    ) -> tuple[str, int] | None:
        """Where clients of ``listener_name`` (None: the client listener) reach broker
        ``node_id``: ourselves, or a live registration that has that listener."""
        if node_id == self.node_id:
            return self.advertised_for(listener_name)
        registration = self.metadata.image.brokers.get(node_id)
        if registration is None:
            return None
        return registration.endpoint(listener_name or self.config.listener_name)

    def live_broker_ids(self) -> list[int]:
        if self.cluster_store is None:
            return [self.node_id]
        return sorted(self.metadata.image.brokers)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        store = self.cluster_store
        if store is not None:
            await store.start()
            await self.security_store.start()
            self._build_coordinators()
            if isinstance(self.producer_ids, ClusterProducerIdManager):
                await self.producer_ids.prefetch()
        image = self.metadata.image
        configs = {name: self.topic_log_config(topic) for name, topic in image.topics.items()}
        await asyncio.to_thread(self.logs.open_all, configs)
        loop = asyncio.get_running_loop()
        from moldau.broker.connection import KafkaConnection

        if self.config.metrics_listen is not None:
            # Before the Kafka port: whoever waits for that port finds this one up too.
            host, port = self.config.metrics_listen
            self._http_server = await start_http_server(self, host, port)
        self._tasks = [
            loop.create_task(self._retention_loop()),
            loop.create_task(self._flush_loop()),
        ]
        self.cleaner.start()
        self.group_coordinator.start()
        self.txn_coordinator.start()
        self.replicas.start()
        self._apply_image(image)
        self._drop_stray_logs(image)
        if store is not None:
            store.subscribe(self._apply_image)
            store.on_lease_state(self.replicas.on_lease_state)
            self._start_controller(store)
        await self.listeners.start(
            lambda endpoint: KafkaConnection(
                self, endpoint.listener_name, endpoint.security_protocol
            )
        )

    def _start_controller(self, store: ClusterMetadataStore) -> None:
        from moldau.cluster.controller import Controller, ControllerConfig

        c = self.config
        self.controller = Controller(
            self.node_id,
            store,
            ControllerConfig(
                unclean_leader_election_enable=self.default_log_config.unclean_leader_election_enable,
                auto_leader_rebalance_enable=c.auto_leader_rebalance_enable,
                leader_imbalance_check_interval_seconds=c.leader_imbalance_check_interval_seconds,
            ),
        )
        self.controller.start()

    def _drop_stray_logs(self, image: MetadataImage) -> None:
        """Delete logs on disk that no longer belong here: their topic was deleted (or
        recreated) while we were down, or the partition was reassigned away."""
        for partition_log in self.logs.all_logs():
            topic, _, index = partition_log.name.rpartition("-")
            if not index.isdigit():
                continue
            if self.replicas.get(topic, int(index)) is None:
                log.info("deleting %s: not a replica here any more", partition_log.name)
                self.logs.delete_log(topic, int(index))

    async def stop(self) -> None:
        """Clean shutdown: hand leadership over (cluster), stop accepting, drop
        connections, flush and close every log."""
        store = self.cluster_store
        if store is not None and self.config.controlled_shutdown_enable:
            await self._controlled_shutdown(store)
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("listeners", self._close_listeners),
            ("controller", self._close_controller),
            ("transaction coordinator", self.txn_coordinator.close),
            ("group coordinator", self.group_coordinator.close),
            ("background tasks", self._cancel_tasks),
            ("replicas", self.replicas.close),
            ("peer connections", self.peers.close),
            ("replica fetchers", self._close_fetchers),
            ("security store", self.security_store.close),
            ("metadata store", self._close_store),
            ("log cleaner", self.cleaner.close),
        ]
        for name, step in steps:
            log.debug("stopping %s", name)
            try:
                await asyncio.wait_for(step(), STOP_STEP_TIMEOUT_S)
            except TimeoutError:
                log.warning("stopping the %s took over %.0fs; going on", name, STOP_STEP_TIMEOUT_S)
            except Exception:
                log.exception("stopping the %s failed; going on", name)
        await asyncio.to_thread(self.logs.close)

    async def _close_listeners(self) -> None:
        if self._http_server is not None:
            self._http_server.close()
            await self._http_server.wait_closed()
        self.listeners.close()
        for conn in list(self.connections):
            conn.close()

    async def _close_controller(self) -> None:
        if self.controller is not None:
            await self.controller.close()

    async def _cancel_tasks(self) -> None:
        tasks = [*self._tasks, *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _close_fetchers(self) -> None:
        if self.fetchers is not None:
            await self.fetchers.close()

    async def _close_store(self) -> None:
        if self.cluster_store is not None:
            await self.cluster_store.close(deregister=True)

    async def _controlled_shutdown(self, store: ClusterMetadataStore) -> None:
        """Ask the controller to move our leaderships away, and wait (bounded) until the
        image shows that we lead nothing that another ISR member could lead."""
        timeout_s = self.config.controlled_shutdown_timeout_ms / 1000
        deadline = time.monotonic() + timeout_s
        try:
            await asyncio.wait_for(store.set_shutting_down(), timeout_s)
        except Exception as exc:
            log.warning("controlled shutdown: could not announce it: %s", exc)
            return
        while time.monotonic() < deadline:
            if not self._leads_movable_partitions():
                log.info("controlled shutdown: leadership handed over")
                return
            await asyncio.sleep(0.1)
        log.warning("controlled shutdown: still leading partitions after %.1fs", timeout_s)

    def _leads_movable_partitions(self) -> bool:
        image = self.metadata.image
        dead_or_leaving = {b.node_id for b in image.brokers.values() if b.shutting_down} | {
            self.node_id
        }
        for states in image.partitions.values():
            for state in states:
                if state.leader != self.node_id:
                    continue
                if any(r not in dead_or_leaving and r in image.brokers for r in state.isr):
                    return True
        return False

    # -- metadata image → logs, replicas, coordinators ---------------------------------

    def _apply_image(self, image: MetadataImage) -> None:
        """Make this broker match ``image``: topic configs, deleted topics, replica roles,
        coordinator shards. Runs on the loop after every metadata change."""
        old = self._applied_image
        self._applied_image = image
        deleted: list[str] = []
        if old is not None:
            for name, topic in old.topics.items():
                new = image.topics.get(name)
                if new is None or new.topic_id != topic.topic_id:
                    deleted.append(name)
                elif new.configs != topic.configs:
                    self.logs.update_topic_config(name, self.topic_log_config(new))
        try:
            changes = self.replicas.apply_image(image)
        except Exception:
            log.exception("applying the metadata image failed")
            return
        for name in deleted:
            if name not in image.topics:
                self.logs.delete_topic(name)
                log.info("deleted topic %s", name)
        self._move_coordinators(changes)

    def _move_coordinators(self, changes: RoleChanges) -> None:
        """Coordinators live on the leaders of their internal partitions (Kafka's rule):
        load a shard when we become leader, drop it when we stop."""
        for topic, partition, leader_epoch in changes.became_leader:
            if topic not in (GROUP_METADATA_TOPIC, TRANSACTION_STATE_TOPIC):
                continue
            replica = self.replicas.get(topic, partition)
            if replica is None:
                continue
            fresh = replica.log.log_end_offset == 0
            if topic == GROUP_METADATA_TOPIC:
                if fresh:
                    self.group_coordinator.activate(partition)
                else:
                    self._keep(self.group_coordinator.load(partition, replica.log))
            elif fresh:
                self.txn_coordinator.activate(partition, leader_epoch)
            else:
                self._keep(self.txn_coordinator.load(partition, replica.log, leader_epoch))
        for topic, partition in [*changes.became_follower, *changes.removed]:
            if topic == GROUP_METADATA_TOPIC:
                self.group_coordinator.unload(partition)
            elif topic == TRANSACTION_STATE_TOPIC:
                self.txn_coordinator.unload(partition)

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- topics --------------------------------------------------------------------------

    def topic_log_config(self, topic: TopicImage) -> LogConfig:
        return self.default_log_config.with_overrides(topic.configs)

    def _log_config_for(self, name: str) -> LogConfig:
        topic = self.metadata.image.topic(name)
        return self.default_log_config if topic is None else self.topic_log_config(topic)

    def get_log(self, topic: str, partition: int) -> PartitionLog | None:
        return self.logs.get_log(topic, partition)

    def leader_partition(self, topic: str, partition: int) -> Partition:
        """The partition if this broker leads it now; raises PartitionError otherwise."""
        return self.replicas.leader_partition(topic, partition)

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
        available = len(self._placeable_brokers())
        if replication_factor > available:
            raise ApiError(
                ErrorCode.invalid_replication_factor,
                f"Replication factor: {replication_factor} larger than available brokers: "
                f"{available}.",
            )
        try:
            self.default_log_config.with_overrides(configs)
        except ConfigError as exc:
            raise ApiError(ErrorCode.invalid_config, str(exc)) from None

    def _placeable_brokers(self) -> list[int]:
        if self.cluster_store is None:
            return [self.node_id]
        return [b.node_id for b in self.metadata.image.brokers.values() if not b.shutting_down]

    async def create_topic(
        self,
        name: str,
        partitions: int | None = None,
        replication_factor: int | None = None,
        configs: Mapping[str, str] | None = None,
    ) -> TopicImage:
        """Create a topic: metadata first; the logs follow from the new image."""
        partitions = self.config.num_partitions if partitions in (None, -1) else partitions
        if replication_factor in (None, -1):
            replication_factor = self.config.default_replication_factor
        assert partitions is not None and replication_factor is not None
        configs = dict(configs or {})
        self.validate_new_topic(name, partitions, replication_factor, configs)
        store = self.cluster_store
        if store is None:
            assert self.local_metadata is not None
            topic = self.local_metadata.create_topic(name, partitions, configs, replication_factor)
            self._apply_image(self.metadata.image)
        else:
            topic = await self._cluster_call(
                store.create_topic(name, partitions, replication_factor, configs)
            )
        log.info(
            "created topic %s with %d partitions, replication factor %d",
            name,
            partitions,
            replication_factor,
        )
        return topic

    async def _cluster_call(self, call: Awaitable[_T]) -> _T:
        """Run a metadata-store mutation, turning its errors into Kafka error codes."""
        from moldau.cluster import errors as cluster_errors
        from moldau.cluster.placement import PlacementError

        try:
            return await call
        except cluster_errors.TopicExistsError as exc:
            raise ApiError(ErrorCode.topic_already_exists, str(exc)) from None
        except cluster_errors.UnknownTopicError as exc:
            raise ApiError(ErrorCode.unknown_topic_or_partition, str(exc)) from None
        except PlacementError as exc:
            raise ApiError(ErrorCode.invalid_replication_factor, str(exc)) from None
        except ValueError as exc:
            # The store's count checks (fewer partitions than now, none at all).
            raise ApiError(ErrorCode.invalid_partitions, str(exc)) from None
        except cluster_errors.EtcdError as exc:
            raise ApiError(
                ErrorCode.request_timed_out, f"the metadata store is unavailable: {exc}"
            ) from None

    async def maybe_auto_create(self, name: str) -> TopicImage | None:
        """The topic, auto-created with broker defaults when allowed; None when not."""
        topic = self.metadata.image.topic(name)
        if topic is not None:
            return topic
        if not self.config.auto_create_topics_enable:
            return None
        return await self.create_topic(name)

    async def delete_topic(self, name: str) -> None:
        store = self.cluster_store
        if store is None:
            assert self.local_metadata is not None
            self.local_metadata.delete_topic(name)
            self._apply_image(self.metadata.image)
        else:
            await self._cluster_call(store.delete_topic(name))
        log.info("deleted topic %s", name)

    async def add_partitions(self, name: str, count: int) -> TopicImage:
        store = self.cluster_store
        if store is None:
            assert self.local_metadata is not None
            topic = self.local_metadata.set_partitions(name, count)
            self._apply_image(self.metadata.image)
            return topic
        return await self._cluster_call(store.add_partitions(name, count))

    async def set_topic_configs(self, name: str, configs: Mapping[str, str]) -> TopicImage:
        try:
            self.default_log_config.with_overrides(configs)
        except ConfigError as exc:
            raise ApiError(ErrorCode.invalid_config, str(exc)) from None
        store = self.cluster_store
        if store is None:
            assert self.local_metadata is not None
            topic = self.local_metadata.set_configs(name, configs)
            self._apply_image(self.metadata.image)
            return topic
        return await self._cluster_call(store.set_topic_configs(name, configs))

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
        """Create ``__consumer_offsets`` on first use, as Kafka does, compacted.

        Single node: at once, and this broker owns every (empty) shard. Cluster: the creation
        runs in the background; until the image has the topic, FindCoordinator answers
        COORDINATOR_NOT_AVAILABLE and clients retry, as with Kafka."""
        self._ensure_internal_topic(
            GROUP_METADATA_TOPIC,
            self.group_coordinator.num_partitions,
            self.config.offsets_topic_replication_factor,
            {
                "cleanup.policy": "compact",
                "segment.bytes": str(self.config.offsets_topic_segment_bytes),
                "compression.type": "producer",
            },
        )

    def _ensure_internal_topic(
        self, name: str, partitions: int, replication_factor: int, configs: dict[str, str]
    ) -> None:
        if self.metadata.image.topic(name) is not None:
            return
        # Capped by the brokers there are, so a one-broker cluster (or a single node) works.
        replication_factor = max(1, min(replication_factor, len(self._placeable_brokers())))
        if "min.insync.replicas" in configs:
            configs["min.insync.replicas"] = str(
                min(int(configs["min.insync.replicas"]), replication_factor)
            )
        if self.cluster_store is None:
            assert self.local_metadata is not None
            self.local_metadata.create_topic(name, partitions, configs, replication_factor)
            self._apply_image(self.metadata.image)
            return
        if name in self._creating_internal:
            return
        self._creating_internal.add(name)

        async def create() -> None:
            try:
                await self.create_topic(name, partitions, replication_factor, configs)
            except ApiError as exc:
                if exc.error_code != ErrorCode.topic_already_exists:
                    log.warning("could not create %s: %s", name, exc.message)
            finally:
                self._creating_internal.discard(name)

        self._keep(asyncio.get_running_loop().create_task(create()))

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
        """Append a coordinator's batch to an internal topic as its leader; return the wait
        for acks=all (replicated to the ISR and, by default, fsynced), as Kafka's
        coordinators write with acks=-1."""
        try:
            replica = self.replicas.leader_partition(topic, partition)
        except PartitionError as exc:
            raise LogAppendError(exc.error_code, exc.message) from None
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
        info = replica.append_as_leader(
            batch, now_ms=now_ms, origin=AppendOrigin.COORDINATOR, required_acks=-1
        )
        self.notifier.notify(topic, partition)
        return self.acks_all(replica, info.last_offset)

    def acks_all(self, replica: Partition, last_offset: int) -> Awaitable[None]:
        """What an acks=all write owes its writer: the ISR has it, and it is durable per
        the flush policy. Raises LogAppendError with the replication error otherwise."""
        durable = self.durable(replica.log, last_offset)
        replicated = replica.wait_for_replication(last_offset, INTERNAL_WRITE_TIMEOUT_MS)

        async def wait() -> None:
            error = await replicated
            await durable
            if error != ErrorCode.none:
                raise LogAppendError(error, f"{replica.log.name}: write not replicated")

        return wait()

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
        self._ensure_internal_topic(
            TRANSACTION_STATE_TOPIC,
            self.txn_coordinator.num_partitions,
            self.config.transaction_state_log_replication_factor,
            {
                "cleanup.policy": "compact",
                "segment.bytes": str(self.config.transaction_state_log_segment_bytes),
                "compression.type": "uncompressed",
                "unclean.leader.election.enable": "false",
                "min.insync.replicas": str(self.config.transaction_state_log_min_isr),
            },
        )

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
