"""ListOffsets: earliest (-2), latest (-1), max timestamp (-3), or by timestamp.

By timestamp: the first offset whose timestamp is at least the target; (-1, -1) when there
is none, as Kafka answers. Isolation (v2+) picks the *last fetchable offset*: the high
watermark for read_uncommitted, the last stable offset for read_committed. Latest is that
offset; a lookup by timestamp or max timestamp that lands at or past it answers (-1, -1), as
Kafka's ``Partition.fetchOffsetForTimestamp`` does; earliest is never filtered.

Only the leader answers (``replica_id`` -2, Kafka's debugging id, may ask any replica), after
the ``current_leader_epoch`` check (v4+); the answered ``leader_epoch`` is the partition's
current one.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import RequestContext
from moldau.broker.handlers import handles
from moldau.cluster.replica_manager import PartitionError
from moldau.protocol.acl import AclOperation, ResourceType
from moldau.protocol.api import ApiKey
from moldau.protocol.messages import make

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
READ_COMMITTED = 1
DEBUGGING_REPLICA_ID = -2


@handles(ApiKey.LIST_OFFSETS)
async def handle_list_offsets(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    m = ctx.m
    read_committed = int(getattr(request, "isolation_level", 0)) == READ_COMMITTED
    require_leader = int(getattr(request, "replica_id", -1)) != DEBUGGING_REPLICA_ID
    topics: list[Any] = []
    for req_topic in request.topics:
        partitions: list[Any] = []
        allowed = ctx.authorize(AclOperation.DESCRIBE, ResourceType.TOPIC, req_topic.name)
        for req_part in req_topic.partitions:
            index = req_part.partition_index
            fields: dict[str, Any] = {
                "partition_index": index,
                "error_code": ErrorCode.none,
                "timestamp": -1,
                "offset": -1,
                "leader_epoch": -1,
            }
            if not allowed:
                fields["error_code"] = ErrorCode.topic_authorization_failed
                partitions.append(make(m.ListOffsetsPartitionResponse, **fields))
                continue
            try:
                partition = broker.replicas.local_partition(
                    req_topic.name,
                    index,
                    int(getattr(req_part, "current_leader_epoch", -1)),
                    require_leader=require_leader,
                )
            except PartitionError as exc:
                fields["error_code"] = exc.error_code
            else:
                log = partition.log
                fields["leader_epoch"] = partition.leader_epoch
                target = int(req_part.timestamp)
                fetchable = log.last_stable_offset if read_committed else log.high_watermark
                found: tuple[int, int] | None = None
                if target == LATEST:
                    fields["offset"] = fetchable
                elif target == EARLIEST:
                    fields["offset"] = log.log_start_offset
                elif target == MAX_TIMESTAMP:
                    found = log.max_timestamp_offset()
                elif target < 0:
                    fields["error_code"] = ErrorCode.invalid_request
                else:
                    found = log.offset_for_timestamp(target)
                if found is not None and found[0] < fetchable:
                    fields["offset"], fields["timestamp"] = found
            partitions.append(make(m.ListOffsetsPartitionResponse, **fields))
        topics.append(
            make(m.ListOffsetsTopicResponse, name=req_topic.name, partitions=tuple(partitions))
        )
    return ctx.response(throttle_time=0, topics=tuple(topics))
