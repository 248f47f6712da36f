"""The one exception type handlers raise to answer with a Kafka error code."""

from __future__ import annotations

from kio.schema.errors import ErrorCode


class ApiError(Exception):
    """A request (or one topic/partition of it) fails with ``error_code`` and ``message``."""

    def __init__(self, error_code: ErrorCode | int, message: str | None = None) -> None:
        self.error_code = ErrorCode(error_code)
        self.message = message
        super().__init__(message or self.error_code.name)
