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

from moldau.broker.context import Deferred, RequestContext
from moldau.broker.handlers import handles
from moldau.broker.handlers.group_offsets import (
    add_denied,
    authorized_commit_topics,
    commit_answers,
    plan_commit,
)
from moldau.broker.handlers.txn import fenced_for_version
from moldau.coordinator.group.messages import TxnOffsetCommitRequest
from moldau.coordinator.group.offsets import CommitAnswer
from moldau.protocol.api import ApiKey

PRODUCER_FENCED_SINCE = 3
"""TxnOffsetCommit versions below this answer PRODUCER_FENCED as INVALID_PRODUCER_EPOCH."""


@handles(ApiKey.TXN_OFFSET_COMMIT)
async def handle_txn_offset_commit(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    broker.ensure_offsets_topic()
    allowed, denied = authorized_commit_topics(
        ctx, request.group_id, request.topics, request.transactional_id
    )
    plan = plan_commit(broker, allowed)
    answer: Awaitable[CommitAnswer] | None = None
    if plan.offsets:
        commit = TxnOffsetCommitRequest(
            group_id=request.group_id,
            transactional_id=request.transactional_id,
            producer_id=int(request.producer_id),
            producer_epoch=int(request.producer_epoch),
            generation_id=int(getattr(request, "generation_id", -1)),
            member_id=getattr(request, "member_id", ""),
            group_instance_id=getattr(request, "group_instance_id", None),
            offsets=plan.offsets,
        )
        answer = broker.group_coordinator.commit_transactional_offsets(commit)

    async def respond() -> Any:
        by_topic = await commit_answers(plan, answer)
        add_denied(by_topic, denied)
        topics = tuple(
            ctx.make(
                "TxnOffsetCommitResponseTopic",
                name=name,
                partitions=tuple(
                    ctx.make(
                        "TxnOffsetCommitResponsePartition",
                        partition_index=index,
                        error_code=fenced_for_version(error, ctx.version, PRODUCER_FENCED_SINCE),
                    )
                    for index, error in partitions
                ),
            )
            for name, partitions in by_topic.items()
        )
        return ctx.response(throttle_time=0, topics=topics)

    return Deferred(respond())
