"""Offset lookups by timestamp (ListOffsets): the rare read paths that decode records.

A segment's time index maps timestamps to offsets only sparsely and per batch; ListOffsets
by time wants the first *record* at or after a timestamp, so these functions find the batch
through the indexes and then decode that one batch. Produce and fetch never come here.
The caller (:class:`~moldau.log.log.PartitionLog`) holds the log's lock.
"""

from __future__ import annotations

from collections.abc import Sequence

from moldau.log.segment import LogSegment
from moldau.log.validator import MAX_DECOMPRESSED_BYTES
from moldau.protocol.compression import CompressionError
from moldau.protocol.record_batch import BatchHeader
from moldau.protocol.records import InvalidRecordError, decode_records


def offset_for_timestamp(
    segments: Sequence[LogSegment], log_start_offset: int, timestamp_ms: int
) -> tuple[int, int] | None:
    """``(offset, timestamp)`` of the first record at or after ``log_start_offset`` whose
    timestamp is ≥ ``timestamp_ms``, or None. For LogAppendTime batches every record's
    timestamp is the batch's max timestamp."""
    start = log_start_offset
    for segment in segments:
        if segment.max_timestamp < timestamp_ms:
            continue
        found = segment.find_timestamp(timestamp_ms, start)
        if found is None:
            continue
        position, header = found
        if header.is_log_append_time:
            return max(header.base_offset, start), header.max_timestamp
        for offset, ts in record_timestamps(segment, position, header):
            if offset >= start and ts >= timestamp_ms:
                return offset, ts
        return max(header.base_offset, start), header.max_timestamp
    return None


def max_timestamp_offset(segments: Sequence[LogSegment]) -> tuple[int, int]:
    """``(offset, timestamp)`` of the record with the greatest timestamp (KIP-734);
    ``(-1, -1)`` if no record has a timestamp."""
    best: LogSegment | None = None
    for segment in segments:
        if segment.max_timestamp >= 0 and (
            best is None or segment.max_timestamp > best.max_timestamp
        ):
            best = segment
    if best is None:
        return -1, -1
    found = best.translate_offset(best.offset_of_max_timestamp)
    if found is None:
        return best.offset_of_max_timestamp, best.max_timestamp
    position, header = found
    if not header.is_log_append_time:
        for offset, ts in record_timestamps(best, position, header):
            if ts == header.max_timestamp:
                return offset, ts
    return header.base_offset, header.max_timestamp


def record_timestamps(
    segment: LogSegment, position: int, header: BatchHeader
) -> list[tuple[int, int]]:
    """``(offset, timestamp)`` of each record of one batch; empty if it does not decode."""
    data = segment.read_batch(position, header)
    try:
        records = decode_records(data, 0, header, MAX_DECOMPRESSED_BYTES, contiguous_offsets=False)
    except (InvalidRecordError, CompressionError):
        return []
    base_offset, base_timestamp = header.base_offset, header.base_timestamp
    return [(base_offset + r.offset_delta, base_timestamp + r.timestamp_delta) for r in records]
