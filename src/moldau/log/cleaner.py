"""The log cleaner's clean: compact a partition's closed segments into staged new ones.

:func:`clean` is a pure function of a :class:`CleanJob` — picklable in, picklable out, no
shared state — because it runs in a worker process (:mod:`moldau.log.cleaner_worker`): it
reads the closed segments straight from their files, writes complete replacement segments
into ``<partition>/cleaner-staging/`` and returns a :class:`CleanResult`; the broker swaps
them in (:mod:`moldau.log.swap`). It follows Kafka's ``Cleaner.doClean``:

1. **Offset map** over the dirty section ``[first_dirty_offset, first_uncleanable_offset)``:
   key → offset of its latest record (:mod:`moldau.log.offset_map`), skipping aborted
   transactional data. When the memory budget runs out the map stops after the last batch
   it mapped completely; that offset + 1 is the clean's ``end_offset`` (the new first dirty
   offset, the checkpoint), else it is the first uncleanable offset.
2. **Grouping**: the segments below ``end_offset`` — the already clean head too, so that
   tombstones and markers past their delete horizon go, and small cleaned segments merge —
   are grouped, consecutive, while their ``.log`` files fit ``segment_bytes``, their
   indexes ``max_index_bytes`` and their offsets a relative int32 (``groupSegmentsBySize``).
3. **Cleaning** each group into one new segment, batch by batch
   (:mod:`moldau.log.cleaner_filter`): batches that keep every record are copied byte for
   byte, others rebuilt with the same header fields, codec and lastOffsetDelta, offsets keep
   their gaps; ``LogSegment`` builds the ``.index`` and ``.timeindex`` as batches are
   appended and the ``.txnindex`` receives the aborted transactions whose data is still
   there. Each file is fsynced, then the staging directory.

Failure leaves nothing behind: the staging directory is removed before any exception leaves
:func:`clean` — :class:`CleanerError` for a corrupt input segment (bad CRC or framing; the
message names the file and the position), ``OSError`` as raised (ENOSPC…).

Test hooks ``slow`` and ``enospc`` of ``MOLDAU_TEST_CLEANER_HOOK``: see
:mod:`moldau.log.cleaner_io`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from moldau.log.cleaner_filter import (
    BatchFilter,
    CleanedTransactionMetadata,
    FilterStats,
    LastOfProducer,
    ProducerLastRecord,
    control_type_of,
)
from moldau.log.cleaner_io import (
    CleanerError,
    TestHooks,
    Throttler,
    read_segment_batches,
)
from moldau.log.errors import LogStorageError
from moldau.log.fsutil import fsync_directory
from moldau.log.index import INT32_MAX
from moldau.log.offset_map import OffsetMap
from moldau.log.segment import (
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    LogSegment,
    segment_file_name,
)
from moldau.log.txn_index import AbortedTxn
from moldau.protocol.record_batch import HEADER_SIZE, BatchHeader, read_header
from moldau.protocol.records import InvalidRecordError, record_keys

__all__ = [
    "STAGING_DIR_NAME",
    "CleanJob",
    "CleanResult",
    "CleanedGroup",
    "CleanerError",
    "ProducerLastRecord",
    "SegmentSpec",
    "clean",
]

STAGING_DIR_NAME = "cleaner-staging"
WRITE_CHUNK_BYTES = 1 << 20
"""Output batches are appended to the staged segment in writes of about this size."""


@dataclass(frozen=True, slots=True)
class SegmentSpec:
    """A closed segment as the broker saw it when it built the job."""

    base_offset: int
    next_offset: int
    """The offset after its last batch."""
    size_bytes: int
    """Bytes of the ``.log`` file to read; the cleaner never reads past them."""


@dataclass(frozen=True, slots=True)
class CleanJob:
    """Everything one clean needs (picklable: it crosses to a worker process)."""

    directory: str
    """The partition directory."""
    segments: tuple[SegmentSpec, ...]
    """Every segment from the log start up to (excluding) the first uncleanable offset;
    never the active segment."""
    first_dirty_offset: int
    """Where the previous clean stopped (the cleaner checkpoint)."""
    first_uncleanable_offset: int
    """min(active segment base, LSO, HW, min.compaction.lag bound)."""
    delete_retention_ms: int
    now_ms: int
    segment_bytes: int
    """Max size of one cleaned output segment (grouping)."""
    max_index_bytes: int
    index_interval_bytes: int
    aborted_txns: tuple[AbortedTxn, ...]
    """Aborted transactions overlapping the segments (from the log's txn indexes)."""
    dedupe_buffer_bytes: int
    """Memory budget for the key → offset map."""
    io_max_bytes_per_second: float
    active_producers: tuple[ProducerLastRecord, ...] | None = None
    """The log's active producers (Kafka's ``lastRecordsOfActiveProducers``): the batch
    holding each one's last data offset is kept, empty if need be. None: not known; the
    cleaner then keeps each producer's last batch within the cleaned segments (a superset:
    at most one extra empty batch per producer id)."""


@dataclass(frozen=True, slots=True)
class CleanedGroup:
    """One staged output segment and the old segments it replaces."""

    source_base_offsets: tuple[int, ...]
    """The old segments this output replaces (consecutive)."""
    base_offset: int
    """= ``source_base_offsets[0]``."""
    next_offset: int
    """The offset after the output's last batch (``base_offset`` if it came out empty)."""
    size_bytes: int


@dataclass(frozen=True, slots=True)
class CleanResult:
    groups: tuple[CleanedGroup, ...]
    end_offset: int
    """The new first dirty offset (the checkpoint value)."""
    bytes_read: int
    bytes_written: int
    records_read: int
    records_kept: int
    duration_ms: int


def clean(job: CleanJob) -> CleanResult:
    """Compact ``job``'s segments into ``<directory>/cleaner-staging/`` (see the module
    docstring). Raises CleanerError for a corrupt segment, OSError for I/O failures; either
    way the staging directory is gone."""
    started = time.monotonic()
    staging = Path(job.directory) / STAGING_DIR_NAME
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        result = _Clean(job, staging).run()
        fsync_directory(staging)
        fsync_directory(Path(job.directory))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    duration_ms = int((time.monotonic() - started) * 1000)
    return CleanResult(
        groups=result.groups,
        end_offset=result.end_offset,
        bytes_read=result.bytes_read,
        bytes_written=result.bytes_written,
        records_read=result.records_read,
        records_kept=result.records_kept,
        duration_ms=duration_ms,
    )


def group_segments(
    segments: Sequence[SegmentSpec],
    *,
    segment_bytes: int,
    max_index_bytes: int,
    index_sizes: Sequence[tuple[int, int]],
) -> list[list[SegmentSpec]]:
    """Kafka's ``groupSegmentsBySize``: consecutive segments whose ``.log`` sizes add up to
    at most ``segment_bytes``, whose ``.index`` and ``.timeindex`` sizes (``index_sizes``,
    parallel to ``segments``) each to at most ``max_index_bytes``, and whose offsets stay
    within a relative int32 of the group's base. A segment alone always forms a group."""
    groups: list[list[SegmentSpec]] = []
    i = 0
    while i < len(segments):
        group = [segments[i]]
        log_size = segments[i].size_bytes
        index_size, time_index_size = index_sizes[i]
        i += 1
        while i < len(segments):
            spec = segments[i]
            offsets_fit = spec.size_bytes == 0 or (
                spec.next_offset - 1 - group[0].base_offset <= INT32_MAX
            )
            if not (
                log_size + spec.size_bytes <= segment_bytes
                and index_size + index_sizes[i][0] <= max_index_bytes
                and time_index_size + index_sizes[i][1] <= max_index_bytes
                and offsets_fit
            ):
                break
            group.append(spec)
            log_size += spec.size_bytes
            index_size += index_sizes[i][0]
            time_index_size += index_sizes[i][1]
            i += 1
        groups.append(group)
    return groups


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


@dataclass(frozen=True, slots=True)
class _Outcome:
    groups: tuple[CleanedGroup, ...]
    end_offset: int
    bytes_read: int
    bytes_written: int
    records_read: int
    records_kept: int


class _Clean:
    """One run of :func:`clean` (state shared by its phases)."""

    def __init__(self, job: CleanJob, staging: Path) -> None:
        self.job = job
        self.directory = Path(job.directory)
        self.staging = staging
        self.hooks = TestHooks.from_env()
        self.throttler = Throttler(job.io_max_bytes_per_second)
        self.bytes_read = 0
        self.bytes_written = 0
        self.segments = tuple(sorted(job.segments, key=lambda s: s.base_offset))

    def _path(self, spec: SegmentSpec) -> str:
        return str(self.directory / segment_file_name(spec.base_offset, LOG_SUFFIX))

    def _batches(self, spec: SegmentSpec) -> Iterator[tuple[int, BatchHeader, bytes, int]]:
        return read_segment_batches(
            self._path(spec),
            spec.size_bytes,
            spec.base_offset,
            spec.next_offset,
            throttler=self.throttler,
        )

    def run(self) -> _Outcome:
        job = self.job
        offset_map = OffsetMap(job.dedupe_buffer_bytes)
        end_offset = self._build_offset_map(offset_map)
        to_clean = [s for s in self.segments if s.base_offset < end_offset]
        if not to_clean:
            return _Outcome((), end_offset, 0, 0, 0, 0)
        producers = job.active_producers
        if producers is None:
            producers = self._last_batches_of_producers(to_clean)
        stats = FilterStats()
        transactions = CleanedTransactionMetadata(job.aborted_txns)
        batch_filter = BatchFilter(
            offset_map=offset_map,
            transactions=transactions,
            is_last_of_producer=LastOfProducer(producers),
            upper_bound_offset=job.first_uncleanable_offset,
            now_ms=job.now_ms,
            delete_retention_ms=job.delete_retention_ms,
            stats=stats,
        )
        index_sizes = [
            (
                _file_size(self.directory / segment_file_name(s.base_offset, INDEX_SUFFIX)),
                _file_size(self.directory / segment_file_name(s.base_offset, TIME_INDEX_SUFFIX)),
            )
            for s in to_clean
        ]
        groups = group_segments(
            to_clean,
            segment_bytes=job.segment_bytes,
            max_index_bytes=job.max_index_bytes,
            index_sizes=index_sizes,
        )
        cleaned = tuple(self._clean_group(g, batch_filter, transactions) for g in groups)
        return _Outcome(
            cleaned,
            end_offset,
            self.bytes_read,
            self.bytes_written,
            stats.records_read,
            stats.records_kept,
        )

    # --- phase 1: the offset map ----------------------------------------------------------

    def _build_offset_map(self, offset_map: OffsetMap) -> int:
        """Map the dirty section; return the clean's end offset (Kafka's
        ``buildOffsetMap``: the map's latest offset + 1)."""
        job = self.job
        start, end = job.first_dirty_offset, job.first_uncleanable_offset
        dirty = [s for s in self.segments if s.next_offset > start and s.base_offset < end]
        # Everything below the first dirty offset is clean already (one record per key), so
        # the map "covers" it: with no dirty data at all, a clean still removes tombstones
        # and markers past their horizon (where Kafka would not clean the log at all).
        offset_map.update_latest_offset(start - 1)
        transactions = CleanedTransactionMetadata(
            t for t in job.aborted_txns if t.last_offset >= start and t.first_offset < end
        )
        for i, spec in enumerate(dirty):
            next_start = dirty[i + 1].base_offset if i + 1 < len(dirty) else end
            for where, header, data, p in self._batches(spec):
                try:
                    if header.is_control:
                        transactions.on_control_batch(header, control_type_of(data, p, header))
                    elif transactions.on_data_batch(header) or header.last_offset < start:
                        pass  # aborted data, or before the dirty section: nothing to map
                    elif not self._map_batch(offset_map, data, p, header, start):
                        return max(offset_map.latest_offset + 1, start)  # the map is full
                except InvalidRecordError as exc:
                    raise CleanerError(f"{self._path(spec)}: position {where}: {exc}") from exc
                if header.last_offset >= start:
                    offset_map.update_latest_offset(header.last_offset)
            offset_map.update_latest_offset(next_start - 1)
        if not dirty:
            return start
        return max(offset_map.latest_offset + 1, start)

    @staticmethod
    def _map_batch(
        offset_map: OffsetMap, data: bytes, p: int, header: BatchHeader, start: int
    ) -> bool:
        """Put the batch's keys in the map; False when the map filled up before the end
        (the first batch past ``start`` is always mapped whole)."""
        base = header.base_offset
        force = offset_map.latest_offset < start
        put = offset_map.put
        for offset_delta, key, _ in record_keys(data, p, header):
            offset = base + offset_delta
            if key is not None and offset >= start and not put(key, offset, force=force):
                return False
        return True

    # --- phase 2: producers ---------------------------------------------------------------

    def _last_batches_of_producers(
        self, specs: Sequence[SegmentSpec]
    ) -> tuple[ProducerLastRecord, ...]:
        """Without the broker's producer state: each producer's last data batch in the
        cleaned segments (or its epoch, when it only has markers here). Reads headers only."""
        last_data: dict[int, int] = {}
        epochs: dict[int, int] = {}
        for spec in specs:
            fd = os.open(self._path(spec), os.O_RDONLY)
            try:
                position = 0
                while position + HEADER_SIZE <= spec.size_bytes:
                    raw = os.pread(fd, HEADER_SIZE, position)
                    if len(raw) < HEADER_SIZE:
                        break
                    header = read_header(raw)
                    if header.batch_length <= 0:
                        break  # corrupt: the cleaning pass reports it precisely
                    if header.producer_id >= 0:
                        epochs[header.producer_id] = header.producer_epoch
                        if not header.is_control:
                            last_data[header.producer_id] = header.last_offset
                    position += header.size
            finally:
                os.close(fd)
        return tuple(
            ProducerLastRecord(pid, last_data.get(pid), epoch) for pid, epoch in epochs.items()
        )

    # --- phase 3: cleaning ----------------------------------------------------------------

    def _clean_group(
        self,
        group: list[SegmentSpec],
        batch_filter: BatchFilter,
        transactions: CleanedTransactionMetadata,
    ) -> CleanedGroup:
        job = self.job
        base = group[0].base_offset
        segment = LogSegment.create(
            self.staging,
            base,
            index_interval_bytes=job.index_interval_bytes,
            max_index_bytes=job.max_index_bytes,
            now_ms=job.now_ms,
        )
        transactions.cleaned_index = segment.txn_index
        try:
            for spec in group:
                out = bytearray()
                batches: list[tuple[int, BatchHeader]] = []
                for where, header, data, p in self._batches(spec):
                    self.bytes_read += header.size
                    try:
                        piece = batch_filter.filter(data, p, header)
                    except InvalidRecordError as exc:
                        raise CleanerError(f"{self._path(spec)}: position {where}: {exc}") from exc
                    if piece is None:
                        continue
                    batches.append((len(out), read_header(piece)))
                    out += piece
                    if len(out) >= WRITE_CHUNK_BYTES:
                        self._write(segment, out, batches)
                        out = bytearray()
                        batches = []
                if out:
                    self._write(segment, out, batches)
            segment.on_become_inactive()
            segment.flush()
            return CleanedGroup(
                tuple(s.base_offset for s in group), base, segment.next_offset, segment.size
            )
        finally:
            transactions.cleaned_index = None
            segment.close()

    def _write(
        self, segment: LogSegment, out: bytearray, batches: list[tuple[int, BatchHeader]]
    ) -> None:
        self.hooks.before_write(self.bytes_written, len(out))
        try:
            segment.append(out, batches)
        except LogStorageError as exc:
            if isinstance(exc.__cause__, OSError):
                raise exc.__cause__ from None
            raise
        self.bytes_written += len(out)
        self.throttler.maybe_throttle(len(out))
        self.hooks.after_write()
