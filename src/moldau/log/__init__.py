"""Storage: one broker's partition logs on disk, in Kafka's own layout (DESIGN §4).

Entry points: :class:`LogManager` (a data directory), :class:`PartitionLog` (one partition),
:class:`GroupCommitFlusher` (durability for acks=all), :class:`LogCleanerManager`
(compaction). Everything else is their machinery.
"""

from moldau.log.cleaner_manager import CleanerStatus, LogCleanerManager
from moldau.log.config import LogConfig
from moldau.log.errors import (
    LogAppendError,
    LogError,
    LogStorageError,
    OffsetOutOfRangeError,
)
from moldau.log.flusher import GroupCommitFlusher
from moldau.log.log import AppendInfo, PartitionLog
from moldau.log.manager import LogManager
from moldau.log.origin import AppendOrigin
from moldau.log.slices import FetchDataInfo, FileSlice
from moldau.log.txn_index import AbortedTxn

__all__ = [
    "AbortedTxn",
    "AppendInfo",
    "AppendOrigin",
    "CleanerStatus",
    "FetchDataInfo",
    "FileSlice",
    "GroupCommitFlusher",
    "LogAppendError",
    "LogCleanerManager",
    "LogConfig",
    "LogError",
    "LogManager",
    "LogStorageError",
    "OffsetOutOfRangeError",
    "PartitionLog",
]
