"""What the coordinator runtimes share about loading a shard from its internal topic.

The group and transaction coordinators both rebuild a partition's state by reading its log
from the start to the high watermark — off the event loop, a chunk at a time — and replaying
each record; while they do, the shard answers COORDINATOR_LOAD_IN_PROGRESS.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Callable

from moldau.log.log import PartitionLog
from moldau.protocol.record_batch import BatchHeader, iter_batches

LOAD_READ_BYTES = 1 << 20
"""Bytes read per chunk while loading (whole batches; at least one)."""


class ShardStatus(enum.Enum):
    """A coordinator shard's life: LOADING (replaying) → ACTIVE → CLOSED (unloaded)."""

    LOADING = "loading"
    ACTIVE = "active"
    CLOSED = "closed"


async def log_batches(
    log_: PartitionLog, keep_going: Callable[[], bool]
) -> AsyncIterator[tuple[bytes, int, BatchHeader]]:
    """``(chunk, position, header)`` of every batch from the log start to the high
    watermark; reads run in a worker thread. Stops early once ``keep_going()`` is false."""
    offset = log_.log_start_offset
    while offset < log_.high_watermark and keep_going():
        data = await asyncio.to_thread(_read_chunk, log_, offset)
        if not data:
            return
        for position, header in iter_batches(data):
            offset = header.next_offset
            yield data, position, header


def _read_chunk(log_: PartitionLog, offset: int) -> bytes:
    info = log_.read(offset, LOAD_READ_BYTES, max_offset=log_.high_watermark)
    return info.read_bytes()
