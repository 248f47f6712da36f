"""The aborted-transaction index of one segment: ``<base offset>.txnindex``.

A read_committed consumer must drop the records of aborted transactions, and it can only do
so if the Fetch response tells it which producers aborted which ranges: the partition answers
``[(producer_id, first_offset)]`` for the aborted transactions overlapping the fetched data.
Walking the log for ABORT markers on every fetch would be far too slow, so, as Kafka does,
each ABORT of a transaction that wrote data here appends one entry to the index of the
segment holding the marker.

File format (Kafka's ``TransactionIndex``, byte for byte): a sequence of 34-byte entries
``version int16 (0), producer_id int64, first_offset int64, last_offset int64,
last_stable_offset int64``. ``last_offset`` is the marker's offset; ``last_stable_offset`` is
the partition's LSO right after the transaction completed — entries are appended in marker
order, so both ``last_offset`` and ``last_stable_offset`` increase along a file, which is
what lets a search stop early.

Life cycle: the file is created lazily by the first entry (most segments never see an
abort), flushed with its segment, truncated with the log, deleted with the segment. The
entries are also kept in memory (they are few: one per aborted transaction), so a fetch
never reads the file. Appends are rare (one per ABORT marker), so each one opens, writes and
closes the file rather than holding a descriptor for every segment; ``flush`` fsyncs what
was written since the last one. A torn tail (a length that is not a multiple of 34, an
unknown version) is cut off on load; the log then rebuilds missing entries by replaying the
markers after its producer snapshot.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

TXN_INDEX_SUFFIX = ".txnindex"
_ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = _ENTRY.size  # 34
_VERSION = 0


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    """One aborted transaction: its producer, its data range and the LSO after it ended."""

    producer_id: int
    first_offset: int
    last_offset: int
    """The offset of the ABORT marker."""
    last_stable_offset: int

    def encode(self) -> bytes:
        return _ENTRY.pack(
            _VERSION, self.producer_id, self.first_offset, self.last_offset,
            self.last_stable_offset,
        )  # fmt: skip


class TransactionIndex:
    """The aborted transactions whose ABORT marker lies in one segment; see the module
    docstring. Called from the event loop (append, search, truncate) and from the flusher's
    worker thread (``flush``, which only fsyncs)."""

    __slots__ = ("_dirty", "_last_offsets", "base_offset", "entries", "path")

    def __init__(self, path: Path, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.entries: list[AbortedTxn] = []
        self._last_offsets: list[int] = []
        self._dirty = False

    def load(self) -> None:
        """Read the file if it exists; cut it at the first entry that does not parse."""
        self.entries = []
        self._last_offsets = []
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        valid = 0
        last = -1
        for version, pid, first, last_offset, lso in _ENTRY.iter_unpack(
            memoryview(data)[: len(data) - len(data) % ENTRY_SIZE]
        ):
            if version != _VERSION or last_offset <= last or first > last_offset:
                break
            self.entries.append(AbortedTxn(pid, first, last_offset, lso))
            self._last_offsets.append(last_offset)
            last = last_offset
            valid += ENTRY_SIZE
        if valid != len(data):
            os.truncate(self.path, valid)
            self._dirty = True

    def reset(self) -> None:
        """Forget every entry and remove the file (a new or rebuilt segment)."""
        self.entries = []
        self._last_offsets = []
        self._dirty = False
        self.path.unlink(missing_ok=True)

    @property
    def last_offset(self) -> int:
        """The marker offset of the newest entry, -1 if none."""
        return self._last_offsets[-1] if self._last_offsets else -1

    def has_marker(self, marker_offset: int) -> bool:
        """Whether an entry for the ABORT marker at ``marker_offset`` exists (replay)."""
        i = bisect.bisect_left(self._last_offsets, marker_offset)
        return i < len(self._last_offsets) and self._last_offsets[i] == marker_offset

    def append(self, txn: AbortedTxn) -> None:
        """Add an entry; markers must arrive in offset order (ValueError otherwise)."""
        if txn.last_offset <= self.last_offset:
            raise ValueError(
                f"{self.path}: aborted txn ending at {txn.last_offset} does not follow "
                f"{self.last_offset}"
            )
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, txn.encode())
        finally:
            os.close(fd)
        self.entries.append(txn)
        self._last_offsets.append(txn.last_offset)
        self._dirty = True

    def truncate_to(self, offset: int) -> None:
        """Drop the entries whose marker is at or after ``offset``."""
        keep = bisect.bisect_left(self._last_offsets, offset)
        if keep == len(self.entries):
            return
        del self.entries[keep:]
        del self._last_offsets[keep:]
        with contextlib.suppress(FileNotFoundError):
            os.truncate(self.path, keep * ENTRY_SIZE)
        self._dirty = True

    def collect(self, fetch_offset: int, upper_bound_offset: int) -> tuple[list[AbortedTxn], bool]:
        """Kafka's ``collectAbortedTxns``: the entries overlapping ``[fetch_offset,
        upper_bound_offset)`` (marker ≥ fetch offset, first offset < upper bound), and
        whether the search is complete — an entry whose LSO reaches the upper bound proves
        that no later segment can hold a transaction overlapping the range."""
        offsets = self._last_offsets
        start = bisect.bisect_left(offsets, fetch_offset)
        # entries before ``start`` end before the fetch offset; LSOs increase along the file,
        # so the last of them is the only one that could have ended the search
        if start and self.entries[start - 1].last_stable_offset >= upper_bound_offset:
            return [], True
        found: list[AbortedTxn] = []
        for txn in self.entries[start:]:
            if txn.first_offset < upper_bound_offset:
                found.append(txn)
            if txn.last_stable_offset >= upper_bound_offset:
                return found, True
        return found, False

    def flush(self) -> None:
        """fsync what was appended or truncated since the last flush (worker thread)."""
        if not self._dirty:
            return
        self._dirty = False
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def delete(self) -> None:
        self.entries = []
        self._last_offsets = []
        self._dirty = False
        self.path.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"TransactionIndex({self.path.name}, entries={len(self.entries)})"
