"""OffsetForLeaderEpoch: where a leader epoch ends in this broker's log (KIP-101/279).

A follower that becomes follower (or a consumer validating its position after a leader
change, KIP-320) asks the leader for the end offset of its own latest epoch; it truncates
anything past that, since those records were never part of the leader's log. The answer is
``(epoch, end_offset)`` from the leader-epoch cache: the largest epoch ≤ the requested one
and where it ended (the start of the next epoch, or the log end offset for the latest),
``(-1, -1)`` when the request is older than every epoch we know.

Only the leader answers, after the ``current_leader_epoch`` check (FENCED_LEADER_EPOCH /
UNKNOWN_LEADER_EPOCH); ``replica_id`` -2 (v3+, Kafka's debugging id) may ask any replica.
kio carries v2 to v4 only (Kafka 4.0 removed v0 and v1), which is what we serve; librdkafka and the
Java client ask with v2+.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import RequestContext
from moldau.broker.handlers import handles
from moldau.cluster.replica_manager import PartitionError
from moldau.protocol.api import ApiKey
from moldau.protocol.messages import make

DEBUGGING_REPLICA_ID = -2


@handles(ApiKey.OFFSET_FOR_LEADER_EPOCH)
async def handle_offset_for_leader_epoch(ctx: RequestContext, request: Any) -> Any:
    replicas = ctx.broker.replicas
    m = ctx.m
    require_leader = int(getattr(request, "replica_id", -1)) != DEBUGGING_REPLICA_ID
    topics: list[Any] = []
    for req_topic in request.topics:
        partitions: list[Any] = []
        for req_part in req_topic.partitions:
            fields: dict[str, Any] = {
                "partition": req_part.partition,
                "error_code": ErrorCode.none,
                "leader_epoch": -1,
                "end_offset": -1,
            }
            try:
                partition = replicas.local_partition(
                    req_topic.topic,
                    int(req_part.partition),
                    int(getattr(req_part, "current_leader_epoch", -1)),
                    require_leader=require_leader,
                )
            except PartitionError as exc:
                fields["error_code"] = exc.error_code
            else:
                epoch, end_offset = partition.log.end_offset_for_epoch(int(req_part.leader_epoch))
                fields["leader_epoch"] = epoch
                fields["end_offset"] = end_offset
            partitions.append(make(m.EpochEndOffset, **fields))
        topics.append(
            make(m.OffsetForLeaderTopicResult, topic=req_topic.topic, partitions=tuple(partitions))
        )
    return ctx.response(throttle_time=0, topics=tuple(topics))
