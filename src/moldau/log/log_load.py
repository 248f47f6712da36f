"""Loading a partition directory's segments when its log is opened.

What :meth:`PartitionLog.open <moldau.log.log.PartitionLog.open>` does before it builds the
producer table, kept apart because it is all about files:

1. finish the cleaner swaps a crash interrupted and drop the staging directory
   (:func:`~moldau.log.swap.complete_interrupted_swaps`), then remove other leftovers;
2. open every segment; after an unclean shutdown, validate those holding offsets at or past
   the recovery point batch by batch, cut the first one with a torn or corrupt batch there
   and drop every segment after it (Kafka's rule: data after a corrupt batch cannot be
   trusted);
3. settle the log start offset (the checkpointed one, never below the first segment), drop
   everything if the checkpoint is beyond what survived, and make sure there is an active
   segment.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from moldau.log.config import LogConfig
from moldau.log.layout import (
    delete_segment_files,
    parse_log_dir_name,
    remove_temporary_files,
    segment_base_offsets,
)
from moldau.log.producer_state import ProducerStateManager
from moldau.log.segment import LogSegment
from moldau.log.swap import complete_interrupted_swaps
from moldau.log.transactions import InvalidMarkerError, TxnMarker, parse_marker
from moldau.protocol.record_batch import BatchHeader


@dataclass(slots=True)
class LoadedSegments:
    """What :func:`load_segments` found: the segments in offset order (the last one active),
    the log start offset, and whether files or the directory itself were just created (their
    parent directory then needs an fsync)."""

    segments: list[LogSegment]
    log_start_offset: int
    new_files: bool
    created: bool


def load_segments(
    directory: Path,
    config: LogConfig,
    *,
    recover: bool,
    log_start_offset: int | None,
    recovery_point: int,
    now_ms: int,
) -> LoadedSegments:
    """Open (or create) the segments of the partition directory ``directory``; see the
    module docstring. Blocking (file opens, recovery reads)."""
    parse_log_dir_name(directory.name)
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    complete_interrupted_swaps(directory)
    remove_temporary_files(directory)
    base_offsets = segment_base_offsets(directory)
    segments: list[LogSegment] = []
    recovered: list[LogSegment] = []
    for i, base_offset in enumerate(base_offsets):
        upper = base_offsets[i + 1] if i + 1 < len(base_offsets) else None
        needs_recovery = recover and (upper is None or upper > recovery_point)
        segment = LogSegment.open(
            directory,
            base_offset,
            index_interval_bytes=config.index_interval_bytes,
            max_index_bytes=config.segment_index_bytes,
            segment_jitter_ms=config.segment_jitter_ms,
            now_ms=now_ms,
            recover=needs_recovery,
        )
        segments.append(segment)
        if needs_recovery:
            recovered.append(segment)
            if segment.truncated_bytes and upper is not None:
                for later in base_offsets[i + 1 :]:
                    delete_segment_files(directory, later)
                break
    start = segments[0].base_offset if segments else (log_start_offset or 0)
    if log_start_offset is not None:
        start = max(start, log_start_offset)
    if segments and start > segments[-1].next_offset:
        # The checkpointed start is beyond what survived: nothing below it may be served.
        for segment in segments:
            segment.file.close()
            segment.delete()
        segments = []
    new_files = not segments
    if not segments:
        segments.append(new_segment(directory, start, config, now_ms))
    for segment in recovered:
        if not segment.deleted:
            segment.flush()
    for segment in segments[:-1]:
        segment.forget_recent()  # only the active segment serves tailing consumers
    return LoadedSegments(segments, start, new_files, created)


def new_segment(directory: Path, base_offset: int, config: LogConfig, now_ms: int) -> LogSegment:
    """A new, empty segment configured from the topic config."""
    return LogSegment.create(
        directory,
        base_offset,
        index_interval_bytes=config.index_interval_bytes,
        max_index_bytes=config.segment_index_bytes,
        segment_jitter_ms=config.segment_jitter_ms,
        now_ms=now_ms,
    )


def replay_batches(
    segments: Sequence[LogSegment], replay_from: int, state: ProducerStateManager
) -> Iterator[tuple[LogSegment, BatchHeader, TxnMarker | None]]:
    """The batches from ``replay_from`` on that the producer table has not seen (past its
    ``map_end_offset``), each with its decoded COMMIT/ABORT marker when it is a valid
    transactional control batch (None otherwise): what rebuilding the table replays."""
    for segment in segments:
        found = segment.translate_offset(replay_from)
        if found is None:
            continue
        for position, header in segment.iter_batches(found[0]):
            if header.next_offset <= state.map_end_offset:
                continue
            marker: TxnMarker | None = None
            if header.is_control and header.producer_id >= 0:
                try:
                    marker = parse_marker(segment.read_batch(position, header), 0, header)
                except InvalidMarkerError:
                    marker = None
            yield segment, header, marker
