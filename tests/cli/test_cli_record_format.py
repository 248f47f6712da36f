"""Printing consumed records: kcat templates, JSON lines, Kafka's DefaultMessageFormatter."""

from __future__ import annotations

import json

import pytest

from moldau.cli.common import CliError
from moldau.cli.record_format import (
    ConsumedRecord,
    JsonWriter,
    KafkaFormatWriter,
    TemplateWriter,
    writer_for,
)

RECORD = ConsumedRecord(
    topic="orders",
    partition=2,
    offset=41,
    timestamp_ms=1_700_000_000_123,
    timestamp_type="CreateTime",
    key=b"k1",
    value=b"hello world",
    headers=(("source", b"web"), ("trace", None)),
)
NULLS = ConsumedRecord("t", 0, 0, None, None, None, None)


def test_template_placeholders_and_escapes() -> None:
    writer = TemplateWriter(r"%t|%p|%o|%k|%v|%T|%h|%K|%S|%%\t%s")
    assert writer.render(RECORD) == (
        b"orders|2|41|k1|hello world|1700000000123|source=web,trace=|2|11|%\thello world\n"
    )


def test_template_adds_newline_only_when_missing() -> None:
    assert TemplateWriter("%v").render(RECORD) == b"hello world\n"
    assert TemplateWriter(r"%v\n").render(RECORD) == b"hello world\n"


def test_template_nulls_print_empty_with_size_minus_one() -> None:
    assert TemplateWriter("[%k][%v] %K %S %T").render(NULLS) == b"[][] -1 -1 -1\n"


@pytest.mark.parametrize("template", ["%x", "value %"])
def test_template_rejects_unknown_placeholders(template: str) -> None:
    with pytest.raises(CliError) as info:
        TemplateWriter(template)
    assert info.value.exit_code == 2


def test_template_keeps_binary_values_unchanged() -> None:
    record = ConsumedRecord("t", 0, 0, None, None, b"\xff\x00", b"\x80\x81")
    assert TemplateWriter("%k:%v").render(record) == b"\xff\x00:\x80\x81\n"


def test_json_document() -> None:
    line = JsonWriter().render(RECORD)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "topic": "orders",
        "partition": 2,
        "offset": 41,
        "timestamp": 1_700_000_000_123,
        "timestamp_type": "CreateTime",
        "key": "k1",
        "value": "hello world",
        "headers": [["source", "web"], ["trace", None]],
    }


def test_json_nulls_and_undecodable_bytes() -> None:
    doc = json.loads(JsonWriter().render(NULLS))
    assert doc["key"] is None and doc["value"] is None and doc["timestamp"] is None
    binary = ConsumedRecord("t", 0, 0, None, None, None, b"a\xffb")
    assert json.loads(JsonWriter().render(binary))["value"] == "a\\xffb"


def test_writer_for_names() -> None:
    assert isinstance(writer_for("json"), JsonWriter)
    text = writer_for("text")
    assert isinstance(text, TemplateWriter) and text.render(RECORD) == b"hello world\n"


def test_kafka_formatter_default_prints_value_only() -> None:
    assert KafkaFormatWriter({}).render(RECORD) == b"hello world\n"


def test_kafka_formatter_all_fields_in_kafkas_order() -> None:
    props = {
        "print.timestamp": "true",
        "print.partition": "true",
        "print.offset": "true",
        "print.headers": "true",
        "print.key": "true",
        "key.separator": ":",
    }
    assert KafkaFormatWriter(props).render(RECORD) == (
        b"CreateTime:1700000000123:Partition:2:Offset:41:source:web,trace:null:k1:hello world\n"
    )


def test_kafka_formatter_nulls_and_no_headers() -> None:
    props = {"print.key": "true", "print.headers": "true", "print.timestamp": "true"}
    assert KafkaFormatWriter(props).render(NULLS) == b"NO_TIMESTAMP\tNO_HEADERS\tnull\tnull\n"
    props["null.literal"] = "<nil>"
    props["print.value"] = "false"
    assert KafkaFormatWriter(props).render(NULLS) == b"NO_TIMESTAMP\tNO_HEADERS\t<nil>\n"
