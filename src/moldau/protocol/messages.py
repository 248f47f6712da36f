"""Version-agnostic construction of kio messages.

Each Kafka API version is a distinct kio dataclass with its own set of fields. Handlers want to
write one body of code for all versions, so ``make(cls, **fields)`` keeps only the fields that
``cls`` has, and converts the plain values handlers use into kio's field types: ints for error
codes become ``ErrorCode`` and ints for millisecond durations become ``timedelta``.
"""

from __future__ import annotations

import dataclasses
import datetime
from functools import cache
from typing import Any

from kio.schema.errors import ErrorCode

_TIMEDELTA_TYPES = ("timedelta_i32", "timedelta_i64")
_DATETIME_TYPES = ("datetime_i64",)


@cache
def _field_kinds(cls: type) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        kinds[f.name] = str(f.metadata.get("kafka_type", ""))
    return kinds


def make(cls: type, **values: Any) -> Any:
    """Instantiate kio dataclass ``cls`` from ``values``, ignoring fields it lacks."""
    kinds = _field_kinds(cls)
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        kind = kinds.get(name)
        if kind is None:
            continue
        if kind == "error_code" and not isinstance(value, ErrorCode):
            value = ErrorCode(value)
        elif kind in _TIMEDELTA_TYPES and isinstance(value, int):
            value = datetime.timedelta(milliseconds=value)
        elif kind in _DATETIME_TYPES and isinstance(value, int):
            value = (
                None
                if value < 0
                else datetime.datetime.fromtimestamp(value / 1000, tz=datetime.UTC)
            )
        kwargs[name] = value
    return cls(**kwargs)


def has_field(cls: type, name: str) -> bool:
    return name in _field_kinds(cls)


def millis(value: datetime.timedelta | int) -> int:
    """A kio duration field as integer milliseconds."""
    if isinstance(value, datetime.timedelta):
        return int(value / datetime.timedelta(milliseconds=1))
    return int(value)


def epoch_millis(value: datetime.datetime | int | None) -> int:
    """A kio timestamp field as epoch milliseconds (-1 for None)."""
    if value is None:
        return -1
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    return int(value)
