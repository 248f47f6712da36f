"""The log manager: every partition log of one broker's data directory.

Layout of the data directory (Kafka's)::

    <data_dir>/
      .lock                              flock'ed while a broker owns the directory
      .kafka_cleanshutdown               present only after a clean shutdown
      recovery-point-offset-checkpoint   per partition: offsets below are fsynced
      log-start-offset-checkpoint        per partition: the log start offset
      orders-0/ orders-1/ …              one PartitionLog each

On :meth:`open_all` the manager takes the lock, reads the checkpoints, and opens every
partition directory. If the clean-shutdown marker is missing, each log recovers the segments
at or past its recovery point. The marker is then removed: from here on a crash is unclean.
:meth:`close` flushes and closes every log, writes both checkpoints and finally the marker.

Topic configs belong to the broker's metadata, not to the logs: the caller passes them in
(``open_all(configs)``, ``get_or_create_log(…, config)``, ``update_topic_config``); topics
without one use the default config.

Blocking calls: ``open_all``, ``flush_all``, ``close``, the checkpoint writers and
``delete_records`` (which persists the new log start offset) fsync; the broker runs them at
startup/shutdown or on a worker thread. ``get_log`` and ``get_or_create_log`` for an
existing log are dictionary lookups.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

from moldau.log.checkpoint import (
    CheckpointError,
    TopicPartition,
    read_offset_checkpoint,
    write_offset_checkpoint,
)
from moldau.log.config import LogConfig
from moldau.log.errors import LogStorageError
from moldau.log.fsutil import fsync_directory
from moldau.log.layout import DELETE_DIR_SUFFIX, log_dir_name, parse_log_dir_name
from moldau.log.log import PartitionLog
from moldau.log.producer_state import DEFAULT_PRODUCER_ID_EXPIRATION_MS

CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
RECOVERY_POINT_CHECKPOINT_FILE = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT_FILE = "log-start-offset-checkpoint"
LOCK_FILE = ".lock"


class LogManager:
    """Owns the partition logs of one data directory; see the module docstring."""

    def __init__(
        self,
        data_dir: Path,
        default_config: LogConfig,
        *,
        producer_id_expiration_ms: int = DEFAULT_PRODUCER_ID_EXPIRATION_MS,
    ) -> None:
        self.data_dir = data_dir
        self.default_config = default_config
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self._logs: dict[TopicPartition, PartitionLog] = {}
        self._topic_configs: dict[str, LogConfig] = {}
        self._lock_fd = -1
        self._checkpointed_log_starts: dict[TopicPartition, int] = {}
        self._opened = False
        self.had_clean_shutdown = False
        """Whether the marker was present on open, i.e. no recovery was needed."""

    # --- startup --------------------------------------------------------------------------

    def open_all(
        self, configs: Mapping[str, LogConfig] | None = None, *, now_ms: int | None = None
    ) -> None:
        """Lock the directory and load every partition log found in it."""
        if self._opened:
            raise RuntimeError("log manager already opened")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        if configs:
            self._topic_configs.update(configs)
        marker = self.data_dir / CLEAN_SHUTDOWN_FILE
        clean = marker.exists()
        self.had_clean_shutdown = clean
        recovery_points = self._read_checkpoint(RECOVERY_POINT_CHECKPOINT_FILE)
        log_starts = self._read_checkpoint(LOG_START_OFFSET_CHECKPOINT_FILE)
        self._checkpointed_log_starts = dict(log_starts)
        for path in sorted(self.data_dir.iterdir()):
            if not path.is_dir():
                continue
            if path.name.endswith(DELETE_DIR_SUFFIX):
                shutil.rmtree(path, ignore_errors=True)
                continue
            try:
                topic, partition = parse_log_dir_name(path.name)
            except ValueError:
                continue
            key = (topic, partition)
            self._logs[key] = PartitionLog.open(
                path,
                self.config_for(topic),
                recover=not clean,
                log_start_offset=log_starts.get(key),
                recovery_point=recovery_points.get(key, 0),
                now_ms=now_ms,
                producer_id_expiration_ms=self.producer_id_expiration_ms,
            )
        marker.unlink(missing_ok=True)
        fsync_directory(self.data_dir)
        self._opened = True

    def _lock(self) -> None:
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise LogStorageError(
                f"data directory {self.data_dir} is in use by another process"
            ) from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        fd, self._lock_fd = self._lock_fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _read_checkpoint(self, name: str) -> dict[TopicPartition, int]:
        try:
            return read_offset_checkpoint(self.data_dir / name)
        except CheckpointError:
            return {}

    # --- lookup and creation --------------------------------------------------------------

    def config_for(self, topic: str) -> LogConfig:
        return self._topic_configs.get(topic, self.default_config)

    def get_log(self, topic: str, partition: int) -> PartitionLog | None:
        return self._logs.get((topic, partition))

    def get_or_create_log(
        self, topic: str, partition: int, config: LogConfig | None = None
    ) -> PartitionLog:
        """The log of ``topic``-``partition``, created empty if absent. A ``config`` given
        here becomes the topic's config (and is applied to its existing logs)."""
        if config is not None and self._topic_configs.get(topic) != config:
            self.update_topic_config(topic, config)
        key = (topic, partition)
        log = self._logs.get(key)
        if log is None:
            if not self._opened:
                raise RuntimeError("open_all() must run before logs are created")
            log = PartitionLog.open(
                self.data_dir / log_dir_name(topic, partition),
                self.config_for(topic),
                recover=False,
                producer_id_expiration_ms=self.producer_id_expiration_ms,
            )
            self._logs[key] = log
        return log

    def logs(self) -> Iterator[PartitionLog]:
        return iter(list(self._logs.values()))

    def all_logs(self) -> list[PartitionLog]:
        return list(self._logs.values())

    def topic_logs(self, topic: str) -> list[PartitionLog]:
        return [log for (t, _), log in self._logs.items() if t == topic]

    def __len__(self) -> int:
        return len(self._logs)

    # --- changes --------------------------------------------------------------------------

    def update_topic_config(self, topic: str, config: LogConfig) -> None:
        self._topic_configs[topic] = config
        for log in self.topic_logs(topic):
            log.update_config(config)

    def delete_log(self, topic: str, partition: int) -> bool:
        log = self._logs.pop((topic, partition), None)
        if log is None:
            return False
        log.delete()
        return True

    def delete_topic(self, topic: str) -> int:
        """Delete every partition log of ``topic``; return how many there were."""
        partitions = [p for (t, p) in self._logs if t == topic]
        for partition in partitions:
            self.delete_log(topic, partition)
        self._topic_configs.pop(topic, None)
        return len(partitions)

    def delete_records(self, topic: str, partition: int, offset: int) -> int:
        """DeleteRecords for one partition: move its log start offset and persist it.
        Returns the new low watermark. Raises OffsetOutOfRangeError past the high watermark,
        KeyError for an unknown partition."""
        log = self._logs[(topic, partition)]
        before = log.log_start_offset
        low_watermark = log.delete_records_before(offset)
        if low_watermark != before:
            self.checkpoint_log_start_offsets()
        return low_watermark

    def retention_pass(self, now_ms: int) -> int:
        """Apply retention to every log and expire idle producer ids, then checkpoint the
        recovery points and (if any moved, by retention or DeleteRecords) the log start
        offsets. Returns the number of segments deleted. Blocking: run it on a worker
        thread (the logs lock themselves against concurrent appends)."""
        deleted = 0
        for log in self.logs():
            if log.closed:
                continue
            deleted += log.delete_retention_segments(now_ms)
            log.expire_producers(now_ms)
        if self._log_start_offsets() != self._checkpointed_log_starts:
            self.checkpoint_log_start_offsets()
        self.checkpoint_recovery_points()
        return deleted

    # --- durability and shutdown ----------------------------------------------------------

    def flush_all(self) -> None:
        """fsync every log, then checkpoint the recovery points. Blocking."""
        for log in self.logs():
            log.flush()
        self.checkpoint_recovery_points()

    def checkpoint_recovery_points(self) -> None:
        """Persist every log's recovery point (what the next unclean start recovers from)."""
        logs = dict(self._logs)  # a copy: the event loop may add logs meanwhile
        write_offset_checkpoint(
            self.data_dir / RECOVERY_POINT_CHECKPOINT_FILE,
            {key: log.recovery_point for key, log in logs.items()},
        )

    def _log_start_offsets(self) -> dict[TopicPartition, int]:
        logs = dict(self._logs)
        return {key: log.log_start_offset for key, log in logs.items()}

    def checkpoint_log_start_offsets(self) -> None:
        """Persist every log's log start offset (DeleteRecords, retention)."""
        offsets = self._log_start_offsets()
        write_offset_checkpoint(self.data_dir / LOG_START_OFFSET_CHECKPOINT_FILE, offsets)
        self._checkpointed_log_starts = offsets

    def close(self) -> None:
        """Clean shutdown: close every log (flushing it), write the checkpoints, then the
        clean-shutdown marker, and release the directory lock."""
        if not self._opened:
            self._unlock()
            return
        for log in self.logs():
            log.close()
        self.checkpoint_recovery_points()
        self.checkpoint_log_start_offsets()
        marker = self.data_dir / CLEAN_SHUTDOWN_FILE
        with open(marker, "wb") as f:
            f.flush()
            os.fsync(f.fileno())
        fsync_directory(self.data_dir)
        self._logs.clear()
        self._opened = False
        self._unlock()
