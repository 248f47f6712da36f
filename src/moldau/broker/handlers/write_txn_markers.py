"""WriteTxnMarkers: a transaction coordinator asks this partition leader to end a
transaction in some of its partitions (also what ``kafka-transactions.sh abort`` sends to
end a hanging transaction). The writing itself is shared with this broker's own coordinator
(broker/txn_markers.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from moldau.broker.context import Deferred, RequestContext
from moldau.broker.handlers import handles
from moldau.broker.txn_markers import write_local_markers
from moldau.protocol.api import ApiKey


@handles(ApiKey.WRITE_TXN_MARKERS)
async def handle_write_txn_markers(ctx: RequestContext, request: Any) -> Any:
    broker = ctx.broker
    # One task per marker, started in request order; the answer waits for all of them.
    pending = [
        (
            marker,
            asyncio.ensure_future(
                write_local_markers(
                    broker,
                    producer_id=int(marker.producer_id),
                    producer_epoch=int(marker.producer_epoch),
                    coordinator_epoch=int(marker.coordinator_epoch),
                    commit=bool(marker.transaction_result),
                    partitions=[
                        (topic.name, int(p))
                        for topic in marker.topics
                        for p in topic.partition_indexes
                    ],
                )
            ),
        )
        for marker in request.markers
    ]

    async def answer() -> Any:
        results = []
        for marker, task in pending:
            errors = await task
            by_topic: dict[str, list[Any]] = {}
            for (topic, partition), error in errors.items():
                by_topic.setdefault(topic, []).append(
                    ctx.make(
                        "WritableTxnMarkerPartitionResult",
                        partition_index=partition,
                        error_code=error,
                    )
                )
            results.append(
                ctx.make(
                    "WritableTxnMarkerResult",
                    producer_id=marker.producer_id,
                    topics=tuple(
                        ctx.make("WritableTxnMarkerTopicResult", name=name, partitions=tuple(parts))
                        for name, parts in by_topic.items()
                    ),
                )
            )
        return ctx.response(markers=tuple(results))

    return Deferred(answer())
