"""ConsumerGroupHeartbeat (v0-1) and ConsumerGroupDescribe (v0-1): the KIP-848 protocol.

The handlers translate between kio's messages and the coordinator's version-free ones
(:mod:`moldau.coordinator.group.consumer_heartbeat`). The coordinator is sans-I/O and does
not see the metadata image, so each heartbeat carries a snapshot of the topics (name → id,
partition count): the coordinator compares it with what the group last saw, which is how
a topic created (or grown) after members subscribed reaches the assignment.

Version notes: v0 lets the coordinator generate the member id of a joining member when the
request's is empty; from v1 (KIP-1082) the client always generates it, and an empty one is
INVALID_REQUEST. ConsumerGroupDescribe v1 only adds ``member_type``, which we leave unknown.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Mapping
from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import Deferred, RequestContext
from moldau.broker.handlers import handles
from moldau.broker.handlers.groups import (
    AUTHORIZED_OPERATIONS_OMITTED,
    GROUP_AUTHORIZED_OPERATIONS,
    client_host,
)
from moldau.coordinator.group.assignors import Assignment
from moldau.coordinator.group.consumer_heartbeat import (
    ConsumerHeartbeatRequest,
    ConsumerHeartbeatResult,
    TopicsView,
)
from moldau.coordinator.group.runtime import CoordinatorWriteError
from moldau.protocol.api import ApiKey
from moldau.protocol.messages import millis


def topics_view(ctx: RequestContext) -> TopicsView:
    """Non-internal topics of the metadata image, as the coordinator wants them."""
    return {
        name: (topic.topic_id, topic.partitions)
        for name, topic in ctx.broker.metadata.image.topics.items()
        if not topic.is_internal
    }


@handles(ApiKey.CONSUMER_GROUP_HEARTBEAT)
async def handle_consumer_group_heartbeat(ctx: RequestContext, request: Any) -> Any:
    ctx.broker.ensure_offsets_topic()
    member_id = request.member_id
    if not member_id and ctx.version == 0 and request.member_epoch == 0:
        member_id = uuid.uuid4().hex
    owned: dict[uuid.UUID, frozenset[int]] | None = None
    if request.topic_partitions is not None:
        owned = {}
        for tp in request.topic_partitions:
            if tp.topic_id is not None:
                owned[tp.topic_id] = owned.get(tp.topic_id, frozenset()) | frozenset(
                    int(p) for p in tp.partitions
                )
    heartbeat = ConsumerHeartbeatRequest(
        group_id=request.group_id,
        member_id=member_id,
        member_epoch=int(request.member_epoch),
        topics=topics_view(ctx),
        instance_id=request.instance_id,
        rack_id=request.rack_id,
        rebalance_timeout_ms=millis(request.rebalance_timeout),
        subscribed_topic_names=(
            None
            if request.subscribed_topic_names is None
            else tuple(request.subscribed_topic_names)
        ),
        subscribed_topic_regex=request.subscribed_topic_regex,
        server_assignor=request.server_assignor,
        owned=owned,
        client_id=ctx.client_id or "",
        client_host=client_host(ctx),
    )
    answer = ctx.broker.group_coordinator.consumer_group_heartbeat(heartbeat)
    return Deferred(_heartbeat_response(ctx, answer))


async def _heartbeat_response(
    ctx: RequestContext, answer: Awaitable[ConsumerHeartbeatResult]
) -> Any:
    try:
        result = await answer
    except CoordinatorWriteError as exc:
        result = ConsumerHeartbeatResult(exc.error)
    assignment = None
    if result.assignment is not None and result.error is ErrorCode.none:
        assignment = ctx.make(
            "Assignment",
            topic_partitions=tuple(
                ctx.make("TopicPartitions", topic_id=topic_id, partitions=tuple(sorted(ps)))
                for topic_id, ps in sorted(result.assignment.items())
            ),
        )
    return ctx.response(
        throttle_time=0,
        error_code=result.error,
        error_message=result.error_message,
        member_id=result.member_id,
        member_epoch=result.member_epoch,
        heartbeat_interval=result.heartbeat_interval_ms,
        assignment=assignment,
    )


@handles(ApiKey.CONSUMER_GROUP_DESCRIBE)
async def handle_consumer_group_describe(ctx: RequestContext, request: Any) -> Any:
    operations = (
        GROUP_AUTHORIZED_OPERATIONS
        if request.include_authorized_operations
        else AUTHORIZED_OPERATIONS_OMITTED
    )
    names = {topic.topic_id: name for name, topic in ctx.broker.metadata.image.topics.items()}

    def assignment(partitions: Mapping[uuid.UUID, frozenset[int]]) -> Any:
        return ctx.make(
            "Assignment",
            topic_partitions=tuple(
                ctx.make(
                    "TopicPartitions",
                    topic_id=topic_id,
                    topic_name=names.get(topic_id, ""),
                    partitions=tuple(sorted(ps)),
                )
                for topic_id, ps in sorted(partitions.items())
                if topic_id in names
            ),
        )

    def current(assigned: Assignment, pending: Assignment) -> Assignment:
        merged = dict(assigned)
        for topic_id, ps in pending.items():
            merged[topic_id] = merged.get(topic_id, frozenset()) | ps
        return merged

    described = ctx.broker.group_coordinator.consumer_group_describe(request.group_ids)
    groups = tuple(
        ctx.make(
            "DescribedGroup",
            error_code=g.error,
            error_message=g.error_message,
            group_id=g.group_id,
            group_state=g.state,
            group_epoch=g.group_epoch,
            assignment_epoch=g.assignment_epoch,
            assignor_name=g.assignor_name,
            members=tuple(
                ctx.make(
                    "Member",
                    member_id=d.member.member_id,
                    instance_id=d.member.instance_id,
                    rack_id=d.member.rack_id,
                    member_epoch=d.member.member_epoch,
                    client_id=d.member.client_id,
                    client_host=d.member.client_host,
                    subscribed_topic_names=d.member.subscribed_topic_names,
                    subscribed_topic_regex=d.member.subscribed_topic_regex,
                    assignment=assignment(current(d.member.assigned, d.member.pending_revocation)),
                    target_assignment=assignment(d.target),
                )
                for d in g.members
            ),
            authorized_operations=operations,
        )
        for g in described
    )
    return ctx.response(throttle_time=0, groups=groups)
