"""Small filesystem helpers shared by the storage modules."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_directory(directory: Path) -> None:
    """fsync a directory so that file creations, renames and deletions in it are durable.

    Best effort: some filesystems refuse to open or fsync directories, and there is nothing
    better to do there than carry on.
    """
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
