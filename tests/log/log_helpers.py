"""Helpers for the storage tests: batches as a producer would send them, simulated crashes."""

from __future__ import annotations

from collections.abc import Callable

from moldau.log.log import PartitionLog
from moldau.protocol.record_batch import read_header
from moldau.protocol.records import NewRecord, build_batch

NOW_MS = 1_700_000_000_000
"""A fixed wall-clock time for tests (no test depends on the real clock)."""


def make_batch(
    count: int = 1,
    *,
    value_size: int = 10,
    timestamp_ms: int = NOW_MS,
    timestamps: list[int] | None = None,
    keys: list[bytes | None] | None = None,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    compression: int = 0,
    base_offset: int = 0,
    is_transactional: bool = False,
) -> bytearray:
    """One v2 batch of ``count`` records, as a client sends it (base offset 0)."""
    records = [
        NewRecord(
            key=keys[i] if keys is not None else None,
            value=bytes([i % 256]) * value_size,
            timestamp_ms=timestamps[i] if timestamps is not None else timestamp_ms,
        )
        for i in range(count)
    ]
    return bytearray(
        build_batch(
            records,
            compression=compression,
            base_offset=base_offset,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            base_sequence=base_sequence,
            is_transactional=is_transactional,
        )
    )


def batch_offsets(data: bytes) -> list[tuple[int, int]]:
    """``(base_offset, last_offset)`` of each batch in ``data``."""
    out = []
    pos = 0
    while pos < len(data):
        header = read_header(data, pos)
        out.append((header.base_offset, header.last_offset))
        pos += header.size
    return out


def crash(log: PartitionLog) -> None:
    """Simulate a process crash: drop the descriptors without flushing, writing indexes or
    snapshotting. Written bytes stay (they are in the page cache), as after a kill -9."""
    for segment in log.segments:
        segment.file.close()
    log._closed = True


OpenLog = Callable[..., PartitionLog]
"""The ``open_log`` fixture: open (or reopen) the test's partition log."""
