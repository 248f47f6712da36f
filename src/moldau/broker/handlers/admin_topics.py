"""CreateTopics, DeleteTopics, CreatePartitions: the topic lifecycle as admin clients drive it.

Every request carries many topics and each topic succeeds or fails on its own, so nothing
here raises out of the handler: per-topic problems become ``ApiError``s that are turned into
that topic's ``error_code``/``error_message``, exactly as Kafka's controller answers.

A manual replica assignment must name registered brokers only (single node: this one), and a
replication factor above the number of brokers is INVALID_REPLICATION_FACTOR (checked by
``Broker.validate_new_topic``). Creation returns once this broker's metadata image holds the
topic (at once on a single node, after the etcd write is watched back in a cluster), so the
request ``timeout`` is not used. A manual assignment is validated, but in a cluster the
replicas are placed by moldau's own rack-aware placement.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import RequestContext
from moldau.broker.errors import ApiError
from moldau.broker.handlers import handles
from moldau.broker.server import MAX_PARTITIONS_PER_TOPIC
from moldau.protocol.acl import AclOperation, ResourceType
from moldau.protocol.api import ApiKey

if TYPE_CHECKING:
    from moldau.broker.server import Broker
    from moldau.cluster.metadata import TopicImage

ZERO_UUID = uuid.UUID(int=0)


# -- CreateTopics ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopicPlan:
    """What one CreatableTopic resolves to once defaults and assignments are applied."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]


def _plan_new_topic(broker: Broker, topic: Any) -> TopicPlan:
    """Resolve and validate one CreatableTopic in Kafka's order; raise ApiError on failure.

    Kafka checks the name (and existence) before anything else, then either the manual
    assignment or the counts (-1 meaning "the broker default"), then the configs.
    """
    name: str = topic.name
    # Name, existence and '.'/'_' collisions first, so a duplicate of an existing topic with
    # a bad assignment still reports TOPIC_ALREADY_EXISTS.
    broker.validate_new_topic(name, 1, 1, {})
    configs: dict[str, str] = {}
    for config in topic.configs:
        if config.value is None:
            raise ApiError(
                ErrorCode.invalid_config,
                f"Null value not supported for topic config: {config.name}",
            )
        configs[config.name] = config.value
    if topic.assignments:
        if topic.num_partitions != -1 or topic.replication_factor != -1:
            raise ApiError(
                ErrorCode.invalid_request,
                "A manual partition assignment was given, so numPartitions and "
                "replicationFactor must both be -1.",
            )
        partitions, replication_factor = _check_new_topic_assignment(broker, topic.assignments)
    else:
        partitions = int(topic.num_partitions)
        if partitions == -1:
            partitions = broker.config.num_partitions
        replication_factor = int(topic.replication_factor)
        if replication_factor == -1:
            replication_factor = broker.config.default_replication_factor
    broker.validate_new_topic(name, partitions, replication_factor, configs)
    return TopicPlan(name, partitions, replication_factor, configs)


def _check_replicas(broker: Broker, partition: int, broker_ids: Sequence[int]) -> None:
    """One partition's replica list must be non-empty, without repeats, and name only us."""
    if not broker_ids:
        raise ApiError(
            ErrorCode.invalid_replica_assignment,
            f"The manual partition assignment of partition {partition} has no replicas.",
        )
    if len(set(broker_ids)) != len(broker_ids):
        raise ApiError(
            ErrorCode.invalid_replica_assignment,
            f"The manual partition assignment of partition {partition} "
            f"names a broker twice: {list(broker_ids)}.",
        )
    live = set(broker.live_broker_ids())
    for broker_id in broker_ids:
        if broker_id not in live:
            raise ApiError(
                ErrorCode.invalid_replica_assignment,
                f"The manual partition assignment includes broker {broker_id}, "
                "but no such broker is registered.",
            )


def _check_new_topic_assignment(broker: Broker, assignments: Iterable[Any]) -> tuple[int, int]:
    """Validate a CreateTopics manual assignment; return (partitions, replication factor)."""
    by_index = {int(a.partition_index): tuple(a.broker_ids) for a in assignments}
    count = len(by_index)
    if sorted(by_index) != list(range(count)):
        raise ApiError(
            ErrorCode.invalid_replica_assignment,
            "The manual partition assignment must name partitions 0 to N-1 exactly once.",
        )
    factors = {len(ids) for ids in by_index.values()}
    for index, broker_ids in sorted(by_index.items()):
        _check_replicas(broker, index, broker_ids)
    if len(factors) != 1:
        raise ApiError(
            ErrorCode.invalid_replica_assignment,
            "All partitions in the manual partition assignment must have the same number "
            "of replicas.",
        )
    return count, factors.pop()


def _topic_config_entries(ctx: RequestContext, configs: Mapping[str, str]) -> tuple[Any, ...]:
    """CreateTopics v5+ answers with every config of the new topic, like DescribeConfigs."""
    entries = ctx.broker.config.describe_topic(configs)
    return tuple(
        ctx.make(
            "CreatableTopicConfigs",
            name=entry.name,
            value=None if entry.sensitive else entry.value,
            read_only=entry.read_only,
            config_source=int(entry.source),
            is_sensitive=entry.sensitive,
        )
        for entry in entries
    )


def _create_result(ctx: RequestContext, name: str, error: ApiError | None, **fields: Any) -> Any:
    if error is not None:
        fields = {"num_partitions": -1, "replication_factor": -1, "configs": ()}
    fields.setdefault("topic_id", ZERO_UUID)
    return ctx.make(
        "CreatableTopicResult",
        name=name,
        error_code=ErrorCode.none if error is None else error.error_code,
        error_message=None if error is None else error.message,
        topic_config_error_code=0,
        **fields,
    )


@handles(ApiKey.CREATE_TOPICS)
async def handle_create_topics(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    counts = Counter(topic.name for topic in request.topics)
    reported: set[str] = set()
    results: list[Any] = []
    for topic in request.topics:
        name = topic.name
        if counts[name] > 1:
            # Kafka answers each duplicated name once, and creates none of its copies.
            if name not in reported:
                reported.add(name)
                error = ApiError(ErrorCode.invalid_request, "Duplicate topic name.")
                results.append(_create_result(ctx, name, error))
            continue
        try:
            if not (
                ctx.authorize_cluster(AclOperation.CREATE)
                or ctx.authorize(AclOperation.CREATE, ResourceType.TOPIC, name)
            ):
                raise ApiError(ErrorCode.topic_authorization_failed, "Authorization failed.")
            plan = _plan_new_topic(broker, topic)
            topic_id = ZERO_UUID
            if not request.validate_only:
                created = await broker.create_topic(
                    plan.name, plan.partitions, plan.replication_factor, plan.configs
                )
                topic_id = created.topic_id
        except ApiError as exc:
            results.append(_create_result(ctx, name, exc))
            continue
        results.append(
            _create_result(
                ctx,
                name,
                None,
                topic_id=topic_id,
                num_partitions=plan.partitions,
                replication_factor=plan.replication_factor,
                configs=_topic_config_entries(ctx, plan.configs) if ctx.version >= 5 else (),
            )
        )
    return ctx.response(throttle_time=0, topics=tuple(results))


# -- DeleteTopics ------------------------------------------------------------------------


def _deletion_disabled(ctx: RequestContext) -> ApiError | None:
    """Kafka refuses the whole request when ``delete.topic.enable`` is false.

    Versions before 3 had no TOPIC_DELETION_DISABLED code, so they get INVALID_REQUEST.
    """
    if ctx.broker.config.delete_topic_enable:
        return None
    if ctx.version < 3:
        return ApiError(ErrorCode.invalid_request, "Topic deletion is disabled.")
    return ApiError(ErrorCode.topic_deletion_disabled, "Topic deletion is disabled.")


def _requested_deletions(ctx: RequestContext, request: Any) -> list[tuple[str | None, uuid.UUID]]:
    """(name, topic id) pairs: v6 names topics either way, older versions by name only."""
    if ctx.version >= 6:
        return [(t.name, t.topic_id or ZERO_UUID) for t in request.topics]
    return [(name, ZERO_UUID) for name in request.topic_names]


def _resolve_deletion(broker: Broker, name: str | None, topic_id: uuid.UUID) -> TopicImage:
    """The topic a DeleteTopics entry names, or ApiError as Kafka answers it."""
    image = broker.metadata.image
    if name is None:
        if topic_id == ZERO_UUID:
            raise ApiError(ErrorCode.invalid_request, "Neither topic name nor id were specified.")
        found = image.topic_by_id(topic_id)
        if found is None:
            raise ApiError(ErrorCode.unknown_topic_id, f"Topic id {topic_id} does not exist.")
        return found
    if topic_id != ZERO_UUID:
        raise ApiError(
            ErrorCode.invalid_request, "You may not specify both topic name and topic id."
        )
    found = image.topic(name)
    if found is None:
        raise ApiError(
            ErrorCode.unknown_topic_or_partition, "This server does not host this topic-partition."
        )
    return found


@handles(ApiKey.DELETE_TOPICS)
async def handle_delete_topics(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    requested = _requested_deletions(ctx, request)
    disabled = _deletion_disabled(ctx)
    keys = Counter(name if name is not None else topic_id for name, topic_id in requested)
    reported: set[object] = set()
    results: list[Any] = []

    def result(name: str | None, topic_id: uuid.UUID, error: ApiError | None) -> None:
        results.append(
            ctx.make(
                "DeletableTopicResult",
                name=name,
                topic_id=topic_id,
                error_code=ErrorCode.none if error is None else error.error_code,
                error_message=None if error is None else error.message,
            )
        )

    for name, topic_id in requested:
        key = name if name is not None else topic_id
        if disabled is not None:
            result(name, topic_id, disabled)
            continue
        if keys[key] > 1 and key != ZERO_UUID:
            if key not in reported:
                reported.add(key)
                what = "name" if name is not None else "id"
                result(
                    name, topic_id, ApiError(ErrorCode.invalid_request, f"Duplicate topic {what}.")
                )
            continue
        try:
            topic = _resolve_deletion(broker, name, topic_id)
            if not ctx.authorize(AclOperation.DELETE, ResourceType.TOPIC, topic.name):
                raise ApiError(ErrorCode.topic_authorization_failed, "Authorization failed.")
            if topic.is_internal:
                # Kafka's own tooling refuses this too (TopicCommand): the coordinators keep
                # their state in these topics and would silently lose it.
                raise ApiError(
                    ErrorCode.invalid_request,
                    f"Topic {topic.name} is an internal topic and cannot be deleted.",
                )
            await broker.delete_topic(topic.name)
        except ApiError as exc:
            result(name, topic_id, exc)
            continue
        result(topic.name, topic.topic_id, None)
    return ctx.response(throttle_time=0, responses=tuple(results))


# -- CreatePartitions --------------------------------------------------------------------


def _check_new_partitions(broker: Broker, request_topic: Any) -> TopicImage:
    """Validate one CreatePartitionsTopic; return the current topic or raise ApiError."""
    name: str = request_topic.name
    topic = broker.metadata.image.topic(name)
    if topic is None:
        raise ApiError(ErrorCode.unknown_topic_or_partition, f"The topic '{name}' does not exist.")
    count = int(request_topic.count)
    if count < topic.partitions:
        raise ApiError(
            ErrorCode.invalid_partitions,
            f"The topic {name} currently has {topic.partitions} partition(s); "
            f"{count} would not be an increase.",
        )
    if count == topic.partitions:
        raise ApiError(
            ErrorCode.invalid_partitions, f"Topic already has {topic.partitions} partition(s)."
        )
    if count > MAX_PARTITIONS_PER_TOPIC:
        raise ApiError(
            ErrorCode.invalid_partitions,
            f"Number of partitions must be between 1 and {MAX_PARTITIONS_PER_TOPIC}.",
        )
    assignments = request_topic.assignments
    if assignments is not None:
        added = count - topic.partitions
        if len(assignments) != added:
            raise ApiError(
                ErrorCode.invalid_replica_assignment,
                f"Attempted to add {added} additional partition(s), but only "
                f"{len(assignments)} assignment(s) were specified.",
            )
        for offset, assignment in enumerate(assignments):
            partition = topic.partitions + offset
            broker_ids = tuple(assignment.broker_ids)
            _check_replicas(broker, partition, broker_ids)
            if len(broker_ids) != topic.replication_factor:
                raise ApiError(
                    ErrorCode.invalid_replica_assignment,
                    f"The manual partition assignment of partition {partition} has "
                    f"{len(broker_ids)} replica(s), but the topic's replication factor is "
                    f"{topic.replication_factor}.",
                )
    return topic


@handles(ApiKey.CREATE_PARTITIONS)
async def handle_create_partitions(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    counts = Counter(t.name for t in request.topics)
    reported: set[str] = set()
    results: list[Any] = []

    def result(name: str, error: ApiError | None) -> None:
        results.append(
            ctx.make(
                "CreatePartitionsTopicResult",
                name=name,
                error_code=ErrorCode.none if error is None else error.error_code,
                error_message=None if error is None else error.message,
            )
        )

    for request_topic in request.topics:
        name = request_topic.name
        if counts[name] > 1:
            if name not in reported:
                reported.add(name)
                result(name, ApiError(ErrorCode.invalid_request, "Duplicate topic name."))
            continue
        try:
            if not ctx.authorize(AclOperation.ALTER, ResourceType.TOPIC, name):
                raise ApiError(ErrorCode.topic_authorization_failed, "Authorization failed.")
            _check_new_partitions(broker, request_topic)
            if not request.validate_only:
                await broker.add_partitions(name, int(request_topic.count))
        except ApiError as exc:
            result(name, exc)
            continue
        result(name, None)
    return ctx.response(throttle_time=0, results=tuple(results))
