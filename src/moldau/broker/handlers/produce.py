"""Produce: validate and append each partition's batch; answer per acks.

acks=0 → no response. acks=1 → answer after the append. acks=all → the append is durable
first: by default a group-commit fsync covering it (``moldau.flush.on.acks.all``), so an
acknowledged write survives even power loss; otherwise Kafka's lazy flush policy.
Appends happen in request order before the handler returns (see handlers/__init__);
only the wait for the fsync is deferred.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import Deferred, RequestContext
from moldau.broker.handlers import handles
from moldau.cluster.metadata import SINGLE_NODE_LEADER_EPOCH
from moldau.log import LogAppendError
from moldau.protocol.api import ApiKey
from moldau.protocol.messages import make

LEADER_EPOCH = SINGLE_NODE_LEADER_EPOCH


@handles(ApiKey.PRODUCE)
async def handle_produce(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    acks = request.acks
    m = ctx.m
    now_ms = int(time.time() * 1000)
    topic_results: list[tuple[str, list[dict[str, Any]]]] = []
    durable_waits: list[Any] = []
    image = broker.metadata.image
    for topic_data in request.topic_data:
        name = topic_data.name
        topic = image.topic(name)
        results: list[dict[str, Any]] = []
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
            if acks not in (0, 1, -1):
                result["error_code"] = ErrorCode.invalid_required_acks
                continue
            log = broker.get_log(name, index) if topic is not None else None
            if log is None:
                result["error_code"] = ErrorCode.unknown_topic_or_partition
                continue
            records = partition_data.records
            if not records:
                result["error_code"] = ErrorCode.invalid_record
                result["error_message"] = "Produce request carried no records"
                continue
            try:
                info = log.append_as_leader(records, leader_epoch=LEADER_EPOCH, now_ms=now_ms)
            except LogAppendError as exc:
                result["error_code"] = ErrorCode(exc.error_code)
                result["error_message"] = exc.message
                continue
            result["error_code"] = ErrorCode.none
            result["base_offset"] = info.base_offset
            result["log_append_time"] = info.log_append_time_ms
            result["log_start_offset"] = info.log_start_offset
            if not info.duplicate:
                broker.notifier.notify(name, index)
                if acks == -1 and broker.config.flush_on_ack_all:
                    durable_waits.append(broker.flusher.wait_durable(log, info.last_offset))
                else:
                    broker.flusher.maybe_flush(log)
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

    if not durable_waits:
        return build()

    async def after_flush() -> Any:
        await asyncio.gather(*durable_waits)
        return build()

    return Deferred(asyncio.ensure_future(after_flush()))
