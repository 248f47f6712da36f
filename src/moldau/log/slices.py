"""What a read returns: byte ranges of segment files, not copies of them.

Segments hold batches exactly as they go on the wire, so a fetch response is an envelope
around file ranges. The log hands back :class:`FileSlice` objects (descriptor, position,
size); the broker either ``os.sendfile``\\s them to the socket or calls ``read_bytes``.

Lifetime: a slice keeps its :class:`SegmentFile` alive. Retention may delete a segment while
a fetch response that points into it is still being written; the segment then unlinks the
file but does not close the descriptor — it is closed when the last slice (and the segment
object) are gone, so the bytes stay readable, like Kafka's ``file.delete.delay.ms`` grace
period but exact. Only an explicit ``close`` (broker shutdown) invalidates the descriptor,
and it marks the file closed first, so a late reader gets an error instead of reading
whichever file reused the descriptor number.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from moldau.log.errors import LogStorageError


class SegmentFile:
    """An open ``.log`` file descriptor shared by a segment and the slices read from it."""

    __slots__ = ("_fd", "path")

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def open(cls, path: Path, *, create: bool) -> SegmentFile:
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        return cls(path, os.open(path, flags, 0o644))

    @property
    def fd(self) -> int:
        fd = self._fd
        if fd < 0:
            raise LogStorageError(f"segment file {self.path} is closed")
        return fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def pread(self, size: int, position: int) -> bytes:
        """Exactly ``size`` bytes at ``position`` (fewer only at the end of the file)."""
        fd = self.fd
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

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            try:  # noqa: SIM105 - no contextlib lookups in __del__ at interpreter exit
                os.close(fd)
            except OSError:
                pass


class FileSlice(NamedTuple):
    """``size`` bytes of a segment file from ``position``: whole record batches.

    A NamedTuple rather than a frozen dataclass: one is built per fetched partition and a
    tuple is built three times faster."""

    file: SegmentFile
    position: int
    size: int

    @property
    def fd(self) -> int:
        """The descriptor to ``os.sendfile`` from (raises LogStorageError once closed)."""
        return self.file.fd

    @property
    def path(self) -> Path:
        return self.file.path

    def read_bytes(self) -> bytes:
        """Copy the slice's bytes (the fallback when sendfile is not possible)."""
        data = self.file.pread(self.size, self.position)
        if len(data) != self.size:
            raise LogStorageError(
                f"{self.path}: expected {self.size} bytes at {self.position}, read {len(data)}"
            )
        return data


class FetchDataInfo(NamedTuple):
    """The result of a log read: file slices holding whole batches, ``size`` bytes in all.

    An empty result (``size == 0``) means nothing is readable at the fetch offset yet (it is
    the log end offset or the high watermark).
    """

    slices: tuple[FileSlice, ...] = ()
    size: int = 0

    def read_bytes(self) -> bytes:
        if not self.slices:
            return b""
        if len(self.slices) == 1:
            return self.slices[0].read_bytes()
        return b"".join(s.read_bytes() for s in self.slices)


EMPTY_FETCH = FetchDataInfo()
