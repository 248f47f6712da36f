"""Cluster administration over the wire: topics, configs, cluster metadata, groups, transactions.

Both command lines — ``moldau topic …`` and Kafka's ``kafka-topics``/``kafka-configs`` — are
front ends over :class:`AdminSession`, so the two can only differ in how they print. The
session returns plain frozen dataclasses (:class:`TopicInfo`, :class:`ConfigInfo`, …) rather
than confluent-kafka objects: the renderers and the tests then depend on our shapes, not on a
client library's, and JSON output is a ``dataclasses.asdict`` away.

Every call is bounded by the session's ``timeout_ms`` and every failure surfaces as a
:class:`~moldau.cli.common.CliError` whose ``code`` is the Kafka error code, so callers can
tell "topic already exists" from "broker unreachable" without parsing sentences.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    ConsumerGroupType,
    KafkaError,
    KafkaException,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, no __all__
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)
from kio.schema.errors import ErrorCode
from kio.static.primitive import i8, i16, i32, i64

from moldau.cli.common import (
    CLIENT_ID,
    CliError,
    client_config,
    ensure_reachable,
    kafka_error_code,
    kafka_error_text,
    wait,
)
from moldau.protocol.api import ApiKey, schema_for
from moldau.protocol.framing import decode_response, encode_request

T = TypeVar("T")

INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state", "__share_group_state"})
UNKNOWN_TOPIC_CODES = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC})


@dataclass(frozen=True)
class PartitionInfo:
    """One partition as the cluster reports it; offsets are None when not asked for."""

    partition: int
    leader: int | None
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    log_start_offset: int | None = None
    high_watermark: int | None = None


@dataclass(frozen=True)
class ConfigSynonym:
    """Where a config value could come from, most specific first (Kafka's synonyms)."""

    source: str
    name: str
    value: str | None


@dataclass(frozen=True)
class ConfigInfo:
    """One config entry; ``source`` is Kafka's ConfigSource name, e.g. DYNAMIC_TOPIC_CONFIG."""

    name: str
    value: str | None
    source: str
    is_default: bool
    is_sensitive: bool
    is_read_only: bool
    synonyms: tuple[ConfigSynonym, ...] = ()


@dataclass(frozen=True)
class TopicInfo:
    """A topic's layout and, when described with configs, its config entries."""

    name: str
    topic_id: str | None
    partitions: tuple[PartitionInfo, ...]
    configs: tuple[ConfigInfo, ...] = ()
    is_internal: bool = False

    @property
    def replication_factor(self) -> int:
        return len(self.partitions[0].replicas) if self.partitions else 0

    def overridden_configs(self) -> list[ConfigInfo]:
        """Configs not at their built-in default (what ``kafka-topics --describe`` shows)."""
        return [c for c in self.configs if not c.is_default]


@dataclass(frozen=True)
class BrokerInfo:
    node_id: int
    host: str
    port: int


@dataclass(frozen=True)
class ClusterInfo:
    cluster_id: str | None
    controller_id: int | None
    brokers: tuple[BrokerInfo, ...]
    topic_count: int
    topics: tuple[str, ...] = field(default=(), repr=False)


# Kafka's names for group states (``GroupState.toString()``), as the tools print them.
GROUP_STATE_NAMES: dict[ConsumerGroupState, str] = {
    ConsumerGroupState.UNKNOWN: "Unknown",
    ConsumerGroupState.PREPARING_REBALANCING: "PreparingRebalance",
    ConsumerGroupState.COMPLETING_REBALANCING: "CompletingRebalance",
    ConsumerGroupState.STABLE: "Stable",
    ConsumerGroupState.DEAD: "Dead",
    ConsumerGroupState.EMPTY: "Empty",
}
_STATES_BY_NAME = {name.lower(): state for state, name in GROUP_STATE_NAMES.items()}

TopicPartitionKey = tuple[str, int]
"""(topic, partition): the plain key every group call uses instead of a client's object."""


@dataclass(frozen=True)
class GroupListing:
    """One group as ListGroups reports it; ``is_simple`` means an empty protocol type.

    ``group_type`` is Kafka's ``Classic``/``Consumer`` (KIP-848), ``Unknown`` when the broker
    does not say.
    """

    group_id: str
    state: str
    is_simple: bool
    group_type: str = "Unknown"


@dataclass(frozen=True)
class GroupMember:
    """A member with what it was assigned (parsed from the consumer protocol's bytes)."""

    member_id: str
    client_id: str
    host: str
    group_instance_id: str | None
    assignment: tuple[TopicPartitionKey, ...]


@dataclass(frozen=True)
class GroupDescription:
    """DescribeGroups' answer. A group the coordinator does not know is ``Dead`` (Kafka)."""

    group_id: str
    state: str
    protocol_type: str
    partition_assignor: str
    coordinator: BrokerInfo | None
    members: tuple[GroupMember, ...]

    @property
    def exists(self) -> bool:
        return self.state != "Dead"


@dataclass(frozen=True)
class CommittedOffset:
    offset: int
    leader_epoch: int | None = None
    metadata: str | None = None


@dataclass(frozen=True)
class TransactionListing:
    """One transactional id as ListTransactions reports it, with the broker that answered."""

    transactional_id: str
    coordinator: int
    producer_id: int
    state: str


@dataclass(frozen=True)
class TransactionDescription:
    """DescribeTransactions' answer for one id; ``error_code`` 0 means the fields are valid.

    ``transaction_start_time_ms`` is None when no transaction is open (Kafka sends -1);
    ``partitions`` are those in the transaction — while preparing to commit or abort, only
    those still without a marker.
    """

    transactional_id: str
    coordinator: int
    error_code: int
    state: str = ""
    producer_id: int = -1
    producer_epoch: int = -1
    transaction_timeout_ms: int = 0
    transaction_start_time_ms: int | None = None
    partitions: tuple[TopicPartitionKey, ...] = ()


@dataclass(frozen=True)
class ProducerInfo:
    """An active producer of one partition (DescribeProducers); None where Kafka sends -1."""

    producer_id: int
    producer_epoch: int
    coordinator_epoch: int | None
    last_sequence: int
    last_timestamp_ms: int
    current_txn_start_offset: int | None


# Kafka's ``Errors.message()`` for what the transaction admin APIs commonly answer.
TXN_ERROR_MESSAGES = {
    3: "This server does not host this topic-partition.",
    6: "For requests intended only for the leader, this error indicates that the broker is "
    "not the current leader.",
    14: "The coordinator is loading and hence can't process requests.",
    15: "The coordinator is not available.",
    16: "This is not the correct coordinator.",
    35: "The version of API is not supported.",
    47: "Producer attempted to produce with an old epoch.",
    52: "Indicates that the transaction coordinator sending a WriteTxnMarker is no longer "
    "the current coordinator for a given producer",
    53: "Transactional Id authorization failed.",
    105: "The transactionalId could not be found.",
}
TRANSACTIONAL_ID_NOT_FOUND = 105
_RETRIABLE_COORDINATOR_CODES = frozenset({14, 15, 16})
_RETRY_BACKOFF_S = 0.1
_TXN_KEY_TYPE = 1  # FindCoordinator key_type: 0 group, 1 transaction


def txn_error_text(code: int) -> str:
    """Kafka's sentence for an error code, or the code's name when we have no sentence."""
    if code in TXN_ERROR_MESSAGES:
        return TXN_ERROR_MESSAGES[code]
    try:
        return f"{ErrorCode(code).name.upper()} (error code {code})"
    except ValueError:
        return f"Kafka error code {code}"


def is_internal_topic(name: str) -> bool:
    return name in INTERNAL_TOPICS


class AdminSession:
    """One AdminClient for the life of one command, with one timeout for every request.

    Construction checks that something listens at the bootstrap address (see
    :func:`~moldau.cli.common.ensure_reachable`), so a stopped broker is reported at once
    instead of after the request timeout. ``extra_config`` passes client properties through
    (``--command-config`` in Kafka's tools).
    """

    def __init__(
        self, bootstrap: str, timeout_ms: int, extra_config: Mapping[str, Any] | None = None
    ) -> None:
        ensure_reachable(bootstrap, timeout_ms)
        self.bootstrap = bootstrap
        self.timeout_ms = timeout_ms
        try:
            self._admin = AdminClient(client_config(bootstrap, extra_config))
        except KafkaException as exc:
            raise CliError(f"invalid client configuration: {kafka_error_text(exc)}", 2) from None
        self._broker_cache: tuple[BrokerInfo, ...] | None = None

    @property
    def _timeout_s(self) -> float:
        return self.timeout_ms / 1000

    # -- topics ---------------------------------------------------------------------------

    def topic_partition_counts(self) -> dict[str, int]:
        """Every topic (internal ones included) with its partition count, sorted by name."""
        try:
            metadata = self._admin.list_topics(timeout=self._timeout_s)
        except KafkaException as exc:
            raise _failure(exc, "listing topics") from None
        return {name: len(t.partitions) for name, t in sorted(metadata.topics.items())}

    def topic_names(self, include_internal: bool = True) -> list[str]:
        names = list(self.topic_partition_counts())
        return names if include_internal else [n for n in names if not is_internal_topic(n)]

    def create_topic(
        self,
        name: str,
        partitions: int | None = None,
        replication_factor: int | None = None,
        configs: Mapping[str, str] | None = None,
    ) -> None:
        """Create a topic; ``None`` means "the broker's default" (num.partitions etc.)."""
        new_topic = NewTopic(
            name,
            num_partitions=-1 if partitions is None else partitions,
            replication_factor=-1 if replication_factor is None else replication_factor,
            config=dict(configs or {}),
        )
        futures = self._admin.create_topics(
            [new_topic], operation_timeout=self._timeout_s, request_timeout=self._timeout_s
        )
        self._wait(futures[name], f"creating topic '{name}'", topic=name)

    def delete_topic(self, name: str) -> None:
        futures = self._admin.delete_topics(
            [name], operation_timeout=self._timeout_s, request_timeout=self._timeout_s
        )
        self._wait(futures[name], f"deleting topic '{name}'", topic=name)

    def create_partitions(self, name: str, total_count: int) -> None:
        """Grow ``name`` to ``total_count`` partitions (Kafka never shrinks a topic)."""
        futures = self._admin.create_partitions(
            [NewPartitions(name, total_count)],
            operation_timeout=self._timeout_s,
            request_timeout=self._timeout_s,
        )
        self._wait(futures[name], f"adding partitions to topic '{name}'", topic=name)

    def describe_topics(
        self, names: Sequence[str], *, with_configs: bool = True, with_offsets: bool = False
    ) -> list[TopicInfo]:
        """Layout (and optionally configs and offsets) of ``names``, in the order given."""
        if not names:
            return []
        futures = self._admin.describe_topics(
            TopicCollection(list(names)), request_timeout=self._timeout_s
        )
        topics: list[TopicInfo] = []
        for name in names:
            description = self._wait(futures[name], f"describing topic '{name}'", topic=name)
            partitions = tuple(
                sorted((_partition_info(p) for p in description.partitions), key=_by_partition)
            )
            topics.append(
                TopicInfo(
                    name=name,
                    topic_id=_topic_id_text(description.topic_id),
                    partitions=partitions,
                    is_internal=bool(description.is_internal),
                )
            )
        if with_offsets:
            topics = self._with_offsets(topics)
        if with_configs:
            topics = [replace(t, configs=tuple(self.topic_configs(t.name))) for t in topics]
        return topics

    def _with_offsets(self, topics: list[TopicInfo]) -> list[TopicInfo]:
        """Fill log start offset and high watermark of every partition (two ListOffsets)."""
        tps = [TopicPartition(t.name, p.partition) for t in topics for p in t.partitions]
        earliest = self._list_offsets(tps, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
        latest = self._list_offsets(tps, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        return [
            replace(
                t,
                partitions=tuple(
                    replace(
                        p,
                        log_start_offset=earliest.get((t.name, p.partition)),
                        high_watermark=latest.get((t.name, p.partition)),
                    )
                    for p in t.partitions
                ),
            )
            for t in topics
        ]

    def _list_offsets(
        self, tps: list[TopicPartition], spec: OffsetSpec
    ) -> dict[tuple[str, int], int]:
        """Offsets by (topic, partition); a partition that fails (no leader) is left out."""
        if not tps:
            return {}
        futures = self._admin.list_offsets(
            {tp: spec for tp in tps}, request_timeout=self._timeout_s
        )
        offsets: dict[tuple[str, int], int] = {}
        for tp, future in futures.items():
            try:
                offsets[(tp.topic, tp.partition)] = future.result(
                    timeout=self._timeout_s + 1
                ).offset
            except KafkaException:
                continue  # shown as unknown; the partition row still tells leader and ISR
        return offsets

    # -- configs --------------------------------------------------------------------------

    def topic_configs(self, name: str) -> list[ConfigInfo]:
        return self.describe_configs("topic", name)

    def describe_configs(self, resource_type: str, name: str) -> list[ConfigInfo]:
        """All config entries of a ``topic`` or ``broker`` resource, sorted by name."""
        resource = ConfigResource(resource_type, name)
        try:
            futures = self._admin.describe_configs([resource], request_timeout=self._timeout_s)
        except (ValueError, TypeError) as exc:
            raise CliError(
                f"cannot describe configs of {resource_type} '{name}': {exc}", 2
            ) from None
        (future,) = futures.values()
        topic = name if resource_type == "topic" else None
        entries = self._wait(future, f"describing configs of {resource_type} '{name}'", topic)
        return sorted((_config_info(e) for e in entries.values()), key=lambda c: c.name)

    def alter_configs(
        self,
        resource_type: str,
        name: str,
        set_configs: Mapping[str, str],
        delete_keys: Iterable[str] = (),
    ) -> None:
        """Set and delete config keys with IncrementalAlterConfigs (others stay as they are)."""
        ops = [
            ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE)
            for k in delete_keys
        ]
        ops += [
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in set_configs.items()
        ]
        resource = ConfigResource(resource_type, name, incremental_configs=ops)
        futures = self._admin.incremental_alter_configs([resource], request_timeout=self._timeout_s)
        (future,) = futures.values()
        topic = name if resource_type == "topic" else None
        self._wait(future, f"altering configs of {resource_type} '{name}'", topic)

    # -- cluster --------------------------------------------------------------------------

    def cluster(self) -> ClusterInfo:
        try:
            metadata = self._admin.list_topics(timeout=self._timeout_s)
        except KafkaException as exc:
            raise _failure(exc, "reading cluster metadata") from None
        brokers = tuple(
            BrokerInfo(b.id, b.host or "", b.port)
            for b in sorted(metadata.brokers.values(), key=lambda b: b.id)
        )
        controller = metadata.controller_id if metadata.controller_id >= 0 else None
        return ClusterInfo(
            cluster_id=metadata.cluster_id,
            controller_id=controller,
            brokers=brokers,
            topic_count=len(metadata.topics),
            topics=tuple(sorted(metadata.topics)),
        )

    # -- consumer groups ------------------------------------------------------------------

    def list_groups(self, states: Iterable[str] = ()) -> list[GroupListing]:
        """Every group (or those in ``states``, Kafka's state names, any case), sorted by id."""
        wanted = {parse_group_state(s) for s in states}
        kwargs: dict[str, Any] = {"request_timeout": self._timeout_s}
        if wanted:
            kwargs["states"] = wanted
        result = self._wait(self._admin.list_consumer_groups(**kwargs), "listing consumer groups")
        if result.errors and not result.valid:
            first = result.errors[0]
            raise CliError(f"listing consumer groups failed: {kafka_error_text(first)}")
        listings = [
            GroupListing(
                g.group_id,
                _state_name(getattr(g, "state", None)),
                bool(g.is_simple_consumer_group),
                _type_name(getattr(g, "type", None)),
            )
            for g in result.valid
        ]
        return sorted(listings, key=lambda g: g.group_id)

    def describe_groups(self, group_ids: Sequence[str]) -> list[GroupDescription]:
        """Descriptions in the order asked; an unknown group comes back with state ``Dead``."""
        if not group_ids:
            return []
        futures = self._admin.describe_consumer_groups(
            list(group_ids), request_timeout=self._timeout_s
        )
        descriptions: list[GroupDescription] = []
        for group_id in group_ids:
            try:
                description = wait(
                    futures[group_id], self.timeout_ms, f"describing consumer group '{group_id}'"
                )
            except CliError as exc:
                if exc.code != KafkaError.GROUP_ID_NOT_FOUND:
                    raise
                descriptions.append(GroupDescription(group_id, "Dead", "", "", None, ()))
                continue
            descriptions.append(_group_description(description))
        return descriptions

    def committed_offsets(self, group_id: str) -> dict[TopicPartitionKey, CommittedOffset]:
        """Every committed offset of the group (OffsetFetch for all partitions)."""
        request = [ConsumerGroupTopicPartitions(group_id)]
        futures = self._admin.list_consumer_group_offsets(request, request_timeout=self._timeout_s)
        result = self._wait(
            futures[group_id], f"fetching committed offsets of consumer group '{group_id}'"
        )
        committed: dict[TopicPartitionKey, CommittedOffset] = {}
        for tp in result.topic_partitions or []:
            if tp.error is None and tp.offset >= 0:
                epoch = (
                    tp.leader_epoch
                    if tp.leader_epoch is not None and tp.leader_epoch >= 0
                    else None
                )
                committed[(tp.topic, tp.partition)] = CommittedOffset(tp.offset, epoch, tp.metadata)
        return dict(sorted(committed.items()))

    def alter_group_offsets(self, group_id: str, offsets: Mapping[TopicPartitionKey, int]) -> None:
        """Commit ``offsets`` for the group as an admin (OffsetCommit without a generation)."""
        if not offsets:
            return
        tps = [TopicPartition(t, p, offset) for (t, p), offset in sorted(offsets.items())]
        futures = self._admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group_id, tps)], request_timeout=self._timeout_s
        )
        doing = f"committing offsets of consumer group '{group_id}'"
        result = self._wait(futures[group_id], doing)
        for tp in result.topic_partitions or []:
            if tp.error is not None:
                raise CliError(
                    f"{doing} failed for {tp.topic}-{tp.partition}: {kafka_error_text(tp.error)}",
                    code=tp.error.code(),
                )

    def delete_groups(self, group_ids: Sequence[str]) -> dict[str, CliError | None]:
        """Delete each group; the value is None on success, else why it failed."""
        if not group_ids:
            return {}
        futures = self._admin.delete_consumer_groups(
            list(group_ids), request_timeout=self._timeout_s
        )
        outcome: dict[str, CliError | None] = {}
        for group_id in group_ids:
            try:
                wait(futures[group_id], self.timeout_ms, f"deleting consumer group '{group_id}'")
                outcome[group_id] = None
            except CliError as exc:
                outcome[group_id] = exc
        return outcome

    def delete_group_offsets(
        self, group_id: str, partitions: Iterable[TopicPartitionKey]
    ) -> tuple[int, dict[TopicPartitionKey, int]]:
        """OffsetDelete: (top-level error code, error code per partition); 0 means success.

        confluent-kafka's AdminClient has no OffsetDelete, so this one request goes over the
        wire directly: DescribeGroups tells the coordinator, kio encodes OffsetDelete v0.
        """
        wanted = sorted(set(partitions))
        (description,) = self.describe_groups([group_id])
        if description.coordinator is None:
            raise CliError(f"cannot find the coordinator of consumer group '{group_id}'")
        schema = schema_for(ApiKey.OFFSET_DELETE, 0)
        module = schema.request_module
        by_topic: dict[str, list[int]] = {}
        for topic, partition in wanted:
            by_topic.setdefault(topic, []).append(partition)
        request = schema.request_type(
            group_id=group_id,
            topics=tuple(
                module.OffsetDeleteRequestTopic(
                    name=topic,
                    partitions=tuple(
                        module.OffsetDeleteRequestPartition(partition_index=i32(p)) for p in parts
                    ),
                )
                for topic, parts in by_topic.items()
            ),
        )
        coordinator = description.coordinator
        response = _wire_request(
            coordinator.host, coordinator.port, ApiKey.OFFSET_DELETE, 0, request, self.timeout_ms
        )
        top_error = int(response.error_code)
        errors: dict[TopicPartitionKey, int] = {tp: top_error for tp in wanted}
        if top_error == 0:
            for topic_result in response.topics:
                for part in topic_result.partitions:
                    errors[(topic_result.name, int(part.partition_index))] = int(part.error_code)
        return top_error, dict(sorted(errors.items()))

    def partition_offsets(
        self, partitions: Iterable[TopicPartitionKey], spec: str | int
    ) -> dict[TopicPartitionKey, int]:
        """ListOffsets for ``spec``: ``"earliest"``, ``"latest"`` or a timestamp in ms.

        For a timestamp the offset is -1 where no record is that recent (Kafka's answer).
        A partition that fails (no leader, unknown) is left out.
        """
        if spec == "earliest":
            offset_spec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
        elif spec == "latest":
            offset_spec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        elif isinstance(spec, int):
            offset_spec = OffsetSpec.for_timestamp(spec)
        else:
            raise ValueError(f"unknown offset spec {spec!r}")
        tps = [TopicPartition(t, p) for t, p in sorted(set(partitions))]
        return self._list_offsets(tps, offset_spec)

    # -- transactions and producers -------------------------------------------------------
    #
    # confluent-kafka's AdminClient has none of these APIs, so each goes over the wire with
    # kio (see _wire_request). Like Kafka's admin client, a coordinator lookup or a request
    # answered "loading", "not available" or "not the coordinator" is retried until the
    # session's timeout: the first lookup of a transactional id on a fresh cluster is what
    # creates __transaction_state, and the coordinator is unavailable until it exists.

    def list_transactions(
        self,
        states: Sequence[str] = (),
        producer_ids: Sequence[int] = (),
        duration_ms: int = -1,
    ) -> list[TransactionListing]:
        """ListTransactions on every broker (each coordinates its share of ids), sorted by id.

        ``states`` are Kafka's state names (``Ongoing``…); ``duration_ms`` ≥ 0 keeps only
        transactions open longer than that, which needs ListTransactions v1 (KIP-994), so v1
        is only used then and a broker with v0 alone still answers every other question.
        """
        version = 1 if duration_ms >= 0 else 0
        schema = schema_for(ApiKey.LIST_TRANSACTIONS, version)
        fields: dict[str, Any] = {
            "state_filters": tuple(states),
            "producer_id_filters": tuple(i64(p) for p in producer_ids),
        }
        if version >= 1:
            fields["duration_filter"] = i64(duration_ms)
        request = schema.request_type(**fields)
        listings: list[TransactionListing] = []
        for broker in self._brokers():
            response = _wire_request(
                broker.host,
                broker.port,
                ApiKey.LIST_TRANSACTIONS,
                version,
                request,
                self.timeout_ms,
            )
            code = int(response.error_code)
            if code:
                raise CliError(
                    f"listing transactions on broker {broker.node_id} failed: "
                    f"{txn_error_text(code)}",
                    code=code,
                )
            listings += [
                TransactionListing(
                    str(t.transactional_id), broker.node_id, int(t.producer_id), t.transaction_state
                )
                for t in response.transaction_states
            ]
        return sorted(listings, key=lambda t: (t.transactional_id, t.coordinator))

    def describe_transactions(
        self, transactional_ids: Sequence[str]
    ) -> list[TransactionDescription]:
        """DescribeTransactions at each id's coordinator, answered in the order asked.

        An id the coordinator does not know comes back with ``error_code``
        TRANSACTIONAL_ID_NOT_FOUND (105) rather than raising, so one unknown id does not
        hide the others; :meth:`describe_transaction` raises for the single-id case.
        """
        deadline = time.monotonic() + self._timeout_s
        found: dict[str, TransactionDescription] = {}
        pending = list(dict.fromkeys(transactional_ids))
        while pending:
            by_coordinator: dict[BrokerInfo, list[str]] = {}
            for transactional_id in pending:
                coordinator = self._txn_coordinator(transactional_id, deadline)
                by_coordinator.setdefault(coordinator, []).append(transactional_id)
            retry: list[str] = []
            for coordinator, ids in by_coordinator.items():
                for description in self._describe_transactions_at(coordinator, ids):
                    code = description.error_code
                    if code in _RETRIABLE_COORDINATOR_CODES and time.monotonic() < deadline:
                        retry.append(description.transactional_id)
                    else:
                        found[description.transactional_id] = description
                for missing in set(ids) - set(found) - set(retry):
                    found[missing] = TransactionDescription(missing, coordinator.node_id, -1)
            pending = retry
            if pending:
                time.sleep(_RETRY_BACKOFF_S)
        return [found[t] for t in transactional_ids]

    def describe_transaction(self, transactional_id: str) -> TransactionDescription:
        """One id's description, or a CliError naming the id (e.g. when it does not exist)."""
        (description,) = self.describe_transactions([transactional_id])
        code = description.error_code
        if code == TRANSACTIONAL_ID_NOT_FOUND:
            raise CliError(f"transactional id '{transactional_id}' does not exist", code=code)
        if code:
            raise CliError(
                f"describing transactional id '{transactional_id}' failed: {txn_error_text(code)}",
                code=code,
            )
        return description

    def describe_producers(
        self, topic: str, partition: int, broker_id: int | None = None
    ) -> list[ProducerInfo]:
        """Active producers of one partition, sorted by producer id.

        Asked of the partition's leader (from metadata), or of replica ``broker_id`` when
        given (Kafka's ``--broker-id``): each replica keeps its own producer state.
        """
        node = self._replica(topic, partition, broker_id)
        target = node.node_id
        schema = schema_for(ApiKey.DESCRIBE_PRODUCERS, 0)
        module = schema.request_module
        request = schema.request_type(
            topics=(module.TopicRequest(name=topic, partition_indexes=(i32(partition),)),)
        )
        response = _wire_request(
            node.host, node.port, ApiKey.DESCRIBE_PRODUCERS, 0, request, self.timeout_ms
        )
        for topic_result in response.topics:
            for part in topic_result.partitions:
                if topic_result.name != topic or int(part.partition_index) != partition:
                    continue
                code = int(part.error_code)
                if code:
                    reason = part.error_message or txn_error_text(code)
                    raise CliError(
                        f"describing producers of {topic}-{partition} on broker {target} "
                        f"failed: {reason}",
                        code=code,
                    )
                producers = [_producer_info(p) for p in part.active_producers]
                return sorted(producers, key=lambda p: p.producer_id)
        raise CliError(f"broker {target} did not answer for partition {topic}-{partition}")

    def abort_transaction(
        self,
        topic: str,
        partition: int,
        producer_id: int,
        producer_epoch: int,
        coordinator_epoch: int,
    ) -> None:
        """Write an ABORT marker for one producer to one partition (Kafka's abortTransaction).

        For a *hanging* transaction — one its coordinator has forgotten, holding the
        partition's last stable offset back forever. WriteTxnMarkers goes straight to the
        partition's leader, as the coordinator's own markers do; the producer epoch and
        coordinator epoch must not be older than the partition's, or it is refused.
        """
        node = self._replica(topic, partition, None)
        schema = schema_for(ApiKey.WRITE_TXN_MARKERS, 1)
        module = schema.request_module
        marker = module.WritableTxnMarker(
            producer_id=i64(producer_id),
            producer_epoch=i16(producer_epoch),
            transaction_result=False,
            topics=(
                module.WritableTxnMarkerTopic(name=topic, partition_indexes=(i32(partition),)),
            ),
            coordinator_epoch=i32(coordinator_epoch),
        )
        response = _wire_request(
            node.host,
            node.port,
            ApiKey.WRITE_TXN_MARKERS,
            1,
            schema.request_type(markers=(marker,)),
            self.timeout_ms,
        )
        codes = [
            int(part.error_code)
            for result in response.markers
            for topic_result in result.topics
            for part in topic_result.partitions
            if topic_result.name == topic and int(part.partition_index) == partition
        ]
        if not codes:
            raise CliError(
                f"broker {node.node_id} did not answer for partition {topic}-{partition}"
            )
        if codes[0]:
            raise CliError(
                f"aborting the transaction of producer {producer_id} on {topic}-{partition} "
                f"failed: {txn_error_text(codes[0])}",
                code=codes[0],
            )

    def _replica(self, topic: str, partition: int, broker_id: int | None) -> BrokerInfo:
        """The broker to ask about a partition: its leader, or replica ``broker_id``."""
        (info,) = self.describe_topics([topic], with_configs=False)
        layout = {p.partition: p for p in info.partitions}
        if partition not in layout:
            raise CliError(f"partition {partition} of topic '{topic}' does not exist", code=3)
        target = layout[partition].leader if broker_id is None else broker_id
        if target is None:
            raise CliError(f"partition {topic}-{partition} has no leader", code=5)
        node = next((b for b in self._brokers() if b.node_id == target), None)
        if node is None:
            raise CliError(f"broker {target} is not in the cluster")
        return node

    def _brokers(self) -> tuple[BrokerInfo, ...]:
        """The cluster's brokers as metadata advertises them (fetched once per session)."""
        if self._broker_cache is None:
            self._broker_cache = self.cluster().brokers
            if not self._broker_cache:
                raise CliError("the cluster reported no brokers")
        return self._broker_cache

    def _txn_coordinator(self, transactional_id: str, deadline: float) -> BrokerInfo:
        """FindCoordinator (v3, key_type transaction), retried while it is not available."""
        schema = schema_for(ApiKey.FIND_COORDINATOR, 3)
        request = schema.request_type(key=transactional_id, key_type=i8(_TXN_KEY_TYPE))
        broker = self._brokers()[0]
        while True:
            response = _wire_request(
                broker.host, broker.port, ApiKey.FIND_COORDINATOR, 3, request, self.timeout_ms
            )
            code = int(response.error_code)
            if code == 0:
                return BrokerInfo(int(response.node_id), response.host, int(response.port))
            if code not in _RETRIABLE_COORDINATOR_CODES or time.monotonic() >= deadline:
                reason = response.error_message or txn_error_text(code)
                raise CliError(
                    f"finding the transaction coordinator of '{transactional_id}' failed: {reason}",
                    code=code,
                )
            time.sleep(_RETRY_BACKOFF_S)

    def _describe_transactions_at(
        self, coordinator: BrokerInfo, transactional_ids: Sequence[str]
    ) -> list[TransactionDescription]:
        schema = schema_for(ApiKey.DESCRIBE_TRANSACTIONS, 0)
        request = schema.request_type(transactional_ids=tuple(transactional_ids))
        frame = _wire_exchange(
            coordinator.host,
            coordinator.port,
            ApiKey.DESCRIBE_TRANSACTIONS,
            0,
            request,
            self.timeout_ms,
        )
        return decode_describe_transactions(frame, coordinator.node_id)

    def _wait(self, future: Future[T], doing: str, topic: str | None = None) -> T:
        try:
            return wait(future, self.timeout_ms, doing)
        except CliError as exc:
            if topic is not None and exc.code in UNKNOWN_TOPIC_CODES:
                raise CliError(f"topic '{topic}' does not exist", code=exc.code) from None
            if topic is not None and exc.code == KafkaError.TOPIC_ALREADY_EXISTS:
                raise CliError(f"topic '{topic}' already exists", code=exc.code) from None
            raise


def _failure(exc: KafkaException, doing: str) -> CliError:
    return CliError(f"{doing} failed: {kafka_error_text(exc)}", code=kafka_error_code(exc))


def _by_partition(p: PartitionInfo) -> int:
    return p.partition


def _partition_info(p: Any) -> PartitionInfo:
    leader = p.leader.id if p.leader is not None and p.leader.id >= 0 else None
    return PartitionInfo(
        partition=p.id,
        leader=leader,
        replicas=tuple(n.id for n in p.replicas),
        isr=tuple(n.id for n in p.isr),
    )


def _topic_id_text(topic_id: Any) -> str | None:
    """Kafka's topic id text, or None for the all-zero id (a broker without topic ids).

    Kafka prints ids in URL-safe base64 without padding; librdkafka uses the standard
    alphabet, so ``+``/``/`` become ``-``/``_``.
    """
    if topic_id is None:
        return None
    if topic_id.get_most_significant_bits() == 0 and topic_id.get_least_significant_bits() == 0:
        return None
    return str(topic_id).rstrip("=").replace("+", "-").replace("/", "_")


def _source_name(source: Any) -> str:
    if isinstance(source, ConfigSource):
        return source.name
    try:
        return ConfigSource(source).name
    except ValueError:
        return "UNKNOWN_CONFIG"


def _config_info(entry: ConfigEntry) -> ConfigInfo:
    source = _source_name(entry.source)
    synonyms = tuple(
        ConfigSynonym(_source_name(s.source), s.name, s.value) for s in entry.synonyms.values()
    )
    return ConfigInfo(
        name=entry.name,
        value=entry.value,
        source=source,
        is_default=bool(entry.is_default) or source == "DEFAULT_CONFIG",
        is_sensitive=bool(entry.is_sensitive),
        is_read_only=bool(entry.is_read_only),
        synonyms=synonyms,
    )


def parse_group_state(name: str) -> ConsumerGroupState:
    """A Kafka state name (``stable``, ``Empty``, …) as the client's enum, or a CliError."""
    state = _STATES_BY_NAME.get(name.strip().lower())
    if state is None or state is ConsumerGroupState.UNKNOWN:
        valid = ", ".join(
            n for s, n in GROUP_STATE_NAMES.items() if s is not ConsumerGroupState.UNKNOWN
        )
        raise CliError(f"invalid group state '{name.strip()}'. Valid states are: {valid}", 2)
    return state


def _type_name(group_type: Any) -> str:
    if group_type in (ConsumerGroupType.CLASSIC, ConsumerGroupType.CONSUMER):
        return str(group_type.name).capitalize()
    return "Unknown"


def _state_name(state: Any) -> str:
    return GROUP_STATE_NAMES.get(state, "Unknown") if state is not None else "Unknown"


def _group_description(description: Any) -> GroupDescription:
    node = description.coordinator
    coordinator = (
        BrokerInfo(node.id, node.host or "", node.port)
        if node is not None and node.id >= 0
        else None
    )
    members = tuple(
        GroupMember(
            member_id=m.member_id,
            client_id=m.client_id or "",
            host=m.host or "",
            group_instance_id=m.group_instance_id or None,
            assignment=tuple(
                sorted(
                    (tp.topic, tp.partition)
                    for tp in (m.assignment.topic_partitions if m.assignment else [])
                )
            ),
        )
        for m in description.members
    )
    simple = bool(description.is_simple_consumer_group)
    return GroupDescription(
        group_id=description.group_id,
        state=_state_name(getattr(description, "state", None)),
        protocol_type="" if simple else "consumer",
        partition_assignor=description.partition_assignor or "",
        coordinator=coordinator,
        members=members,
    )


_INT32 = struct.Struct(">i")
_INT16 = struct.Struct(">h")
_INT64 = struct.Struct(">q")
_UINT8 = struct.Struct(">B")


def _wire_request(
    host: str, port: int, api_key: int, version: int, body: Any, timeout_ms: int
) -> Any:
    """One request on a fresh connection, for the rare API the admin client lacks.

    A broker that does not implement the API closes the connection (Kafka does the same for
    an unknown API key), which becomes a one-line CliError.
    """
    frame = _wire_exchange(host, port, api_key, version, body, timeout_ms)
    _correlation_id, value = decode_response(api_key, version, frame)
    return value


def _wire_exchange(
    host: str, port: int, api_key: int, version: int, body: Any, timeout_ms: int
) -> bytes:
    """Send one request, return the response frame (without its size prefix) undecoded."""
    request = encode_request(api_key, version, 1, CLIENT_ID, body)
    name = ApiKey(api_key).name
    try:
        with socket.create_connection((host, port), timeout=timeout_ms / 1000) as sock:
            sock.sendall(request)
            size = _INT32.unpack(_read_exact(sock, 4))[0]
            return _read_exact(sock, size)
    except TimeoutError:
        raise CliError(f"timed out after {timeout_ms} ms waiting for {name}") from None
    except OSError as exc:
        raise CliError(f"{name} request to {host}:{port} failed: {exc.strerror or exc}") from None


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(0, "the broker closed the connection (API not supported?)")
        data += chunk
    return bytes(data)


def _producer_info(state: Any) -> ProducerInfo:
    coordinator_epoch = int(state.coordinator_epoch)
    start_offset = int(state.current_txn_start_offset)
    return ProducerInfo(
        producer_id=int(state.producer_id),
        producer_epoch=int(state.producer_epoch),
        coordinator_epoch=coordinator_epoch if coordinator_epoch >= 0 else None,
        last_sequence=int(state.last_sequence),
        last_timestamp_ms=int(state.last_timestamp),
        current_txn_start_offset=start_offset if start_offset >= 0 else None,
    )


class _FrameReader:
    """Just enough of Kafka's flexible encoding to read one response by hand."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    def _unpack(self, fmt: struct.Struct) -> int:
        if self.offset + fmt.size > len(self.data):
            raise CliError("malformed response from the broker: it ends too early")
        (value,) = fmt.unpack_from(self.data, self.offset)
        self.offset += fmt.size
        return int(value)

    def int16(self) -> int:
        return self._unpack(_INT16)

    def int32(self) -> int:
        return self._unpack(_INT32)

    def int64(self) -> int:
        return self._unpack(_INT64)

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self._unpack(_UINT8)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def compact_string(self) -> str:
        size = self.uvarint() - 1
        if size < 0:
            return ""
        end = self.offset + size
        if end > len(self.data):
            raise CliError("malformed response from the broker: it ends too early")
        text = self.data[self.offset : end].decode("utf-8", errors="replace")
        self.offset = end
        return text

    def compact_array_length(self) -> int:
        return max(self.uvarint() - 1, 0)

    def skip_tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()  # tag
            self.offset += self.uvarint()  # size, then skip the value


def decode_describe_transactions(frame: bytes, coordinator: int) -> list[TransactionDescription]:
    """A DescribeTransactions v0 response frame (after its size prefix), read by hand.

    kio cannot be used here: it types ``transaction_start_time`` as a datetime and refuses
    the -1 Kafka sends for a transactional id with no open transaction (state Empty,
    CompleteCommit, …) — exactly the ids people describe most.
    """
    reader = _FrameReader(frame)
    reader.int32()  # correlation id
    reader.skip_tagged_fields()  # response header v1
    reader.int32()  # throttle_time_ms
    descriptions: list[TransactionDescription] = []
    for _ in range(reader.compact_array_length()):
        error_code = reader.int16()
        transactional_id = reader.compact_string()
        state = reader.compact_string()
        timeout_ms = reader.int32()
        start_time_ms = reader.int64()
        producer_id = reader.int64()
        producer_epoch = reader.int16()
        partitions: list[TopicPartitionKey] = []
        for _ in range(reader.compact_array_length()):
            topic = reader.compact_string()
            partitions += [(topic, reader.int32()) for _ in range(reader.compact_array_length())]
            reader.skip_tagged_fields()
        reader.skip_tagged_fields()
        descriptions.append(
            TransactionDescription(
                transactional_id=transactional_id,
                coordinator=coordinator,
                error_code=error_code,
                state=state,
                producer_id=producer_id,
                producer_epoch=producer_epoch,
                transaction_timeout_ms=timeout_ms,
                transaction_start_time_ms=start_time_ms if start_time_ms >= 0 else None,
                partitions=tuple(sorted(partitions)),
            )
        )
    return descriptions
