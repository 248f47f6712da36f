"""Fetch: whole batches from the log, long polling with min_bytes/max_wait_ms.

Sizes follow Kafka (KIP-74): ``partition_max_bytes`` caps each partition and ``max_bytes``
the response, except that the first batch of the first partition with data is returned
whole even when larger, so a consumer can always make progress. Fetch sessions (KIP-227)
are not kept: we always answer session id 0, which makes clients send full fetches.

Isolation (v4+): read_uncommitted reads up to the high watermark; read_committed only up to
the last stable offset, and answers the aborted transactions overlapping the returned
batches so the consumer can drop their records (an empty list when there are none, None for
read_uncommitted, as Kafka does). Every response carries the LSO. A read_committed long poll
is woken by the partition's notification when a marker is appended, which is when the LSO
moves.
"""

from __future__ import annotations

import time
from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import Deferred, RequestContext
from moldau.broker.handlers import handles
from moldau.cluster.metadata import SINGLE_NODE_LEADER_EPOCH
from moldau.log import OffsetOutOfRangeError
from moldau.protocol.api import ApiKey
from moldau.protocol.messages import make, millis

LEADER_EPOCH = SINGLE_NODE_LEADER_EPOCH
READ_COMMITTED = 1


def _read_all(ctx: RequestContext, request: Any) -> tuple[Any, int]:
    """Build the response from what the logs hold now; return it with its record bytes."""
    broker = ctx.broker
    m = ctx.m
    image = broker.metadata.image
    remaining = max(int(request.max_bytes), 0)  # every served version (v4+) has max_bytes
    read_committed = int(getattr(request, "isolation_level", 0)) == READ_COMMITTED
    total = 0
    first_data = True
    topics: list[Any] = []
    for fetch_topic in request.topics:
        name = fetch_topic.topic
        topic = image.topic(name)
        partitions: list[Any] = []
        for fp in fetch_topic.partitions:
            index = fp.partition
            log = broker.get_log(name, index) if topic is not None else None
            fields: dict[str, Any] = {
                "partition_index": index,
                "high_watermark": -1,
                "last_stable_offset": -1,
                "log_start_offset": -1,
                "aborted_transactions": None,
                "preferred_read_replica": -1,
                "records": b"",
            }
            if log is None:
                fields["error_code"] = ErrorCode.unknown_topic_or_partition
                partitions.append(make(m.PartitionData, **fields))
                continue
            epoch = getattr(fp, "current_leader_epoch", -1)
            if epoch > LEADER_EPOCH:
                fields["error_code"] = ErrorCode.unknown_leader_epoch
                partitions.append(make(m.PartitionData, **fields))
                continue
            if 0 <= epoch < LEADER_EPOCH:
                fields["error_code"] = ErrorCode.fenced_leader_epoch
                partitions.append(make(m.PartitionData, **fields))
                continue
            high_watermark = log.high_watermark
            last_stable_offset = log.last_stable_offset
            fields["high_watermark"] = high_watermark
            fields["last_stable_offset"] = last_stable_offset
            fields["log_start_offset"] = log.log_start_offset
            limit = min(int(fp.partition_max_bytes), remaining)
            fetch_offset = int(fp.fetch_offset)
            aborted: list[Any] = []
            try:
                if limit > 0 or first_data:
                    data = log.read(
                        fetch_offset,
                        max(limit, 0),
                        max_offset=last_stable_offset if read_committed else high_watermark,
                        min_one_message=first_data,
                    )
                    records = data.read_bytes() if data.size else b""
                    if read_committed and data.size:
                        aborted = [
                            make(
                                m.AbortedTransaction,
                                producer_id=txn.producer_id,
                                first_offset=txn.first_offset,
                            )
                            for txn in log.fetch_aborted_transactions(fetch_offset, data)
                        ]
                else:
                    records = b""
            except OffsetOutOfRangeError:
                fields["error_code"] = ErrorCode.offset_out_of_range
                partitions.append(make(m.PartitionData, **fields))
                continue
            fields["error_code"] = ErrorCode.none
            fields["records"] = records
            if read_committed:
                fields["aborted_transactions"] = tuple(aborted)
            if records:
                first_data = False
                total += len(records)
                remaining -= len(records)
            partitions.append(make(m.PartitionData, **fields))
        topics.append(make(m.FetchableTopicResponse, topic=name, partitions=tuple(partitions)))
    response = ctx.response(
        throttle_time=0, error_code=ErrorCode.none, session_id=0, responses=tuple(topics)
    )
    return response, total


@handles(ApiKey.FETCH)
async def handle_fetch(ctx: RequestContext, request: Any) -> Any:
    response, total = _read_all(ctx, request)
    max_wait_ms = millis(request.max_wait)
    if total >= request.min_bytes or max_wait_ms <= 0:
        return response
    partitions = [(t.topic, p.partition) for t in request.topics for p in t.partitions]
    deadline = time.monotonic() + max_wait_ms / 1000

    async def long_poll() -> Any:
        nonlocal response, total
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return response
            woken = await ctx.broker.notifier.wait_any(partitions, left)
            response, total = _read_all(ctx, request)
            if total >= request.min_bytes or not woken:
                return response

    return Deferred(long_poll())
