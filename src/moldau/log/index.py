"""The sparse per-segment indexes: ``.index`` (offset → position) and ``.timeindex``.

Both files use Kafka's byte layout, big-endian, no header, entries sorted by key:

* ``.index`` — 8-byte entries ``relative offset int32 | position int32``. The offset is the
  *last* offset of an indexed batch, the position that batch's first byte. A lookup for
  offset ``o`` takes the greatest entry ``≤ o`` and scans batch headers forward from its
  position; the batch containing ``o`` is at or after it.
* ``.timeindex`` — 12-byte entries ``timestamp int64 | relative offset int32``: "up to this
  offset, the greatest timestamp seen is this". Timestamps strictly increase; an entry is only
  added when the segment's max timestamp grew.

Entries are added every ``index.interval.bytes`` of appended data, so a scan after a lookup
reads at most about that many bytes of headers.

Kafka memory-maps preallocated index files. We keep the entries twice in memory: as a
``bytearray`` that *is* the file's bytes (the unwritten tail is written on ``flush`` and
``write_pending`` — roll, close), and as two arrays of keys and values that ``bisect``
searches in C (under a microsecond for a full 10 MiB index). A crash can leave an index
file short (entries not yet written) — harmless, a sparse index may miss entries — or,
for a segment that was being written, out of step with its log; the log recovers the
active segment and rebuilds its indexes anyway, and ``load`` refuses files that fail the
sanity checks so the segment rebuilds them.

Concurrency: ``flush`` runs on a worker thread while the event loop appends. It copies the
unwritten slice (a bytearray slice is an atomic copy under the GIL) and opens the file for
each write, so no buffer export or shared descriptor is ever held across threads. Entries
are append-only between truncations, so two racing writers write identical bytes.
"""

from __future__ import annotations

import bisect
import os
import struct
import sys
from array import array
from pathlib import Path

from moldau.log.errors import CorruptIndexError

INT32_MAX = 2**31 - 1


class _IndexFile:
    """Fixed-size entries: file bytes plus searchable key/value arrays, persisted lazily."""

    ENTRY_SIZE = 0
    _ENTRY: struct.Struct
    _KEY_TYPE = "q"
    _VALUE_TYPE = "q"

    def __init__(self, path: Path, base_offset: int, max_index_bytes: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max(1, max_index_bytes // self.ENTRY_SIZE)
        self._buf = bytearray()
        self._keys: array[int] = array(self._KEY_TYPE)
        self._values: array[int] = array(self._VALUE_TYPE)
        self._written = 0  # bytes of _buf known to be in the file
        self._file_size = -1  # bytes in the file if it must be cut back first, else -1
        self._unsynced = False  # written without an fsync since

    @property
    def entries(self) -> int:
        return len(self._keys)

    @property
    def is_full(self) -> bool:
        return len(self._keys) >= self.max_entries

    @property
    def size_bytes(self) -> int:
        return len(self._buf)

    def set_max_index_bytes(self, max_index_bytes: int) -> None:
        self.max_entries = max(1, max_index_bytes // self.ENTRY_SIZE)

    def _append(self, key: int, value: int) -> None:
        self._buf += self._ENTRY.pack(key, value)
        self._keys.append(key)
        self._values.append(value)

    def _truncate_entries(self, count: int) -> None:
        if count >= len(self._keys):
            return
        del self._buf[count * self.ENTRY_SIZE :]
        del self._keys[count:]
        del self._values[count:]
        if self._written > len(self._buf):
            self._file_size = self._written
            self._written = len(self._buf)

    def reset(self) -> None:
        """Drop every entry; the file is rewritten from scratch on the next write."""
        self._buf = bytearray()
        self._keys = array(self._KEY_TYPE)
        self._values = array(self._VALUE_TYPE)
        self._written = 0
        self._file_size = 0

    def _read_file(self) -> bytes:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise CorruptIndexError(f"index file {self.path} is missing") from None
        if len(data) % self.ENTRY_SIZE:
            raise CorruptIndexError(
                f"index file {self.path} has {len(data)} bytes, not a multiple of {self.ENTRY_SIZE}"
            )
        return data

    def _adopt(self, data: bytes, keys: array[int], values: array[int]) -> None:
        self._buf = bytearray(data)
        self._keys = keys
        self._values = values
        self._written = len(data)
        self._file_size = -1

    def write_pending(self, *, fsync: bool = False) -> None:
        """Write entries not yet in the file (and cut the file back after a truncation)."""
        end = len(self._buf)
        start = self._written
        cut = self._file_size
        if start == end and cut < 0 and not (fsync and self._unsynced):
            return
        data = bytes(self._buf[start:end])
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            if cut >= 0:
                os.ftruncate(fd, start)
            view = memoryview(data)
            position = start
            while view:
                n = os.pwrite(fd, view, position)
                view = view[n:]
                position += n
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if len(self._buf) >= end:
            self._written = max(self._written, end)
        if cut >= 0 and self._file_size == cut:
            self._file_size = -1
        self._unsynced = not fsync

    def flush(self) -> None:
        """Write pending entries and fsync the file. Safe on a worker thread."""
        self.write_pending(fsync=True)

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


def _strictly_increasing(values: array[int]) -> bool:
    return all(map(int.__lt__, values, values[1:]))


class OffsetIndex(_IndexFile):
    """``.index``: batch last offset (relative int32) → batch position (int32).

    Invariants: relative offsets and positions strictly increase; every position is the start
    of a batch inside the segment's log file. The key array holds *absolute* offsets.
    """

    ENTRY_SIZE = 8
    _ENTRY = struct.Struct(">ii")

    def append(self, offset: int, position: int) -> None:
        """Index the batch whose last offset is ``offset`` and which starts at ``position``."""
        self._buf += self._ENTRY.pack(offset - self.base_offset, position)
        self._keys.append(offset)
        self._values.append(position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """``(offset, position)`` of the greatest entry at or below ``offset``, or
        ``(base_offset, 0)``: the scan for ``offset`` may start at that position."""
        i = bisect.bisect_right(self._keys, offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self._keys[i], self._values[i]

    def lookup_position(self, position: int) -> tuple[int, int]:
        """``(offset, position)`` of the last entry whose position is ≤ ``position``: a batch
        boundary at or before it. ``(base_offset, 0)`` if there is none."""
        i = bisect.bisect_right(self._values, position) - 1
        if i < 0:
            return self.base_offset, 0
        return self._keys[i], self._values[i]

    def last_entry(self) -> tuple[int, int]:
        if not self._keys:
            return self.base_offset, 0
        return self._keys[-1], self._values[-1]

    def truncate_to(self, offset: int) -> None:
        """Remove every entry for offsets ≥ ``offset`` (the log is cut at that batch)."""
        self._truncate_entries(bisect.bisect_left(self._keys, offset))

    def load(self, log_size: int) -> None:
        """Read the file and check it: raises CorruptIndexError if it cannot be trusted."""
        data = self._read_file()
        pairs: array[int] = array("i")
        pairs.frombytes(data)
        if sys.byteorder == "little":
            pairs.byteswap()
        relative = pairs[0::2]
        positions = array("q", pairs[1::2])
        if relative:
            if relative[0] < 0 or positions[0] < 0:
                raise CorruptIndexError(f"index file {self.path} has a negative first entry")
            if not _strictly_increasing(relative) or not _strictly_increasing(positions):
                raise CorruptIndexError(f"index file {self.path} is not sorted")
            if positions[-1] >= log_size:
                raise CorruptIndexError(
                    f"index file {self.path} points at {positions[-1]}, past the log's "
                    f"{log_size} bytes"
                )
        base = self.base_offset
        self._adopt(data, array("q", [base + r for r in relative]), positions)


class TimeIndex(_IndexFile):
    """``.timeindex``: greatest timestamp so far (int64) → offset of its batch (relative int32).

    Invariants: timestamps strictly increase, offsets never decrease. The offset is the last
    offset of the batch that first reached the timestamp, so a scan from that batch's position
    finds the first batch whose max timestamp reaches any target at or above it. The value
    array holds *absolute* offsets.
    """

    ENTRY_SIZE = 12
    _ENTRY = struct.Struct(">qi")

    def maybe_append(self, timestamp: int, offset: int, *, skip_full_check: bool = False) -> None:
        """Add an entry if ``timestamp`` is greater than the last one (Kafka's rule)."""
        keys = self._keys
        if len(keys) >= self.max_entries and not skip_full_check:
            return
        if (keys and timestamp <= keys[-1]) or timestamp < 0:
            return
        self._buf += self._ENTRY.pack(timestamp, offset - self.base_offset)
        keys.append(timestamp)
        self._values.append(offset)

    def lookup(self, timestamp: int) -> tuple[int, int]:
        """``(timestamp, offset)`` of the greatest entry with timestamp ≤ ``timestamp``, or
        ``(-1, base_offset)``: the first batch reaching ``timestamp`` is at or after it."""
        i = bisect.bisect_right(self._keys, timestamp) - 1
        if i < 0:
            return -1, self.base_offset
        return self._keys[i], self._values[i]

    def last_entry(self) -> tuple[int, int]:
        if not self._keys:
            return -1, self.base_offset
        return self._keys[-1], self._values[-1]

    def truncate_to(self, offset: int) -> None:
        """Remove every entry whose offset is ≥ ``offset``."""
        self._truncate_entries(bisect.bisect_left(self._values, offset))

    def load(self) -> None:
        """Read the file and check it: raises CorruptIndexError if it cannot be trusted."""
        data = self._read_file()
        pairs = list(self._ENTRY.iter_unpack(data))
        stamps = array("q", [p[0] for p in pairs])
        relative = array("q", [p[1] for p in pairs])
        if pairs:
            if relative[0] < 0:
                raise CorruptIndexError(f"time index {self.path} has a negative offset")
            if not _strictly_increasing(stamps) or not all(map(int.__le__, relative, relative[1:])):
                raise CorruptIndexError(f"time index {self.path} is not sorted")
        base = self.base_offset
        self._adopt(data, stamps, array("q", [base + r for r in relative]))
