"""One log segment: a ``.log`` file of record batches plus its indexes.

Files, named by the segment's base offset in 20 digits (Kafka's layout)::

    00000000000000368769.log        batches exactly as produced/fetched (v2, offsets assigned)
    00000000000000368769.index      relative offset → position, one entry per index.interval.bytes
    00000000000000368769.timeindex  max timestamp so far → relative offset
    00000000000000368769.txnindex   aborted transactions whose ABORT marker is here (only
                                    when there is one; see :mod:`moldau.log.txn_index`)

The ``.log`` file is the only source of truth; both indexes can be rebuilt from it and are
when missing or failing their sanity checks. The segment keeps one read/write descriptor for
its ``.log`` file for its whole life: appends are one ``pwrite`` at the tracked end, reads
are ``pread``/``sendfile`` on the same descriptor, and nothing is ever ``stat``\\ed after
opening.

In-memory state derived from the file (kept exact on every append, recomputed on open):
``size``, ``next_offset`` (one past the last offset), ``max_timestamp`` and the last offset of
the batch that first reached it, and the bytes appended since the last index entry. The
active segment also remembers the exact positions of its last ``RECENT_BATCHES`` batches:
consumers that keep up fetch from there and skip the index walk.

Who calls what: :class:`~moldau.log.log.PartitionLog` owns its segments and calls everything
from the event loop thread, except ``flush`` which it runs on a worker thread while appends
continue; ``flush`` therefore only fsyncs and writes index bytes it copied.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import random
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path

from moldau.log.errors import CorruptIndexError, LogStorageError
from moldau.log.index import INT32_MAX, OffsetIndex, TimeIndex
from moldau.log.scan import find_batch, find_boundary, iter_headers, iter_valid_batches
from moldau.log.slices import FileSlice, SegmentFile
from moldau.log.txn_index import TXN_INDEX_SUFFIX, TransactionIndex
from moldau.protocol.record_batch import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    Buffer,
    InvalidBatchError,
    read_header,
)

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
DELETED_SUFFIX = ".deleted"

RECENT_BATCHES = 1024
"""Batches of the active segment whose exact positions are kept (between 1 and 2 times)."""


def segment_file_name(base_offset: int, suffix: str) -> str:
    return f"{base_offset:020d}{suffix}"


class LogSegment:
    """A ``.log`` file with its ``.index`` and ``.timeindex``; see the module docstring.

    Create with :meth:`create` (new, empty) or :meth:`open` (existing files). Appends must
    carry batches with offsets at or beyond ``next_offset``; the segment does not re-check
    them (the log validated them), it only tracks what it needs for lookups and rolling.
    """

    def __init__(
        self,
        directory: Path,
        base_offset: int,
        file: SegmentFile,
        *,
        index_interval_bytes: int,
        max_index_bytes: int,
        roll_jitter_ms: int,
        created_ms: int,
    ) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.file = file
        self.index_interval_bytes = index_interval_bytes
        self.roll_jitter_ms = roll_jitter_ms
        self.created_ms = created_ms
        self.offset_index = OffsetIndex(
            directory / segment_file_name(base_offset, INDEX_SUFFIX), base_offset, max_index_bytes
        )
        self.time_index = TimeIndex(
            directory / segment_file_name(base_offset, TIME_INDEX_SUFFIX),
            base_offset,
            max_index_bytes,
        )
        self.txn_index = TransactionIndex(
            directory / segment_file_name(base_offset, TXN_INDEX_SUFFIX), base_offset
        )
        self.size = 0
        self.next_offset = base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1
        self.last_modified_ms = created_ms
        self._bytes_since_index_entry = 0
        self._rolling_timestamp = -1  # max timestamp of the first batch, -1 if none
        # Exact (base offset, position) of the most recent batches appended here: consumers
        # that keep up fetch from them, and find their batch without an index walk.
        self._recent_offsets: array[int] = array("q")
        self._recent_positions: array[int] = array("q")
        self._flushed_size = 0
        self.deleted = False
        self.truncated_bytes = 0
        """Bytes the last :meth:`recover` removed from the end of the file."""

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path,
        base_offset: int,
        *,
        index_interval_bytes: int,
        max_index_bytes: int,
        segment_jitter_ms: int = 0,
        now_ms: int,
    ) -> LogSegment:
        """A new empty segment (its ``.log`` file is created, truncated if it existed)."""
        path = directory / segment_file_name(base_offset, LOG_SUFFIX)
        file = SegmentFile.open(path, create=True)
        os.ftruncate(file.fd, 0)
        segment = cls(
            directory,
            base_offset,
            file,
            index_interval_bytes=index_interval_bytes,
            max_index_bytes=max_index_bytes,
            roll_jitter_ms=random_jitter(segment_jitter_ms),
            created_ms=now_ms,
        )
        segment.offset_index.reset()
        segment.time_index.reset()
        segment.txn_index.reset()
        return segment

    @classmethod
    def open(
        cls,
        directory: Path,
        base_offset: int,
        *,
        index_interval_bytes: int,
        max_index_bytes: int,
        segment_jitter_ms: int = 0,
        now_ms: int,
        recover: bool = False,
    ) -> LogSegment:
        """Open an existing segment. With ``recover`` (or when an index is missing or
        corrupt) the whole file is validated and the indexes rebuilt, see :meth:`recover`;
        otherwise only the tail after the last index entry is scanned."""
        path = directory / segment_file_name(base_offset, LOG_SUFFIX)
        file = SegmentFile.open(path, create=False)
        stat = os.fstat(file.fd)
        segment = cls(
            directory,
            base_offset,
            file,
            index_interval_bytes=index_interval_bytes,
            max_index_bytes=max_index_bytes,
            roll_jitter_ms=random_jitter(segment_jitter_ms),
            created_ms=now_ms,
        )
        segment.size = stat.st_size
        segment._flushed_size = stat.st_size
        segment.last_modified_ms = stat.st_mtime_ns // 1_000_000
        segment.txn_index.load()
        if recover:
            segment.recover()
            return segment
        try:
            segment.offset_index.load(segment.size)
            segment.time_index.load()
            segment._scan_tail()
        except (CorruptIndexError, InvalidBatchError):
            segment.recover()
        return segment

    # --- state ----------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.file.path

    @property
    def is_empty(self) -> bool:
        return self.size == 0

    @property
    def largest_timestamp(self) -> int:
        """What retention.ms compares: the max record timestamp, else the time of the last
        write (the file's mtime when opened, the append time since; the log sets it)."""
        return self.max_timestamp if self.max_timestamp > 0 else self.last_modified_ms

    @property
    def first_batch_timestamp(self) -> int:
        """The max timestamp of the segment's first batch, -1 if empty or unknown (what
        Kafka's max.compaction.lag.ms measures a dirty segment's age by)."""
        return self._rolling_timestamp

    @property
    def has_unflushed_data(self) -> bool:
        return self._flushed_size != self.size

    def forget_recent(self) -> None:
        self._recent_offsets = array("q")
        self._recent_positions = array("q")

    def _reset_state(self) -> None:
        self.forget_recent()
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = -1
        self._bytes_since_index_entry = 0
        self._rolling_timestamp = -1

    def _track(self, position: int, base_offset: int, header: BatchHeader) -> None:
        """Account for one batch appended at ``position`` whose offsets start at
        ``base_offset`` (Kafka's LogSegment.append). Hot path: tuple unpacking only."""
        _, batch_length, _, _, _, _, last_delta, _, max_timestamp, *_ = header
        last_offset = base_offset + last_delta
        if max_timestamp > self.max_timestamp:
            self.max_timestamp = max_timestamp
            self.offset_of_max_timestamp = last_offset
        if self._bytes_since_index_entry > self.index_interval_bytes:
            self.offset_index.append(last_offset, position)
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
            self._bytes_since_index_entry = 0
        self._bytes_since_index_entry += batch_length + LOG_OVERHEAD
        if position == 0:
            self._rolling_timestamp = max_timestamp
        self.next_offset = last_offset + 1
        recent = self._recent_offsets
        recent.append(base_offset)
        self._recent_positions.append(position)
        if len(recent) > 2 * RECENT_BATCHES:
            del recent[:RECENT_BATCHES]
            del self._recent_positions[:RECENT_BATCHES]

    def _scan_tail(self) -> None:
        """Recompute the in-memory state of a segment whose indexes were loaded: start from
        the last index entries and walk the batch headers after them."""
        self._reset_state()
        if self.size == 0:
            return
        first = read_header(self.file.pread(HEADER_SIZE, 0))
        self._rolling_timestamp = first.max_timestamp
        last_ts, offset_of_last_ts = self.time_index.last_entry()
        if last_ts >= 0:
            self.max_timestamp, self.offset_of_max_timestamp = last_ts, offset_of_last_ts
        _, index_position = self.offset_index.last_entry()
        _, ts_position = self.offset_index.lookup(max(offset_of_last_ts, self.base_offset))
        start = min(index_position, ts_position)
        last: BatchHeader | None = None
        for _, header in iter_headers(self.file, start, self.size):
            if header.max_timestamp > self.max_timestamp:
                self.max_timestamp = header.max_timestamp
                self.offset_of_max_timestamp = header.last_offset
            last = header
        self._bytes_since_index_entry = self.size - index_position
        if last is None:
            raise InvalidBatchError(f"{self.path}: no batch after position {start}")
        if last.base_offset < self.base_offset or last.last_offset - self.base_offset > INT32_MAX:
            raise InvalidBatchError(f"{self.path}: offsets outside the segment's range")
        self.next_offset = last.next_offset
        ts_offset = self.time_index.last_entry()[1]
        if self.time_index.entries and ts_offset >= self.next_offset:
            raise CorruptIndexError(f"{self.time_index.path} points past the segment's end")
        if self.offset_index.entries and self.offset_index.last_entry()[0] >= self.next_offset:
            raise CorruptIndexError(f"{self.offset_index.path} points past the segment's end")

    # --- writing --------------------------------------------------------------------------

    def append(self, buf: Buffer, batches: Sequence[tuple[int, BatchHeader]]) -> int:
        """Write ``buf`` (exactly the given batches, ``(position in buf, header)``) at the end
        of the file with one ``pwrite``; return the position it was written at.

        On an I/O error the file is cut back to its previous size and LogStorageError is
        raised, so a failed append leaves nothing behind.
        """
        position = self._write(buf)
        for rel, header in batches:
            self._track(position + rel, header.base_offset, header)
        return position

    def append_batch(self, buf: Buffer, base_offset: int, header: BatchHeader) -> int:
        """Append one batch whose offsets start at ``base_offset`` (already patched into
        ``buf``; ``header`` may predate the patch). The leader's hot path."""
        position = self._write(buf)
        self._track(position, base_offset, header)
        return position

    def _write(self, buf: Buffer) -> int:
        position = self.size
        fd = self.file.fd
        try:
            written = os.pwrite(fd, buf, position)
            if written != len(buf):
                view = memoryview(buf)
                while written < len(view):
                    written += os.pwrite(fd, view[written:], position + written)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, position)
            raise LogStorageError(f"append to {self.path} failed: {exc}") from exc
        self.size = position + len(buf)
        return position

    def should_roll(
        self,
        *,
        segment_bytes: int,
        segment_ms: int,
        incoming_bytes: int,
        incoming_max_timestamp: int,
        incoming_last_offset: int,
        now_ms: int,
    ) -> bool:
        """Kafka's ``LogSegment.shouldRoll``: full by size, old by time (with this segment's
        jitter), an index full, or offsets no longer fitting a relative int32. An empty
        segment never rolls: the append goes into it whatever its size."""
        size = self.size
        if size == 0:
            return False
        if size > segment_bytes - incoming_bytes:
            return True
        rolling = self._rolling_timestamp
        waited = incoming_max_timestamp - rolling if rolling >= 0 else now_ms - self.created_ms
        return (
            waited > segment_ms - self.roll_jitter_ms
            or self.offset_index.is_full
            or self.time_index.is_full
            or incoming_last_offset - self.base_offset > INT32_MAX
        )

    def time_waited_for_roll(self, now_ms: int, incoming_max_timestamp: int) -> int:
        """Age of the segment as Kafka measures it: the incoming batch's timestamp minus the
        first batch's, or wall-clock time since creation when there is no timestamp."""
        if self._rolling_timestamp >= 0:
            return incoming_max_timestamp - self._rolling_timestamp
        return now_ms - self.created_ms

    def on_become_inactive(self) -> None:
        """Called on roll: record the final max timestamp and write the indexes out."""
        self.forget_recent()
        if self.max_timestamp >= 0:
            self.time_index.maybe_append(
                self.max_timestamp, self.offset_of_max_timestamp, skip_full_check=True
            )
        self.offset_index.write_pending()
        self.time_index.write_pending()

    def set_index_config(self, *, index_interval_bytes: int, max_index_bytes: int) -> None:
        self.index_interval_bytes = index_interval_bytes
        self.offset_index.set_max_index_bytes(max_index_bytes)
        self.time_index.set_max_index_bytes(max_index_bytes)

    # --- reading --------------------------------------------------------------------------

    def translate_offset(
        self, offset: int, start_position: int = 0
    ) -> tuple[int, BatchHeader] | None:
        """Position and header of the first batch whose last offset is ≥ ``offset``, or None
        when the segment has no such batch. Index lookup, then a short header walk."""
        if offset >= self.next_offset:
            return None
        recent = self._recent_offsets
        if recent and offset >= recent[0]:
            # the exact batch: one header read, no walk
            position = self._recent_positions[bisect.bisect_right(recent, offset) - 1]
            header = read_header(self.file.pread(HEADER_SIZE, position))
            if header.base_offset + header.last_offset_delta >= offset:
                return position, header
        else:
            _, position = self.offset_index.lookup(offset)
        return find_batch(self.file, max(position, start_position), self.size, offset)

    def read(
        self, start_position: int, max_bytes: int, max_position: int, min_one_message: bool
    ) -> FileSlice | None:
        """A slice of whole batches from ``start_position`` (a batch boundary) of at most
        ``max_bytes`` and ending at or before ``max_position`` (also a boundary). If even the
        first batch exceeds ``max_bytes``, it is returned alone when ``min_one_message``
        (KIP-74), else nothing."""
        limit = min(max_position, self.size)
        if start_position >= limit:
            return None
        target = start_position + max(max_bytes, 0)
        if target >= limit:
            end = limit
        else:
            recent = self._recent_positions
            if recent and recent[0] <= target:
                # recent positions run contiguously to the end of the file, so the greatest
                # of them ≤ target is the greatest batch boundary ≤ target (< limit)
                end = max(start_position, recent[bisect.bisect_right(recent, target) - 1])
            else:
                _, boundary = self.offset_index.lookup_position(target)
                end = find_boundary(self.file, max(start_position, boundary), limit, target)
            if end == start_position:
                if not min_one_message:
                    return None
                end = (
                    start_position + read_header(self.file.pread(HEADER_SIZE, start_position)).size
                )
        return FileSlice(self.file, start_position, end - start_position)

    def find_timestamp(
        self, timestamp: int, starting_offset: int
    ) -> tuple[int, BatchHeader] | None:
        """The first batch at or after ``starting_offset`` whose max timestamp is ≥
        ``timestamp`` (time index, then offset index, then a header walk)."""
        if self.max_timestamp < timestamp:
            return None
        _, indexed_offset = self.time_index.lookup(timestamp)
        _, position = self.offset_index.lookup(max(indexed_offset, starting_offset))
        for pos, header in iter_headers(self.file, position, self.size):
            if header.max_timestamp >= timestamp and header.last_offset >= starting_offset:
                return pos, header
        return None

    def read_batch(self, position: int, header: BatchHeader) -> bytes:
        """The whole batch at ``position`` (for the rare paths that decode records)."""
        return self.file.pread(header.size, position)

    def iter_batches(self, start_position: int = 0) -> Iterator[tuple[int, BatchHeader]]:
        """Headers of every batch from ``start_position`` to the end."""
        return iter_headers(self.file, start_position, self.size)

    # --- recovery and truncation ----------------------------------------------------------

    def recover(self) -> int:
        """Validate every batch (framing, CRC, increasing offsets), cut the file at the first
        one that fails — a torn write or garbage — and rebuild both indexes from the valid
        batches. Returns the number of bytes removed."""
        file_size = os.fstat(self.file.fd).st_size
        self.offset_index.reset()
        self.time_index.reset()
        self._reset_state()
        valid_end = 0
        for position, header in iter_valid_batches(self.file, 0, file_size, self.base_offset):
            if header.last_offset - self.base_offset > INT32_MAX:
                break
            self._track(position, header.base_offset, header)
            valid_end = position + header.size
        truncated = file_size - valid_end
        self.truncated_bytes = truncated
        if truncated:
            os.ftruncate(self.file.fd, valid_end)
        self.size = valid_end
        self._flushed_size = min(self._flushed_size, valid_end)
        self.offset_index.write_pending()
        self.time_index.write_pending()
        self.txn_index.truncate_to(self.next_offset)
        return truncated

    def truncate_to(self, offset: int) -> int:
        """Remove every batch holding an offset ≥ ``offset`` (the batch containing it too);
        return the bytes removed."""
        found = self.translate_offset(offset)
        if found is None:
            return 0
        position, _ = found
        removed = self.size - position
        self.offset_index.truncate_to(offset)
        self.time_index.truncate_to(offset)
        self.txn_index.truncate_to(offset)
        os.ftruncate(self.file.fd, position)
        self.size = position
        self._flushed_size = min(self._flushed_size, position)
        try:
            self._scan_tail()
        except (CorruptIndexError, InvalidBatchError):
            self.recover()
        self.offset_index.write_pending()
        self.time_index.write_pending()
        return removed

    # --- durability and lifetime ----------------------------------------------------------

    def flush(self, *, indexes: bool = True) -> None:
        """fsync the log file, then (unless ``indexes`` is False) write and fsync the indexes.
        Runs on a worker thread.

        The log passes ``indexes=False`` for the active segment: after an unclean shutdown
        recovery validates the active segment batch by batch and rebuilds its indexes anyway,
        so syncing them on every group commit would only double the fsyncs of acks=all. Its
        index entries are written and synced when it rolls or closes. The txn index is
        synced whenever it changed (an ABORT marker was written, which is rare): its entries
        for markers below the recovery point are not rebuilt after a crash."""
        if self.file.closed or self.deleted:
            return  # a deleted segment's index paths may already name a successor's files
        size = self.size
        if size != self._flushed_size:
            os.fsync(self.file.fd)
            self._flushed_size = max(self._flushed_size, size)
        self.txn_index.flush()
        if indexes:
            self.offset_index.flush()
            self.time_index.flush()

    def close(self) -> None:
        """Write the indexes out and close the descriptor."""
        if self.file.closed:
            return
        self.offset_index.write_pending()
        self.time_index.write_pending()
        self.file.close()

    def delete(self) -> None:
        """Rename the files to ``*.deleted``, then remove them (file.delete.delay.ms is
        applied as zero). The descriptor is not closed here: fetch slices still referring to
        the file keep reading it until they are dropped."""
        self.deleted = True
        renamed: list[Path] = []
        self.txn_index.delete()
        # the .log file goes last: while it exists, every file of this segment may still be
        # there, and once it is gone none is (the cleaner's swap recovery relies on this)
        for path in (self.offset_index.path, self.time_index.path, self.path):
            target = path.with_name(path.name + DELETED_SUFFIX)
            try:
                os.rename(path, target)
            except FileNotFoundError:
                continue
            renamed.append(target)
        for path in renamed:
            path.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return (
            f"LogSegment(base_offset={self.base_offset}, next_offset={self.next_offset}, "
            f"size={self.size})"
        )


def random_jitter(segment_jitter_ms: int) -> int:
    """Kafka's per-segment roll jitter: uniform in [0, segment.jitter.ms)."""
    if segment_jitter_ms <= 0:
        return 0
    return random.randrange(segment_jitter_ms)
