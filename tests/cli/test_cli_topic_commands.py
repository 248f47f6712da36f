"""``moldau topic …`` and ``moldau cluster info`` against a real broker."""

from __future__ import annotations

import json

from cli_helpers import Runner

from moldau.testing import BrokerProcess


def test_create_list_describe_delete(
    moldau: Runner, broker: BrokerProcess, topic_name: str
) -> None:
    b = ("-b", broker.bootstrap)
    created = moldau(
        "topic", "create", topic_name, "-p", "3", "-r", "1", "-c", "retention.ms=3600000", *b
    )
    assert created.code == 0, created.err
    assert created.out.strip() == f"Created topic {topic_name}."

    listed = moldau("topic", "list", *b)
    assert listed.code == 0
    assert topic_name in listed.out.splitlines()
    as_json = json.loads(moldau("topic", "list", "-f", "json", *b).out)
    assert {"name": topic_name, "partitions": 3} in as_json

    described = moldau("topic", "describe", topic_name, "-f", "json", *b)
    assert described.code == 0, described.err
    doc = json.loads(described.out)
    assert doc["topic"] == topic_name
    assert doc["partition_count"] == 3 and doc["replication_factor"] == 1
    assert [p["partition"] for p in doc["partitions"]] == [0, 1, 2]
    for p in doc["partitions"]:
        assert p["leader"] == broker.node_id
        assert p["replicas"] == [broker.node_id] and p["isr"] == [broker.node_id]
        assert p["log_start_offset"] == 0 and p["high_watermark"] == 0
    overrides = {c["name"]: c["value"] for c in doc["configs"]}
    assert overrides.get("retention.ms") == "3600000"

    text = moldau("topic", "describe", topic_name, *b)
    assert text.code == 0
    assert topic_name in text.out and "retention.ms=3600000" in text.out

    deleted = moldau("topic", "delete", topic_name, *b)
    assert deleted.code == 0, deleted.err
    assert topic_name not in moldau("topic", "list", *b).out.splitlines()


def test_alter_config_sets_and_deletes(
    moldau: Runner, broker: BrokerProcess, topic_name: str
) -> None:
    b = ("-b", broker.bootstrap)
    assert moldau("topic", "create", topic_name, "-c", "retention.ms=1000", *b).code == 0
    altered = moldau(
        "topic",
        "alter-config",
        topic_name,
        "--set",
        "segment.bytes=1048576",
        "--delete",
        "retention.ms",
        *b,
    )
    assert altered.code == 0, altered.err
    configs = {
        c["name"]: c
        for c in json.loads(
            moldau("topic", "describe", topic_name, "-f", "json", "--all-configs", *b).out
        )["configs"]
    }
    assert configs["segment.bytes"]["value"] == "1048576"
    assert configs["segment.bytes"]["source"] == "DYNAMIC_TOPIC_CONFIG"
    assert configs["retention.ms"]["source"] != "DYNAMIC_TOPIC_CONFIG"


def test_invalid_config_value_is_one_line(
    moldau: Runner, broker: BrokerProcess, topic_name: str
) -> None:
    b = ("-b", broker.bootstrap)
    result = moldau("topic", "create", topic_name, "-c", "retention.ms=soon", *b)
    assert result.code == 1
    assert len(result.err_lines) == 1 and result.err_lines[0].startswith("error: ")
    assert "retention.ms" in result.err

    assert moldau("topic", "create", topic_name, *b).code == 0
    altered = moldau("topic", "alter-config", topic_name, "--set", "retention.ms=soon", *b)
    assert altered.code == 1
    assert len(altered.err_lines) == 1 and "retention.ms" in altered.err


def test_unknown_topic_errors(moldau: Runner, broker: BrokerProcess, topic_name: str) -> None:
    b = ("-b", broker.bootstrap)
    for argv in (("describe", topic_name), ("delete", topic_name)):
        result = moldau("topic", *argv, *b)
        assert result.code == 1
        assert result.err_lines == [f"error: topic '{topic_name}' does not exist"]
    assert moldau("topic", "delete", topic_name, "--if-exists", *b).code == 0


def test_create_existing_topic(moldau: Runner, broker: BrokerProcess, topic_name: str) -> None:
    b = ("-b", broker.bootstrap)
    assert moldau("topic", "create", topic_name, *b).code == 0
    again = moldau("topic", "create", topic_name, *b)
    assert again.code == 1
    assert again.err_lines == [f"error: topic '{topic_name}' already exists"]
    assert moldau("topic", "create", topic_name, "--if-not-exists", *b).code == 0


def test_cluster_info(moldau: Runner, broker: BrokerProcess, topic_name: str) -> None:
    b = ("-b", broker.bootstrap)
    assert moldau("topic", "create", topic_name, *b).code == 0
    result = moldau("cluster", "info", "-f", "json", *b)
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["brokers"] == [{"node_id": broker.node_id, "host": broker.host, "port": broker.port}]
    assert doc["controller_id"] == broker.node_id
    assert doc["topic_count"] >= 1
    text = moldau("cluster", "info", *b)
    assert text.code == 0 and str(broker.port) in text.out
