"""One partition's log: an ordered list of segments in ``<topic>-<partition>/``.

Offsets: ``log_start_offset ≤ high_watermark ≤ log_end_offset``. The log start offset moves
forward with retention and DeleteRecords; the log end offset (LEO) is the next offset to
assign; the high watermark bounds what consumers may read (``hw_follows_appends``: it follows
the LEO on every append; under replication the partition's leader moves it through the setter
once the ISR has the records, and a follower copies its leader's). The leader-epoch cache
(:mod:`moldau.log.leader_epoch`) records where each leader epoch began; appends, truncation
and log-start moves keep it in step, and OffsetForLeaderEpoch reads it. ``recovery_point`` is the
offset below which everything is known to be fsynced — it is what the group-commit flusher
waits on and what the recovery-point checkpoint records.

Write path (``append_as_leader``), all on the event loop thread, no per-record work:
validate (:class:`~moldau.log.validator.LogValidator`) → check the producer's sequence
(duplicates return the original offsets and write nothing) → patch base offset and leader
epoch into the request's own buffer → roll if the active segment is full or old → one
``pwrite``. Durability is not the append's job: the caller asks the flusher.

Read path (``read``): locate the segment by base offset (bisect), the batch by the sparse
index plus a short header walk, and return file slices of whole batches up to ``max_bytes``
and the high watermark.

Transactions: a transactional producer's data batches open a transaction on the partition;
the COMMIT/ABORT marker the coordinator has the broker write (``append_txn_marker``) ends
it. The producer table tracks the open transactions in first-offset order, which gives the
**last stable offset** (LSO) — below it every transaction is decided — in O(1): it bounds
what read_committed consumers may fetch. Each ABORT of a transaction that wrote data here
adds an entry to the marker segment's ``.txnindex`` (:mod:`moldau.log.txn_index`), which is
where ``aborted_transactions`` finds what a read_committed fetch must report. The producer
snapshots carry each producer's open transaction, and the replay after them re-completes
transactions and re-creates missing txn index entries, so a restart (clean or not) comes
back with the same LSO and the same aborted list.

Opening: segments are loaded from the directory; after an unclean shutdown every segment
holding offsets at or past the recovery point is validated batch by batch and cut at the
first torn or corrupt batch (later segments are then dropped, as Kafka does), and the
producer table is rebuilt from the newest snapshot plus a replay of the batches after it.

Threads: appends and reads run on the event loop thread; ``flush`` runs on a worker thread
concurrently with them (it fsyncs and writes copied index bytes only, no lock). Retention,
DeleteRecords and truncation may run on a worker thread too: every method that reads or
changes the segment list or the producer table holds the log's lock (uncontended: well
under a microsecond per call). Do not close or delete a log while a flush of it is running.
"""

from __future__ import annotations

import bisect
import functools
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from kio.schema.errors import ErrorCode

from moldau.log.config import LogConfig
from moldau.log.errors import LogAppendError, OffsetOutOfRangeError
from moldau.log.fsutil import fsync_directory
from moldau.log.layout import DELETE_DIR_SUFFIX, parse_log_dir_name
from moldau.log.leader_epoch import LeaderEpochCache
from moldau.log.log_load import load_segments, new_segment, replay_batches
from moldau.log.origin import AppendOrigin
from moldau.log.producer_state import (
    DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    ProducerStateManager,
)
from moldau.log.segment import (
    LogSegment,
)
from moldau.log.slices import EMPTY_FETCH, FetchDataInfo
from moldau.log.timestamps import max_timestamp_offset, offset_for_timestamp
from moldau.log.transactions import InvalidMarkerError, TxnMarker, parse_marker
from moldau.log.txn_index import AbortedTxn
from moldau.log.txn_reads import collect_aborted_transactions, fetch_upper_bound
from moldau.log.validator import LogValidator
from moldau.protocol.record_batch import (
    LOG_OVERHEAD,
    BatchHeader,
    Buffer,
    InvalidBatchError,
    crc_is_valid,
    iter_batches,
    set_base_offset,
    set_partition_leader_epoch,
)
from moldau.protocol.records import build_batch, end_txn_marker


@dataclass(slots=True)
class AppendInfo:
    """What a Produce response reports for one partition (treat as immutable; not frozen
    only because a frozen dataclass costs a microsecond more per append).

    ``duplicate`` means the batch was a producer retry of one already in the log: nothing was
    written and the offsets are the original ones.
    """

    base_offset: int
    last_offset: int
    log_append_time_ms: int
    log_start_offset: int
    duplicate: bool = False
    records_count: int = 0


_CLIENT = AppendOrigin.CLIENT

SegmentPredicate = Callable[[LogSegment, "LogSegment | None"], bool]
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(
    method: Callable[Concatenate[PartitionLog, _P], _R],
) -> Callable[Concatenate[PartitionLog, _P], _R]:
    """Run the method holding the log's lock (see the module docstring, "Threads")."""

    @functools.wraps(method)
    def locked(self: PartitionLog, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class PartitionLog:
    """The log of one partition; see the module docstring. Build with :meth:`open`."""

    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        segments: list[LogSegment],
        producer_state: ProducerStateManager,
        *,
        log_start_offset: int,
    ) -> None:
        self.directory = directory
        self.topic, self.partition = parse_log_dir_name(directory.name)
        self._config = config
        self._validator = LogValidator(config)
        self._segments = segments
        self._base_offsets = [s.base_offset for s in segments]
        self._producer_state = producer_state
        self._log_start_offset = log_start_offset
        self._log_end_offset = segments[-1].next_offset
        self._high_watermark = self._log_end_offset
        self._recovery_point = self._log_end_offset
        self._directory_dirty = False
        self._parent_dirty = False
        self._closed = False
        self._lock = threading.RLock()
        self._leader_epochs = LeaderEpochCache.load(directory)
        self.hw_follows_appends = True
        """True (single node): an append moves the high watermark to the new log end.
        Replication sets it False and moves the high watermark itself, through the setter,
        once the ISR has the records."""

    # --- opening --------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        config: LogConfig,
        *,
        recover: bool,
        log_start_offset: int | None = None,
        recovery_point: int = 0,
        now_ms: int | None = None,
        producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    ) -> PartitionLog:
        """Open (or create) the log in ``directory``.

        ``recover`` says the last shutdown was not clean: segments holding offsets at or past
        ``recovery_point`` are validated and cut at the first bad batch. ``log_start_offset``
        comes from the log-start-offset checkpoint (None: the first segment's base offset).
        """
        now = _now(now_ms)
        loaded = load_segments(
            directory,
            config,
            recover=recover,
            log_start_offset=log_start_offset,
            recovery_point=recovery_point,
            now_ms=now,
        )
        segments, start = loaded.segments, loaded.log_start_offset
        producer_state = ProducerStateManager(
            directory, producer_id_expiration_ms=producer_id_expiration_ms
        )
        log = cls(directory, config, segments, producer_state, log_start_offset=start)
        # a new directory or segment file is durable only once its parent is fsynced: the
        # first flush does it (not here: opening must not block the event loop)
        log._directory_dirty = loaded.new_files
        log._parent_dirty = loaded.created
        for segment in segments:
            # entries for markers that did not survive (a cut tail) describe nothing
            segment.txn_index.truncate_to(segment.next_offset)
        log._rebuild_producer_state(now, max_snapshot_offset=recovery_point if recover else None)
        # a cut tail or moved log start leaves epochs that describe nothing
        log._leader_epochs.truncate_from_end(log._log_end_offset)
        log._leader_epochs.truncate_from_start(log._log_start_offset)
        return log

    def _rebuild_producer_state(self, now: int, *, max_snapshot_offset: int | None = None) -> None:
        """Load the newest usable producer snapshot and replay the log after it: data
        batches update the producers, markers complete their transactions and put back the
        txn index entries of aborts that are missing (entries already there are kept)."""
        state = self._producer_state
        replay_from = state.load(
            self._log_start_offset,
            self._log_end_offset,
            now,
            max_snapshot_offset=max_snapshot_offset,
        )
        if replay_from < self._log_end_offset:
            segments = self._segments[self._segment_index(replay_from) :]
            for segment, header, marker in replay_batches(segments, replay_from, state):
                if marker is None:
                    state.update(header)
                else:
                    self._complete_txn(header, marker, segment, replay=True)
        state.map_end_offset = self._log_end_offset
        state.remove_expired_producers(now)

    def _complete_txn(
        self, header: BatchHeader, marker: TxnMarker, segment: LogSegment, *, replay: bool = False
    ) -> None:
        """Apply the marker batch ``header`` (final offsets, now in ``segment``): end the
        producer's transaction and index it if it was an abort with data here."""
        state = self._producer_state
        completed = state.end_txn(
            header, commit=marker.commit, coordinator_epoch=marker.coordinator_epoch
        )
        if completed is None or not completed.aborted:
            return
        index = segment.txn_index
        if replay and (
            index.has_marker(completed.last_offset) or completed.last_offset <= index.last_offset
        ):
            return
        index.append(
            AbortedTxn(
                completed.producer_id,
                completed.first_offset,
                completed.last_offset,
                state.stable_offset_after(completed),
            )
        )

    # --- properties -----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def config(self) -> LogConfig:
        return self._config

    @_locked
    def update_config(self, config: LogConfig) -> None:
        """Swap in a new topic config (AlterConfigs); applies from the next append."""
        self._config = config
        self._validator = LogValidator(config)
        for segment in self._segments:
            segment.set_index_config(
                index_interval_bytes=config.index_interval_bytes,
                max_index_bytes=config.segment_index_bytes,
            )

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._log_end_offset

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    @high_watermark.setter
    def high_watermark(self, offset: int) -> None:
        """Clamped to ``[log_start_offset, log_end_offset]`` as Kafka does."""
        self._high_watermark = min(max(offset, self._log_start_offset), self._log_end_offset)

    @property
    def recovery_point(self) -> int:
        """Every offset below this is on stable storage."""
        return self._recovery_point

    @property
    def unflushed_messages(self) -> int:
        return self._log_end_offset - self._recovery_point

    @property
    def segments(self) -> tuple[LogSegment, ...]:
        return tuple(self._segments)

    @property
    def active_segment(self) -> LogSegment:
        return self._segments[-1]

    @property
    def size_bytes(self) -> int:
        return sum(segment.size for segment in self._segments)

    @property
    def leader_epochs(self) -> LeaderEpochCache:
        return self._leader_epochs

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: ``(epoch, end offset)`` per Kafka's rules (see
        :meth:`LeaderEpochCache.end_offset_for`)."""
        return self._leader_epochs.end_offset_for(epoch, self._log_end_offset)

    def assign_leader_epoch(self, epoch: int) -> None:
        """This broker became leader at ``epoch``: the epoch starts at the log end, even
        before its first append, so followers asking about older epochs get exact ends."""
        self._leader_epochs.assign(epoch, self._log_end_offset)

    @property
    def producer_state(self) -> ProducerStateManager:
        return self._producer_state

    @property
    @_locked
    def last_stable_offset(self) -> int:
        """The LSO: below it every transaction is decided and replicated — the oldest open
        transaction's first offset, else the high watermark (never below the log start)."""
        high_watermark = self._high_watermark
        first = self._producer_state.first_unstable_offset(high_watermark)
        if first is None or first >= high_watermark:
            return high_watermark
        return max(first, self._log_start_offset)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def lock(self) -> AbstractContextManager[bool]:
        """The log's lock, for a caller that must see the segment list stay put over several
        steps (the cleaner's swap, :mod:`moldau.log.swap`). Reentrant."""
        return self._lock

    @_locked
    def replace_segments(self, old: Sequence[LogSegment], new: LogSegment) -> None:
        """Put ``new`` in place of the consecutive closed segments ``old`` (the cleaner's
        swap, which owns the files; see :mod:`moldau.log.swap`). Nothing else changes: the
        offsets a cleaned segment drops are compacted away, not moved, so the log start and
        end offsets, the high watermark and the producer table stay as they are."""
        segments = self._segments
        first = next((i for i, s in enumerate(segments) if s is old[0]), -1)
        end = first + len(old)
        if (
            first < 0
            or end >= len(segments)
            or any(segments[first + i] is not s for i, s in enumerate(old))
        ):
            raise ValueError(f"{self.name}: the segments to replace are not the log's")
        self._segments = [*segments[:first], new, *segments[end:]]
        self._base_offsets = [s.base_offset for s in self._segments]

    def _segment_index(self, offset: int) -> int:
        return max(bisect.bisect_right(self._base_offsets, offset) - 1, 0)

    # --- appending ------------------------------------------------------------------------

    @_locked
    def append_as_leader(
        self,
        records: bytearray | memoryview,
        *,
        leader_epoch: int,
        now_ms: int,
        origin: AppendOrigin = _CLIENT,
    ) -> AppendInfo:
        """Validate and append one batch; raises LogAppendError.

        ``records`` is patched in place (offsets, leader epoch, LogAppendTime) when writable.
        ``origin`` is CLIENT for Produce requests; the broker's own writes (transaction
        markers, group offsets) use COORDINATOR: control batches allowed, no sequence
        checks, the producer epoch still checked (see :mod:`moldau.log.origin`).
        """
        validated = self._validator.validate(records, now_ms=now_ms, origin=origin)
        header = validated.header
        _, size, _, _, _, _, last_delta, _, max_timestamp, producer_id, *_ = header
        count = header[12]
        marker: TxnMarker | None = None
        if producer_id >= 0:
            if origin is _CLIENT:
                duplicate = self._producer_state.check_append(header)
                if duplicate is not None:
                    return AppendInfo(
                        duplicate.first_offset,
                        duplicate.last_offset,
                        duplicate.timestamp_ms if self._config.log_append_time else -1,
                        self._log_start_offset,
                        True,
                        count,
                    )
            elif header.is_control:
                marker = self._check_marker(validated.buffer, header)
            else:
                self._producer_state.check_coordinator_append(header)
        elif header.is_control:
            raise LogAppendError(
                ErrorCode.invalid_record, "a control batch must carry a producer id"
            )
        buf = validated.buffer
        base_offset = self._log_end_offset
        last_offset = base_offset + last_delta
        latest_epoch = self._leader_epochs.latest_epoch()
        if latest_epoch is None or leader_epoch > latest_epoch:
            self._leader_epochs.assign(leader_epoch, base_offset)
        set_base_offset(buf, 0, base_offset)
        set_partition_leader_epoch(buf, 0, leader_epoch)
        segment = self._segments[-1]
        config = self._config
        if segment.should_roll(
            segment_bytes=config.segment_bytes,
            segment_ms=config.segment_ms,
            incoming_bytes=size + LOG_OVERHEAD,
            incoming_max_timestamp=max_timestamp,
            incoming_last_offset=last_offset,
            now_ms=now_ms,
        ):
            segment = self.roll(now_ms)
        segment.append_batch(buf, base_offset, header)
        segment.last_modified_ms = now_ms
        self._log_end_offset = last_offset + 1
        if self.hw_follows_appends:
            self._high_watermark = last_offset + 1
        producer_state = self._producer_state
        if producer_id >= 0:
            final = tuple.__new__(BatchHeader, (base_offset, size, leader_epoch, *header[3:]))
            if marker is None:
                producer_state.update(final)
            else:
                self._complete_txn(final, marker, segment)
        else:
            producer_state.map_end_offset = last_offset + 1
        return AppendInfo(
            base_offset,
            last_offset,
            validated.log_append_time_ms,
            self._log_start_offset,
            False,
            count,
        )

    def _check_marker(self, buf: Buffer, header: BatchHeader) -> TxnMarker:
        """Decode a COORDINATOR control batch and apply Kafka's marker checks."""
        try:
            marker = parse_marker(buf, 0, header)
        except InvalidMarkerError as exc:
            raise LogAppendError(ErrorCode.invalid_record, str(exc)) from None
        self._producer_state.check_end_txn(
            header.producer_id, header.producer_epoch, marker.coordinator_epoch
        )
        return marker

    def append_txn_marker(
        self,
        *,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        coordinator_epoch: int,
        leader_epoch: int,
        now_ms: int,
    ) -> AppendInfo:
        """Write the COMMIT/ABORT marker ending ``producer_id``'s transaction here (Kafka's
        WriteTxnMarkers on one partition). Raises LogAppendError: INVALID_PRODUCER_EPOCH for
        an epoch older than the producer's current one, TRANSACTION_COORDINATOR_FENCED for a
        coordinator epoch older than the one recorded. A marker for a producer without an
        open transaction here is still written, as Kafka does."""
        batch = bytearray(
            build_batch(
                [end_txn_marker(commit, coordinator_epoch)],
                base_timestamp=now_ms,
                producer_id=producer_id,
                producer_epoch=producer_epoch,
                is_transactional=True,
                is_control=True,
            )
        )
        return self.append_as_leader(
            batch, leader_epoch=leader_epoch, now_ms=now_ms, origin=AppendOrigin.COORDINATOR
        )

    @_locked
    def append_as_follower(self, records: Buffer, *, now_ms: int | None = None) -> AppendInfo:
        """Append batches that already carry their offsets (replication, tests).

        Checks framing, CRCs and that offsets increase from the log end offset; no producer
        validation (the leader did it), but the producer table is updated. The high watermark
        is not moved.
        """
        now = _now(now_ms)
        try:
            batches = list(iter_batches(records))
        except InvalidBatchError as exc:
            raise LogAppendError(ErrorCode.corrupt_message, str(exc)) from None
        if not batches:
            raise LogAppendError(ErrorCode.invalid_record, "no record batch to append")
        expected = self._log_end_offset
        for position, header in batches:
            if not crc_is_valid(records, position, header):
                raise LogAppendError(ErrorCode.corrupt_message, f"CRC mismatch at {position}")
            if header.base_offset < expected or header.last_offset_delta < 0:
                raise LogAppendError(
                    ErrorCode.invalid_record,
                    f"batch offset {header.base_offset} is below the log end offset {expected}",
                )
            expected = header.next_offset
        first, last = batches[0][1], batches[-1][1]
        max_timestamp = max(h.max_timestamp for _, h in batches)
        segment = self._maybe_roll(len(records), max_timestamp, last.last_offset, now)
        segment.append(records, batches)
        segment.last_modified_ms = now
        self._log_end_offset = last.next_offset
        epochs = self._leader_epochs
        for _, header in batches:
            latest_epoch = epochs.latest_epoch()
            if latest_epoch is None or header.partition_leader_epoch > latest_epoch:
                epochs.assign(header.partition_leader_epoch, header.base_offset)
        for position, header in batches:
            if header.is_control and header.producer_id >= 0:
                try:
                    marker = parse_marker(records, position, header)
                except InvalidMarkerError:
                    self._producer_state.update(header)
                    continue
                self._complete_txn(header, marker, segment)
            else:
                self._producer_state.update(header)
        return AppendInfo(
            first.base_offset,
            last.last_offset,
            -1,
            self._log_start_offset,
            False,
            sum(h.records_count for _, h in batches),
        )

    def _maybe_roll(
        self, incoming_bytes: int, max_timestamp: int, last_offset: int, now_ms: int
    ) -> LogSegment:
        segment = self._segments[-1]
        config = self._config
        if segment.should_roll(
            segment_bytes=config.segment_bytes,
            segment_ms=config.segment_ms,
            incoming_bytes=incoming_bytes,
            incoming_max_timestamp=max_timestamp,
            incoming_last_offset=last_offset,
            now_ms=now_ms,
        ):
            return self.roll(now_ms)
        return segment

    @_locked
    def roll(self, now_ms: int | None = None) -> LogSegment:
        """Start a new active segment at the log end offset (no-op if the active segment is
        empty); snapshot the producer table at that offset, as Kafka does."""
        active = self._segments[-1]
        if active.is_empty:
            return active
        now = _now(now_ms)
        active.on_become_inactive()
        segment = new_segment(self.directory, self._log_end_offset, self._config, now)
        self._segments.append(segment)
        self._base_offsets.append(segment.base_offset)
        self._producer_state.map_end_offset = self._log_end_offset
        self._producer_state.take_snapshot()
        self._directory_dirty = True
        return segment

    # --- reading --------------------------------------------------------------------------

    @_locked
    def read(
        self,
        fetch_offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        min_one_message: bool = True,
    ) -> FetchDataInfo:
        """Whole batches from the one containing ``fetch_offset``, at most ``max_bytes``
        (but at least one batch if ``min_one_message``), none holding offsets at or past
        ``max_offset`` (pass the high watermark for consumers). Reads from one segment.

        Raises OffsetOutOfRangeError outside ``[log_start_offset, log_end_offset]``.
        """
        end_offset = self._log_end_offset
        if fetch_offset < self._log_start_offset or fetch_offset > end_offset:
            raise OffsetOutOfRangeError(
                f"offset {fetch_offset} is outside [{self._log_start_offset}, {end_offset}] "
                f"of {self.name}"
            )
        limit = end_offset if max_offset is None else min(max_offset, end_offset)
        if fetch_offset >= limit:
            return EMPTY_FETCH
        segments = self._segments
        for segment in segments[self._segment_index(fetch_offset) :]:
            found = segment.translate_offset(fetch_offset)
            if found is None:
                continue
            position, header = found
            if header.base_offset >= limit:
                return EMPTY_FETCH
            max_position = segment.size
            if limit < segment.next_offset:
                bound = segment.translate_offset(limit, position)
                if bound is not None:
                    max_position = bound[0]
            piece = segment.read(position, max_bytes, max_position, min_one_message)
            if piece is None:
                return EMPTY_FETCH
            return FetchDataInfo((piece,), piece.size)
        return EMPTY_FETCH

    @_locked
    def aborted_transactions(self, fetch_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
        """The aborted transactions overlapping ``[fetch_offset, upper_bound_offset)``
        (Kafka's ``collectAbortedTransactions``): the txn indexes of the segment holding
        ``fetch_offset`` and the following ones, until an entry's LSO reaches the bound."""
        return collect_aborted_transactions(
            self._segments, self._segment_index(fetch_offset), fetch_offset, upper_bound_offset
        )

    @_locked
    def fetch_aborted_transactions(
        self, fetch_offset: int, data: FetchDataInfo
    ) -> list[AbortedTxn]:
        """The aborted transactions a read_committed Fetch answers with ``data`` (what
        :meth:`read` returned from ``fetch_offset``): those overlapping the returned batches.
        Free when the log holds no aborted transaction past ``fetch_offset``."""
        start = self._segment_index(fetch_offset)
        upper = fetch_upper_bound(self._segments, start, data, self._log_end_offset)
        if upper is None:
            return []
        return collect_aborted_transactions(self._segments, start, fetch_offset, upper)

    @_locked
    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """``(offset, timestamp)`` of the first record at or after the log start whose
        timestamp is ≥ ``timestamp_ms`` (ListOffsets by time), or None. For LogAppendTime
        batches every record's timestamp is the batch's max timestamp."""
        return offset_for_timestamp(self._segments, self._log_start_offset, timestamp_ms)

    @_locked
    def max_timestamp_offset(self) -> tuple[int, int]:
        """``(offset, timestamp)`` of the record with the greatest timestamp (ListOffsets
        MAX_TIMESTAMP, KIP-734); ``(-1, -1)`` if no record has a timestamp."""
        return max_timestamp_offset(self._segments)

    # --- deleting and truncating ----------------------------------------------------------

    @_locked
    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: move the log start offset up to ``offset`` and delete the segments
        wholly below it. Returns the new log start offset (the low watermark)."""
        if offset > self._high_watermark or offset < 0:
            raise OffsetOutOfRangeError(
                f"cannot delete records before {offset}: the high watermark of {self.name} "
                f"is {self._high_watermark}"
            )
        if offset > self._log_start_offset:
            self._log_start_offset = offset
            self._delete_old_segments(self._breaches_log_start)
            self._leader_epochs.truncate_from_start(self._log_start_offset)
        return self._log_start_offset

    @_locked
    def maybe_increment_log_start_offset(self, offset: int) -> bool:
        """A follower learns its leader's log start offset: move ours up to it (never past
        the high watermark) and delete the segments wholly below it. Returns whether the
        log start moved."""
        target = min(offset, self._high_watermark)
        if target <= self._log_start_offset:
            return False
        self._log_start_offset = target
        self._delete_old_segments(self._breaches_log_start)
        self._leader_epochs.truncate_from_start(self._log_start_offset)
        return True

    @_locked
    def delete_retention_segments(self, now_ms: int) -> int:
        """Apply ``retention.ms`` and ``retention.bytes`` (delete policy only) and drop
        segments wholly below the log start offset; return how many segments went."""
        if self._closed:
            return 0
        config = self._config
        deleted = 0
        if config.delete:
            if config.retention_ms >= 0:
                limit = config.retention_ms
                deleted += self._delete_old_segments(
                    lambda segment, _next: now_ms - segment.largest_timestamp > limit,
                    now_ms,
                )
            if config.retention_bytes >= 0:
                excess = self.size_bytes - config.retention_bytes

                def over_size(segment: LogSegment, _next: LogSegment | None) -> bool:
                    nonlocal excess
                    if excess - segment.size >= 0:
                        excess -= segment.size
                        return True
                    return False

                if excess > 0:
                    deleted += self._delete_old_segments(over_size, now_ms)
        deleted += self._delete_old_segments(self._breaches_log_start, now_ms)
        return deleted

    def _breaches_log_start(self, _segment: LogSegment, following: LogSegment | None) -> bool:
        return following is not None and following.base_offset <= self._log_start_offset

    def _delete_old_segments(self, predicate: SegmentPredicate, now_ms: int | None = None) -> int:
        """Delete the longest prefix of segments matching ``predicate`` (Kafka's
        ``deletableSegments``): only below the high watermark, never an empty active segment;
        if every segment goes, roll first so the log keeps an active one."""
        segments = self._segments
        deletable: list[LogSegment] = []
        for i, segment in enumerate(segments):
            following = segments[i + 1] if i + 1 < len(segments) else None
            upper = following.base_offset if following is not None else self._log_end_offset
            if following is None and segment.is_empty:
                break
            if self._high_watermark < upper or not predicate(segment, following):
                break
            deletable.append(segment)
        if not deletable:
            return 0
        if len(deletable) == len(segments):
            self.roll(now_ms)
        count = len(deletable)
        del self._segments[:count]
        del self._base_offsets[:count]
        for segment in deletable:
            segment.delete()
        first = self._segments[0].base_offset
        if first > self._log_start_offset:
            self._log_start_offset = first
            self._high_watermark = max(self._high_watermark, first)
            self._leader_epochs.truncate_from_start(first)
        self._producer_state.delete_snapshots_before(self._log_start_offset)
        return count

    @_locked
    def truncate_to(self, offset: int, *, now_ms: int | None = None) -> bool:
        """Remove every batch holding an offset ≥ ``offset`` (replication: a follower
        diverged from its leader). Returns whether anything was removed."""
        if offset < 0:
            raise OffsetOutOfRangeError(f"cannot truncate {self.name} to {offset}")
        # Entries starting at or past the cut describe nothing, even when no batch goes.
        self._leader_epochs.truncate_from_end(offset)
        if offset >= self._log_end_offset:
            return False
        now = _now(now_ms)
        if offset < self._segments[0].base_offset:
            self.truncate_fully_and_start_at(offset, now_ms=now)
            return True
        keep = bisect.bisect_right(self._base_offsets, offset)
        doomed = self._segments[keep:]
        del self._segments[keep:]
        del self._base_offsets[keep:]
        for segment in doomed:
            segment.delete()
        self._segments[-1].truncate_to(offset)
        self._log_end_offset = self._segments[-1].next_offset
        self._high_watermark = min(self._high_watermark, self._log_end_offset)
        self._recovery_point = min(self._recovery_point, self._log_end_offset)
        self._log_start_offset = min(self._log_start_offset, self._log_end_offset)
        self._producer_state.delete_snapshots_after(self._log_end_offset)
        self._rebuild_producer_state(now)
        return True

    @_locked
    def truncate_fully_and_start_at(self, offset: int, *, now_ms: int | None = None) -> None:
        """Drop every segment and restart the log, empty, at ``offset``."""
        now = _now(now_ms)
        for segment in self._segments:
            segment.delete()
        self._segments = [new_segment(self.directory, offset, self._config, now)]
        self._base_offsets = [offset]
        self._log_start_offset = self._log_end_offset = offset
        self._high_watermark = self._recovery_point = offset
        self._producer_state.truncate_fully_and_start_at(offset)
        self._leader_epochs.clear()
        self._directory_dirty = True

    @_locked
    def expire_producers(self, now_ms: int) -> int:
        return self._producer_state.remove_expired_producers(now_ms)

    # --- durability and lifetime ----------------------------------------------------------

    def flush(self, up_to_offset: int | None = None) -> int:
        """fsync every segment holding offsets below ``up_to_offset`` (default: the log end
        offset) and advance the recovery point; return it. Blocking: call from a worker
        thread. Safe to run while the event loop appends and reads."""
        if self._closed:
            return self._recovery_point
        end = self._log_end_offset
        target = end if up_to_offset is None else min(up_to_offset, end)
        recovery_point = self._recovery_point
        if target <= recovery_point and not (self._directory_dirty or self._parent_dirty):
            return recovery_point
        # segments wholly below the recovery point were flushed already: walk back from the
        # active one to the segment holding the recovery point
        todo: list[LogSegment] = []
        for segment in reversed(list(self._segments)):
            if segment.base_offset < target and not segment.deleted:
                todo.append(segment)
            if segment.base_offset <= recovery_point:
                break
        active = self._segments[-1] if self._segments else None
        # The segment rolled most recently may have been flushed while it was active (its
        # indexes unsynced); flushing it again only syncs what is still pending.
        previous = self._segments[-2] if len(self._segments) > 1 else None
        if previous is not None and not previous.deleted and previous not in todo:
            todo.append(previous)
        for segment in reversed(todo):
            segment.flush(indexes=segment is not active)
        self._producer_state.sync()
        if self._directory_dirty:
            self._directory_dirty = False
            fsync_directory(self.directory)
        if self._parent_dirty:
            self._parent_dirty = False
            fsync_directory(self.directory.parent)
        if target > self._recovery_point:
            self._recovery_point = target
        return self._recovery_point

    @_locked
    def close(self) -> None:
        """Flush everything, snapshot the producer table at the log end, close the files."""
        if self._closed:
            return
        self.flush()
        self._producer_state.map_end_offset = self._log_end_offset
        self._producer_state.take_snapshot(fsync=True)
        for segment in self._segments:
            segment.close()
        self._closed = True

    @_locked
    def delete(self) -> None:
        """Remove the partition's directory and everything in it (the log is closed)."""
        for segment in self._segments:
            segment.file.close()
        self._closed = True
        directory = self.directory
        if not directory.exists():
            return
        doomed = directory.with_name(f"{directory.name}.{uuid.uuid4().hex}{DELETE_DIR_SUFFIX}")
        os.rename(directory, doomed)
        shutil.rmtree(doomed, ignore_errors=True)

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self.name}, log_start_offset={self._log_start_offset}, "
            f"log_end_offset={self._log_end_offset}, segments={len(self._segments)})"
        )


def _now(now_ms: int | None) -> int:
    return now_ms if now_ms is not None else time.time_ns() // 1_000_000
