"""Names in a data directory: partition directories and the files inside them.

Kafka's layout, which moldau keeps byte for byte so that the tools and habits carry over::

    <data_dir>/<topic>-<partition>/
        00000000000000000000.log         segment files, named by base offset (20 digits)
        00000000000000000000.index
        00000000000000000000.timeindex
        00000000000000000000.txnindex    aborted transactions (only when there are some)
        00000000000000001234.snapshot    producer state as of offset 1234
        00000000000000000000.log.swap    a cleaned segment being swapped in (see
                                         :mod:`moldau.log.swap`)
        cleaner-staging/                 the log cleaner's output before the swap
    <data_dir>/<topic>-<partition>.<uuid>-delete/   a partition being deleted

When a log is opened, interrupted cleaner swaps are first completed (a ``<base>.log.swap``
file is the commit point of one cleaned segment), the staging directory is removed, and then
leftovers of interrupted operations (``*.deleted``, ``*.cleaned``, other ``*.swap``,
``*.tmp``) and index files whose ``.log`` file is gone are removed.
"""

from __future__ import annotations

from pathlib import Path

from moldau.log.segment import DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX
from moldau.log.txn_index import TXN_INDEX_SUFFIX

SEGMENT_SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX)

DELETE_DIR_SUFFIX = "-delete"
"""Suffix of a partition directory renamed for deletion."""
SWAP_SUFFIX = ".swap"
"""Suffix of a cleaned segment's files between the staging directory and their final name."""
TEMP_SUFFIXES = (DELETED_SUFFIX, ".cleaned", SWAP_SUFFIX, ".tmp")
CLEANER_STAGING_DIR = "cleaner-staging"
"""Directory inside a partition directory where the cleaner writes its output (the same
name as ``moldau.log.cleaner.STAGING_DIR_NAME``)."""


def log_dir_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


def parse_log_dir_name(name: str) -> tuple[str, int]:
    """``"orders-3"`` → ``("orders", 3)``; ValueError if it is not a partition directory."""
    topic, sep, partition = name.rpartition("-")
    if not sep or not topic or not partition.isdigit():
        raise ValueError(f"{name!r} is not a <topic>-<partition> directory name")
    return topic, int(partition)


def segment_base_offsets(directory: Path) -> list[int]:
    """Base offsets of the ``.log`` files; index files without a log file are removed."""
    bases: set[int] = set()
    others: list[tuple[int, Path]] = []
    for path in directory.iterdir():
        name = path.name
        for suffix in SEGMENT_SUFFIXES:
            if name.endswith(suffix):
                stem = name[: -len(suffix)]
                if stem.isdigit():
                    if suffix == LOG_SUFFIX:
                        bases.add(int(stem))
                    else:
                        others.append((int(stem), path))
                break
    for base, path in others:
        if base not in bases:
            path.unlink(missing_ok=True)
    return sorted(bases)


def delete_segment_files(directory: Path, base_offset: int) -> None:
    for suffix in SEGMENT_SUFFIXES:
        (directory / f"{base_offset:020d}{suffix}").unlink(missing_ok=True)


def remove_temporary_files(directory: Path) -> None:
    for path in directory.iterdir():
        if path.name.endswith(TEMP_SUFFIXES) and path.is_file():
            path.unlink(missing_ok=True)
