"""``moldau produce`` then ``moldau consume`` against a real broker: every field survives."""

from __future__ import annotations

import json

from cli_helpers import Runner

from moldau.testing import BrokerProcess

LINES = "k1:first value\nk2:second:with colon\nk3:\n"


def _produce(moldau: Runner, broker: BrokerProcess, topic: str, *extra: str, stdin: str = LINES):
    return moldau(
        "produce",
        topic,
        "--key-separator",
        ":",
        "-p",
        "0",
        "-H",
        "source=cli",
        "-H",
        "n=1",
        "-b",
        broker.bootstrap,
        *extra,
        stdin=stdin,
    )


def test_produce_then_consume_json(moldau: Runner, broker: BrokerProcess, topic_name: str) -> None:
    b = ("-b", broker.bootstrap)
    assert moldau("topic", "create", topic_name, "-p", "2", *b).code == 0
    produced = _produce(moldau, broker, topic_name)
    assert produced.code == 0, produced.err
    assert produced.out.strip() == f"Produced 3 records to topic {topic_name}."

    consumed = moldau("consume", topic_name, "--from-beginning", "-e", "-f", "json", *b)
    assert consumed.code == 0, consumed.err
    records = [json.loads(line) for line in consumed.out.splitlines()]
    assert [(r["key"], r["value"]) for r in records] == [
        ("k1", "first value"),
        ("k2", "second:with colon"),
        ("k3", ""),
    ]
    assert [r["offset"] for r in records] == [0, 1, 2]
    for r in records:
        assert r["topic"] == topic_name and r["partition"] == 0
        assert r["headers"] == [["source", "cli"], ["n", "1"]]
        assert r["timestamp_type"] == "CreateTime" and r["timestamp"] > 0

    described = json.loads(moldau("topic", "describe", topic_name, "-f", "json", *b).out)
    assert [p["high_watermark"] for p in described["partitions"]] == [3, 0]


def test_consume_template_partition_offset_and_max(
    moldau: Runner, broker: BrokerProcess, topic_name: str
) -> None:
    b = ("-b", broker.bootstrap)
    assert moldau("topic", "create", topic_name, "-p", "1", *b).code == 0
    assert _produce(moldau, broker, topic_name).code == 0
    result = moldau(
        "consume",
        topic_name,
        "-p",
        "0",
        "--offset",
        "1",
        "-n",
        "1",
        "-f",
        r"%t %p %o %k=%v [%h]",
        *b,
    )
    assert result.code == 0, result.err
    assert result.out == f"{topic_name} 0 1 k2=second:with colon [source=cli,n=1]\n"

    tail = moldau("consume", topic_name, "--offset", "-1", "-e", *b)
    assert tail.out == "\n"  # the last record's value is empty
    plain = moldau("consume", topic_name, "--from-beginning", "-e", *b)
    assert plain.out.splitlines() == ["first value", "second:with colon", ""]


def test_produce_json_reports_offsets_and_compression(
    moldau: Runner, broker: BrokerProcess, topic_name: str
) -> None:
    b = ("-b", broker.bootstrap)
    assert moldau("topic", "create", topic_name, *b).code == 0
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        result = moldau(
            "produce",
            topic_name,
            "-f",
            "json",
            "--compression",
            codec,
            "--acks",
            "1",
            *b,
            stdin=f"{codec}-a\n{codec}-b\n",
        )
        assert result.code == 0, result.err
        deliveries = [json.loads(line) for line in result.out.splitlines()]
        assert len(deliveries) == 2 and all(d["topic"] == topic_name for d in deliveries)
        assert deliveries[1]["offset"] == deliveries[0]["offset"] + 1
    values = moldau("consume", topic_name, "--from-beginning", "-e", *b).out.splitlines()
    assert sorted(values) == sorted(
        f"{c}-{x}" for c in ("gzip", "snappy", "lz4", "zstd") for x in "ab"
    )


def test_consume_unknown_topic(moldau: Runner, broker: BrokerProcess, topic_name: str) -> None:
    result = moldau("consume", topic_name, "-e", "-b", broker.bootstrap)
    assert result.code == 1
    assert result.err_lines == [f"error: topic '{topic_name}' does not exist"]


def test_consume_unknown_partition(moldau: Runner, broker: BrokerProcess, topic_name: str) -> None:
    b = ("-b", broker.bootstrap)
    assert moldau("topic", "create", topic_name, "-p", "1", *b).code == 0
    result = moldau("consume", topic_name, "-p", "5", "-e", *b)
    assert result.code == 1
    assert len(result.err_lines) == 1 and "partition 5 does not exist" in result.err


def test_produce_failures(moldau: Runner, broker: BrokerProcess, topic_name: str) -> None:
    b = ("-b", broker.bootstrap)
    assert moldau("topic", "create", topic_name, "-p", "1", *b).code == 0
    bad_partition = moldau("produce", topic_name, "-p", "9", *b, stdin="x\n")
    assert bad_partition.code == 1
    assert len(bad_partition.err_lines) == 1 and "partition 9 does not exist" in bad_partition.err

    missing_separator = moldau(
        "produce", topic_name, "--key-separator", ":", *b, stdin="a:1\nnokey\n"
    )
    assert missing_separator.code == 1
    assert missing_separator.err_lines == [
        "error: No key separator found on line number 2: 'nokey'"
    ]
    # the line before the bad one was still delivered
    values = moldau("consume", topic_name, "--from-beginning", "-e", *b).out.splitlines()
    assert values == ["1"]


def test_produce_record_too_large_fails_delivery(
    moldau: Runner, broker: BrokerProcess, topic_name: str
) -> None:
    b = ("-b", broker.bootstrap)
    assert moldau("topic", "create", topic_name, "-c", "max.message.bytes=1024", *b).code == 0
    result = moldau("produce", topic_name, *b, stdin="x" * 5000 + "\n")
    assert result.code == 1
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith(f"error: delivery to topic '{topic_name}' failed: ")
