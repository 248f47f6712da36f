"""BrokerConfig: properties parsing, layering, validation, topic defaults, DescribeConfigs."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from moldau.broker.config import BrokerConfig, ConfigEntry, ConfigSource, ConfigSynonym, ConfigType
from moldau.broker.config_defs import BROKER_KEYS, TIME_KEYS
from moldau.broker.properties import parse_properties
from moldau.log.config import LONG_MAX, TOPIC_CONFIGS, ConfigError, broker_default_keys

# A KRaft combined-mode server.properties as Kafka 3.9/4.0 ship it (comments trimmed).
KRAFT_SERVER_PROPERTIES = r"""
############################# Server Basics #############################
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:9093

############################# Socket Server Settings #############################
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,\
    SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600

############################# Log Basics #############################
log.dirs=/tmp/kraft-combined-logs
num.partitions=1
num.recovery.threads.per.data.dir=1

############################# Internal Topic Settings  #############################
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1

############################# Log Flush Policy #############################
#log.flush.interval.messages=10000
#log.flush.interval.ms=1000

############################# Log Retention Policy #############################
log.retention.hours=168
#log.retention.bytes=1073741824
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
"""

# The ZooKeeper-era file (Kafka ≤ 3.x), which people still carry around.
ZK_SERVER_PROPERTIES = """
broker.id=0
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=/tmp/kafka-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.retention.check.interval.ms=300000
zookeeper.connect=localhost:2181
zookeeper.connection.timeout.ms=18000
group.initial.rebalance.delay.ms=0
"""


def load(
    tmp_path: Path,
    text: str | None = None,
    *sets: str,
    listen: str | None = None,
    data_dir: Path | None = None,
    node_id: int | None = None,
) -> BrokerConfig:
    config_file = None
    if text is not None:
        config_file = tmp_path / "server.properties"
        config_file.write_text(text, encoding="utf-8")
    return BrokerConfig.load(config_file, sets, listen=listen, data_dir=data_dir, node_id=node_id)


@pytest.fixture(autouse=True)
def fixed_hostname(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the canonical host name deterministic (and never touch DNS)."""
    monkeypatch.setattr(socket, "getfqdn", lambda name="": "broker.example.com")


# -- properties syntax --------------------------------------------------------------------


def test_properties_comments_separators_and_blank_lines() -> None:
    text = "# comment\n! also a comment\n\n   \na=1\nb : 2\nc 3\n  d=  4  \ne=\nf\n"
    entries = [(key, value) for key, value, _ in parse_properties(text)]
    assert entries == [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", ""), ("f", "")]


def test_properties_continuations_and_escapes() -> None:
    text = (
        "list=a,\\\n    b,\\\n\tc\n"  # continued twice, leading blanks of each part dropped
        "even=ends with two\\\\\n"  # an even number of backslashes does not continue
        "next=x\n"
        "# comment ending in backslash \\\n"
        "after=comment\n"
        "k\\:ey=v\\=al\\u0041\\tz\n"
        "crlf=1\r\nalso=2\rlast=3\\"  # CR and CRLF line ends; trailing backslash at EOF
    )
    entries = {key: (value, line) for key, value, line in parse_properties(text)}
    assert entries["list"] == ("a,b,c", 1)
    assert entries["even"] == ("ends with two\\", 4)
    assert entries["next"] == ("x", 5)
    assert entries["after"] == ("comment", 7)
    assert entries["k:ey"] == ("v=alA\tz", 8)
    assert [entries[k][0] for k in ("crlf", "also", "last")] == ["1", "2", "3"]


def test_properties_malformed_unicode_escape_names_the_line() -> None:
    with pytest.raises(ConfigError, match=r"server.properties:2"):
        parse_properties("a=1\nb=\\u12x4\n", "server.properties")


# -- layering -----------------------------------------------------------------------------


def test_defaults() -> None:
    config = BrokerConfig()
    assert (config.node_id, config.listen_host, config.listen_port) == (1, "127.0.0.1", 9092)
    assert (config.advertised_host, config.advertised_port) == ("127.0.0.1", 9092)
    assert config.data_dir == Path("./moldau-data")
    assert config.num_partitions == 1
    assert config.default_replication_factor == 1
    assert config.auto_create_topics_enable is True
    assert config.message_max_bytes == 1048588
    assert config.socket_request_max_bytes == 104857600
    assert config.log_retention_check_interval_ms == 300000
    assert config.log_flush_scheduler_interval_ms == LONG_MAX
    assert config.offsets_topic_num_partitions == 50
    assert config.offsets_topic_replication_factor == 3
    assert config.group_initial_rebalance_delay_ms == 3000
    assert config.transactional_id_expiration_ms == 604800000
    assert config.producer_id_expiration_ms == 86400000
    assert config.delete_topic_enable is True
    assert config.cluster_id is None
    assert config.flush_on_ack_all is True
    assert config.log_cleaner_enable is True
    assert config.connections_max_idle_ms == 600000
    assert config.static_properties == {}


def test_file_then_sets_in_order_then_flags(tmp_path: Path) -> None:
    text = "num.partitions=3\nnode.id=4\nlog.dirs=/from/file\nlisteners=PLAINTEXT://h:1\n"
    config = load(tmp_path, text, "num.partitions=5", "num.partitions = 6", "node.id=7")
    assert config.num_partitions == 6
    assert config.node_id == 7
    assert config.data_dir == Path("/from/file")
    flagged = load(
        tmp_path,
        text,
        "node.id=7",
        "log.dirs=/from/set",
        "listeners=PLAINTEXT://s:2",
        listen="127.0.0.2:9999",
        data_dir=tmp_path / "flag",
        node_id=9,
    )
    assert flagged.node_id == 9
    assert flagged.data_dir == tmp_path / "flag"
    assert (flagged.listen_host, flagged.listen_port) == ("127.0.0.2", 9999)
    assert flagged.static_properties["listeners"] == "PLAINTEXT://127.0.0.2:9999"


def test_moldau_keys(tmp_path: Path) -> None:
    config = load(tmp_path, None, "moldau.flush.on.acks.all=false", "moldau.cluster.id=abc")
    assert config.flush_on_ack_all is False
    assert config.cluster_id == "abc"


def test_stock_kraft_server_properties_loads(tmp_path: Path) -> None:
    config = load(tmp_path, KRAFT_SERVER_PROPERTIES)
    assert config.node_id == 1
    assert config.listener_name == "PLAINTEXT"
    assert (config.listen_host, config.listen_port) == ("", 9092)  # "" = every interface
    assert (config.advertised_host, config.advertised_port) == ("localhost", 9092)
    assert config.data_dir == Path("/tmp/kraft-combined-logs")
    assert config.offsets_topic_replication_factor == 1
    assert config.transaction_state_log_min_isr == 1
    assert config.default_log_config().retention_ms == 168 * 3_600_000
    assert "num.network.threads" in config.ignored_settings()
    assert "process.roles" in config.ignored_settings()
    assert "num.partitions" not in config.ignored_settings()


def test_zookeeper_era_server_properties_loads(tmp_path: Path) -> None:
    config = load(tmp_path, ZK_SERVER_PROPERTIES)
    assert config.node_id == 0
    assert config.group_initial_rebalance_delay_ms == 0
    assert config.data_dir == Path("/tmp/kafka-logs")
    assert "zookeeper.connect" in config.ignored_settings()


# -- errors -------------------------------------------------------------------------------


def test_unknown_key_names_key_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "num.partitions=2\n\nfoo.bar=1\n")
    message = str(info.value)
    assert "Unknown configuration 'foo.bar'" in message
    assert "server.properties:3" in message
    assert "\n" not in message


def test_unknown_key_hints() -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'num.partitions'"):
        BrokerConfig({"num.partition": "1"})
    with pytest.raises(ConfigError, match=r"topic config, its broker default is log.segment.bytes"):
        BrokerConfig({"segment.bytes": "1"})


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("num.partitions", "abc", "not a number of type INT"),
        ("num.partitions", "0", "at least 1"),
        ("offsets.topic.replication.factor", "40000", "no more than 32767"),
        ("auto.create.topics.enable", "yes", "true or false"),
        ("log.cleanup.policy", "shred", "must be one of"),
        ("log.segment.bytes", "10", "at least 14"),
        ("log.retention.ms", "1.5", "LONG"),
        ("listeners", "localhost:9092", "NAME://host:port"),
        ("listeners", "PLAINTEXT://h:70000", "bad port"),
        ("listeners", "PLAINTEXT://h:1,PLAINTEXT://h:2", "appears twice"),
        ("listeners", "WEIRD://h:1", "no security protocol for listener WEIRD"),
        ("listener.security.protocol.map", "A:TLS", "NAME:PROTOCOL"),
        ("advertised.listeners", "OTHER://h:1", "OTHER is not in listeners"),
        ("advertised.listeners", "PLAINTEXT://0.0.0.0:9092", "nonroutable"),
        ("log.dirs", "/a,/b", "exactly one"),
    ],
)
def test_bad_value_names_the_key(key: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        BrokerConfig({key: value}, origins={key: "--set"})
    message = str(info.value)
    assert key in message
    assert reason in message
    assert "(from --set)" in message


def test_controller_listener_defaults_to_plaintext() -> None:
    config = BrokerConfig(
        {
            "listeners": "CONTROLLER://:9093,PLAINTEXT://:9092",
            "controller.listener.names": "CONTROLLER",
        }
    )
    assert [e.security_protocol for e in config.listeners] == ["PLAINTEXT", "PLAINTEXT"]
    assert config.listen_port == 9092


def test_every_listener_for_controller_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"controller\.listener\.names"):
        BrokerConfig({"listeners": "CONTROLLER://:9093", "controller.listener.names": "CONTROLLER"})


@pytest.mark.parametrize("item", ["num.partitions", "=3", ""])
def test_malformed_set(tmp_path: Path, item: str) -> None:
    with pytest.raises(ConfigError, match=r"Invalid --set .*expected key=value"):
        load(tmp_path, None, item)


def test_bad_listen_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Invalid --listen 'nope'"):
        load(tmp_path, listen="nope")


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Cannot read config file"):
        BrokerConfig.load(tmp_path / "absent", [], listen=None, data_dir=None, node_id=None)


def test_node_id_and_broker_id() -> None:
    assert BrokerConfig({"broker.id": "5"}).node_id == 5
    assert BrokerConfig({"node.id": "5", "broker.id": "5"}).node_id == 5
    with pytest.raises(ConfigError, match=r"node.id \(5\) and broker.id \(6\) must be equal"):
        BrokerConfig({"node.id": "5", "broker.id": "6"})
    assert BrokerConfig({"node.id": "5"}).get("broker.id") == 5


def test_node_id_flag_overrides_both(tmp_path: Path) -> None:
    config = load(tmp_path, "node.id=1\nbroker.id=1\n", node_id=3)
    assert config.node_id == 3
    assert config.get("broker.id") == 3


def test_log_dirs_wins_over_log_dir() -> None:
    assert BrokerConfig({"log.dir": "/d"}).data_dir == Path("/d")
    assert BrokerConfig({"log.dir": "/d", "log.dirs": "/ds"}).data_dir == Path("/ds")


# -- listeners ----------------------------------------------------------------------------


def test_wildcard_and_empty_hosts_advertise_canonical_hostname() -> None:
    for listeners in ("PLAINTEXT://:9092", "PLAINTEXT://0.0.0.0:9092", "PLAINTEXT://[::]:9092"):
        config = BrokerConfig({"listeners": listeners})
        assert config.advertised_host == "broker.example.com", listeners
        assert config.advertised_port == 9092


def test_ipv6_listener() -> None:
    config = BrokerConfig({"listeners": "PLAINTEXT://[::1]:19092"})
    assert (config.listen_host, config.listen_port) == ("::1", 19092)
    assert config.advertised_host == "::1"


def test_client_listener_skips_controller_and_uses_its_advertised_entry() -> None:
    config = BrokerConfig(
        {
            "listeners": "CONTROLLER://:9093,internal://0.0.0.0:9094,EXTERNAL://0.0.0.0:9095",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,INTERNAL:SASL_SSL,"
            "EXTERNAL:PLAINTEXT",
            "advertised.listeners": "EXTERNAL://ext.example:19095,INTERNAL://int.example:19094",
        }
    )
    assert [e.listener_name for e in config.listeners] == ["CONTROLLER", "INTERNAL", "EXTERNAL"]
    assert (config.listener_name, config.security_protocol) == ("INTERNAL", "SASL_SSL")
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 9094)
    assert (config.advertised_host, config.advertised_port) == ("int.example", 19094)
    assert [str(e) for e in config.advertised_listeners] == [
        "EXTERNAL://ext.example:19095",
        "INTERNAL://int.example:19094",
    ]
    assert [e.security_protocol for e in config.advertised_listeners] == ["PLAINTEXT", "SASL_SSL"]


def test_advertised_listeners_default_to_client_listeners() -> None:
    config = BrokerConfig(
        {
            "listeners": "PLAINTEXT://:9092,CONTROLLER://:9093,SSL://[::1]:9094",
            "controller.listener.names": "CONTROLLER",
        }
    )
    assert [str(e) for e in config.advertised_listeners] == [
        "PLAINTEXT://broker.example.com:9092",
        "SSL://[::1]:9094",
    ]


def test_listen_flag_replaces_client_listener_only(tmp_path: Path) -> None:
    config = load(tmp_path, KRAFT_SERVER_PROPERTIES, listen="127.0.0.1:29092")
    assert config.static_properties["listeners"] == (
        "PLAINTEXT://127.0.0.1:29092,CONTROLLER://:9093"
    )
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 29092)
    # advertised.listeners from the file still names PLAINTEXT, so it still wins
    assert (config.advertised_host, config.advertised_port) == ("localhost", 9092)


def test_listen_flag_as_listener_url(tmp_path: Path) -> None:
    config = load(tmp_path, listen="PLAINTEXT://0.0.0.0:0")
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 0)
    assert config.advertised_host == "broker.example.com"


# -- topic defaults -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "retention_ms"),
    [
        ({}, 168 * 3_600_000),
        ({"log.retention.hours": "1"}, 3_600_000),
        ({"log.retention.hours": "1", "log.retention.minutes": "2"}, 120_000),
        ({"log.retention.minutes": "2", "log.retention.ms": "5"}, 5),
        ({"log.retention.ms": "-1", "log.retention.hours": "1"}, -1),
        ({"log.retention.ms": "-7"}, -1),
        ({"log.retention.hours": "-1"}, -1),
    ],
)
def test_retention_precedence(settings: dict[str, str], retention_ms: int) -> None:
    assert BrokerConfig(settings).default_log_config().retention_ms == retention_ms


def test_roll_jitter_and_flush_precedence() -> None:
    config = BrokerConfig({"log.roll.hours": "2", "log.roll.jitter.hours": "1"})
    assert config.default_log_config().segment_ms == 7_200_000
    assert config.default_log_config().segment_jitter_ms == 3_600_000
    config = BrokerConfig(
        {
            "log.roll.hours": "2",
            "log.roll.ms": "1000",
            "log.roll.jitter.hours": "1",
            "log.roll.jitter.ms": "10",
            "log.flush.scheduler.interval.ms": "3000",
        }
    )
    log_config = config.default_log_config()
    assert (log_config.segment_ms, log_config.segment_jitter_ms) == (1000, 10)
    assert log_config.flush_ms == 3000  # log.flush.interval.ms unset → scheduler interval
    both = {"log.flush.scheduler.interval.ms": "3000", "log.flush.interval.ms": "20"}
    assert BrokerConfig(both).default_log_config().flush_ms == 20


def test_default_log_config_named_examples() -> None:
    log_config = BrokerConfig(
        {
            "log.segment.bytes": "1000",
            "message.max.bytes": "2000",
            "log.flush.interval.messages": "3",
            "log.cleanup.policy": "compact, delete",
            "log.message.timestamp.type": "LogAppendTime",
            "log.cleaner.min.cleanable.ratio": "0.25",
        }
    ).default_log_config()
    assert log_config.segment_bytes == 1000
    assert log_config.max_message_bytes == 2000
    assert log_config.flush_messages == 3
    assert log_config.cleanup_policy == "compact,delete"
    assert log_config.log_append_time
    assert log_config.min_cleanable_dirty_ratio == 0.25


def _non_default_value(kind: str, default: object, allowed: tuple[str, ...]) -> str:
    if allowed:
        return next(a for a in allowed if a != default)
    return {"boolean": "false" if default else "true", "double": "0.25"}.get(kind, "12345")


@pytest.mark.parametrize(
    "broker_key",
    sorted(set(broker_default_keys()) - {k.name for k in TIME_KEYS}),
)
def test_every_broker_default_key_sets_its_topic_config(broker_key: str) -> None:
    spec = broker_default_keys()[broker_key]
    raw = _non_default_value(spec.kind, spec.default, spec.allowed)
    value = BrokerConfig({broker_key: raw}).default_log_config().get(spec.name)
    assert value == spec.parse(raw)
    assert value != spec.default


# -- DescribeConfigs ----------------------------------------------------------------------


def _by_name(entries: list[ConfigEntry]) -> dict[str, ConfigEntry]:
    return {entry.name: entry for entry in entries}


def test_describe_broker_sources_types_and_synonyms(tmp_path: Path) -> None:
    config = load(tmp_path, "num.partitions=3\nlog.retention.hours=24\n", "log.roll.ms=5000")
    entries = _by_name(config.describe())
    assert set(entries) == set(BROKER_KEYS)

    partitions = entries["num.partitions"]
    assert (partitions.value, partitions.source, partitions.is_default) == (
        "3",
        ConfigSource.STATIC_BROKER_CONFIG,
        False,
    )
    assert partitions.type == ConfigType.INT
    assert partitions.read_only and not partitions.sensitive
    assert partitions.synonyms == [
        ConfigSynonym("num.partitions", "3", ConfigSource.STATIC_BROKER_CONFIG),
        ConfigSynonym("num.partitions", "1", ConfigSource.DEFAULT_CONFIG),
    ]

    default = entries["auto.create.topics.enable"]
    assert (default.value, default.source, default.is_default) == (
        "true",
        ConfigSource.DEFAULT_CONFIG,
        True,
    )
    assert default.type == ConfigType.BOOLEAN
    assert entries["offsets.topic.replication.factor"].type == ConfigType.SHORT
    assert entries["log.cleanup.policy"].type == ConfigType.LIST
    assert entries["log.cleaner.min.cleanable.ratio"].type == ConfigType.DOUBLE
    assert entries["log.cleaner.min.cleanable.ratio"].value == "0.5"
    assert entries["log.flush.scheduler.interval.ms"].type == ConfigType.LONG

    hours = entries["log.retention.hours"]
    assert hours.source == ConfigSource.STATIC_BROKER_CONFIG
    assert hours.synonyms == [
        ConfigSynonym("log.retention.hours", "24", ConfigSource.STATIC_BROKER_CONFIG),
        ConfigSynonym("log.retention.hours", "168", ConfigSource.DEFAULT_CONFIG),
    ]
    unset = entries["log.retention.ms"]
    assert (unset.value, unset.source, unset.synonyms) == (None, ConfigSource.DEFAULT_CONFIG, [])

    roll = entries["log.roll.ms"]
    assert roll.synonyms == [
        ConfigSynonym("log.roll.ms", "5000", ConfigSource.STATIC_BROKER_CONFIG),
        ConfigSynonym("log.roll.hours", "168", ConfigSource.DEFAULT_CONFIG),
    ]
    assert [e.name for e in config.describe(["num.partitions", "nope"])] == ["num.partitions"]


def test_describe_topic_lists_every_topic_config() -> None:
    entries = BrokerConfig().describe_topic({})
    assert [e.name for e in entries] == sorted(TOPIC_CONFIGS)
    assert all(e.source == ConfigSource.DEFAULT_CONFIG and not e.read_only for e in entries)
    by_name = _by_name(entries)
    assert by_name["retention.ms"].value == "604800000"
    assert by_name["cleanup.policy"].type == ConfigType.LIST
    assert by_name["segment.bytes"].synonyms == [
        ConfigSynonym("log.segment.bytes", "1073741824", ConfigSource.DEFAULT_CONFIG)
    ]


def test_describe_topic_sources_and_synonym_order() -> None:
    config = BrokerConfig({"log.segment.bytes": " 2000 ", "log.retention.ms": "100"})
    entries = _by_name(config.describe_topic({"segment.bytes": "3000", "flush.messages": "9"}))

    overridden = entries["segment.bytes"]
    assert (overridden.value, overridden.source) == ("3000", ConfigSource.TOPIC_CONFIG)
    assert overridden.synonyms == [
        ConfigSynonym("segment.bytes", "3000", ConfigSource.TOPIC_CONFIG),
        ConfigSynonym("log.segment.bytes", "2000", ConfigSource.STATIC_BROKER_CONFIG),
        ConfigSynonym("log.segment.bytes", "1073741824", ConfigSource.DEFAULT_CONFIG),
    ]
    retention = entries["retention.ms"]
    assert (retention.value, retention.source) == ("100", ConfigSource.STATIC_BROKER_CONFIG)
    assert retention.synonyms == [
        ConfigSynonym("log.retention.ms", "100", ConfigSource.STATIC_BROKER_CONFIG),
        ConfigSynonym("log.retention.hours", "168", ConfigSource.DEFAULT_CONFIG),
    ]
    flush = entries["flush.messages"]
    assert flush.source == ConfigSource.TOPIC_CONFIG
    assert [s.source for s in flush.synonyms] == [
        ConfigSource.TOPIC_CONFIG,
        ConfigSource.DEFAULT_CONFIG,
    ]
    untouched = entries["min.insync.replicas"]
    assert (untouched.source, untouched.is_default) == (ConfigSource.DEFAULT_CONFIG, True)


def test_describe_topic_retention_from_hours_is_reported_as_kafka_does() -> None:
    """Kafka's synonym list starts at log.retention.ms, so hours alone reads as a default."""
    entry = _by_name(BrokerConfig({"log.retention.hours": "1"}).describe_topic({}))["retention.ms"]
    assert entry.value == "3600000"
    assert (entry.source, entry.synonyms) == (ConfigSource.DEFAULT_CONFIG, [])


def test_describe_topic_rejects_unknown_override() -> None:
    with pytest.raises(ConfigError):
        BrokerConfig().describe_topic({"no.such.config": "1"})


def test_as_properties() -> None:
    properties = BrokerConfig(
        {"num.partitions": "4", "log.cleanup.policy": "compact"}
    ).as_properties()
    assert properties["num.partitions"] == "4"
    assert properties["log.cleanup.policy"] == "compact"
    assert properties["log.retention.hours"] == "168"
    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert "log.retention.ms" not in properties  # unset, no default
    assert set(properties) <= set(BROKER_KEYS)
