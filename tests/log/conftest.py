"""Fixtures for the storage tests: a partition directory and a log opener."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from log_helpers import NOW_MS, OpenLog

from moldau.log.config import LogConfig
from moldau.log.log import PartitionLog


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path / "topic-0"


@pytest.fixture
def open_log(log_dir: Path) -> Iterator[OpenLog]:
    """Open (or reopen) the partition log in ``log_dir``; everything opened is closed after."""
    opened: list[PartitionLog] = []

    def opener(config: LogConfig | None = None, **kwargs: object) -> PartitionLog:
        kwargs.setdefault("recover", False)
        kwargs.setdefault("now_ms", NOW_MS)
        log = PartitionLog.open(log_dir, config or LogConfig(), **kwargs)  # type: ignore[arg-type]
        opened.append(log)
        return log

    yield opener
    for log in opened:
        if not log.closed:
            log.close()
