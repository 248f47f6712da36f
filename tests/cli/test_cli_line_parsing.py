"""Input lines into records (Kafka's LineMessageReader rules) and shared small parsers."""

from __future__ import annotations

import io
import re

import pytest

from moldau.cli.common import CliError, parse_bootstrap, parse_key_value, unescape
from moldau.cli.kafka_console_tools import line_format, sending_error
from moldau.cli.produce import Delivery, LineFormat, OutgoingRecord, parse_line, read_lines


def test_plain_line_is_the_value() -> None:
    assert parse_line(b"a:b", 1, LineFormat()) == OutgoingRecord(None, b"a:b")


def test_key_cut_at_first_separator() -> None:
    fmt = LineFormat(parse_key=True, key_separator=b":")
    assert parse_line(b"k:v:w", 1, fmt) == OutgoingRecord(b"k", b"v:w")
    assert parse_line(b":v", 1, fmt) == OutgoingRecord(b"", b"v")


def test_missing_key_separator_is_an_error_naming_the_line() -> None:
    fmt = LineFormat(parse_key=True, key_separator=b":")
    with pytest.raises(CliError, match="No key separator found on line number 7: 'novalue'"):
        parse_line(b"novalue", 7, fmt)


def test_ignore_error_makes_the_whole_line_the_value() -> None:
    fmt = LineFormat(parse_key=True, key_separator=b":", ignore_error=True)
    assert parse_line(b"novalue", 1, fmt) == OutgoingRecord(None, b"novalue")


def test_headers_then_key_then_value() -> None:
    fmt = line_format({"parse.headers": "true", "parse.key": "true", "key.separator": "|"})
    record = parse_line(b"h1:v1,h2:v2\tkey|value", 1, fmt)
    assert record == OutgoingRecord(b"key", b"value", (("h1", b"v1"), ("h2", b"v2")))


def test_header_without_key_separator_is_an_error() -> None:
    fmt = LineFormat(parse_headers=True)
    with pytest.raises(CliError, match="No header key separator found in pair 'bad'"):
        parse_line(b"bad\tvalue", 3, fmt)


def test_null_marker_nulls_key_value_and_header_value() -> None:
    fmt = line_format(
        {"parse.key": "true", "parse.headers": "true", "null.marker": "NULL", "key.separator": "="}
    )
    assert parse_line(b"h:NULL\tNULL=NULL", 1, fmt) == OutgoingRecord(None, None, (("h", None),))


def test_equal_separators_are_rejected() -> None:
    with pytest.raises(CliError, match=re.escape("headers.delimiter and headers.separator")):
        LineFormat(headers_delimiter=b",", headers_separator=b",").validate()
    with pytest.raises(CliError, match=re.escape("null.marker and key.separator")):
        LineFormat(null_marker=b"\t").validate()


def test_read_lines_strips_line_endings_only() -> None:
    stream = io.TextIOWrapper(io.BytesIO(b"a\r\n\nb \n  c"))
    assert list(read_lines(stream)) == [b"a", b"", b"b ", b"  c"]


def test_sending_error_is_kafkas_sentence() -> None:
    failure = Delivery("t", -1, -1, None, None, 5, "Broker: Message size too large")
    assert sending_error(failure) == (
        "Error when sending message to topic t with key: null, value: 5 bytes with error: "
        "Broker: Message size too large"
    )


def test_unescape() -> None:
    assert unescape(r"a\tb\nc\\d\q") == "a\tb\nc\\d\\q"


def test_parse_key_value() -> None:
    assert parse_key_value(" retention.ms = 1000 ") == ("retention.ms", "1000")
    assert parse_key_value("a=b=c") == ("a", "b=c")
    with pytest.raises(CliError):
        parse_key_value("novalue")


def test_parse_bootstrap() -> None:
    assert parse_bootstrap("h1:1, [::1]:2,PLAINTEXT://h3:3") == [("h1", 1), ("::1", 2), ("h3", 3)]
    for bad in ("localhost", "h:notaport", "h:0", ":9092"):
        with pytest.raises(CliError):
            parse_bootstrap(bad)
