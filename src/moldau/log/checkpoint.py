"""Kafka's offset checkpoint files: ``recovery-point-offset-checkpoint`` and friends.

Format (Kafka's ``CheckpointFile``), plain text::

    0                 version
    2                 number of entries
    orders 0 1234     topic, partition, offset — one line per partition
    orders 1 98

Written atomically: a temp file is written and fsynced, renamed over the old one, and the
directory is fsynced, so a crash leaves either the old or the new file, never a torn one.
A file that does not parse is reported with CheckpointError; the log manager then treats it
as absent (full recovery, log start offsets from the segments), which is always safe.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from moldau.log.fsutil import fsync_directory

TopicPartition = tuple[str, int]

CHECKPOINT_VERSION = 0


class CheckpointError(ValueError):
    """A checkpoint file that does not follow the format."""


def write_offset_checkpoint(path: Path, offsets: Mapping[TopicPartition, int]) -> None:
    """Replace ``path`` with ``offsets``, durably. Blocking (two fsyncs)."""
    lines = [str(CHECKPOINT_VERSION), str(len(offsets))]
    lines.extend(f"{topic} {partition} {offset}" for (topic, partition), offset in offsets.items())
    data = ("\n".join(lines) + "\n").encode()
    temp = path.with_name(path.name + ".tmp")
    with open(temp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
    fsync_directory(path.parent)


def read_offset_checkpoint(path: Path) -> dict[TopicPartition, int]:
    """The offsets in ``path``; empty if the file does not exist. Raises CheckpointError."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    lines = text.splitlines()
    if len(lines) < 2:
        raise CheckpointError(f"{path}: missing version or count line")
    try:
        version = int(lines[0])
        count = int(lines[1])
    except ValueError:
        raise CheckpointError(f"{path}: malformed header") from None
    if version != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: unknown version {version}")
    entries = [line for line in lines[2:] if line.strip()]
    if len(entries) != count:
        raise CheckpointError(f"{path}: {count} entries declared, {len(entries)} present")
    offsets: dict[TopicPartition, int] = {}
    for line in entries:
        parts = line.split(" ")
        if len(parts) != 3:
            raise CheckpointError(f"{path}: malformed entry {line!r}")
        topic, partition, offset = parts
        try:
            offsets[(topic, int(partition))] = int(offset)
        except ValueError:
            raise CheckpointError(f"{path}: malformed entry {line!r}") from None
    return offsets
