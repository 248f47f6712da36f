"""OffsetCommit, OffsetFetch and OffsetDelete: committed offsets of consumer groups.

As in Kafka's request layer, partitions of topics that do not exist (or past a topic's
partition count) are answered UNKNOWN_TOPIC_OR_PARTITION here and never reach the
coordinator; the rest is the coordinator's (``moldau.coordinator.group.offsets``).

OffsetCommit's ``retention_time`` (v2-4) is ignored, as modern Kafka does for expiry: offsets
live by ``offsets.retention.minutes``. OffsetFetch answers -1 for partitions without a
commit; ``topics`` null (v2+) asks for every committed offset of the group, and v8+ asks for
several groups at once. ``require_stable`` (v7+, KIP-447) makes partitions whose group has
offsets pending in an open transaction answer UNSTABLE_OFFSET_COMMIT, which the consumer
retries until the transaction ends; without it, such offsets are simply not visible yet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import Deferred, RequestContext
from moldau.broker.handlers import handles
from moldau.coordinator.group.messages import (
    FetchedOffset,
    OffsetCommitRequest,
    OffsetDeleteResult,
    OffsetFetchResult,
    PartitionOffset,
    TopicPartition,
)
from moldau.coordinator.group.offsets import CommitAnswer
from moldau.coordinator.group.runtime import CoordinatorWriteError
from moldau.protocol.acl import AclOperation, ResourceType
from moldau.protocol.api import ApiKey

if TYPE_CHECKING:
    from moldau.broker.server import Broker


def partition_exists(broker: Broker, topic: str, partition: int) -> bool:
    image = broker.metadata.image.topic(topic)
    return image is not None and 0 <= partition < image.partitions


@dataclass(frozen=True, slots=True)
class CommitPlan:
    """A commit request split as Kafka's request layer does: the partitions in request
    order, those refused here (unknown topic or partition), and the offsets for the
    coordinator."""

    order: tuple[TopicPartition, ...]
    refused: dict[TopicPartition, ErrorCode]
    offsets: tuple[PartitionOffset, ...]


def plan_commit(broker: Broker, topics: Iterable[Any]) -> CommitPlan:
    """The plan of an OffsetCommit's or TxnOffsetCommit's ``topics``."""
    order: list[TopicPartition] = []
    refused: dict[TopicPartition, ErrorCode] = {}
    offsets: list[PartitionOffset] = []
    for topic in topics:
        for p in topic.partitions:
            tp = (topic.name, int(p.partition_index))
            order.append(tp)
            if not partition_exists(broker, *tp):
                refused[tp] = ErrorCode.unknown_topic_or_partition
                continue
            offsets.append(
                PartitionOffset(
                    topic=tp[0],
                    partition=tp[1],
                    offset=int(p.committed_offset),
                    leader_epoch=int(getattr(p, "committed_leader_epoch", -1)),
                    metadata=p.committed_metadata,
                )
            )
    return CommitPlan(tuple(order), refused, tuple(offsets))


async def commit_answers(
    plan: CommitPlan, answer: Awaitable[CommitAnswer] | None
) -> dict[str, list[tuple[int, ErrorCode]]]:
    """Every partition's error, grouped by topic in request order: the coordinator's
    answer, a failed write's error for all it carried, or the plan's refusal."""
    errors = dict(plan.refused)
    if answer is not None:
        try:
            errors.update(await answer)
        except CoordinatorWriteError as exc:
            errors.update(((p.topic, p.partition), exc.error) for p in plan.offsets)
    return _group_by_topic((tp, errors[tp]) for tp in plan.order)


def _group_by_topic(
    answers: Iterable[tuple[TopicPartition, ErrorCode]],
) -> dict[str, list[tuple[int, ErrorCode]]]:
    by_topic: dict[str, list[tuple[int, ErrorCode]]] = {}
    for (topic, partition), error in answers:
        by_topic.setdefault(topic, []).append((partition, error))
    return by_topic


# -- OffsetCommit ----------------------------------------------------------------------------


def authorized_commit_topics(
    ctx: RequestContext, group_id: str, topics: Any, transactional_id: str | None = None
) -> tuple[list[Any], list[tuple[Any, ErrorCode]]]:
    """Split a commit's topics into those it may commit and (topic, error) refusals.

    Kafka's order: WRITE on the transactional id (TxnOffsetCommit), READ on the group, then
    READ on each topic; a refusal higher up refuses every partition."""
    everything: ErrorCode | None = None
    if transactional_id is not None and not ctx.authorize(
        AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id
    ):
        everything = ErrorCode.transactional_id_authorization_failed
    elif not ctx.authorize(AclOperation.READ, ResourceType.GROUP, group_id):
        everything = ErrorCode.group_authorization_failed
    allowed: list[Any] = []
    denied: list[tuple[Any, ErrorCode]] = []
    for topic in topics:
        if everything is not None:
            denied.append((topic, everything))
        elif ctx.authorize(AclOperation.READ, ResourceType.TOPIC, topic.name):
            allowed.append(topic)
        else:
            denied.append((topic, ErrorCode.topic_authorization_failed))
    return allowed, denied


def add_denied(
    by_topic: dict[str, list[tuple[int, ErrorCode]]], denied: list[tuple[Any, ErrorCode]]
) -> None:
    for topic, error in denied:
        by_topic.setdefault(topic.name, []).extend(
            (int(p.partition_index), error) for p in topic.partitions
        )


@handles(ApiKey.OFFSET_COMMIT)
async def handle_offset_commit(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    broker.ensure_offsets_topic()
    allowed, denied = authorized_commit_topics(ctx, request.group_id, request.topics)
    plan = plan_commit(broker, allowed)
    answer: Awaitable[CommitAnswer] | None = None
    if plan.offsets:
        commit = OffsetCommitRequest(
            group_id=request.group_id,
            generation_id=int(request.generation_id_or_member_epoch),
            member_id=request.member_id,
            group_instance_id=getattr(request, "group_instance_id", None),
            offsets=plan.offsets,
        )
        answer = broker.group_coordinator.commit_offsets(commit)

    async def respond() -> Any:
        by_topic = await commit_answers(plan, answer)
        add_denied(by_topic, denied)
        topics = tuple(
            ctx.make(
                "OffsetCommitResponseTopic",
                name=name,
                partitions=tuple(
                    ctx.make(
                        "OffsetCommitResponsePartition", partition_index=index, error_code=error
                    )
                    for index, error in partitions
                ),
            )
            for name, partitions in by_topic.items()
        )
        return ctx.response(throttle_time=0, topics=topics)

    return Deferred(respond())


# -- OffsetFetch -----------------------------------------------------------------------------


@handles(ApiKey.OFFSET_FETCH)
async def handle_offset_fetch(ctx: RequestContext, request: Any) -> Any:
    runtime = ctx.broker.group_coordinator
    require_stable = bool(getattr(request, "require_stable", False))

    def fetch(group_id: str, wanted: list[TopicPartition] | None) -> OffsetFetchResult:
        """Committed offsets the principal may see: DESCRIBE on the group, and only the
        topics it may DESCRIBE (named ones it may not are TOPIC_AUTHORIZATION_FAILED)."""
        if not ctx.authorize(AclOperation.DESCRIBE, ResourceType.GROUP, group_id):
            return OffsetFetchResult(ErrorCode.group_authorization_failed, ())
        result = runtime.fetch_offsets(group_id, wanted, require_stable=require_stable)
        if ctx.broker.authorizer is None:
            return result
        visible = {
            f.topic: ctx.authorize(AclOperation.DESCRIBE, ResourceType.TOPIC, f.topic)
            for f in result.partitions
        }
        partitions = tuple(
            f
            if visible[f.topic]
            else FetchedOffset(f.topic, f.partition, error=ErrorCode.topic_authorization_failed)
            for f in result.partitions
            if visible[f.topic] or wanted is not None
        )
        return OffsetFetchResult(result.error, partitions)

    if ctx.version >= 8:
        groups = []
        for group in request.groups:
            wanted = _wanted(group.topics)
            result = fetch(group.group_id, wanted)
            groups.append(
                ctx.make(
                    "OffsetFetchResponseGroup",
                    group_id=group.group_id,
                    topics=_fetch_topics(ctx, result, "OffsetFetchResponseTopics", wanted),
                    error_code=result.error,
                )
            )
        return ctx.response(throttle_time=0, groups=tuple(groups))
    wanted = _wanted(request.topics)
    result = fetch(request.group_id, wanted)
    if result.error is not ErrorCode.none and ctx.version < 2 and wanted is not None:
        # v1 has no request-level error: every partition carries it.
        result = OffsetFetchResult(
            result.error, tuple(FetchedOffset(t, p, error=result.error) for t, p in wanted)
        )
    return ctx.response(
        throttle_time=0,
        topics=_fetch_topics(ctx, result, "OffsetFetchResponseTopic", wanted),
        error_code=result.error,
    )


def _wanted(topics: Any) -> list[TopicPartition] | None:
    if topics is None:
        return None
    return [(t.name, int(p)) for t in topics for p in t.partition_indexes]


def _fetch_topics(
    ctx: RequestContext,
    result: OffsetFetchResult,
    topic_class: str,
    wanted: list[TopicPartition] | None,
) -> tuple[Any, ...]:
    if result.error is not ErrorCode.none and (ctx.version >= 2 or wanted is None):
        return ()
    partition_class = topic_class.replace("Topic", "Partition")
    by_topic: dict[str, list[Any]] = {}
    for f in result.partitions:
        by_topic.setdefault(f.topic, []).append(
            ctx.make(
                partition_class,
                partition_index=f.partition,
                committed_offset=f.offset,
                committed_leader_epoch=f.leader_epoch,
                metadata=f.metadata,
                error_code=f.error,
            )
        )
    return tuple(
        ctx.make(topic_class, name=name, partitions=tuple(partitions))
        for name, partitions in by_topic.items()
    )


# -- OffsetDelete ----------------------------------------------------------------------------


@handles(ApiKey.OFFSET_DELETE)
async def handle_offset_delete(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    order: list[TopicPartition] = []
    refused: dict[TopicPartition, ErrorCode] = {}
    valid: list[TopicPartition] = []
    for topic in request.topics:
        for p in topic.partitions:
            tp = (topic.name, int(p.partition_index))
            order.append(tp)
            if partition_exists(broker, *tp):
                valid.append(tp)
            else:
                refused[tp] = ErrorCode.unknown_topic_or_partition
    answer: Awaitable[OffsetDeleteResult] = broker.group_coordinator.delete_offsets(
        request.group_id, valid
    )

    async def respond() -> Any:
        try:
            result = await answer
        except CoordinatorWriteError as exc:
            result = OffsetDeleteResult(exc.error)
        if result.error is not ErrorCode.none:
            return ctx.response(throttle_time=0, error_code=result.error, topics=())
        errors = dict(refused)
        errors.update(result.partitions)
        topics = tuple(
            ctx.make(
                "OffsetDeleteResponseTopic",
                name=name,
                partitions=tuple(
                    ctx.make(
                        "OffsetDeleteResponsePartition", partition_index=index, error_code=error
                    )
                    for index, error in partitions
                ),
            )
            for name, partitions in _group_by_topic((tp, errors[tp]) for tp in order).items()
        )
        return ctx.response(throttle_time=0, error_code=ErrorCode.none, topics=topics)

    return Deferred(respond())
