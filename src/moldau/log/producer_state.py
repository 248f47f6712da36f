"""Idempotent-producer state of one partition: per producer id, its epoch and last batches.

An idempotent producer numbers its records per partition (``baseSequence``) and retries
batches it did not see acknowledged. The leader keeps, per producer id, the epoch and the
sequence ranges and offsets of the last five batches (the producer never has more than five
in flight), so it can

* recognise a retry of one of those five — a **duplicate** — and answer with the offsets it
  was written at, writing nothing;
* refuse a batch from an older epoch (INVALID_PRODUCER_EPOCH, a zombie producer);
* refuse a gap or a reordering (OUT_OF_ORDER_SEQUENCE_NUMBER): the next batch must start at
  ``last_seq + 1`` (wrapping at 2**31), a new epoch must start at 0.

These are the rules of Kafka's ``ProducerAppendInfo.checkSequence`` as of Kafka 3.x/4.x. A
producer id the partition has never seen (or whose state expired or was deleted with its
segments) is accepted at any sequence — Kafka stopped answering UNKNOWN_PRODUCER_ID there
with KIP-360. Kafka 2.7+ answers a stale epoch on a data batch with INVALID_PRODUCER_EPOCH
for idempotent and transactional producers alike (PRODUCER_FENCED comes from the
transaction coordinator, not the log), and so do we.

Persistence follows Kafka: the state is rebuilt from the log itself, and
``<offset>.snapshot`` files (taken on segment roll and clean shutdown) are the starting
point, so only batches after the newest snapshot are replayed on open. The snapshot bytes
are Kafka's format v1 — ``version int16, crc32c uint32, entries[]`` with entries
``producer_id int64, epoch int16, last_sequence int32, last_offset int64, offset_delta
int32, timestamp int64, coordinator_epoch int32, current_txn_first_offset int64`` — but we
write one entry per retained batch, oldest first, so all five batches survive a restart;
a Kafka reader keeps the last entry per producer, which is exactly Kafka's own content.

Producer ids expire after ``producer.id.expiration.ms`` without a write (measured against the
last batch's max timestamp, as Kafka does), unless a transaction is open.

Transactions: a producer's first transactional data batch opens its transaction on this
partition (``current_txn_first_offset``), a COMMIT/ABORT marker (:meth:`end_txn`) closes it.
The open transactions are also kept in a dict keyed by producer id in the order they
started, i.e. ordered by first offset — offsets only grow, so insertion order is offset order
and a removal from the middle is O(1) — which makes the *first unstable offset* (the first
offset of the oldest open transaction, what bounds the last stable offset) the dict's first
value. Transactions completed at or after the high watermark stay unstable until the high
watermark passes their marker (Kafka's ``unreplicatedTxns``); with a single replica the
marker's own append moves the high watermark past it. Data batches that are not
transactional pay nothing for any of this.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import crc32c
from kio.schema.errors import ErrorCode

from moldau.log.errors import LogAppendError
from moldau.log.fsutil import fsync_directory
from moldau.log.transactions import CompletedTxn
from moldau.protocol.record_batch import NO_PRODUCER_EPOCH, NO_SEQUENCE, BatchHeader

SNAPSHOT_SUFFIX = ".snapshot"
NUM_BATCHES_TO_RETAIN = 5
"""Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN: a producer's max in-flight requests."""
DEFAULT_PRODUCER_ID_EXPIRATION_MS = 86_400_000
INT32_MAX = 2**31 - 1

_SNAPSHOT_VERSION = 1
_SNAPSHOT_HEADER = struct.Struct(">hI")  # version, crc
_SNAPSHOT_COUNT = struct.Struct(">i")
_SNAPSHOT_ENTRY = struct.Struct(">qhiqiqiq")
_CRC_START = _SNAPSHOT_HEADER.size


class CorruptSnapshotError(ValueError):
    """A snapshot file that does not parse or fails its CRC; the log ignores and deletes it."""


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    """What is remembered of one appended batch: enough to answer its retry."""

    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp_ms: int


class ProducerStateEntry:
    """One producer id's epoch, last batches and open transaction (if any)."""

    __slots__ = (
        "batches",
        "coordinator_epoch",
        "current_txn_first_offset",
        "last_timestamp_ms",
        "producer_epoch",
        "producer_id",
    )

    def __init__(self, producer_id: int, producer_epoch: int = NO_PRODUCER_EPOCH) -> None:
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.batches: deque[BatchMetadata] = deque(maxlen=NUM_BATCHES_TO_RETAIN)
        self.coordinator_epoch = -1
        self.current_txn_first_offset = -1
        self.last_timestamp_ms = -1

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else NO_SEQUENCE

    @property
    def last_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else -1

    def find_duplicate(self, epoch: int, first_seq: int, last_seq: int) -> BatchMetadata | None:
        if epoch != self.producer_epoch:
            return None
        for batch in self.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch
        return None

    def maybe_update_epoch(self, epoch: int) -> None:
        if epoch != self.producer_epoch:
            self.batches.clear()
            self.producer_epoch = epoch

    def add_batch(self, epoch: int, batch: BatchMetadata) -> None:
        self.maybe_update_epoch(epoch)
        self.batches.append(batch)
        self.last_timestamp_ms = batch.timestamp_ms

    def __repr__(self) -> str:
        return (
            f"ProducerStateEntry(producer_id={self.producer_id}, epoch={self.producer_epoch}, "
            f"batches={list(self.batches)})"
        )


def _in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == INT32_MAX)


def snapshot_file_name(offset: int) -> str:
    return f"{offset:020d}{SNAPSHOT_SUFFIX}"


class ProducerStateManager:
    """The producer table of one partition, its validation rules and its snapshots.

    ``check_append`` validates an incoming batch (raising LogAppendError) or returns the
    metadata of the batch it duplicates; ``update`` records a batch once it is in the log —
    the same call replays the log on open. ``map_end_offset`` is the log offset the table
    reflects: everything before it has been applied.
    """

    def __init__(
        self,
        directory: Path,
        *,
        producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    ) -> None:
        self.directory = directory
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self._producers: dict[int, ProducerStateEntry] = {}
        self._ongoing: dict[int, int] = {}
        """producer id → first offset of its open transaction, in first-offset order."""
        self._unreplicated: list[tuple[int, int]] = []
        """(first offset, marker offset) of transactions completed at or past the HW."""
        self.map_end_offset = 0
        self._unsynced: list[Path] = []

    @property
    def producers(self) -> Mapping[int, ProducerStateEntry]:
        return self._producers

    def last_entry(self, producer_id: int) -> ProducerStateEntry | None:
        return self._producers.get(producer_id)

    # --- transactions ---------------------------------------------------------------------

    @property
    def ongoing_transactions(self) -> Mapping[int, int]:
        """producer id → first offset of each open transaction, oldest first."""
        return self._ongoing

    def first_unstable_offset(self, high_watermark: int) -> int | None:
        """The first offset a read_committed consumer may not read yet: the oldest open
        transaction's first offset, or that of a transaction whose marker is not yet below
        ``high_watermark``; None when every transaction is decided and replicated."""
        first = next(iter(self._ongoing.values()), None)
        if self._unreplicated:
            self._unreplicated = [t for t in self._unreplicated if t[1] >= high_watermark]
            for txn_first, _ in self._unreplicated:
                if first is None or txn_first < first:
                    first = txn_first
        return first

    def stable_offset_after(self, completed: CompletedTxn) -> int:
        """The LSO right after ``completed`` ended (recorded in its txn index entry, Kafka's
        ``lastStableOffset(completedTxn)``): the first offset of the oldest transaction still
        open, else just past the marker. Call after :meth:`end_txn`."""
        return next(iter(self._ongoing.values()), completed.last_offset + 1)

    def check_coordinator_append(self, header: BatchHeader) -> None:
        """Validate a data batch the broker writes for a producer (transactional offset
        commits): only the epoch is checked, sequences are not (base sequence -1)."""
        entry = self._producers.get(header.producer_id)
        if entry is not None and header.producer_epoch < entry.producer_epoch:
            raise LogAppendError(
                ErrorCode.invalid_producer_epoch,
                f"epoch {header.producer_epoch} of producer {header.producer_id} is older "
                f"than the current epoch {entry.producer_epoch}",
            )

    def check_end_txn(self, producer_id: int, producer_epoch: int, coordinator_epoch: int) -> None:
        """Kafka's ``appendEndTxnMarker`` checks: a marker from an older producer epoch is
        INVALID_PRODUCER_EPOCH, one from an older coordinator epoch
        TRANSACTION_COORDINATOR_FENCED. A producer never seen here passes both."""
        entry = self._producers.get(producer_id)
        if entry is None:
            return
        if producer_epoch < entry.producer_epoch:
            raise LogAppendError(
                ErrorCode.invalid_producer_epoch,
                f"marker epoch {producer_epoch} of producer {producer_id} is older than the "
                f"current epoch {entry.producer_epoch}",
            )
        if coordinator_epoch < entry.coordinator_epoch:
            raise LogAppendError(
                ErrorCode.transaction_coordinator_fenced,
                f"marker from coordinator epoch {coordinator_epoch} for producer {producer_id}"
                f" is older than the recorded coordinator epoch {entry.coordinator_epoch}",
            )

    def end_txn(
        self, header: BatchHeader, *, commit: bool, coordinator_epoch: int
    ) -> CompletedTxn | None:
        """Apply a COMMIT/ABORT marker now in the log (also the replay step): close the
        producer's transaction and record the coordinator epoch. Returns the completed
        transaction if it had data on this partition (a marker for a producer without an
        open transaction is legal and completes nothing)."""
        producer_id = header.producer_id
        entry = self._producers.get(producer_id)
        if entry is None:
            entry = self._producers[producer_id] = ProducerStateEntry(producer_id)
        marker_offset = header.base_offset
        completed = None
        first = entry.current_txn_first_offset
        if first >= 0:
            completed = CompletedTxn(producer_id, first, marker_offset, not commit)
            self._unreplicated.append((first, marker_offset))
        self._ongoing.pop(producer_id, None)
        entry.maybe_update_epoch(header.producer_epoch)
        entry.current_txn_first_offset = -1
        entry.coordinator_epoch = coordinator_epoch
        entry.last_timestamp_ms = header.max_timestamp
        self.map_end_offset = header.next_offset
        return completed

    def _rebuild_ongoing(self) -> None:
        opened = sorted(
            (e.current_txn_first_offset, pid)
            for pid, e in self._producers.items()
            if e.current_txn_first_offset >= 0
        )
        self._ongoing = {pid: first for first, pid in opened}
        self._unreplicated = []

    # --- validation and update ------------------------------------------------------------

    def check_append(self, header: BatchHeader) -> BatchMetadata | None:
        """Validate a client batch against the producer's state (Kafka's
        ``ProducerAppendInfo.checkProducerEpoch``/``checkSequence``). Returns the retained
        batch it duplicates, or None if it may be appended."""
        entry = self._producers.get(header.producer_id)
        if entry is None:
            return None
        epoch = header.producer_epoch
        first_seq = header.base_sequence
        duplicate = entry.find_duplicate(epoch, first_seq, header.last_sequence)
        if duplicate is not None:
            return duplicate
        current_epoch = entry.producer_epoch
        if epoch < current_epoch:
            raise LogAppendError(
                ErrorCode.invalid_producer_epoch,
                f"epoch {epoch} of producer {header.producer_id} is older than the current "
                f"epoch {current_epoch}",
            )
        if epoch != current_epoch:
            if first_seq != 0 and current_epoch != NO_PRODUCER_EPOCH:
                raise LogAppendError(
                    ErrorCode.out_of_order_sequence_number,
                    f"new epoch {epoch} of producer {header.producer_id} starts at sequence "
                    f"{first_seq}, not 0",
                )
        elif current_epoch != NO_PRODUCER_EPOCH and not _in_sequence(entry.last_seq, first_seq):
            raise LogAppendError(
                ErrorCode.out_of_order_sequence_number,
                f"out of order sequence {first_seq} for producer {header.producer_id}: "
                f"expected {(entry.last_seq + 1) % (INT32_MAX + 1)}",
            )
        if entry.current_txn_first_offset >= 0 and not header.is_transactional:
            raise LogAppendError(
                ErrorCode.invalid_txn_state,
                f"non-transactional batch from producer {header.producer_id} while its "
                f"transaction from offset {entry.current_txn_first_offset} is open",
            )
        return None

    def update(self, header: BatchHeader) -> None:
        """Apply a data batch now in the log (with its final offsets). Also the replay step
        (the log decodes markers and applies them with :meth:`end_txn`)."""
        producer_id = header.producer_id
        if header.has_producer_id:
            entry = self._producers.get(producer_id)
            if entry is None:
                entry = self._producers[producer_id] = ProducerStateEntry(producer_id)
            if header.is_control:
                # a control batch the caller did not decode (not a txn marker): it ends
                # nothing; markers go through end_txn
                entry.maybe_update_epoch(header.producer_epoch)
                entry.last_timestamp_ms = header.max_timestamp
            else:
                entry.add_batch(
                    header.producer_epoch,
                    BatchMetadata(
                        header.base_sequence,
                        header.last_sequence,
                        header.base_offset,
                        header.last_offset,
                        header.max_timestamp,
                    ),
                )
                if header.is_transactional and entry.current_txn_first_offset < 0:
                    entry.current_txn_first_offset = header.base_offset
                    self._ongoing[producer_id] = header.base_offset
        self.map_end_offset = header.next_offset

    def remove_expired_producers(self, now_ms: int) -> int:
        """Forget producers idle for ``producer.id.expiration.ms``; return how many."""
        limit = self.producer_id_expiration_ms
        expired = [
            pid
            for pid, entry in self._producers.items()
            if entry.current_txn_first_offset < 0 and now_ms - entry.last_timestamp_ms >= limit
        ]
        for pid in expired:
            del self._producers[pid]
        return len(expired)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Forget everything and every snapshot (the log was emptied at ``offset``)."""
        self._producers.clear()
        self._ongoing.clear()
        self._unreplicated.clear()
        for snapshot_offset in self.snapshot_offsets():
            self._delete_snapshot(snapshot_offset)
        self.map_end_offset = offset

    # --- snapshots ------------------------------------------------------------------------

    def snapshot_offsets(self) -> list[int]:
        """Offsets of the snapshot files present, ascending."""
        offsets = []
        for path in self.directory.glob(f"*{SNAPSHOT_SUFFIX}"):
            stem = path.name[: -len(SNAPSHOT_SUFFIX)]
            if stem.isdigit():
                offsets.append(int(stem))
        return sorted(offsets)

    def _path(self, offset: int) -> Path:
        return self.directory / snapshot_file_name(offset)

    def encode_snapshot(self) -> bytes:
        entries = bytearray()
        count = 0
        pack = _SNAPSHOT_ENTRY.pack
        for entry in self._producers.values():
            rows: list[tuple[int, int, int, int]] = [
                (b.last_seq, b.last_offset, b.last_offset - b.first_offset, b.timestamp_ms)
                for b in entry.batches
            ]
            if not rows:
                rows = [(NO_SEQUENCE, -1, 0, entry.last_timestamp_ms)]
            else:
                last_seq, last_offset, delta, _ = rows[-1]
                rows[-1] = (last_seq, last_offset, delta, entry.last_timestamp_ms)
            for last_seq, last_offset, delta, timestamp in rows:
                entries += pack(
                    entry.producer_id,
                    entry.producer_epoch,
                    last_seq,
                    last_offset,
                    delta,
                    timestamp,
                    entry.coordinator_epoch,
                    entry.current_txn_first_offset,
                )
                count += 1
        body = _SNAPSHOT_COUNT.pack(count) + entries
        return _SNAPSHOT_HEADER.pack(_SNAPSHOT_VERSION, crc32c.crc32c(body)) + body

    @staticmethod
    def decode_snapshot(data: bytes) -> dict[int, ProducerStateEntry]:
        if len(data) < _CRC_START + _SNAPSHOT_COUNT.size:
            raise CorruptSnapshotError("snapshot too short")
        version, crc = _SNAPSHOT_HEADER.unpack_from(data, 0)
        if version != _SNAPSHOT_VERSION:
            raise CorruptSnapshotError(f"unknown snapshot version {version}")
        if crc32c.crc32c(memoryview(data)[_CRC_START:]) != crc:
            raise CorruptSnapshotError("snapshot CRC mismatch")
        (count,) = _SNAPSHOT_COUNT.unpack_from(data, _CRC_START)
        start = _CRC_START + _SNAPSHOT_COUNT.size
        if count < 0 or len(data) != start + count * _SNAPSHOT_ENTRY.size:
            raise CorruptSnapshotError("snapshot length does not match its entry count")
        producers: dict[int, ProducerStateEntry] = {}
        for row in _SNAPSHOT_ENTRY.iter_unpack(memoryview(data)[start:]):
            pid, epoch, last_seq, last_offset, delta, timestamp, coord_epoch, txn_first = row
            entry = producers.get(pid)
            if entry is None:
                entry = producers[pid] = ProducerStateEntry(pid, epoch)
            entry.maybe_update_epoch(epoch)
            if last_offset >= 0:
                first_seq = NO_SEQUENCE
                if last_seq >= 0:
                    first_seq = last_seq - delta
                    if first_seq < 0:  # the batch's sequences wrapped at 2**31
                        first_seq += INT32_MAX + 1
                entry.add_batch(
                    epoch,
                    BatchMetadata(first_seq, last_seq, last_offset - delta, last_offset, timestamp),
                )
            entry.last_timestamp_ms = timestamp
            entry.coordinator_epoch = coord_epoch
            entry.current_txn_first_offset = txn_first
        return producers

    def take_snapshot(self, *, fsync: bool = False) -> Path:
        """Write ``<map_end_offset>.snapshot`` (atomically, via a temp file and rename).

        Without ``fsync`` the file is queued for the next :meth:`sync` — snapshots are only
        a shortcut for replay, and a lost or torn one fails its CRC and is skipped.
        """
        path = self._path(self.map_end_offset)
        temp = path.with_name(path.name + ".tmp")
        data = self.encode_snapshot()
        with open(temp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(temp, path)
        if fsync:
            fsync_directory(self.directory)
        else:
            self._unsynced.append(path)
        return path

    def sync(self) -> None:
        """fsync snapshots written since the last call (worker thread)."""
        pending, self._unsynced = self._unsynced, []
        for path in pending:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def _delete_snapshot(self, offset: int) -> None:
        self._path(offset).unlink(missing_ok=True)

    def delete_snapshots_before(self, offset: int) -> None:
        for snapshot_offset in self.snapshot_offsets():
            if snapshot_offset < offset:
                self._delete_snapshot(snapshot_offset)

    def delete_snapshots_after(self, offset: int) -> None:
        for snapshot_offset in self.snapshot_offsets():
            if snapshot_offset > offset:
                self._delete_snapshot(snapshot_offset)

    def load(
        self,
        log_start_offset: int,
        log_end_offset: int,
        now_ms: int,
        *,
        max_snapshot_offset: int | None = None,
    ) -> int:
        """Reset the table from the newest usable snapshot at or below ``log_end_offset``
        (deleting newer and corrupt ones) and return the offset replay must start from.

        ``max_snapshot_offset`` ignores (without deleting) newer snapshots: after an unclean
        shutdown the log replays everything past its recovery point, so that the aborted
        transactions of that stretch get their txn index entries back."""
        self._producers.clear()
        self._ongoing = {}
        self._unreplicated = []
        for path in self.directory.glob(f"*{SNAPSHOT_SUFFIX}.tmp"):
            path.unlink(missing_ok=True)
        self.delete_snapshots_after(log_end_offset)
        for offset in reversed(self.snapshot_offsets()):
            if max_snapshot_offset is not None and offset > max_snapshot_offset:
                continue
            try:
                producers = self.decode_snapshot(self._path(offset).read_bytes())
            except (OSError, CorruptSnapshotError):
                self._delete_snapshot(offset)
                continue
            self._producers = producers
            self.remove_expired_producers(now_ms)
            self._rebuild_ongoing()
            self.map_end_offset = max(offset, log_start_offset)
            return self.map_end_offset
        self.map_end_offset = log_start_offset
        return log_start_offset
