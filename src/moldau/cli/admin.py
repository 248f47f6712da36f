"""Cluster administration over the wire: topics, configs, cluster metadata, consumer groups.

Both command lines — ``moldau topic …`` and Kafka's ``kafka-topics``/``kafka-configs`` — are
front ends over :class:`AdminSession`, so the two can only differ in how they print. The
session returns plain frozen dataclasses (:class:`TopicInfo`, :class:`ConfigInfo`, …) rather
than confluent-kafka objects: the renderers and the tests then depend on our shapes, not on a
client library's, and JSON output is a ``dataclasses.asdict`` away.

Every call is bounded by the session's ``timeout_ms`` and every failure surfaces as a
:class:`~moldau.cli.common.CliError` whose ``code`` is the Kafka error code, so callers can
tell "topic already exists" from "broker unreachable" without parsing sentences.

The transaction and producer APIs live in :mod:`moldau.cli.admin_txn`
(:class:`~moldau.cli.admin_txn.TxnAdminSession`, a subclass of :class:`AdminSession`).
"""

from __future__ import annotations

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
from kio.static.primitive import i32

from moldau.cli.common import (
    CliError,
    client_config,
    ensure_reachable,
    kafka_error_code,
    kafka_error_text,
    wait,
)
from moldau.cli.kafka_wire import wire_request
from moldau.protocol.api import ApiKey, schema_for

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
class PartitionLeadership:
    """Who leads one partition and who is in sync, as Metadata reports it (-1: offline)."""

    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True)
class ClusterInfo:
    cluster_id: str | None
    controller_id: int | None
    brokers: tuple[BrokerInfo, ...]
    topic_count: int
    topics: tuple[str, ...] = field(default=(), repr=False)
    partitions: tuple[PartitionLeadership, ...] = field(default=(), repr=False)


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
        partitions = tuple(
            PartitionLeadership(
                topic=name,
                partition=p.id,
                leader=p.leader,
                replicas=tuple(p.replicas),
                isr=tuple(p.isrs),
            )
            for name in sorted(metadata.topics)
            for p in sorted(metadata.topics[name].partitions.values(), key=lambda p: p.id)
        )
        return ClusterInfo(
            cluster_id=metadata.cluster_id,
            controller_id=controller,
            brokers=brokers,
            topic_count=len(metadata.topics),
            topics=tuple(sorted(metadata.topics)),
            partitions=partitions,
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
        response = wire_request(
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
