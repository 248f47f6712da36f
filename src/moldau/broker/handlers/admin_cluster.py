"""DescribeCluster, DescribeLogDirs, DeleteRecords: admin APIs about the broker and its storage.

Single node: this broker is the whole cluster, its controller, and the leader (and only
replica) of every partition, so DescribeCluster lists one broker, DescribeLogDirs one log
directory with no replica lag, and DeleteRecords completes as soon as the leader's log start
offset has moved (Kafka waits for every follower's low watermark, and there are none).
"""

from __future__ import annotations

import enum
import shutil
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import RequestContext
from moldau.broker.handlers import handles
from moldau.cluster.replica_manager import PartitionError
from moldau.log.errors import LogError
from moldau.protocol.api import ApiKey

if TYPE_CHECKING:
    from moldau.broker.server import Broker

AUTHORIZED_OPERATIONS_OMITTED = -(2**31)
"""Kafka's "not requested" sentinel for ``*_authorized_operations`` (Integer.MIN_VALUE)."""


class AclOperation(enum.IntEnum):
    """The ACL operations that apply to the CLUSTER resource (``AclOperation`` codes)."""

    CREATE = 5
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12


CLUSTER_AUTHORIZED_OPERATIONS = sum(1 << op for op in AclOperation)
"""Without an authorizer every principal may do everything the cluster resource supports."""


# -- DescribeCluster -----------------------------------------------------------------------


def controller_id(broker: Broker) -> int:
    """The elected controller, else the lowest live broker (see the module docstring)."""
    image = broker.metadata.image
    if not broker.is_cluster:
        return broker.node_id
    if image.controller_id >= 0:
        return image.controller_id
    return min(image.brokers, default=broker.node_id)


@handles(ApiKey.DESCRIBE_CLUSTER)
async def handle_describe_cluster(ctx: RequestContext, request: Any) -> Any:
    """The registered brokers and the controller (single node: this one for both), so v1+'s
    ``endpoint_type`` (brokers or controllers) gets the same answer either way; a Kafka broker
    would refuse the controller type, but a client asking it here can use what it gets."""
    broker = ctx.broker
    listener = ctx.session.listener_name
    if broker.is_cluster:
        brokers = tuple(
            ctx.make(
                "DescribeClusterBroker",
                broker_id=b.node_id,
                host=e[0],
                port=e[1],
                rack=b.rack,
                is_fenced=False,
            )
            for b in sorted(broker.metadata.image.brokers.values(), key=lambda b: b.node_id)
            if (e := b.endpoint(listener)) is not None
        )
    else:
        host, port = broker.advertised_for(listener) or broker.advertised
        brokers = (
            ctx.make(
                "DescribeClusterBroker",
                broker_id=broker.node_id,
                host=host,
                port=port,
                rack=broker.config.get("broker.rack"),
                is_fenced=False,
            ),
        )
    operations = (
        CLUSTER_AUTHORIZED_OPERATIONS
        if request.include_cluster_authorized_operations
        else AUTHORIZED_OPERATIONS_OMITTED
    )
    return ctx.response(
        throttle_time=0,
        error_code=ErrorCode.none,
        error_message=None,
        endpoint_type=getattr(request, "endpoint_type", 1),
        cluster_id=broker.cluster_id,
        controller_id=controller_id(broker),
        brokers=brokers,
        cluster_authorized_operations=operations,
    )


# -- DescribeLogDirs -----------------------------------------------------------------------


def _described_partitions(broker: Broker, topics: Iterable[Any] | None) -> list[tuple[str, int]]:
    """(topic, partition) pairs to report: all of them for a null ``topics``.

    Partitions this broker does not host are left out silently, as Kafka does.
    """
    if topics is None:
        return broker.partitions_of(sorted(broker.metadata.image.topics))
    wanted: list[tuple[str, int]] = []
    for topic in topics:
        for partition in topic.partitions:
            if broker.get_log(topic.topic, int(partition)) is not None:
                wanted.append((topic.topic, int(partition)))
    return wanted


@handles(ApiKey.DESCRIBE_LOG_DIRS)
async def handle_describe_log_dirs(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    by_topic: dict[str, list[Any]] = defaultdict(list)
    for name, index in _described_partitions(broker, request.topics):
        log = broker.get_log(name, index)
        if log is None:
            continue
        by_topic[name].append(
            ctx.make(
                "DescribeLogDirsPartition",
                partition_index=index,
                partition_size=log.size_bytes,
                offset_lag=0,
                is_future_key=False,
            )
        )
    topics = tuple(
        ctx.make("DescribeLogDirsTopic", name=name, partitions=tuple(partitions))
        for name, partitions in by_topic.items()
    )
    log_dir = broker.data_dir.resolve()
    space: dict[str, int] = {}
    if ctx.version >= 4:
        usage = shutil.disk_usage(log_dir)
        space = {"total_bytes": usage.total, "usable_bytes": usage.free}
    result = ctx.make(
        "DescribeLogDirsResult",
        error_code=ErrorCode.none,
        log_dir=str(log_dir),
        topics=topics,
        is_cordoned=False,
        **space,
    )
    return ctx.response(throttle_time=0, error_code=ErrorCode.none, results=(result,))


# -- DeleteRecords -------------------------------------------------------------------------

HIGH_WATERMARK = -1
"""DeleteRecords offset meaning "everything up to the high watermark"."""


def _delete_records(broker: Broker, name: str, index: int, offset: int) -> tuple[int, int]:
    """Move one partition's log start offset; return (error code, new low watermark)."""
    topic = broker.metadata.image.topic(name)
    if topic is None:
        return ErrorCode.unknown_topic_or_partition, -1
    try:
        log = broker.leader_partition(name, index).log
    except PartitionError as exc:
        return exc.error_code, -1
    if not broker.topic_log_config(topic).delete:
        # Kafka: records of a compact-only topic may only go through compaction.
        return ErrorCode.policy_violation, -1
    if offset == HIGH_WATERMARK:
        offset = log.high_watermark
    if offset < 0:
        return ErrorCode.offset_out_of_range, -1
    try:
        low_watermark = broker.logs.delete_records(name, index, offset)
    except LogError as exc:
        return exc.error_code, -1
    return ErrorCode.none, low_watermark


@handles(ApiKey.DELETE_RECORDS)
async def handle_delete_records(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    topics: list[Any] = []
    for request_topic in request.topics:
        partitions: list[Any] = []
        for request_partition in request_topic.partitions:
            index = int(request_partition.partition_index)
            code, low_watermark = _delete_records(
                broker, request_topic.name, index, int(request_partition.offset)
            )
            partitions.append(
                ctx.make(
                    "DeleteRecordsPartitionResult",
                    partition_index=index,
                    low_watermark=low_watermark,
                    error_code=code,
                )
            )
        topics.append(
            ctx.make(
                "DeleteRecordsTopicResult", name=request_topic.name, partitions=tuple(partitions)
            )
        )
    return ctx.response(throttle_time=0, topics=tuple(topics))
