"""The log cleaner's I/O: reading closed segments batch by batch, throttling, test hooks.

A cleaner worker reads the partition's closed segments straight from their files (they are
immutable once rolled) with plain ``pread``\\ s in chunks of :data:`READ_CHUNK_BYTES`, never
past the size the broker reported when it built the job — an append racing the clean can
therefore never be seen half-written. Every batch is checked before the cleaner trusts it:
framing (length, magic, the batch fitting the file), CRC-32C, and offsets increasing inside
the segment's range. Anything wrong raises :class:`CleanerError` naming the file and the
position: the cleaner never writes a segment from data it could not verify.

:class:`Throttler` implements ``log.cleaner.io.max.bytes.per.second`` (Kafka's
``Throttler``): after each chunk read or written it sleeps long enough for the average rate
since the clean started to stay under the limit.

Test hooks (environment variable ``MOLDAU_TEST_CLEANER_HOOK``, comma-separated; read by the
worker at the start of each clean, ignored when unset — never set it in production):
``slow=MS`` sleeps MS milliseconds after each write of output batches (kill -9 tests), and
``enospc=BYTES`` raises ``OSError(ENOSPC)`` once BYTES of output have been written (disk
full tests).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from moldau.protocol.record_batch import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC_V2,
    BatchHeader,
    compute_crc,
    read_header,
)

READ_CHUNK_BYTES = 1 << 20
"""How much of a segment file one read fetches (a batch larger than this is read whole)."""
TEST_HOOK_ENV = "MOLDAU_TEST_CLEANER_HOOK"


class CleanerError(Exception):
    """A segment cannot be cleaned (corrupt batch: CRC, framing, offsets). The partition is
    skipped; nothing the clean wrote is left behind."""


@dataclass(frozen=True, slots=True)
class TestHooks:
    """Fault injection for tests, parsed from ``MOLDAU_TEST_CLEANER_HOOK`` (see module)."""

    __test__ = False  # not a pytest test class

    slow_ms: int = 0
    enospc_bytes: int | None = None

    @classmethod
    def from_env(cls) -> TestHooks:
        raw = os.environ.get(TEST_HOOK_ENV, "")
        slow_ms = 0
        enospc: int | None = None
        for item in raw.split(","):
            name, _, value = item.strip().partition("=")
            try:
                if name == "slow":
                    slow_ms = max(int(value), 0)
                elif name == "enospc":
                    enospc = max(int(value), 0)
            except ValueError:
                continue
        return cls(slow_ms, enospc)

    def before_write(self, written_so_far: int, size: int) -> None:
        """``enospc``: fail the write that would take the output past the limit."""
        if self.enospc_bytes is not None and written_so_far + size > self.enospc_bytes:
            raise OSError(errno.ENOSPC, "No space left on device (test hook enospc)")

    def after_write(self) -> None:
        if self.slow_ms:
            time.sleep(self.slow_ms / 1000)


class Throttler:
    """Keeps the cleaner's I/O under ``max_bytes_per_second`` on average (Kafka's
    ``Throttler``). A rate that is not positive and finite means no limit."""

    __slots__ = ("_bytes", "_rate", "_start")

    def __init__(self, max_bytes_per_second: float) -> None:
        ok = max_bytes_per_second > 0 and max_bytes_per_second != float("inf")
        self._rate = max_bytes_per_second if ok else 0.0
        self._start = time.monotonic()
        self._bytes = 0

    def maybe_throttle(self, nbytes: int) -> None:
        if not self._rate:
            return
        self._bytes += nbytes
        ahead = self._bytes / self._rate - (time.monotonic() - self._start)
        if ahead > 0:
            time.sleep(ahead)


def _pread_exactly(fd: int, size: int, position: int) -> bytes:
    data = os.pread(fd, size, position)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, position + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def read_segment_batches(
    path: str,
    size_bytes: int,
    base_offset: int,
    next_offset: int,
    *,
    throttler: Throttler | None = None,
    chunk_bytes: int = READ_CHUNK_BYTES,
) -> Iterator[tuple[int, BatchHeader, bytes, int]]:
    """Yield ``(file position, header, buffer, position in buffer)`` for every batch of the
    first ``size_bytes`` of the segment file at ``path``, each verified (see the module
    docstring). The buffer is shared by the batches of one chunk: copy what must outlive
    the next iteration. Raises CleanerError for corrupt data, OSError for I/O failures."""
    fd = os.open(path, os.O_RDONLY)
    try:
        file_pos = 0
        want = chunk_bytes
        previous_next = base_offset
        while file_pos < size_bytes:
            size = min(max(want, chunk_bytes), size_bytes - file_pos)
            data = _pread_exactly(fd, size, file_pos)
            if len(data) != size:
                raise CleanerError(
                    f"{path}: file ends at {file_pos + len(data)}, expected {size_bytes} bytes"
                )
            if throttler is not None:
                throttler.maybe_throttle(size)
            p = 0
            want = chunk_bytes
            limit = len(data)
            while p < limit:
                where = file_pos + p
                if limit - p < HEADER_SIZE:
                    if file_pos + limit >= size_bytes:
                        raise CleanerError(
                            f"{path}: position {where}: {limit - p} trailing bytes are not a batch"
                        )
                    want = HEADER_SIZE
                    break
                header = read_header(data, p)
                if header.magic != MAGIC_V2:
                    raise CleanerError(
                        f"{path}: position {where}: unsupported magic {header.magic}"
                    )
                if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
                    raise CleanerError(
                        f"{path}: position {where}: batch length {header.batch_length} too small"
                    )
                batch_size = header.size
                if where + batch_size > size_bytes:
                    raise CleanerError(
                        f"{path}: position {where}: batch of {batch_size} bytes is truncated"
                    )
                if p + batch_size > limit:
                    want = batch_size
                    break
                if compute_crc(data, p, batch_size) != header.crc:
                    raise CleanerError(f"{path}: position {where}: CRC mismatch (corrupt batch)")
                if (
                    header.base_offset < previous_next
                    or header.last_offset_delta < 0
                    or header.last_offset >= next_offset
                ):
                    raise CleanerError(
                        f"{path}: position {where}: offsets {header.base_offset}.."
                        f"{header.last_offset} out of order or outside "
                        f"[{previous_next}, {next_offset})"
                    )
                previous_next = header.next_offset
                yield where, header, data, p
                p += batch_size
            file_pos += p
    finally:
        os.close(fd)
