"""Errors the storage layer raises, each carrying the Kafka error code the broker answers with.

The log knows nothing of requests, but almost every way an append or a read can fail maps to
exactly one Kafka error code, so the exceptions carry it: a handler turns ``exc.error_code``
into the partition's response without a lookup table of its own. Codes come from kio's
``ErrorCode`` so the numbers are Kafka's, not ours.
"""

from __future__ import annotations

from kio.schema.errors import ErrorCode


class LogError(Exception):
    """Base of every storage-layer error; ``error_code`` is what goes on the wire."""

    error_code: int = int(ErrorCode.unknown_server_error)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class LogAppendError(LogError):
    """An append was refused: invalid batch, fenced producer, out-of-order sequence…

    Nothing was written when this is raised; the caller reports ``error_code`` for the
    partition and the log is unchanged.
    """

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = int(error_code)

    def __repr__(self) -> str:
        return f"LogAppendError({ErrorCode(self.error_code).name}, {self.message!r})"


class OffsetOutOfRangeError(LogError):
    """A fetch, a DeleteRecords or a truncation named an offset outside the log's range."""

    error_code = int(ErrorCode.offset_out_of_range)


class LogStorageError(LogError):
    """The disk failed us (I/O error, log directory gone); Kafka's KAFKA_STORAGE_ERROR."""

    error_code = int(ErrorCode.kafka_storage_error)


class CorruptIndexError(LogError):
    """An index file failed its sanity check; the segment rebuilds it from the log file."""
