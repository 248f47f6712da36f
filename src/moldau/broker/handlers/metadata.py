"""Metadata: brokers, controller, topics and partition leaders; auto-creates topics.

Everything comes from the broker's metadata image: on a single node this broker leads every
partition at epoch 0, is every replica and the controller; in a cluster the image is etcd's
state as last watched. A partition without a leader is answered with LEADER_NOT_AVAILABLE
(clients retry); replicas whose broker is not registered are listed as offline, as Kafka does.
Admin clients wait for a controller id before they send CreateTopics, so a cluster without an
elected controller reports the lowest live broker id instead of -1: any broker can create
topics here (the write is a compare-and-swap in etcd).
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
    controller_id,
)
from moldau.cluster.metadata import (
    InvalidTopicError,
    TopicImage,
    validate_topic_name,
)
from moldau.protocol.acl import AclOperation, ResourceType
from moldau.protocol.api import ApiKey


def _broker_entries(ctx: RequestContext) -> tuple[Any, ...]:
    """Every broker at its endpoint on the listener the request came in on (Kafka's rule:
    a client that bootstrapped over SSL is sent SSL endpoints); brokers without that
    listener are left out, as Kafka does."""
    broker = ctx.broker
    listener = ctx.session.listener_name
    if not broker.is_cluster:
        host, port = broker.advertised_for(listener) or broker.advertised
        return (
            ctx.make(
                "MetadataResponseBroker",
                node_id=broker.node_id,
                host=host,
                port=port,
                rack=broker.config.broker_rack,
            ),
        )
    return tuple(
        ctx.make("MetadataResponseBroker", node_id=b.node_id, host=e[0], port=e[1], rack=b.rack)
        for b in sorted(broker.metadata.image.brokers.values(), key=lambda b: b.node_id)
        if (e := b.endpoint(listener)) is not None
    )


def _topic_entry(ctx: RequestContext, topic: TopicImage) -> Any:
    image = ctx.broker.metadata.image
    states = image.partitions.get(topic.name, ())
    live = image.brokers.keys() if ctx.broker.is_cluster else {ctx.broker.node_id}
    partitions = tuple(
        ctx.make(
            "MetadataResponsePartition",
            error_code=ErrorCode.none if state.has_leader else ErrorCode.leader_not_available,
            partition_index=p,
            leader_id=state.leader,
            leader_epoch=state.leader_epoch,
            replica_nodes=state.replicas,
            isr_nodes=state.isr,
            offline_replicas=tuple(r for r in state.replicas if r not in live),
        )
        for p, state in enumerate(states)
    )
    return ctx.make(
        "MetadataResponseTopic",
        error_code=ErrorCode.none,
        name=topic.name,
        topic_id=topic.topic_id,
        is_internal=topic.is_internal,
        partitions=partitions,
    )


def _may_describe(ctx: RequestContext, topic: str) -> bool:
    return ctx.authorize(AclOperation.DESCRIBE, ResourceType.TOPIC, topic)


def _may_create(ctx: RequestContext, topic: str) -> bool:
    """Auto-creation needs CREATE on the cluster or on the topic (Kafka's rule)."""
    return ctx.authorize_cluster(AclOperation.CREATE) or ctx.authorize(
        AclOperation.CREATE, ResourceType.TOPIC, topic
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
        # Topics the principal may not describe are left out, as Kafka does.
        entries = [
            _topic_entry(ctx, t)
            for t in sorted(image.topics.values(), key=lambda t: t.name)
            if _may_describe(ctx, t.name)
        ]
    else:
        for requested in request.topics:
            name = requested.name
            if name is None:
                topic_id = getattr(requested, "topic_id", None)
                found = image.topic_by_id(topic_id) if topic_id is not None else None
                if found is None or not _may_describe(ctx, found.name):
                    entries.append(_error_entry(ctx, None, ErrorCode.unknown_topic_id))
                else:
                    entries.append(_topic_entry(ctx, found))
                continue
            if not _may_describe(ctx, name):
                entries.append(_error_entry(ctx, name, ErrorCode.topic_authorization_failed))
                continue
            topic = image.topic(name)
            if topic is None:
                try:
                    validate_topic_name(name)
                except InvalidTopicError:
                    entries.append(_error_entry(ctx, name, ErrorCode.invalid_topic_exception))
                    continue
                if allow_auto_create and broker.config.auto_create_topics_enable:
                    if not _may_create(ctx, name):
                        entries.append(
                            _error_entry(ctx, name, ErrorCode.topic_authorization_failed)
                        )
                        continue
                    try:
                        topic = await broker.create_topic(name)
                    except ApiError as exc:
                        entries.append(_error_entry(ctx, name, exc.error_code))
                        continue
                    # Kafka answers the creating request with LEADER_NOT_AVAILABLE; we can
                    # answer with the topic at once because creation is synchronous here.
                else:
                    entries.append(_error_entry(ctx, name, ErrorCode.unknown_topic_or_partition))
                    continue
            entries.append(_topic_entry(ctx, topic))
    brokers = _broker_entries(ctx)
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
        controller_id=controller_id(broker),
        topics=tuple(entries),
    )
