"""The leader-epoch cache of one partition: which leader epoch began at which offset.

Replication needs to know, for any leader epoch, where that epoch's writes ended, so that a
follower can cut away exactly what it holds beyond the leader's history after a leader change
(KIP-101, refined by KIP-279). The cache is a list of ``(epoch, start_offset)`` entries, both
strictly increasing: an entry is added when a leader stamps a newer epoch on its first append,
or when a follower copies the first batch of a newer epoch.

It is persisted in ``<partition dir>/leader-epoch-checkpoint`` in Kafka's text format (line 1
the version ``0``, line 2 the entry count, then one ``epoch start_offset`` line per entry),
rewritten whole through a temporary file, fsync and rename on every change. Changes are rare
(one per leader change), so the fsync costs nothing in steady state. A missing or unreadable
file starts the cache empty: the follower then falls back to truncating to its high
watermark, which is safe, only slower.

Callers hold the partition log's lock (or are on the event loop for appends); the cache has
no lock of its own.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
from pathlib import Path

from moldau.log.fsutil import fsync_directory

log = logging.getLogger("moldau.log")

CHECKPOINT_FILE = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1
_VERSION = 0


class LeaderEpochCache:
    """``(epoch, start_offset)`` entries of one partition; see the module docstring."""

    def __init__(self, directory: Path, entries: list[tuple[int, int]] | None = None) -> None:
        self._path = directory / CHECKPOINT_FILE
        self._epochs: list[int] = []
        self._starts: list[int] = []
        for epoch, start in entries or ():
            self._epochs.append(epoch)
            self._starts.append(start)

    @classmethod
    def load(cls, directory: Path) -> LeaderEpochCache:
        """Read the checkpoint; an absent or corrupt one gives an empty cache."""
        path = directory / CHECKPOINT_FILE
        try:
            lines = path.read_text().split("\n")
        except FileNotFoundError:
            return cls(directory)
        except OSError as exc:
            log.warning("%s: cannot read %s: %s", directory.name, CHECKPOINT_FILE, exc)
            return cls(directory)
        try:
            entries = _parse(lines)
        except ValueError as exc:
            log.warning("%s: ignoring a corrupt %s: %s", directory.name, CHECKPOINT_FILE, exc)
            return cls(directory)
        return cls(directory, entries)

    # -- reading -------------------------------------------------------------------------

    def entries(self) -> list[tuple[int, int]]:
        return list(zip(self._epochs, self._starts, strict=True))

    def latest_epoch(self) -> int | None:
        return self._epochs[-1] if self._epochs else None

    def earliest_entry(self) -> tuple[int, int] | None:
        return (self._epochs[0], self._starts[0]) if self._epochs else None

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """Kafka's ``endOffsetFor``: ``(largest epoch ≤ epoch, first offset after it)``.

        The latest epoch ends at the log end offset. An epoch newer than every entry, an
        undefined epoch and an empty cache give ``(-1, -1)``. An epoch older than every
        entry gives ``(epoch, start of the first entry)``: nothing of that epoch can lie at
        or beyond the first entry we know, which is what a follower needs to cut safely.
        """
        if epoch == UNDEFINED_EPOCH or not self._epochs:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if epoch == self._epochs[-1]:
            return epoch, log_end_offset
        higher = bisect.bisect_right(self._epochs, epoch)
        if higher == len(self._epochs):
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if higher == 0:
            return epoch, self._starts[0]
        return self._epochs[higher - 1], self._starts[higher]

    # -- changing ------------------------------------------------------------------------

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that ``epoch`` starts at ``start_offset``; returns whether it changed.

        As Kafka does, entries the new one contradicts (an epoch at least as new, or a start
        at least as late) are dropped first; re-assigning the latest epoch at a later offset
        is a no-op.
        """
        if epoch < 0:
            return False
        if self._epochs:
            latest, latest_start = self._epochs[-1], self._starts[-1]
            if latest == epoch and latest_start <= start_offset:
                return False
            if latest > epoch and start_offset >= latest_start:
                log.warning(
                    "%s: not assigning epoch %d at %d: epoch %d already starts at %d",
                    self._path.parent.name,
                    epoch,
                    start_offset,
                    latest,
                    latest_start,
                )
                return False
        while self._epochs and (self._epochs[-1] >= epoch or self._starts[-1] >= start_offset):
            self._epochs.pop()
            self._starts.pop()
        self._epochs.append(epoch)
        self._starts.append(start_offset)
        self._persist()
        return True

    def truncate_from_end(self, end_offset: int) -> None:
        """Drop entries starting at or after ``end_offset`` (the log was cut there)."""
        changed = False
        while self._starts and self._starts[-1] >= end_offset:
            self._epochs.pop()
            self._starts.pop()
            changed = True
        if changed:
            self._persist()

    def truncate_from_start(self, start_offset: int) -> None:
        """The log now starts at ``start_offset``: drop entries wholly before it and move the
        start of the entry covering it up to it."""
        keep = bisect.bisect_right(self._starts, start_offset) - 1
        if keep < 0:
            return
        if keep == 0 and self._starts[0] == start_offset:
            return
        del self._epochs[:keep]
        del self._starts[:keep]
        self._starts[0] = start_offset
        self._persist()

    def clear(self) -> None:
        if self._epochs:
            self._epochs.clear()
            self._starts.clear()
            self._persist()

    def _persist(self) -> None:
        lines = [str(_VERSION), str(len(self._epochs))]
        lines += [f"{e} {s}" for e, s in zip(self._epochs, self._starts, strict=True)]
        directory = self._path.parent
        if not directory.exists():
            return  # the log was deleted under us; nothing left to describe
        tmp = self._path.with_suffix(".tmp")
        with open(tmp, "w") as handle:
            handle.write("\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._path)
        fsync_directory(directory)


def _parse(lines: list[str]) -> list[tuple[int, int]]:
    if len(lines) < 2 or int(lines[0]) != _VERSION:
        raise ValueError("unknown version")
    count = int(lines[1])
    entries: list[tuple[int, int]] = []
    for line in lines[2 : 2 + count]:
        epoch_text, start_text = line.split()
        entries.append((int(epoch_text), int(start_text)))
    if len(entries) != count:
        raise ValueError(f"{count} entries announced, {len(entries)} found")
    for (e1, s1), (e2, s2) in itertools.pairwise(entries):
        if e2 <= e1 or s2 < s1:
            raise ValueError("entries are not increasing")
    return entries
