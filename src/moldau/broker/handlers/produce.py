"""Produce: validate and append each partition's batch; answer per acks.

Only the partition's leader appends (``broker.replicas.leader_partition``; others answer
NOT_LEADER_OR_FOLLOWER so the client refreshes its metadata). acks=0 → no response. acks=1 →
answer after the leader's append. acks=all → refused up front with NOT_ENOUGH_REPLICAS when
the ISR is below ``min.insync.replicas``; otherwise answered once the ISR has the batch (the
high watermark passed it; REQUEST_TIMED_OUT after the request's timeout,
NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below the minimum meanwhile) *and* it is
durable here: by default a group-commit fsync covering it (``moldau.flush.on.acks.all``), so
an acknowledged write survives even power loss; otherwise Kafka's lazy flush policy.
Appends happen in request order before the handler returns (see handlers/__init__); only
the waits are deferred. A failed wait answers its error with offset -1, as Kafka does.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import Deferred, RequestContext
from moldau.broker.handlers import handles
from moldau.cluster.replica_manager import PartitionError
from moldau.log import LogAppendError
from moldau.protocol.acl import AclOperation, ResourceType
from moldau.protocol.api import ApiKey
from moldau.protocol.messages import make


@handles(ApiKey.PRODUCE)
async def handle_produce(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    acks = request.acks
    m = ctx.m
    now_ms = int(time.time() * 1000)
    topic_results: list[tuple[str, list[dict[str, Any]]]] = []
    durable_waits: list[tuple[dict[str, Any], Any, Any]] = []
    replication_waits: list[tuple[dict[str, Any], Any]] = []
    replicas = broker.replicas
    timeout_ms = int(request.timeout_ms)
    transactional_id = getattr(request, "transactional_id", None)
    txn_denied = transactional_id is not None and not ctx.authorize(
        AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id
    )
    for topic_data in request.topic_data:
        name = topic_data.name
        results: list[dict[str, Any]] = []
        denied = (
            ErrorCode.transactional_id_authorization_failed
            if txn_denied
            else None
            if ctx.authorize(AclOperation.WRITE, ResourceType.TOPIC, name)
            else ErrorCode.topic_authorization_failed
        )
        for partition_data in topic_data.partition_data:
            index = partition_data.index
            result: dict[str, Any] = {
                "index": index,
                "base_offset": -1,
                "log_append_time": -1,
                "log_start_offset": -1,
                "record_errors": (),
                "error_message": None,
            }
            results.append(result)
            if denied is not None:
                result["error_code"] = denied
                continue
            if acks not in (0, 1, -1):
                result["error_code"] = ErrorCode.invalid_required_acks
                continue
            try:
                partition = replicas.leader_partition(name, index)
            except PartitionError as exc:
                result["error_code"] = exc.error_code
                continue
            records = partition_data.records
            if not records:
                result["error_code"] = ErrorCode.invalid_record
                result["error_message"] = "Produce request carried no records"
                continue
            try:
                info = partition.append_as_leader(records, now_ms=now_ms, required_acks=acks)
            except PartitionError as exc:
                result["error_code"] = exc.error_code
                result["error_message"] = exc.message
                continue
            except LogAppendError as exc:
                result["error_code"] = ErrorCode(exc.error_code)
                result["error_message"] = exc.message
                continue
            result["error_code"] = ErrorCode.none
            result["base_offset"] = info.base_offset
            result["log_append_time"] = info.log_append_time_ms
            result["log_start_offset"] = info.log_start_offset
            if acks == -1:
                # a duplicate's original batch may not be replicated yet either
                wait = partition.wait_for_replication(info.last_offset, timeout_ms)
                replication_waits.append((result, wait))
            if not info.duplicate:
                broker.notifier.notify(name, index)
                partition_log = partition.log
                if acks == -1 and broker.config.flush_on_ack_all:
                    durable_waits.append(
                        (
                            result,
                            partition,
                            broker.flusher.wait_durable(partition_log, info.last_offset),
                        )
                    )
                else:
                    broker.flusher.maybe_flush(partition_log)
        topic_results.append((name, results))

    if acks == 0:
        return None

    def build() -> Any:
        responses = tuple(
            make(
                m.TopicProduceResponse,
                name=name,
                partition_responses=tuple(make(m.PartitionProduceResponse, **r) for r in results),
            )
            for name, results in topic_results
        )
        return ctx.response(responses=responses, throttle_time=0)

    if not durable_waits and all(_done_ok(wait) for _, wait in replication_waits):
        return build()

    async def after_acks() -> Any:
        errors = await asyncio.gather(*(wait for _, wait in replication_waits))
        for (result, _), error in zip(replication_waits, errors, strict=True):
            if error != ErrorCode.none:
                _fail(result, error)
        flushed = await asyncio.gather(
            *(wait for _, _, wait in durable_waits), return_exceptions=True
        )
        for (result, partition, _), outcome in zip(durable_waits, flushed, strict=True):
            if isinstance(outcome, BaseException) and result["error_code"] == ErrorCode.none:
                # The log went away under the fsync (its replica was reassigned away, or the
                # topic deleted): a retriable NOT_LEADER_OR_FOLLOWER sends the client to the
                # new leader; a disk failure while still leading is KAFKA_STORAGE_ERROR.
                _fail(
                    result,
                    ErrorCode.kafka_storage_error
                    if partition.is_leader and not partition.log.closed
                    else ErrorCode.not_leader_or_follower,
                )
        return build()

    return Deferred(asyncio.ensure_future(after_acks()))


def _fail(result: dict[str, Any], error: ErrorCode) -> None:
    result["error_code"] = error
    result["base_offset"] = -1
    result["log_append_time"] = -1


def _done_ok(wait: Any) -> bool:
    """Whether a replication wait already completed successfully (no need to defer)."""
    return isinstance(wait, asyncio.Future) and wait.done() and wait.result() == ErrorCode.none
