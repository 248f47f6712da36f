"""The producer's transaction requests: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn.

Each goes to the transaction coordinator of its transactional id (this broker, once
``__transaction_state`` exists). The coordinator answers with today's error codes;
``fenced_for_version`` turns PRODUCER_FENCED into INVALID_PRODUCER_EPOCH for request versions
older than KIP-588, which clients of that age do not know. Answers wait for the coordinator's
write to be durable, so they are Deferred: the connection keeps serving other requests.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import Deferred, RequestContext
from moldau.broker.handlers import handles
from moldau.coordinator.group import GROUP_METADATA_TOPIC
from moldau.protocol.acl import AclOperation, ResourceType
from moldau.protocol.api import ApiKey

ADD_PARTITIONS_FENCED_SINCE = 2
ADD_OFFSETS_FENCED_SINCE = 2
END_TXN_FENCED_SINCE = 2


def fenced_for_version(error: ErrorCode, version: int, fenced_since: int) -> ErrorCode:
    """PRODUCER_FENCED as a client of ``version`` understands it."""
    if error is ErrorCode.producer_fenced and version < fenced_since:
        return ErrorCode.invalid_producer_epoch
    return error


def _coordinator_error(ctx: RequestContext, transactional_id: str) -> ErrorCode | None:
    if not transactional_id:
        return ErrorCode.invalid_request
    if not ctx.authorize(AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id):
        return ErrorCode.transactional_id_authorization_failed
    ctx.broker.ensure_transaction_state_topic()
    return ctx.broker.txn_coordinator.status_error(transactional_id)


@handles(ApiKey.ADD_PARTITIONS_TO_TXN)
async def handle_add_partitions_to_txn(ctx: RequestContext, request: Any) -> Any:
    transactional_id = request.v3_and_below_transactional_id
    producer_id = int(request.v3_and_below_producer_id)
    producer_epoch = int(request.v3_and_below_producer_epoch)
    wanted = [
        (topic.name, int(partition))
        for topic in request.v3_and_below_topics
        for partition in topic.partitions
    ]
    error = _coordinator_error(ctx, transactional_id)
    if error is not None:
        return _partition_results(ctx, {tp: error for tp in wanted})
    denied = {
        (topic, partition)
        for topic, partition in wanted
        if not ctx.authorize(AclOperation.WRITE, ResourceType.TOPIC, topic)
    }
    if denied:
        return _partition_results(
            ctx,
            {
                tp: ErrorCode.topic_authorization_failed
                if tp in denied
                else ErrorCode.operation_not_attempted
                for tp in wanted
            },
        )
    image = ctx.broker.metadata.image
    missing = {
        (topic, partition)
        for topic, partition in wanted
        if (known := image.topic(topic)) is None or not 0 <= partition < known.partitions
    }
    if missing:
        # Kafka answers the missing ones and does not attempt the rest.
        return _partition_results(
            ctx,
            {
                tp: ErrorCode.unknown_topic_or_partition
                if tp in missing
                else ErrorCode.operation_not_attempted
                for tp in wanted
            },
        )

    async def answer() -> Any:
        result = await ctx.broker.txn_coordinator.add_partitions(
            transactional_id, producer_id, producer_epoch, wanted
        )
        result = fenced_for_version(result, ctx.version, ADD_PARTITIONS_FENCED_SINCE)
        return _partition_results(ctx, {tp: result for tp in wanted})

    return Deferred(answer())


def _partition_results(ctx: RequestContext, errors: dict[tuple[str, int], ErrorCode]) -> Any:
    by_topic: dict[str, list[Any]] = {}
    for (topic, partition), error in errors.items():
        by_topic.setdefault(topic, []).append(
            ctx.make(
                "AddPartitionsToTxnPartitionResult",
                partition_index=partition,
                partition_error_code=error,
            )
        )
    results = tuple(
        ctx.make("AddPartitionsToTxnTopicResult", name=topic, results_by_partition=tuple(parts))
        for topic, parts in by_topic.items()
    )
    return ctx.response(throttle_time=0, results_by_topic_v3_and_below=results)


@handles(ApiKey.ADD_OFFSETS_TO_TXN)
async def handle_add_offsets_to_txn(ctx: RequestContext, request: Any) -> Any:
    transactional_id = request.transactional_id
    error = _coordinator_error(ctx, transactional_id)
    if error is not None:
        return ctx.response(throttle_time=0, error_code=error)
    if not request.group_id:
        return ctx.response(throttle_time=0, error_code=ErrorCode.invalid_group_id)
    if not ctx.authorize(AclOperation.READ, ResourceType.GROUP, request.group_id):
        return ctx.response(throttle_time=0, error_code=ErrorCode.group_authorization_failed)
    broker = ctx.broker
    broker.ensure_offsets_topic()
    offsets_partition = broker.group_coordinator.partition_for(request.group_id)

    async def answer() -> Any:
        result = await broker.txn_coordinator.add_partitions(
            transactional_id,
            int(request.producer_id),
            int(request.producer_epoch),
            [(GROUP_METADATA_TOPIC, offsets_partition)],
        )
        result = fenced_for_version(result, ctx.version, ADD_OFFSETS_FENCED_SINCE)
        return ctx.response(throttle_time=0, error_code=result)

    return Deferred(answer())


@handles(ApiKey.END_TXN)
async def handle_end_txn(ctx: RequestContext, request: Any) -> Any:
    transactional_id = request.transactional_id
    error = _coordinator_error(ctx, transactional_id)
    if error is not None:
        return ctx.response(throttle_time=0, error_code=error)

    async def answer() -> Any:
        result = await ctx.broker.txn_coordinator.end_transaction(
            transactional_id,
            int(request.producer_id),
            int(request.producer_epoch),
            bool(request.committed),
        )
        result = fenced_for_version(result, ctx.version, END_TXN_FENCED_SINCE)
        return ctx.response(throttle_time=0, error_code=result)

    return Deferred(answer())
