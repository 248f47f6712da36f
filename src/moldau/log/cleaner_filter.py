"""What the log cleaner keeps of each batch: transactions, delete horizons, producer state.

This is Kafka's ``Cleaner.cleanInto`` record filter with ``MemoryRecords.filterTo`` and
``CleanedTransactionMetadata``, rule for rule.

**Transactions** (:class:`CleanedTransactionMetadata`). Walking the log in offset order with
the partition's aborted transactions (from the ``.txnindex`` files) tells, for each batch,
whether it belongs to an aborted transaction — then it is discarded — and, for each marker,
whether it may go: an ABORT marker once no batch of its transaction is left (while some are,
it stays and its aborted-transaction entry is written to the cleaned segment's
``.txnindex``), a COMMIT marker once no batch of its transaction was seen in this pass.

**Delete horizons** (KIP-534). A tombstone (null value) and a removable marker must outlive
``delete.retention.ms`` so that consumers catching up see them. The first clean that keeps
one rewrites its batch with the *delete horizon* ``now + delete.retention.ms`` in
baseTimestamp and the hasDeleteHorizonMs attribute bit; a clean after that time removes the
tombstones of that batch and, when no data of its transaction remains, the marker.

**Producer state.** The batch holding a producer's last data offset (or, for a producer
whose last entry is a marker, that marker) is kept even when every record goes — as an
empty batch with the same offsets, sequence and epoch — so the broker can still
deduplicate that producer's retries and fence it after a restart. The batch ending right at
the first uncleanable offset is kept the same way, so the log's end offset survives.

**Records.** A record stays if its offset is past what the offset map covers, or it has a
key whose mapped offset is not newer than its own and it is not a tombstone past its
horizon. Keyless records are dropped (they cannot be compacted; Kafka counts them as
invalid). A batch whose records all stay, and which needs no new horizon, is copied byte
for byte; otherwise it is rebuilt with its header fields, codec and lastOffsetDelta.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from moldau.log.offset_map import OffsetMap
from moldau.log.txn_index import AbortedTxn, TransactionIndex
from moldau.protocol.record_batch import BatchHeader, Buffer, delete_horizon_ms
from moldau.protocol.records import (
    CONTROL_ABORT,
    CONTROL_COMMIT,
    build_empty_batch,
    build_retained_batch,
    control_record_type,
    decode_records,
    record_keys,
)


@dataclass(frozen=True, slots=True)
class ProducerLastRecord:
    """What the broker's producer state says of one active producer (Kafka's
    ``LastRecord``): the last offset of its last data batch (None when it has none, e.g.
    only markers) and its current epoch."""

    producer_id: int
    last_data_offset: int | None
    producer_epoch: int


class _AbortedInProgress:
    __slots__ = ("observed", "txn")

    def __init__(self, txn: AbortedTxn) -> None:
        self.txn = txn
        self.observed = False


class CleanedTransactionMetadata:
    """Transaction state carried along one pass over the log (see the module docstring).
    ``cleaned_index`` is the txn index of the segment being written, if any."""

    def __init__(self, aborted: Iterable[AbortedTxn]) -> None:
        unique = {(t.producer_id, t.first_offset, t.last_offset): t for t in aborted}
        self._pending: list[tuple[int, int, AbortedTxn]] = [
            (t.first_offset, t.last_offset, t) for t in unique.values()
        ]
        heapq.heapify(self._pending)
        self._ongoing_aborted: dict[int, _AbortedInProgress] = {}
        self._ongoing_committed: set[int] = set()
        self.cleaned_index: TransactionIndex | None = None

    def _consume_aborted_up_to(self, offset: int) -> None:
        pending = self._pending
        while pending and pending[0][0] <= offset:
            txn = heapq.heappop(pending)[2]
            self._ongoing_aborted.setdefault(txn.producer_id, _AbortedInProgress(txn))

    def on_control_batch(self, header: BatchHeader, control_type: int | None) -> bool:
        """A marker was read; True if it may be discarded (``control_type`` None: the
        batch is empty, already cleaned)."""
        self._consume_aborted_up_to(header.last_offset)
        if control_type is None:
            return True
        producer_id = header.producer_id
        if control_type == CONTROL_ABORT:
            ongoing = self._ongoing_aborted.pop(producer_id, None)
            if ongoing is not None and ongoing.observed:
                if self.cleaned_index is not None:
                    self.cleaned_index.append(ongoing.txn)
                return False
            return True
        if control_type == CONTROL_COMMIT:
            if producer_id in self._ongoing_committed:
                self._ongoing_committed.discard(producer_id)
                return False
            return True
        return False

    def on_data_batch(self, header: BatchHeader) -> bool:
        """A data batch was read; True if it belongs to an aborted transaction."""
        self._consume_aborted_up_to(header.last_offset)
        if not header.is_transactional:
            return False
        ongoing = self._ongoing_aborted.get(header.producer_id)
        if ongoing is not None:
            ongoing.observed = True
            return True
        self._ongoing_committed.add(header.producer_id)
        return False


class Retention(Enum):
    DELETE = 0
    """Drop the batch whatever its records."""
    DELETE_EMPTY = 1
    """Keep the records that survive; drop the batch if none does."""
    RETAIN_EMPTY = 2
    """Keep the batch, as an empty batch if no record survives."""


@dataclass(slots=True)
class FilterStats:
    records_read: int = 0
    records_kept: int = 0
    keyless_records: int = 0


def control_type_of(buf: Buffer, pos: int, header: BatchHeader) -> int | None:
    """The type of a control batch's first record, None for an empty control batch."""
    if header.records_count == 0:
        return None
    keys = record_keys(buf, pos, header)
    if not keys:
        return None
    return control_record_type(keys[0][1])


class BatchFilter:
    """Decides, batch by batch, what one clean pass keeps (see the module docstring)."""

    def __init__(
        self,
        *,
        offset_map: OffsetMap,
        transactions: CleanedTransactionMetadata,
        is_last_of_producer: LastOfProducer,
        upper_bound_offset: int,
        now_ms: int,
        delete_retention_ms: int,
        stats: FilterStats,
    ) -> None:
        self._map = offset_map
        self._txns = transactions
        self._is_last_of_producer = is_last_of_producer
        self._upper_bound = upper_bound_offset
        self._now_ms = now_ms
        self._delete_retention_ms = delete_retention_ms
        self.stats = stats

    def filter(self, buf: Buffer, pos: int, header: BatchHeader) -> bytes | None:
        """What to write for the batch at ``pos``: None (nothing), the original bytes, a
        rebuilt batch or an empty one. Raises InvalidRecordError for bad records."""
        stats = self.stats
        stats.records_read += header.records_count
        horizon = delete_horizon_ms(header)
        if header.is_control:
            can_discard = self._txns.on_control_batch(header, control_type_of(buf, pos, header))
            discard_records = can_discard and horizon is not None and horizon <= self._now_ms
        else:
            can_discard = self._txns.on_data_batch(header)
            discard_records = can_discard
        if (header.producer_id >= 0 and self._is_last_of_producer(header)) or (
            header.next_offset == self._upper_bound
        ):
            retention = Retention.RETAIN_EMPTY
        elif discard_records:
            return None
        else:
            retention = Retention.DELETE_EMPTY
        # a marker whose transaction left no data, or a kept tombstone, needs a horizon
        needs_horizon = can_discard and header.is_control
        if discard_records:
            kept: list[int] = []
            keep_all = header.records_count == 0
        elif header.is_control:
            kept, keep_all = [], True
        else:
            kept, keep_all, needs_horizon = self._retained_records(buf, pos, header, horizon)
        new_horizon = horizon
        if horizon is None and needs_horizon:
            new_horizon = self._now_ms + self._delete_retention_ms
        if keep_all and header.records_count > 0:
            if new_horizon == horizon:
                stats.records_kept += header.records_count
                return bytes(memoryview(buf)[pos : pos + header.size])
            records = decode_records(buf, pos, header, contiguous_offsets=False)
            stats.records_kept += len(records)
            return build_retained_batch(header, records, delete_horizon_ms=new_horizon)
        if kept:
            records = decode_records(buf, pos, header, contiguous_offsets=False)
            wanted = set(kept)
            retained = [r for r in records if r.offset_delta in wanted]
            stats.records_kept += len(retained)
            return build_retained_batch(header, retained, delete_horizon_ms=new_horizon)
        if retention is Retention.RETAIN_EMPTY:
            return build_empty_batch(header)
        return None

    def _retained_records(
        self, buf: Buffer, pos: int, header: BatchHeader, horizon: int | None
    ) -> tuple[list[int], bool, bool]:
        """Offset deltas of the data records kept, whether all are, whether a kept one is a
        tombstone (Kafka's ``shouldRetainRecord``)."""
        offset_map = self._map
        latest = offset_map.latest_offset
        base = header.base_offset
        deletes_retained = horizon is None or self._now_ms < horizon
        kept: list[int] = []
        tombstones = False
        keys = record_keys(buf, pos, header)
        for offset_delta, key, has_value in keys:
            offset = base + offset_delta
            if offset > latest:
                keep = True
            elif key is None:
                self.stats.keyless_records += 1
                keep = False
            else:
                keep = offset >= offset_map.get(key) and (has_value or deletes_retained)
            if keep:
                kept.append(offset_delta)
                if not has_value:
                    tombstones = True
        return kept, len(kept) == len(keys), tombstones


class LastOfProducer:
    """Whether a batch is the one a producer's state needs kept (Kafka's
    ``isBatchLastRecordOfProducer``)."""

    __slots__ = ("_last",)

    def __init__(self, last_records: Iterable[ProducerLastRecord]) -> None:
        self._last = {r.producer_id: r for r in last_records}

    def __call__(self, header: BatchHeader) -> bool:
        last = self._last.get(header.producer_id)
        if last is None:
            return False
        if last.last_data_offset is not None:
            return header.last_offset == last.last_data_offset
        return header.is_control and header.producer_epoch == last.producer_epoch
