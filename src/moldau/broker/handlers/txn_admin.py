"""Transaction admin APIs: DescribeTransactions, ListTransactions (coordinator side) and
DescribeProducers (partition side: the producer table a partition leader keeps).

These are what ``kafka-transactions.sh`` and ``moldau txn`` use to find hanging
transactions and see which producers write a partition.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import RequestContext
from moldau.broker.handlers import handles
from moldau.cluster.replica_manager import PartitionError
from moldau.protocol.api import ApiKey


@handles(ApiKey.DESCRIBE_TRANSACTIONS)
async def handle_describe_transactions(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    ids = tuple(request.transactional_ids)
    states = []
    for described in broker.txn_coordinator.describe_transactions(ids):
        by_topic: dict[str, list[int]] = {}
        for topic, partition in described.partitions:
            by_topic.setdefault(topic, []).append(partition)
        states.append(
            ctx.make(
                "TransactionState",
                error_code=described.error,
                transactional_id=described.transactional_id,
                transaction_state=described.state,
                transaction_timeout=described.transaction_timeout_ms,
                transaction_start_time=described.transaction_start_time_ms,
                producer_id=described.producer_id,
                producer_epoch=described.producer_epoch,
                topics=tuple(
                    ctx.make("TopicData", topic=topic, partitions=tuple(sorted(parts)))
                    for topic, parts in sorted(by_topic.items())
                ),
            )
        )
    return ctx.response(throttle_time=0, transaction_states=tuple(states))


KNOWN_STATES = (
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
)


@handles(ApiKey.LIST_TRANSACTIONS)
async def handle_list_transactions(ctx: RequestContext, request: Any) -> Any:
    wanted_states = tuple(request.state_filters)
    unknown = tuple(state for state in wanted_states if state not in KNOWN_STATES)
    known = [state for state in wanted_states if state in KNOWN_STATES]
    if wanted_states and not known:
        return ctx.response(
            throttle_time=0,
            error_code=ErrorCode.none,
            unknown_state_filters=unknown,
            transaction_states=(),
        )
    error, listed = ctx.broker.txn_coordinator.list_transactions(
        known,
        [int(p) for p in request.producer_id_filters],
        int(getattr(request, "duration_filter", -1)),
    )
    return ctx.response(
        throttle_time=0,
        error_code=error,
        unknown_state_filters=unknown,
        transaction_states=tuple(
            ctx.make(
                "TransactionState",
                transactional_id=t.transactional_id,
                producer_id=t.producer_id,
                transaction_state=t.state,
            )
            for t in listed
        ),
    )


@handles(ApiKey.DESCRIBE_PRODUCERS)
async def handle_describe_producers(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    topics = []
    for topic_request in request.topics:
        partitions = []
        for index in topic_request.partition_indexes:
            try:
                partition_log = broker.leader_partition(topic_request.name, index).log
            except PartitionError as exc:
                partitions.append(
                    ctx.make(
                        "PartitionResponse",
                        partition_index=index,
                        error_code=exc.error_code,
                        error_message=exc.message,
                        active_producers=(),
                    )
                )
                continue
            producers = tuple(
                ctx.make(
                    "ProducerState",
                    producer_id=entry.producer_id,
                    producer_epoch=entry.producer_epoch,
                    last_sequence=entry.last_seq,
                    last_timestamp=entry.last_timestamp_ms,
                    coordinator_epoch=entry.coordinator_epoch,
                    current_txn_start_offset=entry.current_txn_first_offset,
                )
                for entry in list(partition_log.producer_state.producers.values())
            )
            partitions.append(
                ctx.make(
                    "PartitionResponse",
                    partition_index=index,
                    error_code=ErrorCode.none,
                    error_message=None,
                    active_producers=producers,
                )
            )
        topics.append(
            ctx.make("TopicResponse", name=topic_request.name, partitions=tuple(partitions))
        )
    return ctx.response(throttle_time=0, topics=tuple(topics))
