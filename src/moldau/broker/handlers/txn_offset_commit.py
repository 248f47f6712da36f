"""TxnOffsetCommit (v0-3): a transactional producer commits a consumer group's offsets inside
its transaction (``send_offsets_to_transaction``).

The producer first asked the transaction coordinator to add the group's ``__consumer_offsets``
partition to the transaction (AddOffsetsToTxn); this request then goes to the *group*
coordinator, which writes the offsets as a transactional batch of the producer. They count
only when the transaction's COMMIT marker reaches that partition
(``moldau.coordinator.group.txn_offsets``).

As for OffsetCommit, partitions of unknown topics are answered UNKNOWN_TOPIC_OR_PARTITION
here and never reach the coordinator. Errors are per partition; a failed write answers its
error for every partition it carried. A producer whose epoch is stale gets
INVALID_PRODUCER_EPOCH from the log; PRODUCER_FENCED, which v0-2 clients do not know, is
answered INVALID_PRODUCER_EPOCH to them, as Kafka does. v3 (KIP-447) adds the consumer's
generation, member id and instance id, which the coordinator checks when given.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import Deferred, RequestContext
from moldau.broker.handlers import handles
from moldau.broker.handlers.group_offsets import partition_exists
from moldau.coordinator.group.messages import (
    PartitionOffset,
    TopicPartition,
    TxnOffsetCommitRequest,
)
from moldau.coordinator.group.offsets import CommitAnswer
from moldau.coordinator.group.runtime import CoordinatorWriteError
from moldau.protocol.api import ApiKey

PRODUCER_FENCED_SINCE_VERSION = 3
"""TxnOffsetCommit versions below this answer PRODUCER_FENCED as INVALID_PRODUCER_EPOCH."""


@handles(ApiKey.TXN_OFFSET_COMMIT)
async def handle_txn_offset_commit(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    broker.ensure_offsets_topic()
    order: list[TopicPartition] = []
    refused: dict[TopicPartition, ErrorCode] = {}
    offsets: list[PartitionOffset] = []
    for topic in request.topics:
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
    answer: Awaitable[CommitAnswer] | None = None
    if offsets:
        commit = TxnOffsetCommitRequest(
            group_id=request.group_id,
            transactional_id=request.transactional_id,
            producer_id=int(request.producer_id),
            producer_epoch=int(request.producer_epoch),
            generation_id=int(getattr(request, "generation_id", -1)),
            member_id=getattr(request, "member_id", ""),
            group_instance_id=getattr(request, "group_instance_id", None),
            offsets=tuple(offsets),
        )
        answer = broker.group_coordinator.commit_transactional_offsets(commit)

    async def respond() -> Any:
        errors = dict(refused)
        if answer is not None:
            try:
                errors.update(await answer)
            except CoordinatorWriteError as exc:
                errors.update(((p.topic, p.partition), exc.error) for p in offsets)
        by_topic: dict[str, list[Any]] = {}
        for tp in order:
            error = errors[tp]
            if error is ErrorCode.producer_fenced and ctx.version < PRODUCER_FENCED_SINCE_VERSION:
                error = ErrorCode.invalid_producer_epoch
            by_topic.setdefault(tp[0], []).append(
                ctx.make(
                    "TxnOffsetCommitResponsePartition", partition_index=tp[1], error_code=error
                )
            )
        topics = tuple(
            ctx.make("TxnOffsetCommitResponseTopic", name=name, partitions=tuple(partitions))
            for name, partitions in by_topic.items()
        )
        return ctx.response(throttle_time=0, topics=topics)

    return Deferred(respond())
