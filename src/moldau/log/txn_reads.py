"""What a read_committed fetch needs besides the data: the aborted transactions it covers.

Kafka's ``collectAbortedTransactions``: walk the txn indexes (:mod:`moldau.log.txn_index`)
of the segment holding the fetch offset and the following ones, collecting the entries that
overlap ``[fetch_offset, upper_bound)``, until an entry whose last stable offset reaches the
bound proves that no later segment can hold an overlapping one. The functions take the log's
segment list; :class:`~moldau.log.log.PartitionLog` calls them holding its lock.
"""

from __future__ import annotations

from collections.abc import Sequence

from moldau.log.segment import LogSegment
from moldau.log.slices import FetchDataInfo
from moldau.log.txn_index import AbortedTxn
from moldau.protocol.record_batch import HEADER_SIZE, read_header


def collect_aborted_transactions(
    segments: Sequence[LogSegment], start: int, fetch_offset: int, upper_bound_offset: int
) -> list[AbortedTxn]:
    """The aborted transactions overlapping ``[fetch_offset, upper_bound_offset)``, from
    ``segments[start]`` (the segment holding ``fetch_offset``) on."""
    found: list[AbortedTxn] = []
    for segment in segments[start:]:
        entries, complete = segment.txn_index.collect(fetch_offset, upper_bound_offset)
        found += entries
        if complete:
            break
    return found


def fetch_upper_bound(
    segments: Sequence[LogSegment], start: int, data: FetchDataInfo, log_end_offset: int
) -> int | None:
    """The offset just past the batches of ``data`` (a read from ``segments[start]``), or
    None when no segment from ``start`` on has an aborted transaction (nothing to report).
    A slice of a segment no longer in the list (the cleaner swapped it out meanwhile) gives
    the log end offset: reporting too many aborted transactions is harmless."""
    if not data.slices or not any(s.txn_index.entries for s in segments[start:]):
        return None
    piece = data.slices[-1]
    end = piece.position + piece.size
    for i in range(start, len(segments)):
        segment = segments[i]
        if segment.file is not piece.file:
            continue
        if end < segment.size:
            return read_header(segment.file.pread(HEADER_SIZE, end)).base_offset
        if i + 1 < len(segments):
            return segments[i + 1].base_offset
        break
    return log_end_offset
