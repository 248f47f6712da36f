"""LogManager: discovery, clean-shutdown marker, checkpoints, deletion, retention, locking."""

from __future__ import annotations

from pathlib import Path

import pytest
from log_helpers import NOW_MS, make_batch

from moldau.log.checkpoint import read_offset_checkpoint, write_offset_checkpoint
from moldau.log.config import LogConfig
from moldau.log.errors import LogStorageError
from moldau.log.manager import (
    CLEAN_SHUTDOWN_FILE,
    LOG_START_OFFSET_CHECKPOINT_FILE,
    RECOVERY_POINT_CHECKPOINT_FILE,
    LogManager,
)


def append(manager: LogManager, topic: str, partition: int, count: int = 1) -> None:
    log = manager.get_or_create_log(topic, partition)
    log.append_as_leader(make_batch(count), leader_epoch=0, now_ms=NOW_MS)


def test_create_close_and_rediscover(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, LogConfig())
    manager.open_all()
    assert not manager.had_clean_shutdown
    append(manager, "orders", 0, 3)
    append(manager, "orders", 1, 2)
    append(manager, "my-topic-with-dashes", 10)
    manager.close()
    assert (tmp_path / CLEAN_SHUTDOWN_FILE).exists()
    assert read_offset_checkpoint(tmp_path / RECOVERY_POINT_CHECKPOINT_FILE) == {
        ("orders", 0): 3,
        ("orders", 1): 2,
        ("my-topic-with-dashes", 10): 1,
    }
    again = LogManager(tmp_path, LogConfig())
    again.open_all()
    try:
        assert again.had_clean_shutdown
        assert not (tmp_path / CLEAN_SHUTDOWN_FILE).exists()
        assert len(again) == 3
        log = again.get_log("my-topic-with-dashes", 10)
        assert log is not None and log.log_end_offset == 1
        assert again.get_log("orders", 0).log_end_offset == 3  # type: ignore[union-attr]
        assert again.get_log("orders", 7) is None
    finally:
        again.close()


def test_missing_marker_means_recovery(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, LogConfig())
    manager.open_all()
    append(manager, "t", 0, 2)
    manager.close()
    (tmp_path / CLEAN_SHUTDOWN_FILE).unlink()
    with open(tmp_path / "t-0" / "00000000000000000000.log", "ab") as f:
        f.write(b"torn")
    again = LogManager(tmp_path, LogConfig())
    again.open_all()
    try:
        assert not again.had_clean_shutdown
        log = again.get_log("t", 0)
        assert log is not None and log.log_end_offset == 2
        assert (
            log.active_segment.size
            == (tmp_path / "t-0" / "00000000000000000000.log").stat().st_size
        )
    finally:
        again.close()


def test_topic_configs_and_updates(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, LogConfig())
    manager.open_all({"big": LogConfig(max_message_bytes=5_000_000)})
    try:
        assert manager.get_or_create_log("big", 0).config.max_message_bytes == 5_000_000
        assert manager.get_or_create_log("small", 0).config == LogConfig()
        manager.update_topic_config("small", LogConfig(retention_ms=5))
        assert manager.get_or_create_log("small", 0).config.retention_ms == 5
        created = manager.get_or_create_log("small", 1, LogConfig(retention_ms=7))
        assert created.config.retention_ms == 7
        assert manager.get_log("small", 0).config.retention_ms == 7  # type: ignore[union-attr]
    finally:
        manager.close()


def test_delete_topic(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, LogConfig())
    manager.open_all()
    try:
        append(manager, "gone", 0)
        append(manager, "gone", 1)
        append(manager, "kept", 0)
        assert manager.delete_topic("gone") == 2
        assert not (tmp_path / "gone-0").exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith("gone")]
        assert manager.get_log("gone", 0) is None
        assert manager.get_log("kept", 0) is not None
    finally:
        manager.close()


def test_delete_records_and_retention_persist_log_start(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=2 * len(make_batch(1)), retention_ms=1000)
    manager = LogManager(tmp_path, config)
    manager.open_all()
    for _ in range(4):
        append(manager, "t", 0)
    assert manager.delete_records("t", 0, 1) == 1
    assert read_offset_checkpoint(tmp_path / LOG_START_OFFSET_CHECKPOINT_FILE) == {("t", 0): 1}
    log = manager.get_log("t", 0)
    assert log is not None
    log.delete_records_before(2)  # as the broker does: straight on the log
    assert [s.base_offset for s in log.segments] == [2]  # [0,2) went at once
    assert manager.retention_pass(NOW_MS) == 0
    assert read_offset_checkpoint(tmp_path / LOG_START_OFFSET_CHECKPOINT_FILE) == {("t", 0): 2}
    assert manager.retention_pass(NOW_MS + 10_000) == 1  # the rest expired: rolled, deleted
    assert log.log_start_offset == 4
    manager.close()
    again = LogManager(tmp_path, config)
    again.open_all()
    try:
        reopened = again.get_log("t", 0)
        assert reopened is not None
        assert reopened.log_start_offset == reopened.log_end_offset == 4
    finally:
        again.close()


def test_flush_all_advances_recovery_points(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, LogConfig())
    manager.open_all()
    try:
        append(manager, "t", 0, 5)
        assert manager.get_log("t", 0).recovery_point == 0  # type: ignore[union-attr]
        manager.flush_all()
        assert read_offset_checkpoint(tmp_path / RECOVERY_POINT_CHECKPOINT_FILE) == {("t", 0): 5}
    finally:
        manager.close()


def test_the_data_directory_is_locked(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, LogConfig())
    manager.open_all()
    other = LogManager(tmp_path, LogConfig())
    with pytest.raises(LogStorageError):
        other.open_all()
    manager.close()
    other.open_all()
    other.close()


def test_logs_need_open_all(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        LogManager(tmp_path, LogConfig()).get_or_create_log("t", 0)


def test_checkpoint_format(tmp_path: Path) -> None:
    path = tmp_path / "cp"
    write_offset_checkpoint(path, {("a", 0): 5, ("b-c", 12): 0})
    assert path.read_text() == "0\n2\na 0 5\nb-c 12 0\n"
    assert read_offset_checkpoint(path) == {("a", 0): 5, ("b-c", 12): 0}
    assert read_offset_checkpoint(tmp_path / "missing") == {}


def test_unreadable_checkpoint_falls_back_to_full_recovery(tmp_path: Path) -> None:
    manager = LogManager(tmp_path, LogConfig())
    manager.open_all()
    append(manager, "t", 0, 2)
    manager.close()
    (tmp_path / RECOVERY_POINT_CHECKPOINT_FILE).write_text("garbage")
    (tmp_path / CLEAN_SHUTDOWN_FILE).unlink()
    again = LogManager(tmp_path, LogConfig())
    again.open_all()
    try:
        assert again.get_log("t", 0).log_end_offset == 2  # type: ignore[union-attr]
    finally:
        again.close()
