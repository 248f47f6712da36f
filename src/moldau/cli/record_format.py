"""How consumed records are printed: kcat-style templates, JSON lines, Kafka's formatter.

Records are written as *bytes*: keys and values are whatever producers sent, and a consumer
piped into another program must pass them through unchanged, so only the text we add is
encoded (UTF-8). JSON is the exception — it is text by definition — and shows bytes that
are not UTF-8 as ``\\xNN`` escapes.

Three writers share one interface, :class:`RecordWriter`:

* :class:`TemplateWriter` — kcat's ``-f`` placeholders (``%k %v %p %o %T %t %h``…).
* :class:`JsonWriter` — one JSON object per record.
* :class:`KafkaFormatWriter` — Kafka's ``DefaultMessageFormatter`` (``print.key``,
  ``key.separator``, ``print.timestamp``…), used by ``kafka-console-consumer``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from moldau.cli.common import CliError, decode_text, unescape


@dataclass(frozen=True)
class ConsumedRecord:
    """One record as read; ``timestamp_type`` is ``CreateTime``, ``LogAppendTime`` or None."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    timestamp_type: str | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


class RecordWriter(Protocol):
    def write(self, record: ConsumedRecord) -> None: ...


def write_stdout(data: bytes) -> None:
    """Bytes to stdout, after anything already printed as text, and visible at once."""
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        sys.stdout.write(data.decode("utf-8", errors="backslashreplace"))
        sys.stdout.flush()
        return
    buffer.write(data)
    buffer.flush()


def _headers_text(record: ConsumedRecord) -> bytes:
    return b",".join(
        k.encode("utf-8") + b"=" + (v if v is not None else b"") for k, v in record.headers
    )


def _size(data: bytes | None) -> bytes:
    return str(-1 if data is None else len(data)).encode()


_PLACEHOLDERS: dict[str, Callable[[ConsumedRecord], bytes]] = {
    "t": lambda r: r.topic.encode("utf-8"),
    "p": lambda r: str(r.partition).encode(),
    "o": lambda r: str(r.offset).encode(),
    "k": lambda r: r.key or b"",
    "K": lambda r: _size(r.key),
    "v": lambda r: r.value or b"",
    "s": lambda r: r.value or b"",
    "S": lambda r: _size(r.value),
    "T": lambda r: str(r.timestamp_ms if r.timestamp_ms is not None else -1).encode(),
    "h": _headers_text,
}


class TemplateWriter:
    """kcat-style template: ``%t %p %o %k %K %v/%s %S %T %h %%`` and ``\\t \\n`` escapes.

    A null key or value prints as nothing (its size, ``%K``/``%S``, prints as -1). Each
    record ends with a newline unless the template already ends with one, so a template
    without ``\\n`` still gives one line per record.
    """

    def __init__(self, template: str) -> None:
        text = unescape(template)
        self._parts: list[bytes | Callable[[ConsumedRecord], bytes]] = []
        literal = ""
        i = 0
        while i < len(text):
            ch = text[i]
            if ch != "%":
                literal += ch
                i += 1
                continue
            if i + 1 >= len(text):
                raise CliError("format ends with a lone '%' (write %% for a percent sign)", 2)
            code = text[i + 1]
            i += 2
            if code == "%":
                literal += "%"
                continue
            if code not in _PLACEHOLDERS:
                known = " ".join(f"%{c}" for c in _PLACEHOLDERS)
                raise CliError(f"unknown placeholder %{code} in format (known: {known} %%)", 2)
            if literal:
                self._parts.append(literal.encode("utf-8"))
                literal = ""
            self._parts.append(_PLACEHOLDERS[code])
        if not literal.endswith("\n"):
            literal += "\n"
        self._parts.append(literal.encode("utf-8"))

    def render(self, record: ConsumedRecord) -> bytes:
        return b"".join(p if isinstance(p, bytes) else p(record) for p in self._parts)

    def write(self, record: ConsumedRecord) -> None:
        write_stdout(self.render(record))


def record_document(record: ConsumedRecord) -> dict[str, object]:
    """The JSON shape of a record; headers are ``[name, value]`` pairs (names may repeat)."""
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp_ms,
        "timestamp_type": record.timestamp_type,
        "key": decode_text(record.key),
        "value": decode_text(record.value),
        "headers": [[k, decode_text(v)] for k, v in record.headers],
    }


class JsonWriter:
    """One compact JSON object per line (see :func:`record_document`)."""

    def render(self, record: ConsumedRecord) -> bytes:
        text = json.dumps(record_document(record), separators=(",", ":"), ensure_ascii=False)
        return (text + "\n").encode("utf-8")

    def write(self, record: ConsumedRecord) -> None:
        write_stdout(self.render(record))


def writer_for(spec: str) -> RecordWriter:
    """``text`` (value per line), ``json``, or a kcat template."""
    if spec == "json":
        return JsonWriter()
    if spec == "text":
        return TemplateWriter("%v")
    return TemplateWriter(spec)


def _flag(properties: Mapping[str, str], name: str, default: bool) -> bool:
    value = properties.get(name)
    return default if value is None else value.strip().lower() == "true"


class KafkaFormatWriter:
    """Kafka's ``DefaultMessageFormatter``, configured by ``--property`` values.

    Fields, each optional, in Kafka's order: ``CreateTime:<ms>`` (``print.timestamp``),
    ``Partition:<n>``, ``Offset:<n>``, headers as ``k:v`` joined by ``headers.separator``
    (``NO_HEADERS`` when there are none), key, value; joined by ``key.separator`` (tab) and
    ended by ``line.separator`` (newline). Nulls print as ``null.literal`` (``null``).
    """

    def __init__(self, properties: Mapping[str, str]) -> None:
        self.print_timestamp = _flag(properties, "print.timestamp", False)
        self.print_partition = _flag(properties, "print.partition", False)
        self.print_offset = _flag(properties, "print.offset", False)
        self.print_headers = _flag(properties, "print.headers", False)
        self.print_key = _flag(properties, "print.key", False)
        self.print_value = _flag(properties, "print.value", True)
        self.key_separator = properties.get("key.separator", "\t").encode("utf-8")
        self.line_separator = properties.get("line.separator", "\n").encode("utf-8")
        self.headers_separator = properties.get("headers.separator", ",").encode("utf-8")
        self.null_literal = properties.get("null.literal", "null").encode("utf-8")

    def render(self, record: ConsumedRecord) -> bytes:
        fields: list[bytes] = []
        if self.print_timestamp:
            if record.timestamp_type is None:
                fields.append(b"NO_TIMESTAMP")
            else:
                fields.append(f"{record.timestamp_type}:{record.timestamp_ms}".encode())
        if self.print_partition:
            fields.append(f"Partition:{record.partition}".encode())
        if self.print_offset:
            fields.append(f"Offset:{record.offset}".encode())
        if self.print_headers:
            fields.append(
                self.headers_separator.join(
                    k.encode("utf-8") + b":" + (v if v is not None else self.null_literal)
                    for k, v in record.headers
                )
                or b"NO_HEADERS"
            )
        if self.print_key:
            fields.append(record.key if record.key is not None else self.null_literal)
        if self.print_value:
            fields.append(record.value if record.value is not None else self.null_literal)
        if not fields:
            return b""
        return self.key_separator.join(fields) + self.line_separator

    def write(self, record: ConsumedRecord) -> None:
        write_stdout(self.render(record))
