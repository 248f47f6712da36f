"""Argument plumbing of Kafka's tool front ends (no broker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from moldau.cli.admin import ConfigInfo, ConfigSynonym, PartitionInfo, TopicInfo
from moldau.cli.kafka_args import (
    UsageProblem,
    librdkafka_config,
    load_properties,
    parse_properties,
)
from moldau.cli.kafka_configs_tool import config_line, split_add_config
from moldau.cli.kafka_topics_tool import partition_line, topic_line


def test_load_properties(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    path.write_text(
        "# comment\n! also a comment\n\nacks=all\nlinger.ms : 5\n"
        "sasl.jaas.config=a \\\n  b\nempty=\n"
    )
    assert load_properties(path) == {
        "acks": "all",
        "linger.ms": "5",
        "sasl.jaas.config": "a b",
        "empty": "",
    }


def test_parse_properties_keeps_equals_in_values() -> None:
    assert parse_properties(["key.separator==", "print.key=true"], "--property") == {
        "key.separator": "=",
        "print.key": "true",
    }
    with pytest.raises(UsageProblem):
        parse_properties(["novalue"], "--property")


def test_java_only_properties_are_dropped_and_renamed() -> None:
    java = {"key.serializer": "x", "max.request.size": "10", "acks": "1"}
    assert librdkafka_config(java) == {"message.max.bytes": "10", "acks": "1"}


def test_add_config_splits_outside_brackets() -> None:
    assert split_add_config("a=1,b=[x,y], c = 3") == {"a": "1", "b": "x,y", "c": "3"}
    with pytest.raises(UsageProblem):
        split_add_config("a=1,b")


def test_describe_lines_follow_kafkas_layout() -> None:
    configs = (
        ConfigInfo("cleanup.policy", "delete", "DEFAULT_CONFIG", True, False, False),
        ConfigInfo("retention.ms", "1000", "DYNAMIC_TOPIC_CONFIG", False, False, False),
    )
    topic = TopicInfo(
        "orders",
        "AAAAAAAAAAAAAAAAAAAAAQ",
        (PartitionInfo(0, 1, (1,), (1,)), PartitionInfo(1, None, (1, 2), ())),
        configs,
    )
    assert topic_line(topic) == (
        "Topic: orders\tTopicId: AAAAAAAAAAAAAAAAAAAAAQ\tPartitionCount: 2\t"
        "ReplicationFactor: 1\tConfigs: retention.ms=1000"
    )
    assert partition_line(topic, 1) == (
        "\tTopic: orders\tPartition: 1\tLeader: none\tReplicas: 1,2\tIsr: \t"
        "Elr: N/A\tLastKnownElr: N/A"
    )
    no_id = TopicInfo("t", None, (PartitionInfo(0, 1, (1,), (1,)),))
    assert topic_line(no_id).startswith("Topic: t\tPartitionCount: 1\t")


def test_config_line_follows_kafkas_layout() -> None:
    entry = ConfigInfo(
        "retention.ms",
        "3600000",
        "DYNAMIC_TOPIC_CONFIG",
        False,
        False,
        False,
        (
            ConfigSynonym("DYNAMIC_TOPIC_CONFIG", "retention.ms", "3600000"),
            ConfigSynonym("DEFAULT_CONFIG", "log.retention.hours", "168"),
        ),
    )
    assert config_line(entry) == (
        "  retention.ms=3600000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms="
        "3600000, DEFAULT_CONFIG:log.retention.hours=168}"
    )
    secret = ConfigInfo("ssl.key.password", None, "DYNAMIC_BROKER_CONFIG", False, True, False)
    assert config_line(secret) == "  ssl.key.password=null sensitive=true synonyms={}"


def test_topic_id_is_printed_like_kafka() -> None:
    from confluent_kafka import Uuid

    from moldau.cli.admin import _topic_id_text

    assert _topic_id_text(Uuid(0, 0)) is None
    # URL-safe base64 without padding, as Kafka's Uuid.toString()
    assert _topic_id_text(Uuid(-1, 0xFBFF)) == "__________8AAAAAAAD7_w"
