"""The cluster metadata store: the metadata image kept in etcd and followed by watch.

Key layout under the prefix (default ``/moldau``), values UTF-8 JSON::

    cluster_id              "<22-char id>"                 created once (create-if-absent)
    brokers/<node_id>       registration + "directory_id"  on the broker's lease
    controller              {"node_id": N}                 on the controller's lease
    topics/<name>           {"topic_id", "partitions", "replication_factor", "configs"}
    partitions/<name>/<p>   PartitionState JSON            changed by CAS on mod_revision
    producer_ids/next       "<next free producer id>"      block allocation by CAS

How the image follows etcd: ``start()`` reads the whole prefix once, then one watch task
applies every watch response as a unit (etcd never splits a revision over two responses, so
a multi-key transaction is seen all at once), builds a new immutable ``MetadataImage`` and
calls the subscribers. A topic is in the image only when its topic key and all of its
partition keys are present, so big topics written in several transactions appear whole.

Read-your-writes: a mutator waits until the watch has applied the revision of its own
transaction before returning, so a broker that creates a topic and answers the client at
once never answers from an image without it. This is why only writes under the prefix are
ever waited for: the watch sees nothing else.

Liveness: the registration lives on a lease of TTL ``ceil(session_timeout_ms / 1000)`` (at
least 2 s) refreshed every ``heartbeat_interval_ms``. ``lease_valid()`` is judged locally from
the *send* time of the last successful keepalive, so it turns false no later than etcd
expires the lease; a leader uses it to stop accepting writes it may no longer own. When etcd
reports the lease gone, the store grants a new one and registers again.

Everything runs on one event loop; the only state shared between tasks (the entry maps and
the image) is changed synchronously inside ``_apply``, never across an ``await``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from moldau.cluster.errors import (
    ClusterIdMismatchError,
    EtcdError,
    NodeIdInUseError,
    TopicExistsError,
    UnknownTopicError,
    WatchCompacted,
)
from moldau.cluster.etcd_client import (
    EtcdClient,
    KeyValue,
    WatchEvent,
    compare_create_revision,
    compare_exists,
    compare_lease,
    compare_mod_revision,
    op_delete,
    op_get,
    op_put,
)
from moldau.cluster.metadata import MetadataImage, TopicImage, new_cluster_id
from moldau.cluster.placement import PlacementError, assign_replicas
from moldau.cluster.state import BrokerRegistration, PartitionState

log = logging.getLogger("moldau.cluster.etcd")

MAX_KEYS_PER_TXN = 100
"""etcd refuses transactions of more than 128 operations (``--max-txn-ops``)."""
WRITE_WAIT_TIMEOUT_S = 30.0
STARTUP_LOG_INTERVAL_S = 5.0
NODE_ID_POLL_S = 0.2

ImageCallback = Callable[[MetadataImage], None]
LeaseCallback = Callable[[bool], None]


class ClusterMetadataStore:
    """The broker's view of cluster metadata in etcd: registration, lease, image, mutations.

    Same read surface as the single-node ``MetadataStore`` (``image``), plus the cluster
    operations the controller and admin handlers need. Mutations are compare-and-swap
    transactions; each returns once the local image reflects it. Create one per broker,
    ``await start()``, and ``await close()`` on shutdown.

    ``directory_id`` defaults to the ``directory.id`` of ``<data_dir>/meta.properties``
    (generated and appended there on first start); it is what tells a restart of this broker
    from another broker configured with the same node id. ``startup_timeout_s`` bounds how
    long ``start`` waits for an unreachable etcd; ``etcd_timeout_s`` is the per-request timeout.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        node_id: int,
        registration: BrokerRegistration,
        directory_id: str | None = None,
        data_dir: Path,
        session_timeout_ms: int = 9000,
        heartbeat_interval_ms: int = 2000,
        prefix: str = "/moldau",
        cluster_id: str | None = None,
        startup_timeout_s: float = 60.0,
        etcd_timeout_s: float = 5.0,
    ) -> None:
        self.node_id = node_id
        self._registration = registration
        self._directory_id = directory_id
        self._data_dir = data_dir
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.lease_ttl_s = max(2, math.ceil(session_timeout_ms / 1000))
        self._prefix = prefix.rstrip("/")
        self._root = self._prefix + "/"
        self._configured_cluster_id = cluster_id
        self._startup_timeout_s = startup_timeout_s
        self._client = EtcdClient(endpoints, timeout_s=etcd_timeout_s)

        self._cluster_id = cluster_id or ""
        self._lease_id = 0
        self._last_keepalive = -math.inf  # monotonic send time of the last refresh that worked
        self._reported_valid = False
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._image_callbacks: list[ImageCallback] = []
        self._lease_callbacks: list[LeaseCallback] = []

        # Raw entries as etcd holds them (including incomplete topics), and the image.
        self._topic_entries: dict[str, TopicImage] = {}
        self._partition_entries: dict[str, dict[int, tuple[PartitionState, int]]] = {}
        self._broker_entries: dict[int, BrokerRegistration] = {}
        self._controller_id = -1
        self._topics: dict[str, TopicImage] = {}
        self._partitions: dict[str, tuple[PartitionState, ...]] = {}
        self._image = MetadataImage(cluster_id=self._cluster_id, topics=MappingProxyType({}))
        self._applied_revision = 0
        self._revision_waiters: list[tuple[int, asyncio.Future[None]]] = []

    # -- read surface ---------------------------------------------------------------------

    @property
    def image(self) -> MetadataImage:
        return self._image

    @property
    def cluster_id(self) -> str:
        return self._cluster_id

    @property
    def directory_id(self) -> str | None:
        return self._directory_id

    @property
    def lease_id(self) -> int:
        return self._lease_id

    @property
    def applied_revision(self) -> int:
        """The etcd revision the image reflects."""
        return self._applied_revision

    @property
    def client(self) -> EtcdClient:
        return self._client

    def subscribe(self, callback: ImageCallback) -> None:
        """Call ``callback(image)`` after every image change, and once when ``start`` ends."""
        self._image_callbacks.append(callback)

    def on_lease_state(self, callback: LeaseCallback) -> None:
        """Call ``callback(valid)`` whenever ``lease_valid()`` flips."""
        self._lease_callbacks.append(callback)

    def lease_valid(self) -> bool:
        """True while the last successful keepalive was sent less than a session ago."""
        if self._closed or not self._lease_id:
            return False
        elapsed_ms = (time.monotonic() - self._last_keepalive) * 1000
        return elapsed_ms < self.session_timeout_ms

    # -- keys -----------------------------------------------------------------------------

    def _key(self, *parts: object) -> str:
        return self._root + "/".join(str(p) for p in parts)

    def _broker_key(self, node_id: int) -> str:
        return self._key("brokers", node_id)

    def _partition_key(self, topic: str, partition: int) -> str:
        return self._key("partitions", topic, partition)

    # -- start / stop ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, check the cluster id, register, load the image, start the background
        tasks. Raises ``EtcdError`` (etcd unreachable for ``startup_timeout_s``),
        ``ClusterIdMismatchError`` or ``NodeIdInUseError``, after closing the store (its
        lease revoked, its connections closed)."""
        try:
            await self._start()
        except BaseException:
            await self.close()
            raise

    async def _start(self) -> None:
        await self._wait_for_etcd()
        await self._ensure_cluster_id()
        sent = time.monotonic()
        self._lease_id = await self._client.lease_grant(self.lease_ttl_s)
        self._last_keepalive = sent
        await self._register()
        self._reported_valid = True
        kvs, revision = await self._client.range_prefix(self._root)
        self._rebuild(kvs, revision, notify=False)
        self._tasks = [
            asyncio.create_task(self._watch_loop(), name="etcd-watch"),
            asyncio.create_task(self._keepalive_loop(), name="etcd-keepalive"),
            asyncio.create_task(self._lease_watchdog(), name="etcd-lease-watchdog"),
        ]
        self._notify_image()

    async def close(self, *, deregister: bool = True) -> None:
        """Stop the background tasks; with ``deregister`` revoke the lease, which deletes the
        registration (and the controller key if held) at once instead of after the TTL."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("etcd background task %s failed", task.get_name())
        self._tasks = []
        for _, future in self._revision_waiters:
            if not future.done():
                future.set_exception(EtcdError("metadata store closed"))
        self._revision_waiters = []
        if deregister and self._lease_id:
            try:
                await self._client.lease_revoke(self._lease_id)
            except EtcdError as exc:
                log.warning("could not revoke etcd lease on close: %s", exc)
        await self._client.close()

    async def _wait_for_etcd(self) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        next_log = 0.0
        while True:
            try:
                await self._client.get(self._key("cluster_id"))
                return
            except EtcdError as exc:
                now = time.monotonic()
                if now >= deadline:
                    raise EtcdError(str(exc)) from None
                if now >= next_log:
                    log.warning(
                        "%s; retrying for up to %.0f s more",
                        exc,
                        max(deadline - now, 0.0),
                    )
                    next_log = now + STARTUP_LOG_INTERVAL_S
                await asyncio.sleep(min(0.5, max(deadline - now, 0.0)))

    # -- cluster id and meta.properties ---------------------------------------------------

    async def _ensure_cluster_id(self) -> None:
        path = self._data_dir / "meta.properties"
        lines, props = _read_properties(path)
        local_id = props.get("cluster.id")
        if local_id and self._configured_cluster_id and local_id != self._configured_cluster_id:
            raise ClusterIdMismatchError(
                f"data directory {self._data_dir} belongs to cluster {local_id}, "
                f"not the configured cluster.id {self._configured_cluster_id}"
            )
        local_node = props.get("node.id")
        if local_node is not None and local_node != str(self.node_id):
            raise ClusterIdMismatchError(
                f"data directory {self._data_dir} belongs to node {local_node}, "
                f"not node {self.node_id}"
            )
        candidate = local_id or self._configured_cluster_id or new_cluster_id()
        key = self._key("cluster_id")
        result = await self._client.txn(
            [compare_create_revision(key, 0)], [op_put(key, json.dumps(candidate))], [op_get(key)]
        )
        if result.succeeded:
            etcd_id = candidate
            log.info("created cluster id %s in etcd under %s", etcd_id, self._prefix)
        else:
            kvs = result.range_kvs(0)
            etcd_id = str(json.loads(kvs[0].value)) if kvs else candidate
        where = f"etcd at {self._client.endpoint} (prefix {self._prefix})"
        if local_id and local_id != etcd_id:
            raise ClusterIdMismatchError(
                f"data directory {self._data_dir} belongs to cluster {local_id}, "
                f"but {where} holds cluster {etcd_id}"
            )
        if self._configured_cluster_id and self._configured_cluster_id != etcd_id:
            raise ClusterIdMismatchError(
                f"configured cluster.id {self._configured_cluster_id} does not match "
                f"cluster {etcd_id} held by {where}"
            )
        self._cluster_id = etcd_id
        self._directory_id = self._directory_id or props.get("directory.id") or new_directory_id()
        wanted = {
            "version": "1",
            "cluster.id": etcd_id,
            "node.id": str(self.node_id),
            "directory.id": self._directory_id,
        }
        missing = [f"{k}={v}" for k, v in wanted.items() if k not in props]
        if missing:
            if not lines:
                lines = ["#moldau metadata"]
            await asyncio.to_thread(_write_properties, path, [*lines, *missing])

    # -- registration and lease -----------------------------------------------------------

    def _registration_value(self) -> str:
        data: dict[str, Any] = json.loads(self._registration.to_json())
        data["directory_id"] = self._directory_id
        return json.dumps(data, sort_keys=True)

    async def _register(self) -> int:
        """Write our registration on our lease; returns the write's revision.

        A key left by an earlier run of this same data directory (same ``directory_id``) is
        taken over at once with a CAS on its mod_revision: it is our own ghost, waiting for
        its lease to expire would only delay the restart. A key of another directory is a
        different live broker with our node id, or a dead one whose lease has not expired
        yet: wait up to 1.5 times the session timeout for it to vanish, then give up.
        """
        key = self._broker_key(self.node_id)
        deadline = time.monotonic() + 1.5 * self.session_timeout_ms / 1000
        while True:
            value = self._registration_value()
            result = await self._client.txn(
                [compare_create_revision(key, 0)],
                [op_put(key, value, self._lease_id)],
                [op_get(key)],
            )
            if result.succeeded:
                return result.revision
            kvs = result.range_kvs(0)
            if not kvs:
                continue  # vanished between compare and read
            existing = kvs[0]
            other_dir, host_port = _registration_origin(existing.value)
            if existing.lease == self._lease_id or other_dir == self._directory_id:
                if existing.lease != self._lease_id:
                    log.info(
                        "node id %d: replacing the registration left by an earlier run of "
                        "this data directory",
                        self.node_id,
                    )
                swap = await self._client.txn(
                    [compare_mod_revision(key, existing.mod_revision)],
                    [op_put(key, value, self._lease_id)],
                )
                if swap.succeeded:
                    return swap.revision
                continue
            if time.monotonic() >= deadline:
                raise NodeIdInUseError(
                    f"node id {self.node_id} is already registered by a live broker at {host_port}"
                )
            await asyncio.sleep(NODE_ID_POLL_S)

    async def _keepalive_loop(self) -> None:
        interval_s = self.heartbeat_interval_ms / 1000
        failures = 0
        while True:
            sent = time.monotonic()
            try:
                ttl = await self._client.lease_keepalive(self._lease_id)
            except EtcdError as exc:
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    log.warning("etcd lease keepalive failed (%d in a row): %s", failures, exc)
                self._update_lease_state()
                await asyncio.sleep(min(interval_s, 0.5))
                continue
            if ttl > 0:
                if failures:
                    log.info("etcd lease keepalive works again after %d failures", failures)
                failures = 0
                self._last_keepalive = sent
                self._update_lease_state()
            else:
                failures = 0
                log.warning("etcd lease %x is gone (expired); registering again", self._lease_id)
                try:
                    await self._reacquire_lease()
                except (EtcdError, NodeIdInUseError) as exc:
                    log.error("could not register again with etcd: %s", exc)
                    self._update_lease_state()
                    await asyncio.sleep(interval_s)
                    continue
            await asyncio.sleep(interval_s)

    async def _reacquire_lease(self) -> None:
        self._last_keepalive = -math.inf
        self._update_lease_state()
        sent = time.monotonic()
        lease_id = await self._client.lease_grant(self.lease_ttl_s)
        self._lease_id = lease_id
        try:
            await self._register()
        except BaseException:
            with contextlib.suppress(EtcdError):
                await self._client.lease_revoke(lease_id)
            raise
        self._last_keepalive = sent
        self._update_lease_state()
        log.info("registered again with etcd lease %x", lease_id)

    async def _lease_watchdog(self) -> None:
        """Report the lease lapsing on time even while a keepalive hangs (etcd paused)."""
        while True:
            self._update_lease_state()
            if self._reported_valid:
                remaining_s = self._last_keepalive + self.session_timeout_ms / 1000
                delay = max(remaining_s - time.monotonic(), 0.0) + 0.01
            else:
                delay = self.heartbeat_interval_ms / 1000
            await asyncio.sleep(delay)

    def _update_lease_state(self) -> None:
        valid = self.lease_valid()
        if valid == self._reported_valid:
            return
        self._reported_valid = valid
        if valid:
            log.info("etcd lease valid again")
        else:
            log.warning(
                "etcd lease lapsed: no successful keepalive for %d ms", self.session_timeout_ms
            )
        for callback in list(self._lease_callbacks):
            try:
                callback(valid)
            except Exception:
                log.exception("lease state callback failed")

    async def set_shutting_down(self) -> None:
        """Mark our registration ``shutting_down`` (controlled shutdown asks the controller to
        move leadership away); later re-registrations keep the flag."""
        self._registration = replace(self._registration, shutting_down=True)
        key = self._broker_key(self.node_id)
        result = await self._client.txn(
            [compare_lease(key, self._lease_id)],
            [op_put(key, self._registration_value(), self._lease_id)],
        )
        if result.succeeded:
            await self._wait_applied(result.revision)

    # -- controller -----------------------------------------------------------------------

    async def try_become_controller(self) -> bool:
        """Create the controller key on our lease if nobody holds it; True if we hold it."""
        if not self.lease_valid():
            return False
        key = self._key("controller")
        result = await self._client.txn(
            [compare_create_revision(key, 0)],
            [op_put(key, json.dumps({"node_id": self.node_id}), self._lease_id)],
            [op_get(key)],
        )
        if result.succeeded:
            await self._wait_applied(result.revision)
            return True
        kvs = result.range_kvs(0)
        return bool(kvs) and kvs[0].lease == self._lease_id

    async def resign_controller(self) -> None:
        key = self._key("controller")
        result = await self._client.txn([compare_lease(key, self._lease_id)], [op_delete(key)])
        if result.succeeded:
            await self._wait_applied(result.revision)

    # -- topics ---------------------------------------------------------------------------

    async def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        configs: Mapping[str, str],
        topic_id: uuid.UUID | None = None,
    ) -> TopicImage:
        """Create a topic with replicas placed over the live, not-shutting-down brokers.

        Up to ``MAX_KEYS_PER_TXN`` keys go in one transaction; a bigger topic writes its
        partition keys in chunks first and the topic key last, so it appears in images only
        once complete. Every chunk is conditional on the topic key being absent. (Two brokers
        creating the same big topic at the same moment can mix their partition placements;
        only one topic key wins.)
        """
        if partitions < 1:
            raise ValueError("Number of partitions must be larger than 0.")
        if name in self._topic_entries:
            raise TopicExistsError(f"Topic '{name}' already exists.")
        brokers = [b for b in self._image.brokers.values() if not b.shutting_down]
        if not brokers:
            raise PlacementError("No live brokers to place replicas on.")
        assignment = assign_replicas(
            brokers, partitions, replication_factor, start_index=random.randrange(len(brokers))
        )
        topic = TopicImage(
            name=name,
            topic_id=topic_id or uuid.uuid4(),
            partitions=partitions,
            configs=MappingProxyType(dict(configs)),
            replication_factor=replication_factor,
        )
        topic_key = self._key("topics", name)
        ops = [
            op_put(self._partition_key(name, p), _initial_state(replicas).to_json())
            for p, replicas in enumerate(assignment)
        ]
        revision = await self._write_chunked(
            [compare_create_revision(topic_key, 0)], ops, op_put(topic_key, _topic_json(topic))
        )
        if revision is None:
            raise TopicExistsError(f"Topic '{name}' already exists.")
        await self._wait_applied(revision)
        return self._image.topics.get(name, topic)

    async def delete_topic(self, name: str) -> None:
        topic_key = self._key("topics", name)
        result = await self._client.txn(
            [compare_exists(topic_key)],
            [op_delete(topic_key), op_delete(self._key("partitions", name) + "/", prefix=True)],
        )
        if not result.succeeded:
            raise UnknownTopicError(f"Topic '{name}' does not exist.")
        await self._wait_applied(result.revision)

    async def add_partitions(self, name: str, new_total: int) -> TopicImage:
        """Grow a topic to ``new_total`` partitions (new keys first, then the count)."""
        topic_key = self._key("topics", name)
        while True:
            current, mod_revision = await self._read_topic(name)
            if new_total <= current.partitions:
                raise ValueError(
                    f"Topic currently has {current.partitions} partitions, which is higher "
                    f"than or equal to the requested {new_total}."
                )
            brokers = [b for b in self._image.brokers.values() if not b.shutting_down]
            if not brokers:
                raise PlacementError("No live brokers to place replicas on.")
            assignment = assign_replicas(
                brokers,
                new_total - current.partitions,
                current.replication_factor,
                start_index=random.randrange(len(brokers)),
                first_partition=current.partitions,
            )
            ops = [
                op_put(
                    self._partition_key(name, current.partitions + i), _initial_state(r).to_json()
                )
                for i, r in enumerate(assignment)
            ]
            updated = replace(current, partitions=new_total)
            revision = await self._write_chunked(
                [compare_mod_revision(topic_key, mod_revision)],
                ops,
                op_put(topic_key, _topic_json(updated)),
            )
            if revision is not None:
                await self._wait_applied(revision)
                return self._image.topics.get(name, updated)

    async def set_topic_configs(self, name: str, configs: Mapping[str, str]) -> TopicImage:
        """Replace the topic's whole set of config overrides."""
        topic_key = self._key("topics", name)
        while True:
            current, mod_revision = await self._read_topic(name)
            updated = replace(current, configs=MappingProxyType(dict(configs)))
            result = await self._client.txn(
                [compare_mod_revision(topic_key, mod_revision)],
                [op_put(topic_key, _topic_json(updated))],
            )
            if result.succeeded:
                await self._wait_applied(result.revision)
                return self._image.topics.get(name, updated)

    async def _read_topic(self, name: str) -> tuple[TopicImage, int]:
        kv = await self._client.get(self._key("topics", name))
        topic = _parse_topic(name, kv.value) if kv is not None else None
        if kv is None or topic is None:
            raise UnknownTopicError(f"Topic '{name}' does not exist.")
        return topic, kv.mod_revision

    async def _write_chunked(
        self, compare: list[dict[str, Any]], ops: list[dict[str, Any]], last: dict[str, Any]
    ) -> int | None:
        """Apply ``ops`` then ``last`` under ``compare``: in one transaction when they fit,
        else in chunks with ``last`` alone at the end. Revision of the final write, or None
        when a compare failed."""
        if len(ops) + 1 <= MAX_KEYS_PER_TXN:
            result = await self._client.txn(compare, [*ops, last])
            return result.revision if result.succeeded else None
        for start in range(0, len(ops), MAX_KEYS_PER_TXN):
            chunk = await self._client.txn(compare, ops[start : start + MAX_KEYS_PER_TXN])
            if not chunk.succeeded:
                return None
        result = await self._client.txn(compare, [last])
        return result.revision if result.succeeded else None

    # -- partitions and producer ids ------------------------------------------------------

    async def compare_and_set_partition(
        self, topic: str, partition: int, expected: PartitionState, new: PartitionState
    ) -> bool:
        """Replace ``expected`` by ``new`` if etcd still holds the version the image holds.

        False at once when the image's state is not ``expected``; False after the CAS when
        someone changed it meanwhile (the image is then brought up to that change before
        returning, so the caller can retry from ``image``). True once the image shows
        ``new`` (or something newer)."""
        entry = self._partition_entries.get(topic, {}).get(partition)
        if entry is None or entry[0] != expected:
            return False
        key = self._partition_key(topic, partition)
        result = await self._client.txn(
            [compare_mod_revision(key, entry[1])], [op_put(key, new.to_json())], [op_get(key)]
        )
        if result.succeeded:
            await self._wait_applied(result.revision)
            return True
        kvs = result.range_kvs(0)
        if kvs:
            with contextlib.suppress(EtcdError):
                await self._wait_applied(kvs[0].mod_revision)
        return False

    async def allocate_producer_ids(self, block_size: int = 1000) -> tuple[int, int]:
        """Claim the next block of producer ids cluster-wide; returns ``(first, last)``."""
        if block_size < 1:
            raise ValueError("block_size must be positive")
        key = self._key("producer_ids", "next")
        while True:
            kv = await self._client.get(key)
            first = int(json.loads(kv.value)) if kv is not None else 0
            compare = (
                compare_mod_revision(key, kv.mod_revision)
                if kv is not None
                else compare_create_revision(key, 0)
            )
            result = await self._client.txn(
                [compare], [op_put(key, json.dumps(str(first + block_size)))]
            )
            if result.succeeded:
                return first, first + block_size - 1

    # -- following etcd -------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        while True:
            try:
                async for events in self._client.watch(self._root, self._applied_revision + 1):
                    self._apply(events)
            except WatchCompacted as exc:
                log.warning("etcd %s; reloading the whole metadata prefix", exc)
                await self._reload()
            except EtcdError as exc:  # pragma: no cover - the watch retries by itself
                log.warning("etcd watch failed: %s", exc)
                await asyncio.sleep(1.0)

    async def _reload(self) -> None:
        backoff_s = 0.1
        while True:
            try:
                kvs, revision = await self._client.range_prefix(self._root)
            except EtcdError as exc:
                log.warning("reloading metadata from etcd failed: %s", exc)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 2.0)
                continue
            self._rebuild(kvs, revision, notify=True)
            return

    def _rebuild(self, kvs: list[KeyValue], revision: int, *, notify: bool) -> None:
        self._topic_entries.clear()
        self._partition_entries.clear()
        self._broker_entries.clear()
        self._controller_id = -1
        self._topics.clear()
        self._partitions.clear()
        touched: set[str] = set()
        for kv in kvs:
            self._apply_one(WatchEvent("PUT", kv), touched)
        self._finish(touched, max(revision, self._applied_revision), changed=True, notify=notify)

    def _apply(self, events: list[WatchEvent]) -> None:
        """Apply one watch response as a unit, then publish one new image."""
        touched: set[str] = set()
        changed = False
        for event in events:
            changed = self._apply_one(event, touched) or changed
        revision = max(e.kv.mod_revision for e in events)
        self._finish(touched, revision, changed=changed, notify=changed)

    def _apply_one(self, event: WatchEvent, touched: set[str]) -> bool:
        """Update the entry maps for one event; True if the image may change."""
        rel = event.kv.key[len(self._root) :]
        kind, _, rest = rel.partition("/")
        deleted = event.type == "DELETE"
        value = event.kv.value
        try:
            if kind == "brokers":
                node_id = int(rest)
                if deleted:
                    self._broker_entries.pop(node_id, None)
                else:
                    self._broker_entries[node_id] = BrokerRegistration.from_json(value)
            elif kind == "controller":
                self._controller_id = -1 if deleted else int(json.loads(value)["node_id"])
            elif kind == "topics":
                parsed = None if deleted else _parse_topic(rest, value)
                if parsed is None:
                    self._topic_entries.pop(rest, None)
                else:
                    self._topic_entries[rest] = parsed
                touched.add(rest)
            elif kind == "partitions":
                topic, _, index = rest.rpartition("/")
                states = self._partition_entries.setdefault(topic, {})
                if deleted:
                    states.pop(int(index), None)
                else:
                    states[int(index)] = (PartitionState.from_json(value), event.kv.mod_revision)
                touched.add(topic)
            elif kind == "cluster_id":
                if not deleted:
                    self._cluster_id = str(json.loads(value))
            else:
                return False
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring malformed etcd key %s: %s", event.kv.key, exc)
            return False
        return True

    def _finish(self, touched: set[str], revision: int, *, changed: bool, notify: bool) -> None:
        for name in touched:
            topic = self._topic_entries.get(name)
            states = self._partition_entries.get(name, {})
            if not states:
                self._partition_entries.pop(name, None)
            if topic is not None and all(p in states for p in range(topic.partitions)):
                self._topics[name] = topic
                self._partitions[name] = tuple(states[p][0] for p in range(topic.partitions))
            else:
                self._topics.pop(name, None)
                self._partitions.pop(name, None)
        if changed:
            self._image = MetadataImage(
                cluster_id=self._cluster_id,
                topics=MappingProxyType(dict(self._topics)),
                brokers=MappingProxyType(dict(self._broker_entries)),
                partitions=MappingProxyType(dict(self._partitions)),
                controller_id=self._controller_id,
            )
        self._applied_revision = max(self._applied_revision, revision)
        self._wake_waiters()
        if notify:
            self._notify_image()

    def _notify_image(self) -> None:
        image = self._image
        for callback in list(self._image_callbacks):
            try:
                callback(image)
            except Exception:
                log.exception("metadata image subscriber failed")

    def _wake_waiters(self) -> None:
        still: list[tuple[int, asyncio.Future[None]]] = []
        for revision, future in self._revision_waiters:
            if revision <= self._applied_revision:
                if not future.done():
                    future.set_result(None)
            else:
                still.append((revision, future))
        self._revision_waiters = still

    async def _wait_applied(self, revision: int) -> None:
        """Wait until the image reflects etcd revision ``revision`` (our own write)."""
        if revision <= self._applied_revision:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._revision_waiters.append((revision, future))
        try:
            await asyncio.wait_for(future, WRITE_WAIT_TIMEOUT_S)
        except TimeoutError:
            raise EtcdError(
                f"the metadata watch did not reach revision {revision} within "
                f"{WRITE_WAIT_TIMEOUT_S:.0f} s (applied {self._applied_revision})"
            ) from None


# -- helpers ------------------------------------------------------------------------------


def _initial_state(replicas: tuple[int, ...]) -> PartitionState:
    return PartitionState(replicas=replicas, isr=replicas, leader=replicas[0])


def _topic_json(topic: TopicImage) -> str:
    return json.dumps(
        {
            "topic_id": str(topic.topic_id),
            "partitions": topic.partitions,
            "replication_factor": topic.replication_factor,
            "configs": dict(topic.configs),
        },
        sort_keys=True,
    )


def _parse_topic(name: str, raw: bytes) -> TopicImage | None:
    try:
        data: dict[str, Any] = json.loads(raw)
        return TopicImage(
            name=name,
            topic_id=uuid.UUID(str(data["topic_id"])),
            partitions=int(data["partitions"]),
            configs=MappingProxyType({str(k): str(v) for k, v in data.get("configs", {}).items()}),
            replication_factor=int(data.get("replication_factor", 1)),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring malformed topic record %s: %s", name, exc)
        return None


def _registration_origin(raw: bytes) -> tuple[str | None, str]:
    """(directory_id, "host:port") of a registration value, tolerating junk."""
    try:
        data = json.loads(raw)
        return data.get("directory_id"), f"{data.get('host')}:{data.get('port')}"
    except (ValueError, AttributeError):
        return None, "?"


def _read_properties(path: Path) -> tuple[list[str], dict[str, str]]:
    """Lines and key=value pairs of a Java-style properties file (missing file: empty)."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return [], {}
    props: dict[str, str] = {}
    for line in lines:
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "!")) and "=" in stripped:
            key, _, value = stripped.partition("=")
            props[key.strip()] = value.strip()
    return lines, props


def _write_properties(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as handle:
        handle.write("\n".join(lines) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def new_directory_id() -> str:
    """22-char URL-safe base64 of a random UUID (Kafka's ``directory.id`` format)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
