"""Kafka's tool names against a real broker: tutorial commands work verbatim."""

from __future__ import annotations

import re

from cli_helpers import Runner

from moldau.testing import BrokerProcess


def test_kafka_topics_lifecycle(
    kafka_topics: Runner, broker: BrokerProcess, topic_name: str
) -> None:
    bs = ("--bootstrap-server", broker.bootstrap)
    created = kafka_topics(
        "--create",
        "--topic",
        topic_name,
        *bs,
        "--partitions",
        "3",
        "--replication-factor",
        "1",
        "--config",
        "retention.ms=3600000",
    )
    assert created.code == 0, created.err
    assert created.out == f"Created topic {topic_name}.\n"

    assert topic_name in kafka_topics("--list", *bs).out.splitlines()

    described = kafka_topics("--describe", "--topic", topic_name, *bs)
    assert described.code == 0, described.err
    header, *partitions = described.out.splitlines()
    assert re.fullmatch(
        rf"Topic: {topic_name}(\tTopicId: \S+)?\tPartitionCount: 3\tReplicationFactor: 1\t"
        r"Configs: (\S+,)?retention\.ms=3600000(,\S+)?",
        header,
    ), header
    node = broker.node_id
    assert partitions == [
        f"\tTopic: {topic_name}\tPartition: {p}\tLeader: {node}\tReplicas: {node}\tIsr: {node}"
        "\tElr: N/A\tLastKnownElr: N/A"
        for p in range(3)
    ]

    altered = kafka_topics("--alter", "--topic", topic_name, "--partitions", "5", *bs)
    assert altered.code == 0, altered.err
    assert altered.out == ""
    assert "PartitionCount: 5" in kafka_topics("--describe", "--topic", topic_name, *bs).out

    deleted = kafka_topics("--delete", "--topic", topic_name, *bs)
    assert deleted.code == 0 and deleted.out == ""
    assert topic_name not in kafka_topics("--list", *bs).out.splitlines()


def test_kafka_topics_if_exists_flags(
    kafka_topics: Runner, broker: BrokerProcess, topic_name: str
) -> None:
    bs = ("--bootstrap-server", broker.bootstrap)
    missing = kafka_topics("--describe", "--topic", topic_name, *bs)
    assert missing.code == 1
    assert missing.err_lines == [f"Topic '{topic_name}' does not exist as expected"]
    assert kafka_topics("--delete", "--topic", topic_name, "--if-exists", *bs).code == 0

    assert kafka_topics("--create", "--topic", topic_name, *bs).code == 0
    again = kafka_topics("--create", "--topic", topic_name, *bs)
    assert again.code == 1
    assert again.err_lines == [
        f"Error while executing topic command : Topic '{topic_name}' already exists."
    ]
    quiet = kafka_topics("--create", "--topic", topic_name, "--if-not-exists", *bs)
    assert quiet.code == 0 and quiet.out == ""


def test_kafka_configs_alter_and_describe(
    kafka_configs: Runner, kafka_topics: Runner, broker: BrokerProcess, topic_name: str
) -> None:
    bs = ("--bootstrap-server", broker.bootstrap)
    assert kafka_topics("--create", "--topic", topic_name, *bs).code == 0
    entity = ("--entity-type", "topics", "--entity-name", topic_name)
    altered = kafka_configs(
        *bs, *entity, "--alter", "--add-config", "retention.ms=3600000,segment.bytes=1048576"
    )
    assert altered.code == 0, altered.err
    assert altered.out == f"Completed updating config for topic {topic_name}.\n"

    described = kafka_configs(*bs, *entity, "--describe")
    assert described.code == 0, described.err
    lines = described.out.splitlines()
    assert lines[0] == f"Dynamic configs for topic {topic_name} are:"
    assert lines[1].startswith(
        "  retention.ms=3600000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=3600000"
    )
    assert lines[2].startswith("  segment.bytes=1048576 sensitive=false synonyms={")
    assert len(lines) == 3

    removed = kafka_configs(*bs, *entity, "--alter", "--delete-config", "segment.bytes")
    assert removed.code == 0, removed.err
    after = kafka_configs(*bs, "--describe", "--topic", topic_name).out.splitlines()
    assert [line.split("=")[0].strip() for line in after[1:]] == ["retention.ms"]

    not_set = kafka_configs(*bs, *entity, "--alter", "--delete-config", "segment.bytes")
    assert not_set.code == 1
    assert not_set.err_lines == ["Invalid config(s): segment.bytes"]

    invalid = kafka_configs(*bs, *entity, "--alter", "--add-config", "retention.ms=soon")
    assert invalid.code == 1
    assert len(invalid.err_lines) == 1 and "retention.ms" in invalid.err


def test_kafka_configs_unknown_topic(
    kafka_configs: Runner, broker: BrokerProcess, topic_name: str
) -> None:
    result = kafka_configs(
        "--bootstrap-server",
        broker.bootstrap,
        "--describe",
        "--entity-type",
        "topics",
        "--entity-name",
        topic_name,
    )
    assert result.code == 0
    assert (
        result.out == f"The topic '{topic_name}' doesn't exist and doesn't have dynamic config.\n"
    )


def test_console_producer_then_consumer(
    console_producer: Runner,
    console_consumer: Runner,
    kafka_topics: Runner,
    broker: BrokerProcess,
    topic_name: str,
) -> None:
    bs = ("--bootstrap-server", broker.bootstrap)
    assert kafka_topics("--create", "--topic", topic_name, "--partitions", "1", *bs).code == 0
    produced = console_producer(
        *bs,
        "--topic",
        topic_name,
        "--property",
        "key.separator=:",
        "--property",
        "parse.key=true",
        stdin="user1:hello\nuser2:world\n",
    )
    assert produced.code == 0, produced.err
    assert produced.out == ""  # no '>' prompt: stdin is not a terminal

    consumed = console_consumer(
        *bs,
        "--topic",
        topic_name,
        "--from-beginning",
        "--property",
        "print.key=true",
        "--property",
        "key.separator=:",
        "--max-messages",
        "2",
    )
    assert consumed.code == 0, consumed.err
    assert consumed.out == "user1:hello\nuser2:world\n"
    assert consumed.err_lines == ["Processed a total of 2 messages"]

    with_meta = console_consumer(
        *bs,
        "--topic",
        topic_name,
        "--partition",
        "0",
        "--offset",
        "1",
        "--timeout-ms",
        "1500",
        "--property",
        "print.timestamp=true",
        "--property",
        "print.offset=true",
        "--group",
        "test-consumer",
    )
    assert with_meta.code == 0, with_meta.err
    assert re.fullmatch(r"CreateTime:\d+\tOffset:1\tworld\n", with_meta.out), with_meta.out
    assert with_meta.err_lines[0].startswith("WARNING: consumer groups are not supported")
    assert with_meta.err_lines[1:] == ["Processed a total of 1 messages"]


def test_console_producer_headers_and_bad_line(
    console_producer: Runner,
    console_consumer: Runner,
    kafka_topics: Runner,
    broker: BrokerProcess,
    topic_name: str,
) -> None:
    bs = ("--bootstrap-server", broker.bootstrap)
    assert kafka_topics("--create", "--topic", topic_name, "--partitions", "1", *bs).code == 0
    produced = console_producer(
        *bs,
        "--topic",
        topic_name,
        "--property",
        "parse.headers=true",
        "--property",
        "parse.key=true",
        "--producer-property",
        "acks=1",
        "--compression-codec",
        "lz4",
        stdin="h1:a,h2:b\tk\tv\n",
    )
    assert produced.code == 0, produced.err
    consumed = console_consumer(
        *bs,
        "--topic",
        topic_name,
        "--from-beginning",
        "--max-messages",
        "1",
        "--property",
        "print.headers=true",
        "--property",
        "print.key=true",
    )
    assert consumed.out == "h1:a,h2:b\tk\tv\n"

    bad = console_producer(
        *bs, "--topic", topic_name, "--property", "parse.key=true", stdin="nokey\n"
    )
    assert bad.code == 1
    assert bad.err_lines == ["ERROR No key separator found on line number 1: 'nokey'"]


def test_console_consumer_unknown_topic(
    console_consumer: Runner, broker: BrokerProcess, topic_name: str
) -> None:
    result = console_consumer(
        "--bootstrap-server", broker.bootstrap, "--topic", topic_name, "--timeout-ms", "1000"
    )
    assert result.code == 1
    assert result.err_lines == [f"ERROR topic '{topic_name}' does not exist"]
