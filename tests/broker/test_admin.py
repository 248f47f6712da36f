"""Admin APIs against a real broker process, driven by confluent-kafka, kafka-python and raw
wire requests (for the versions and corner cases the libraries never send).

The module's broker runs with a few static settings (``num.partitions=2``,
``log.segment.bytes``) so that broker defaults and STATIC_BROKER_CONFIG sources are visible.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)
from kafka import errors as kafka_errors
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType as KpConfigResourceType
from kafka.admin import KafkaAdminClient
from kio.schema.create_topics.v2 import request as create_v2
from kio.schema.create_topics.v7 import request as create_v7
from kio.schema.delete_topics.v6 import request as delete_v6
from kio.schema.describe_cluster.v0 import request as describe_cluster_v0
from kio.schema.describe_configs.v4 import request as describe_v4
from kio.schema.describe_log_dirs.v2 import request as log_dirs_v2
from kio.schema.errors import ErrorCode
from kio.schema.incremental_alter_configs.v1 import request as incremental_v1

from moldau.log.config import TOPIC_CONFIGS
from moldau.protocol.api import ADVERTISED, ApiKey
from moldau.testing import BrokerProcess
from moldau.testing.wire import WireClient

TIMEOUT_S = 20
SEGMENT_BYTES = "2097152"
TOPIC, BROKER = 2, 4
CREATE_TOPICS, DELETE_TOPICS, DESCRIBE_CONFIGS = 19, 20, 32
DESCRIBE_LOG_DIRS, INCREMENTAL_ALTER_CONFIGS, DESCRIBE_CLUSTER = 35, 44, 60
STATIC_BROKER_CONFIG, DEFAULT_CONFIG, TOPIC_CONFIG = 4, 5, 1


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    data_dir = tmp_path_factory.mktemp("admin") / "data"
    proc = BrokerProcess(
        data_dir, config={"num.partitions": "2", "log.segment.bytes": SEGMENT_BYTES}
    )
    proc.start()
    yield proc
    proc.close()


@pytest.fixture(scope="module")
def admin(broker: BrokerProcess) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


@pytest.fixture(scope="module")
def kp_admin(broker: BrokerProcess) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=15000)
    yield client
    client.close()


@pytest.fixture
def wire(broker: BrokerProcess) -> Iterator[WireClient]:
    with WireClient(broker.host, broker.port) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create(admin: AdminClient, *topics: NewTopic, validate_only: bool = False) -> None:
    futures = admin.create_topics(list(topics), validate_only=validate_only)
    for future in futures.values():
        future.result(TIMEOUT_S)


def create_error(admin: AdminClient, topic: NewTopic) -> KafkaError:
    with pytest.raises(KafkaException) as info:
        create(admin, topic)
    error: KafkaError = info.value.args[0]
    return error


def partition_count(admin: AdminClient, topic: str) -> int | None:
    metadata = admin.list_topics(timeout=TIMEOUT_S)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return None
    return len(found.partitions)


def describe_topic(admin: AdminClient, topic: str) -> dict[str, ConfigEntry]:
    resource = ConfigResource(ResourceType.TOPIC, topic)
    result: dict[str, ConfigEntry] = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
    return result


def produce(broker: BrokerProcess, topic: str, count: int, partition: int = 0) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(count):
        producer.produce(topic, f"value-{i}".encode(), partition=partition)
    assert producer.flush(TIMEOUT_S) == 0


def watermarks(broker: BrokerProcess, topic: str, partition: int = 0) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique("wm")})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), TIMEOUT_S)
    finally:
        consumer.close()
    return low, high


def creatable(name: str, partitions: int = 1, replication: int = 1, **extra: Any) -> Any:
    fields: dict[str, Any] = {"assignments": (), "configs": ()}
    fields.update(extra)
    return create_v7.CreatableTopic(
        name=name, num_partitions=partitions, replication_factor=replication, **fields
    )


def create_request(*topics: Any, validate_only: bool = False) -> Any:
    return create_v7.CreateTopicsRequest(
        topics=topics, timeout=datetime.timedelta(seconds=10), validate_only=validate_only
    )


# -- CreateTopics --------------------------------------------------------------------------


def test_create_topic_with_partitions_and_configs(admin: AdminClient) -> None:
    topic = unique("create")
    create(admin, NewTopic(topic, 3, 1, config={"retention.ms": "3600000"}))
    assert partition_count(admin, topic) == 3
    assert describe_topic(admin, topic)["retention.ms"].value == "3600000"


def test_create_topic_uses_broker_defaults_for_minus_one(admin: AdminClient) -> None:
    topic = unique("defaults")
    create(admin, NewTopic(topic))  # num_partitions and replication_factor -1
    assert partition_count(admin, topic) == 2  # num.partitions=2 in this broker's config


def test_validate_only_creates_nothing(admin: AdminClient) -> None:
    topic = unique("validate")
    create(admin, NewTopic(topic, 2, 1), validate_only=True)
    assert partition_count(admin, topic) is None
    # ...but it still validates.
    with pytest.raises(KafkaException) as info:
        create(admin, NewTopic(topic, 0, 1), validate_only=True)
    assert info.value.args[0].code() == KafkaError.INVALID_PARTITIONS


def test_create_existing_topic_fails(admin: AdminClient) -> None:
    topic = unique("exists")
    create(admin, NewTopic(topic, 1, 1))
    error = create_error(admin, NewTopic(topic, 1, 1))
    assert error.code() == KafkaError.TOPIC_ALREADY_EXISTS
    assert topic in error.str()


@pytest.mark.parametrize("name", ["bad name", "a/b", "x" * 250, ".."])
def test_create_invalid_topic_name(admin: AdminClient, name: str) -> None:
    assert create_error(admin, NewTopic(name, 1, 1)).code() == KafkaError.TOPIC_EXCEPTION


def test_create_colliding_topic_name(admin: AdminClient) -> None:
    base = unique("dots")
    create(admin, NewTopic(f"{base}.a", 1, 1))
    error = create_error(admin, NewTopic(f"{base}_a", 1, 1))
    assert error.code() == KafkaError.TOPIC_EXCEPTION
    assert "collides" in error.str()


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"retention.ms": "soon"}, "retention.ms"),
        ({"cleanup.policy": "shred"}, "cleanup.policy"),
        ({"no.such.config": "1"}, "no.such.config"),
    ],
)
def test_create_with_bad_config(admin: AdminClient, config: dict[str, str], needle: str) -> None:
    topic = unique("badcfg")
    error = create_error(admin, NewTopic(topic, 1, 1, config=config))
    assert error.code() == KafkaError.INVALID_CONFIG
    assert needle in error.str()
    assert partition_count(admin, topic) is None


def test_create_with_too_many_replicas(admin: AdminClient) -> None:
    error = create_error(admin, NewTopic(unique("rf"), 1, 3))
    assert error.code() == KafkaError.INVALID_REPLICATION_FACTOR


def test_create_with_zero_partitions(admin: AdminClient) -> None:
    assert (
        create_error(admin, NewTopic(unique("zero"), 0, 1)).code() == KafkaError.INVALID_PARTITIONS
    )


def test_create_with_manual_assignment(admin: AdminClient, broker: BrokerProcess) -> None:
    topic = unique("assign")
    node = broker.node_id
    create(admin, NewTopic(topic, 3, replica_assignment=[[node], [node], [node]]))
    assert partition_count(admin, topic) == 3
    error = create_error(
        admin, NewTopic(unique("assign"), 2, replica_assignment=[[node], [node + 1]])
    )
    assert error.code() == KafkaError.INVALID_REPLICA_ASSIGNMENT


def test_create_duplicate_names_in_one_request(wire: WireClient) -> None:
    topic = unique("dup")
    response = wire.request(CREATE_TOPICS, 7, create_request(creatable(topic), creatable(topic)))
    assert [(t.name, t.error_code) for t in response.topics] == [(topic, ErrorCode.invalid_request)]
    check = wire.request(CREATE_TOPICS, 7, create_request(creatable(topic), validate_only=True))
    assert check.topics[0].error_code == ErrorCode.none  # neither copy was created


def test_create_v7_answers_id_counts_and_every_config(wire: WireClient) -> None:
    topic = unique("v7")
    config = create_v7.CreatableTopicConfig(name="retention.ms", value="1234")
    response = wire.request(
        CREATE_TOPICS, 7, create_request(creatable(topic, 4, configs=(config,)))
    )
    (result,) = response.topics
    assert result.error_code == ErrorCode.none
    assert result.topic_id is not None and result.topic_id.int != 0
    assert (result.num_partitions, result.replication_factor) == (4, 1)
    configs = {c.name: c for c in result.configs}
    assert set(configs) == set(TOPIC_CONFIGS)
    assert (configs["retention.ms"].value, configs["retention.ms"].config_source) == (
        "1234",
        TOPIC_CONFIG,
    )
    assert configs["segment.bytes"].value == SEGMENT_BYTES
    assert configs["segment.bytes"].config_source == STATIC_BROKER_CONFIG


def test_create_v2_reports_errors_with_messages(wire: WireClient) -> None:
    request = create_v2.CreateTopicsRequest(
        topics=(
            create_v2.CreatableTopic(
                name=unique("v2"),
                num_partitions=1,
                replication_factor=2,
                assignments=(),
                configs=(),
            ),
        ),
        timeout=datetime.timedelta(seconds=10),
        validate_only=False,
    )
    (result,) = wire.request(CREATE_TOPICS, 2, request).topics
    assert result.error_code == ErrorCode.invalid_replication_factor
    assert result.error_message and "Replication factor" in result.error_message


def test_kafka_python_create_and_delete(kp_admin: KafkaAdminClient, admin: AdminClient) -> None:
    topic = unique("kp")
    result = kp_admin.create_topics(
        {
            topic: {
                "num_partitions": 2,
                "replication_factor": 1,
                "configs": {"retention.ms": "60000"},
            }
        }
    )
    assert result["topics"][0]["error_code"] == 0
    assert partition_count(admin, topic) == 2
    with pytest.raises(kafka_errors.TopicAlreadyExistsError):
        kp_admin.create_topics({topic: {"num_partitions": 1}})
    kp_admin.delete_topics([topic])
    assert partition_count(admin, topic) is None
    with pytest.raises(kafka_errors.UnknownTopicOrPartitionError):
        kp_admin.delete_topics([topic])


# -- DeleteTopics --------------------------------------------------------------------------


def test_delete_topic(admin: AdminClient, broker: BrokerProcess) -> None:
    topic = unique("delete")
    create(admin, NewTopic(topic, 2, 1))
    produce(broker, topic, 3)
    admin.delete_topics([topic])[topic].result(TIMEOUT_S)
    assert partition_count(admin, topic) is None
    assert not (broker.data_dir / f"{topic}-0").exists()


def test_delete_unknown_topic(admin: AdminClient) -> None:
    topic = unique("ghost")
    with pytest.raises(KafkaException) as info:
        admin.delete_topics([topic])[topic].result(TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_delete_v6_by_id_and_by_name(wire: WireClient, admin: AdminClient) -> None:
    by_id, by_name = unique("byid"), unique("byname")
    created = wire.request(CREATE_TOPICS, 7, create_request(creatable(by_id), creatable(by_name)))
    topic_id = created.topics[0].topic_id
    missing = uuid.uuid4()
    request = delete_v6.DeleteTopicsRequest(
        topics=(
            delete_v6.DeleteTopicState(name=None, topic_id=topic_id),
            delete_v6.DeleteTopicState(name=by_name, topic_id=None),
            delete_v6.DeleteTopicState(name=None, topic_id=missing),
        ),
        timeout=datetime.timedelta(seconds=10),
    )
    results = wire.request(DELETE_TOPICS, 6, request).responses
    assert [(r.name, r.topic_id, r.error_code) for r in results] == [
        (by_id, topic_id, ErrorCode.none),
        (by_name, created.topics[1].topic_id, ErrorCode.none),
        (None, missing, ErrorCode.unknown_topic_id),
    ]
    assert partition_count(admin, by_id) is None
    assert partition_count(admin, by_name) is None


def test_delete_refused_when_disabled(tmp_path: Path) -> None:
    with BrokerProcess(tmp_path / "data", config={"delete.topic.enable": "false"}) as proc:
        client = AdminClient({"bootstrap.servers": proc.bootstrap})
        topic = unique("keep")
        create(client, NewTopic(topic, 1, 1))
        with pytest.raises(KafkaException) as info:
            client.delete_topics([topic])[topic].result(TIMEOUT_S)
        assert info.value.args[0].code() == KafkaError.TOPIC_DELETION_DISABLED
        assert partition_count(client, topic) == 1


# -- CreatePartitions ----------------------------------------------------------------------


def test_create_partitions(admin: AdminClient, broker: BrokerProcess) -> None:
    topic = unique("grow")
    create(admin, NewTopic(topic, 1, 1))
    admin.create_partitions([NewPartitions(topic, 4)])[topic].result(TIMEOUT_S)
    assert partition_count(admin, topic) == 4
    produce(broker, topic, 2, partition=3)
    assert watermarks(broker, topic, 3) == (0, 2)


def test_create_partitions_validate_only(admin: AdminClient) -> None:
    topic = unique("growcheck")
    create(admin, NewTopic(topic, 1, 1))
    admin.create_partitions([NewPartitions(topic, 3)], validate_only=True)[topic].result(TIMEOUT_S)
    assert partition_count(admin, topic) == 1


@pytest.mark.parametrize("count", [1, 2])
def test_create_partitions_must_increase(admin: AdminClient, count: int) -> None:
    topic = unique("shrink")
    create(admin, NewTopic(topic, 2, 1))
    with pytest.raises(KafkaException) as info:
        admin.create_partitions([NewPartitions(topic, count)])[topic].result(TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.INVALID_PARTITIONS
    assert partition_count(admin, topic) == 2


def test_create_partitions_assignments(admin: AdminClient, broker: BrokerProcess) -> None:
    topic = unique("growassign")
    create(admin, NewTopic(topic, 1, 1))
    node = broker.node_id
    bad = NewPartitions(topic, 3, replica_assignment=[[node]])  # two new partitions, one list
    with pytest.raises(KafkaException) as info:
        admin.create_partitions([bad])[topic].result(TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.INVALID_REPLICA_ASSIGNMENT
    good = NewPartitions(topic, 3, replica_assignment=[[node], [node]])
    admin.create_partitions([good])[topic].result(TIMEOUT_S)
    assert partition_count(admin, topic) == 3


def test_create_partitions_unknown_topic(admin: AdminClient) -> None:
    topic = unique("nogrow")
    with pytest.raises(KafkaException) as info:
        admin.create_partitions([NewPartitions(topic, 3)])[topic].result(TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


# -- DescribeConfigs -----------------------------------------------------------------------


def test_describe_topic_lists_every_config_with_sources(admin: AdminClient) -> None:
    topic = unique("desc")
    create(admin, NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"}))
    configs = describe_topic(admin, topic)
    assert set(configs) == set(TOPIC_CONFIGS)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert not configs["cleanup.policy"].is_default
    assert configs["segment.bytes"].value == SEGMENT_BYTES
    assert configs["segment.bytes"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert configs["retention.ms"].value == "604800000"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["retention.ms"].is_default


def test_describe_unknown_topic(admin: AdminClient) -> None:
    resource = ConfigResource(ResourceType.TOPIC, unique("nodesc"))
    with pytest.raises(KafkaException) as info:
        admin.describe_configs([resource])[resource].result(TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_describe_broker(admin: AdminClient, broker: BrokerProcess) -> None:
    resource = ConfigResource(ResourceType.BROKER, str(broker.node_id))
    configs = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
    assert configs["num.partitions"].value == "2"
    assert configs["num.partitions"].source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert configs["log.segment.bytes"].value == SEGMENT_BYTES
    assert configs["auto.create.topics.enable"].source == ConfigSource.DEFAULT_CONFIG.value
    assert all(entry.is_read_only for entry in configs.values())


def test_kafka_python_describe_with_synonyms(
    kp_admin: KafkaAdminClient, admin: AdminClient
) -> None:
    topic = unique("syn")
    create(admin, NewTopic(topic, 1, 1, config={"segment.bytes": "1048576"}))
    resource = KpConfigResource(KpConfigResourceType.TOPIC, topic)
    described = kp_admin.describe_configs([resource], include_synonyms=True, config_filter="all")
    configs = described["topic"][topic]
    assert set(configs) == set(TOPIC_CONFIGS)
    segment = configs["segment.bytes"]
    assert (segment["value"], segment["config_source"]) == ("1048576", "DYNAMIC_TOPIC_CONFIG")
    assert [(s["name"], s["value"], s["source"]) for s in segment["synonyms"]] == [
        ("segment.bytes", "1048576", "DYNAMIC_TOPIC_CONFIG"),
        ("log.segment.bytes", SEGMENT_BYTES, "STATIC_BROKER_CONFIG"),
        ("log.segment.bytes", "1073741824", "DEFAULT_CONFIG"),
    ]
    modified = kp_admin.describe_configs([resource])["topic"][topic]
    assert set(modified) == {"segment.bytes"}


def test_describe_v4_filters_and_errors(
    wire: WireClient, admin: AdminClient, broker: BrokerProcess
) -> None:
    topic = unique("v4")
    create(admin, NewTopic(topic, 1, 1))

    def resource(kind: int, name: str, keys: tuple[str, ...] | None = None) -> Any:
        return describe_v4.DescribeConfigsResource(
            resource_type=kind, resource_name=name, configuration_keys=keys
        )

    node = str(broker.node_id)
    request = describe_v4.DescribeConfigsRequest(
        resources=(
            resource(TOPIC, topic, ("retention.ms", "no.such.key")),
            resource(TOPIC, topic, ()),
            resource(BROKER, node, ("delete.topic.enable",)),
            resource(BROKER, ""),
            resource(TOPIC, "bad name"),
            resource(BROKER, str(broker.node_id + 7)),
            resource(BROKER, "me"),
            resource(8, node),  # BROKER_LOGGER
        ),
        include_synonyms=False,
        include_documentation=True,
    )
    results = wire.request(DESCRIBE_CONFIGS, 4, request).results
    filtered, everything, broker_key, defaults, *errors = results
    assert filtered.error_code == ErrorCode.none
    (retention,) = filtered.configs
    assert (retention.name, retention.config_type, retention.synonyms) == ("retention.ms", 5, ())
    assert len(everything.configs) == len(TOPIC_CONFIGS)  # an empty filter means every config
    (delete_enable,) = broker_key.configs
    assert (delete_enable.value, delete_enable.config_type) == ("true", 1)  # BOOLEAN
    assert delete_enable.read_only
    assert delete_enable.documentation
    assert defaults.error_code == ErrorCode.none
    assert defaults.configs == ()  # no cluster-wide dynamic defaults exist
    assert [(r.resource_name, r.error_code) for r in errors] == [
        ("bad name", ErrorCode.invalid_topic_exception),
        (str(broker.node_id + 7), ErrorCode.invalid_request),
        ("me", ErrorCode.invalid_request),
        (node, ErrorCode.invalid_request),
    ]
    assert all(r.error_message for r in errors)


def test_describe_without_documentation(wire: WireClient, broker: BrokerProcess) -> None:
    request = describe_v4.DescribeConfigsRequest(
        resources=(
            describe_v4.DescribeConfigsResource(
                resource_type=BROKER,
                resource_name=str(broker.node_id),
                configuration_keys=("delete.topic.enable",),
            ),
        ),
        include_synonyms=True,
        include_documentation=False,
    )
    ((entry,),) = [r.configs for r in wire.request(DESCRIBE_CONFIGS, 4, request).results]
    assert entry.documentation is None
    assert [(s.name, s.source) for s in entry.synonyms] == [("delete.topic.enable", DEFAULT_CONFIG)]


# -- AlterConfigs / IncrementalAlterConfigs -------------------------------------------------


LEGACY_ALTER = pytest.mark.filterwarnings(
    "ignore:alter_configs has been deprecated:DeprecationWarning"
)
"""confluent-kafka deprecates the legacy AlterConfigs API, which these tests exercise on purpose."""


@LEGACY_ALTER
def test_alter_configs_replaces_all_overrides(admin: AdminClient) -> None:
    topic = unique("alter")
    create(admin, NewTopic(topic, 1, 1, config={"retention.ms": "1000", "segment.ms": "5000"}))
    resource = ConfigResource(ResourceType.TOPIC, topic, set_config={"max.message.bytes": "2048"})
    admin.alter_configs([resource])[resource].result(TIMEOUT_S)
    configs = describe_topic(admin, topic)
    assert configs["max.message.bytes"].value == "2048"
    assert configs["max.message.bytes"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["segment.ms"].source == ConfigSource.DEFAULT_CONFIG.value


@LEGACY_ALTER
def test_alter_configs_validate_only_and_bad_value(admin: AdminClient) -> None:
    topic = unique("altercheck")
    create(admin, NewTopic(topic, 1, 1))
    resource = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "5"})
    admin.alter_configs([resource], validate_only=True)[resource].result(TIMEOUT_S)
    assert describe_topic(admin, topic)["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    bad = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "later"})
    with pytest.raises(KafkaException) as info:
        admin.alter_configs([bad])[bad].result(TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.INVALID_CONFIG


def incremental(admin: AdminClient, topic: str, *entries: ConfigEntry) -> None:
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=list(entries))
    admin.incremental_alter_configs([resource])[resource].result(TIMEOUT_S)


def test_incremental_set_and_delete(admin: AdminClient) -> None:
    topic = unique("incr")
    create(admin, NewTopic(topic, 1, 1, config={"segment.ms": "5000"}))
    incremental(
        admin,
        topic,
        ConfigEntry("retention.ms", "42000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("segment.ms", None, incremental_operation=AlterConfigOpType.DELETE),
    )
    configs = describe_topic(admin, topic)
    assert configs["retention.ms"].value == "42000"
    assert configs["segment.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["segment.ms"].value == "604800000"


def test_incremental_append_and_subtract(admin: AdminClient) -> None:
    topic = unique("incrlist")
    create(admin, NewTopic(topic, 1, 1))
    append = AlterConfigOpType.APPEND
    incremental(
        admin, topic, ConfigEntry("cleanup.policy", "compact", incremental_operation=append)
    )
    assert describe_topic(admin, topic)["cleanup.policy"].value == "delete,compact"
    subtract = AlterConfigOpType.SUBTRACT
    incremental(
        admin, topic, ConfigEntry("cleanup.policy", "delete", incremental_operation=subtract)
    )
    assert describe_topic(admin, topic)["cleanup.policy"].value == "compact"


def test_incremental_errors(wire: WireClient, admin: AdminClient, broker: BrokerProcess) -> None:
    first, second, twice = unique("incrbad"), unique("incrbad"), unique("incrbad")
    create(admin, NewTopic(first, 1, 1), NewTopic(second, 1, 1), NewTopic(twice, 1, 1))

    def resource(kind: int, name: str, *ops: tuple[str, int, str | None]) -> Any:
        return incremental_v1.AlterConfigsResource(
            resource_type=kind,
            resource_name=name,
            configs=tuple(
                incremental_v1.AlterableConfig(name=n, config_operation=op, value=v)
                for n, op, v in ops
            ),
        )

    request = incremental_v1.IncrementalAlterConfigsRequest(
        resources=(
            resource(TOPIC, first, ("retention.ms", 2, "5")),  # APPEND to a non-list config
            resource(TOPIC, unique("missing"), ("retention.ms", 0, "5")),
            resource(BROKER, str(broker.node_id), ("log.retention.ms", 0, "5")),
            resource(TOPIC, second, ("no.such.config", 0, "1")),
            resource(TOPIC, second + "x", ("retention.ms", 0, "1"), ("retention.ms", 1, None)),
            resource(TOPIC, twice, ("retention.ms", 0, "5")),
            resource(TOPIC, twice, ("retention.ms", 0, "6")),
        ),
        validate_only=False,
    )
    responses = wire.request(INCREMENTAL_ALTER_CONFIGS, 1, request).responses
    assert [r.error_code for r in responses] == [
        ErrorCode.invalid_config,
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.invalid_request,
        ErrorCode.invalid_config,
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.invalid_request,
        ErrorCode.invalid_request,
    ]
    assert all(r.error_message for r in responses)
    assert describe_topic(admin, twice)["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value


def test_incremental_duplicate_keys(wire: WireClient, admin: AdminClient) -> None:
    topic = unique("incrdup")
    create(admin, NewTopic(topic, 1, 1))
    ops = (
        incremental_v1.AlterableConfig(name="retention.ms", config_operation=0, value="1"),
        incremental_v1.AlterableConfig(name="retention.ms", config_operation=1, value=None),
    )
    request = incremental_v1.IncrementalAlterConfigsRequest(
        resources=(
            incremental_v1.AlterConfigsResource(
                resource_type=TOPIC, resource_name=topic, configs=ops
            ),
        ),
        validate_only=False,
    )
    (response,) = wire.request(INCREMENTAL_ALTER_CONFIGS, 1, request).responses
    assert response.error_code == ErrorCode.invalid_request


def test_kafka_python_alter_configs(kp_admin: KafkaAdminClient, admin: AdminClient) -> None:
    topic = unique("kpalter")
    create(admin, NewTopic(topic, 1, 1))
    resource = KpConfigResource(KpConfigResourceType.TOPIC, topic, {"retention.ms": "77000"})
    result = kp_admin.alter_configs([resource], raise_on_unknown=False)
    assert result["topic"][topic] == "OK"
    assert describe_topic(admin, topic)["retention.ms"].value == "77000"


# -- DeleteRecords -------------------------------------------------------------------------


def test_delete_records_moves_log_start(admin: AdminClient, broker: BrokerProcess) -> None:
    topic = unique("records")
    create(admin, NewTopic(topic, 1, 1))
    produce(broker, topic, 10)
    result = admin.delete_records([TopicPartition(topic, 0, 4)])
    (future,) = result.values()
    assert future.result(TIMEOUT_S).low_watermark == 4
    assert watermarks(broker, topic) == (4, 10)
    # -1 means "up to the high watermark".
    (future,) = admin.delete_records([TopicPartition(topic, 0, -1)]).values()
    assert future.result(TIMEOUT_S).low_watermark == 10
    assert watermarks(broker, topic) == (10, 10)


def test_delete_records_beyond_high_watermark(admin: AdminClient, broker: BrokerProcess) -> None:
    topic = unique("recordsoor")
    create(admin, NewTopic(topic, 1, 1))
    produce(broker, topic, 3)
    (future,) = admin.delete_records([TopicPartition(topic, 0, 50)]).values()
    with pytest.raises(KafkaException) as info:
        future.result(TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE
    assert watermarks(broker, topic) == (0, 3)


def test_delete_records_on_compacted_topic(admin: AdminClient, broker: BrokerProcess) -> None:
    topic = unique("recordscompact")
    create(admin, NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"}))
    (future,) = admin.delete_records([TopicPartition(topic, 0, 0)]).values()
    with pytest.raises(KafkaException) as info:
        future.result(TIMEOUT_S)
    assert info.value.args[0].code() == KafkaError.POLICY_VIOLATION


# -- DescribeCluster / DescribeLogDirs -----------------------------------------------------


def test_describe_cluster(wire: WireClient, broker: BrokerProcess) -> None:
    request = describe_cluster_v0.DescribeClusterRequest(include_cluster_authorized_operations=True)
    response = wire.request(DESCRIBE_CLUSTER, 0, request)
    assert response.error_code == ErrorCode.none
    assert response.cluster_id
    assert response.controller_id == broker.node_id
    assert [(b.broker_id, b.host, b.port, b.rack) for b in response.brokers] == [
        (broker.node_id, broker.host, broker.port, None)
    ]
    operations = {bit for bit in range(32) if response.cluster_authorized_operations >> bit & 1}
    # CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE
    assert operations == {5, 7, 8, 9, 10, 11, 12}


@pytest.mark.skipif(
    ADVERTISED[ApiKey.DESCRIBE_CLUSTER].max < 1,
    reason="kafka-python's describe_cluster needs DescribeCluster v1+ (it reads endpoint_type)",
)
def test_kafka_python_describe_cluster(kp_admin: KafkaAdminClient, broker: BrokerProcess) -> None:
    described = kp_admin.describe_cluster()
    assert described["controller_id"] == broker.node_id
    assert [b["broker_id"] for b in described["brokers"]] == [broker.node_id]
    assert {"DESCRIBE", "ALTER", "CREATE"} <= set(described["authorized_operations"])


def test_describe_cluster_without_authorized_operations(wire: WireClient) -> None:
    request = describe_cluster_v0.DescribeClusterRequest(
        include_cluster_authorized_operations=False
    )
    response = wire.request(DESCRIBE_CLUSTER, 0, request)
    assert response.error_code == ErrorCode.none
    assert response.cluster_authorized_operations == -(2**31)


def segment_bytes_on_disk(broker: BrokerProcess, topic: str, partition: int) -> int:
    directory = broker.data_dir / f"{topic}-{partition}"
    return sum(path.stat().st_size for path in directory.glob("*.log"))


def test_kafka_python_describe_log_dirs(
    kp_admin: KafkaAdminClient, admin: AdminClient, broker: BrokerProcess
) -> None:
    topic = unique("logdirs")
    create(admin, NewTopic(topic, 2, 1))
    produce(broker, topic, 20, partition=1)
    (answer,) = kp_admin.describe_log_dirs({topic: [0, 1]})
    assert answer["broker"] == broker.node_id
    (log_dir,) = answer["log_dirs"]
    assert log_dir["error_code"] == 0
    assert Path(log_dir["log_dir"]) == broker.data_dir.resolve()
    (described,) = log_dir["topics"]
    sizes = {p["partition_index"]: p["partition_size"] for p in described["partitions"]}
    assert sizes[0] == 0
    assert sizes[1] > 0
    assert sizes[1] == segment_bytes_on_disk(broker, topic, 1)
    assert all(p["offset_lag"] == 0 for p in described["partitions"])


def test_describe_log_dirs_null_means_all(wire: WireClient, admin: AdminClient) -> None:
    topic = unique("alldirs")
    create(admin, NewTopic(topic, 3, 1))
    request = log_dirs_v2.DescribeLogDirsRequest(topics=None)
    (result,) = wire.request(DESCRIBE_LOG_DIRS, 2, request).results
    described = {t.name: sorted(p.partition_index for p in t.partitions) for t in result.topics}
    assert described[topic] == [0, 1, 2]
    request = log_dirs_v2.DescribeLogDirsRequest(
        topics=(log_dirs_v2.DescribableLogDirTopic(topic=unique("none"), partitions=(0,)),)
    )
    (result,) = wire.request(DESCRIBE_LOG_DIRS, 2, request).results
    assert result.topics == ()
