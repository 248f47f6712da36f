"""Swapping cleaned segments into a partition log, and finishing a swap a crash interrupted.

The log cleaner (:mod:`moldau.log.cleaner`, run in a worker process) writes each cleaned
group of segments as a complete segment — ``<base>.log``, ``.index``, ``.timeindex`` and
``.txnindex`` when it has entries, all fsynced — into ``<partition>/cleaner-staging/``. Each
group replaces consecutive old segments ("sources") and takes the base offset of the first.
Putting it in place must survive a crash at any instant without losing or duplicating an
offset, so it goes in three steps (Kafka's ``replaceSegments``):

1. **rename** the staged files to ``<partition>/<base>.<ext>.swap`` — the index files first,
   the ``.log`` last — and fsync the directory. A ``<base>.log.swap`` file is the commit
   point of its group: from the moment it exists, the group will be swapped in.
2. **delete** the sources (each segment's index files first, its ``.log`` last, see
   :meth:`LogSegment.delete`), so "``<b>.log`` exists" means "everything named ``<b>.*`` is
   old" and "``<b>.log`` is gone" means "no old file named ``<b>.*`` is left".
3. **rename** ``.swap`` → final name (indexes first, ``.log`` last), open the new segment and
   put it in the log's segment list in place of the sources.

All three run holding the log's lock, after checking that every source is still the log's
segment with the size and end it had when the clean started — retention, DeleteRecords,
truncation or a topic deletion in the meantime make the swap be abandoned (the staged files
are dropped; the next clean starts over). Readers are never disturbed: they take the lock,
and a fetch already holding a :class:`~moldau.log.slices.FileSlice` of an old segment keeps
reading it because deleting a segment unlinks its file without closing the descriptor.

On open (:func:`complete_interrupted_swaps`, before any other leftover is removed): every
``<b>.log.swap`` is finished — the old segments whose base offsets fall in the swap file's
offset range (and the one at ``b`` itself) are deleted if their ``.log`` is still there, then
the ``.swap`` files are renamed. Index ``.swap`` files without a ``.log.swap`` belong to a
swap that never committed; they, the ``.deleted`` files and ``cleaner-staging/`` are removed.
The old segments of an uncommitted swap were never touched, so nothing is lost either way.

Blocking (renames, fsyncs, opening files): :func:`swap_cleaned_segments` runs on a worker
thread; appends and fetches of the log wait on its lock meanwhile, other partitions do not.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from moldau.log.fsutil import fsync_directory
from moldau.log.layout import CLEANER_STAGING_DIR, SEGMENT_SUFFIXES, SWAP_SUFFIX
from moldau.log.scan import iter_valid_batches
from moldau.log.segment import (
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    LogSegment,
    segment_file_name,
)
from moldau.log.slices import SegmentFile
from moldau.log.txn_index import TXN_INDEX_SUFFIX

if TYPE_CHECKING:
    from moldau.log.log import PartitionLog

RENAME_ORDER = (INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX, LOG_SUFFIX)
"""The ``.log`` file is always renamed last: its presence under a name commits the rest."""
LOG_SWAP_SUFFIX = LOG_SUFFIX + SWAP_SUFFIX


class SwapError(OSError):
    """A staged group is incomplete (no ``.log`` file): the swap is not attempted."""


@dataclass(frozen=True, slots=True)
class SwapGroup:
    """One cleaned segment to swap in: the log's segments it replaces (consecutive, as they
    were when the clean started) with the ``(size, next_offset)`` each had then."""

    base_offset: int
    sources: tuple[LogSegment, ...]
    expected: tuple[tuple[int, int], ...]


def swap_cleaned_segments(
    log: PartitionLog,
    groups: Sequence[SwapGroup],
    staging: Path,
    *,
    after_swap_renames: Callable[[], None] | None = None,
) -> bool:
    """Swap the staged groups into ``log`` (see the module docstring); return False, having
    changed nothing, when the log or its sources changed since the clean started. The
    staging directory is removed either way. ``after_swap_renames`` runs right after step 1
    (the ``crash-in-swap`` test hook). Blocking: call from a worker thread."""
    directory = log.directory
    try:
        with log.lock:
            if log.closed or not _sources_unchanged(log, groups):
                return False
            _rename_staged(directory, staging, groups)
            if after_swap_renames is not None:
                after_swap_renames()
            try:
                for group in groups:
                    _replace_group(log, group)
            finally:
                fsync_directory(directory)
            return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _sources_unchanged(log: PartitionLog, groups: Sequence[SwapGroup]) -> bool:
    segments = log.segments
    positions = {id(segment): i for i, segment in enumerate(segments)}
    last = len(segments) - 1  # the active segment is never a source
    for group in groups:
        previous = -1
        for segment, (size, next_offset) in zip(group.sources, group.expected, strict=True):
            i = positions.get(id(segment), -1)
            if i < 0 or i >= last or segment.deleted:
                return False
            if segment.size != size or segment.next_offset != next_offset:
                return False
            if previous >= 0 and i != previous + 1:
                return False
            previous = i
    return True


def _rename_staged(directory: Path, staging: Path, groups: Sequence[SwapGroup]) -> None:
    """Step 1. On failure the ``.swap`` files made so far are removed and the error raised."""
    renamed: list[Path] = []
    try:
        for group in groups:
            if not (staging / segment_file_name(group.base_offset, LOG_SUFFIX)).exists():
                raise SwapError(f"{staging}: no staged log file for offset {group.base_offset}")
            for suffix in RENAME_ORDER:
                source = staging / segment_file_name(group.base_offset, suffix)
                if not source.exists():
                    continue
                target = directory / segment_file_name(group.base_offset, suffix + SWAP_SUFFIX)
                os.replace(source, target)
                renamed.append(target)
        fsync_directory(directory)
    except OSError:
        for path in reversed(renamed):
            with contextlib.suppress(OSError):
                path.unlink()
        raise


def _replace_group(log: PartitionLog, group: SwapGroup) -> None:
    """Steps 2 and 3 for one group."""
    directory = log.directory
    base = group.base_offset
    for segment in group.sources:
        segment.delete()
    _rename_swap_files(directory, base)
    config = log.config
    last_modified_ms = max(segment.last_modified_ms for segment in group.sources)
    with contextlib.suppress(OSError):
        # Kafka keeps the sources' modification time: time retention and the cleaner's
        # delete horizon read it for segments without record timestamps
        ns = last_modified_ms * 1_000_000
        os.utime(directory / segment_file_name(base, LOG_SUFFIX), ns=(ns, ns))
    segment = LogSegment.open(
        directory,
        base,
        index_interval_bytes=config.index_interval_bytes,
        max_index_bytes=config.segment_index_bytes,
        segment_jitter_ms=config.segment_jitter_ms,
        now_ms=last_modified_ms,
    )
    segment.forget_recent()
    segment.last_modified_ms = last_modified_ms
    log.replace_segments(group.sources, segment)


def _rename_swap_files(directory: Path, base_offset: int) -> None:
    for suffix in RENAME_ORDER:
        source = directory / segment_file_name(base_offset, suffix + SWAP_SUFFIX)
        if source.exists():
            os.replace(source, directory / segment_file_name(base_offset, suffix))


def complete_interrupted_swaps(directory: Path) -> int:
    """Finish every committed swap in ``directory`` and remove the cleaner's staging
    directory; return how many swaps were finished. Runs when a log is opened, before the
    leftover ``.swap`` files of uncommitted swaps are removed."""
    shutil.rmtree(directory / CLEANER_STAGING_DIR, ignore_errors=True)
    swaps: list[int] = []
    logs: list[int] = []
    for path in directory.iterdir():
        name = path.name
        if name.endswith(LOG_SWAP_SUFFIX) and name[: -len(LOG_SWAP_SUFFIX)].isdigit():
            swaps.append(int(name[: -len(LOG_SWAP_SUFFIX)]))
        elif name.endswith(LOG_SUFFIX) and name[: -len(LOG_SUFFIX)].isdigit():
            logs.append(int(name[: -len(LOG_SUFFIX)]))
    if not swaps:
        return 0
    for base in sorted(swaps):
        end = _swap_next_offset(directory / segment_file_name(base, LOG_SWAP_SUFFIX), base)
        for old in logs:
            if old == base or base <= old < end:
                _delete_old_segment_files(directory, old)
        _rename_swap_files(directory, base)
    fsync_directory(directory)
    return len(swaps)


def _swap_next_offset(path: Path, base_offset: int) -> int:
    """The offset after the last batch of a committed ``.log.swap`` file (its base offset
    if it holds none: a cleaned group can come out empty)."""
    file = SegmentFile.open(path, create=False)
    try:
        size = os.fstat(file.fd).st_size
        end = base_offset
        for _, header in iter_valid_batches(file, 0, size, base_offset):
            end = header.next_offset
        return end
    finally:
        file.close()


def _delete_old_segment_files(directory: Path, base_offset: int) -> None:
    """Delete an old segment's files, its ``.log`` last (see step 2)."""
    for suffix in (*SEGMENT_SUFFIXES[1:], SEGMENT_SUFFIXES[0]):
        (directory / segment_file_name(base_offset, suffix)).unlink(missing_ok=True)
