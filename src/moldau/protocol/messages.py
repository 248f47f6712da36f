"""Version-agnostic construction of kio messages.

Each Kafka API version is a distinct kio dataclass with its own set of fields. Handlers want to
write one body of code for all versions, so ``make(cls, **fields)`` keeps only the fields that
``cls`` has, and converts the plain values handlers use into kio's field types: ints for error
codes become ``ErrorCode``, ints for millisecond durations become ``timedelta`` and epoch
milliseconds become ``datetime`` (Kafka's -1 "none": None where the field is nullable, else a
datetime that encodes as -1).
"""

from __future__ import annotations

import dataclasses
import datetime
from functools import cache
from typing import Any

from kio.schema.errors import ErrorCode

_TIMEDELTA_TYPES = ("timedelta_i32", "timedelta_i64")
_DATETIME_TYPES = ("datetime_i64",)


_NO_TIMESTAMP = datetime.datetime.fromtimestamp(-0.001, tz=datetime.UTC)
"""Kafka's -1 ("no timestamp") for a timestamp field that is not nullable: kio's type is a
datetime, and this one encodes as exactly -1."""


@cache
def _field_kinds(cls: type) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        kind = str(f.metadata.get("kafka_type", ""))
        if kind in _DATETIME_TYPES and "None" in str(f.type):
            kind += "?"  # nullable: -1 becomes None
        kinds[f.name] = kind
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
        elif kind.rstrip("?") in _DATETIME_TYPES and isinstance(value, int):
            if value >= 0:
                value = datetime.datetime.fromtimestamp(value / 1000, tz=datetime.UTC)
            else:
                value = None if kind.endswith("?") else _NO_TIMESTAMP
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
