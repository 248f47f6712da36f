"""Java ``.properties`` files, the format of Kafka's ``server.properties``.

Parsed by the rules of ``java.util.Properties.load`` so that any file Kafka accepts reads the
same here, line continuations and escapes included; the one deliberate difference is that
values are trimmed at both ends, because Kafka trims every config value it parses anyway.
Line numbers are kept so configuration errors can point at the line that caused them.
"""

from __future__ import annotations

import re
from pathlib import Path

from moldau.log.config import ConfigError

_BLANKS = " \t\f"
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str) -> str:
    """Resolve Java properties escapes: ``\\t \\n \\r \\f``, ``\\uXXXX``, ``\\x`` → ``x``."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        i += 1
        if char != "\\":
            out.append(char)
            continue
        if i == len(text):
            break  # a lone trailing backslash means nothing
        char = text[i]
        i += 1
        if char == "u":
            digits = text[i : i + 4]
            if len(digits) < 4 or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise ValueError("Malformed \\uxxxx encoding")
            out.append(chr(int(digits, 16)))
            i += 4
        else:
            out.append(_ESCAPES.get(char, char))
    return "".join(out)


def _split_entry(line: str) -> tuple[str, str]:
    """Split a logical line at the first unescaped ``=``, ``:`` or blank, as Java does."""
    end = 0
    while end < len(line):
        char = line[end]
        if char == "\\":
            end += 2
            continue
        if char in "=:" or char in _BLANKS:
            break
        end += 1
    key, rest = line[:end], line[end:].lstrip(_BLANKS)
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(_BLANKS)
    return _unescape(key), _unescape(rest).strip()


def _continues(line: str) -> bool:
    """An odd number of trailing backslashes escapes the line break."""
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def parse_properties(text: str, origin: str = "<properties>") -> list[tuple[str, str, int]]:
    """Parse Java properties text into ``(key, value, line_number)`` in file order.

    The rules are ``java.util.Properties.load``'s: ``#``/``!`` comment lines, blank lines,
    ``key=value``, ``key: value`` or ``key value``, a backslash before the line break joins
    the next line (its leading blanks dropped), backslash escapes. Values are trimmed, as
    Kafka trims every config value. Later duplicates win when the caller builds a dict.
    """
    lines = re.split(r"\r\n|\r|\n", text)
    entries: list[tuple[str, str, int]] = []
    index = 0
    while index < len(lines):
        line_number = index + 1
        logical = lines[index].lstrip(_BLANKS)
        index += 1
        if not logical or logical[0] in "#!":
            continue
        while _continues(logical):
            logical = logical[:-1]
            if index == len(lines):
                break
            logical += lines[index].lstrip(_BLANKS)
            index += 1
        try:
            key, value = _split_entry(logical)
        except ValueError as exc:
            raise ConfigError(f"{exc} in {origin}:{line_number}") from None
        entries.append((key, value, line_number))
    return entries


def read_properties(path: Path) -> list[tuple[str, str, int]]:
    """Read a properties file (UTF-8, falling back to Java's ISO-8859-1) with line numbers."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return parse_properties(text, str(path))
