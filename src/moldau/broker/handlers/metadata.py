"""Metadata: brokers, controller, topics and partition leaders; auto-creates topics.

Single node: this broker leads every partition, is every replica and the controller (admin
clients wait for a controller before they send CreateTopics). Leader epoch 0 until the
cluster issue adds elections.
"""

from __future__ import annotations

import uuid
from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import RequestContext
from moldau.broker.errors import ApiError
from moldau.broker.handlers import handles
from moldau.broker.handlers.admin_cluster import (
    AUTHORIZED_OPERATIONS_OMITTED,
    CLUSTER_AUTHORIZED_OPERATIONS,
)
from moldau.cluster.metadata import (
    SINGLE_NODE_LEADER_EPOCH,
    InvalidTopicError,
    TopicImage,
    validate_topic_name,
)
from moldau.protocol.api import ApiKey

LEADER_EPOCH = SINGLE_NODE_LEADER_EPOCH


def _topic_entry(ctx: RequestContext, topic: TopicImage) -> Any:
    node = ctx.broker.node_id
    partitions = tuple(
        ctx.make(
            "MetadataResponsePartition",
            error_code=ErrorCode.none,
            partition_index=p,
            leader_id=node,
            leader_epoch=LEADER_EPOCH,
            replica_nodes=(node,),
            isr_nodes=(node,),
            offline_replicas=(),
        )
        for p in range(topic.partitions)
    )
    return ctx.make(
        "MetadataResponseTopic",
        error_code=ErrorCode.none,
        name=topic.name,
        topic_id=topic.topic_id,
        is_internal=topic.is_internal,
        partitions=partitions,
    )


def _error_entry(ctx: RequestContext, name: str | None, code: ErrorCode) -> Any:
    return ctx.make(
        "MetadataResponseTopic",
        error_code=code,
        name=name,
        topic_id=uuid.UUID(int=0),
        is_internal=False,
        partitions=(),
    )


@handles(ApiKey.METADATA)
async def handle_metadata(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    image = broker.metadata.image
    # v0: an empty list means all topics; v1+: null means all, empty means none.
    wants_all = request.topics is None or (ctx.version == 0 and not request.topics)
    allow_auto_create = getattr(request, "allow_auto_topic_creation", True)
    entries: list[Any] = []
    if wants_all:
        entries = [
            _topic_entry(ctx, t) for t in sorted(image.topics.values(), key=lambda t: t.name)
        ]
    else:
        for requested in request.topics:
            name = requested.name
            if name is None:
                topic_id = getattr(requested, "topic_id", None)
                found = image.topic_by_id(topic_id) if topic_id is not None else None
                if found is None:
                    entries.append(_error_entry(ctx, None, ErrorCode.unknown_topic_id))
                else:
                    entries.append(_topic_entry(ctx, found))
                continue
            topic = image.topic(name)
            if topic is None:
                try:
                    validate_topic_name(name)
                except InvalidTopicError:
                    entries.append(_error_entry(ctx, name, ErrorCode.invalid_topic_exception))
                    continue
                if allow_auto_create and broker.config.auto_create_topics_enable:
                    try:
                        topic = broker.create_topic(name)
                    except ApiError as exc:
                        entries.append(_error_entry(ctx, name, exc.error_code))
                        continue
                    # Kafka answers the creating request with LEADER_NOT_AVAILABLE; we can
                    # answer with the topic at once because creation is synchronous here.
                else:
                    entries.append(_error_entry(ctx, name, ErrorCode.unknown_topic_or_partition))
                    continue
            entries.append(_topic_entry(ctx, topic))
    host, port = broker.advertised
    brokers = (
        ctx.make("MetadataResponseBroker", node_id=broker.node_id, host=host, port=port, rack=None),
    )
    cluster_ops = (
        CLUSTER_AUTHORIZED_OPERATIONS
        if getattr(request, "include_cluster_authorized_operations", False)
        else AUTHORIZED_OPERATIONS_OMITTED
    )
    return ctx.response(
        throttle_time=0,
        brokers=brokers,
        cluster_authorized_operations=cluster_ops,
        cluster_id=broker.cluster_id,
        controller_id=broker.node_id,
        topics=tuple(entries),
    )
