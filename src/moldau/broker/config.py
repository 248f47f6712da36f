"""Broker configuration: Kafka's ``server.properties`` keys, loaded, validated and described.

A broker's configuration is built in layers, each overriding the one before: the defaults in
``config_defs.BROKER_KEYS``, then ``--config FILE`` (Java properties syntax), then each
``--set key=value`` in order, then the CLI flags ``--listen``/``--data-dir``/``--node-id``,
which are shorthands for ``listeners``/``log.dirs``/``node.id``. Every layer above the
defaults is what Kafka calls the *static* broker config: DescribeConfigs reports those keys
with source STATIC_BROKER_CONFIG and everything else as DEFAULT_CONFIG.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import socket
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from moldau.broker.config_defs import (
    BROKER_KEYS,
    CONFIG_TYPES,
    SECURITY_PROTOCOLS,
    ConfigSource,
    ConfigType,
    broker_synonym_names,
)
from moldau.broker.properties import read_properties
from moldau.log.config import TOPIC_CONFIGS, ConfigError, LogConfig, broker_default_keys

__all__ = [
    "BrokerConfig",
    "ConfigEntry",
    "ConfigError",
    "ConfigSource",
    "ConfigSynonym",
    "ConfigType",
    "Endpoint",
]

# -- listeners ------------------------------------------------------------------------------

_ENDPOINT = re.compile(r"^([A-Za-z0-9_-]+)://\[?([0-9A-Za-z\-%._:]*?)\]?:(-?[0-9]+)$")
_HOST_PORT = re.compile(r"^\[?([0-9A-Za-z\-%._:]*?)\]?:([0-9]+)$")
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")
LISTENER_PREFIX = "listener.name."
"""Prefix of per-listener overrides: ``listener.name.<listener>.<key>`` (see
``BrokerConfig.listener_value``)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One ``NAME://host:port`` listener; ``host`` ``""`` means every interface."""

    listener_name: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.listener_name}://{host}:{self.port}"


def _parse_endpoints(text: str, key: str, protocols: Mapping[str, str]) -> tuple[Endpoint, ...]:
    endpoints: list[Endpoint] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        match = _ENDPOINT.match(item)
        if match is None:
            raise ConfigError(
                f"Invalid value {text!r} for configuration {key}: {item!r} is not NAME://host:port"
            )
        name, host, port = match.group(1).upper(), match.group(2), int(match.group(3))
        if not 0 <= port <= 65535:
            raise ConfigError(f"Invalid value {text!r} for configuration {key}: bad port {port}")
        if any(e.listener_name == name for e in endpoints):
            raise ConfigError(
                f"Invalid value {text!r} for configuration {key}: listener {name} appears twice"
            )
        if protocols and name not in protocols:
            raise ConfigError(
                f"Invalid value {text!r} for configuration {key}: no security protocol for "
                f"listener {name} in listener.security.protocol.map"
            )
        endpoints.append(Endpoint(name, host, port, protocols.get(name, "PLAINTEXT")))
    if not endpoints:
        raise ConfigError(f"Invalid value {text!r} for configuration {key}: no listener")
    return tuple(endpoints)


def _parse_protocol_map(text: str) -> dict[str, str]:
    key = "listener.security.protocol.map"
    protocols: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, protocol = item.partition(":")
        protocol = protocol.strip().upper()
        if not sep or not name.strip() or protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"Invalid value {text!r} for configuration {key}: {item!r} is not NAME:PROTOCOL "
                f"with PROTOCOL one of {', '.join(SECURITY_PROTOCOLS)}"
            )
        protocols[name.strip().upper()] = protocol
    return protocols


def _names(text: str | None) -> list[str]:
    return [part.strip().upper() for part in (text or "").split(",") if part.strip()]


def _lower_names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """A list setting's entries, trimmed and lower-cased (assignor names)."""
    parts = value.split(",") if isinstance(value, str) else (value or ())
    return tuple(part.strip().lower() for part in parts if part.strip())


def _client_listener(endpoints: Sequence[Endpoint], controller_names: Collection[str]) -> int:
    """Index of the listener clients use: the first one that is not a controller listener."""
    for index, endpoint in enumerate(endpoints):
        if endpoint.listener_name not in controller_names:
            return index
    raise ConfigError(
        "Invalid value for configuration listeners: every listener is in "
        "controller.listener.names, none is left for clients"
    )


def _apply_listen(listen: str, properties: Mapping[str, str]) -> str:
    """The ``listeners`` value after ``--listen``: a full listener list, or host:port for the
    client listener (keeping its name, so advertised.listeners still matches it)."""
    if "://" in listen:
        return listen
    match = _HOST_PORT.match(listen.strip())
    if match is None:
        raise ConfigError(f"Invalid --listen {listen!r}: expected host:port")
    current_text = properties.get("listeners", BROKER_KEYS["listeners"].default)
    current = list(_parse_endpoints(current_text, "listeners", {}))
    index = _client_listener(current, _names(properties.get("controller.listener.names")))
    current[index] = Endpoint(current[index].listener_name, match.group(1), int(match.group(2)))
    return ",".join(str(endpoint) for endpoint in current)


# -- DescribeConfigs entries ----------------------------------------------------------------


class ConfigSynonym(NamedTuple):
    """One place a value could come from, highest priority first (DescribeConfigs v1+)."""

    name: str
    value: str | None
    source: int


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One config in a DescribeConfigs result, in the response's own terms.

    ``value`` is None for sensitive configs and for keys without a value; ``source`` is a
    ``ConfigSource`` and ``type`` a ``ConfigType`` number; ``is_default`` is what v0 reports.
    """

    name: str
    value: str | None
    source: int
    read_only: bool
    is_default: bool
    sensitive: bool
    synonyms: list[ConfigSynonym]
    type: int
    documentation: str | None


# Keys whose topic-config value is computed from a group of synonyms, not copied.
_RETENTION = ("log.retention.ms", "log.retention.minutes", "log.retention.hours")
_ROLL = ("log.roll.ms", "log.roll.hours")
_JITTER = ("log.roll.jitter.ms", "log.roll.jitter.hours")
_MS_PER_MINUTE = 60_000
_MS_PER_HOUR = 3_600_000


class BrokerConfig:
    """The effective configuration of one broker, immutable once built.

    Build it with ``load()`` (the CLI's layers) or ``BrokerConfig(properties)`` with
    ``server.properties`` keys as strings; either way every key is checked against
    ``BROKER_KEYS`` and a problem raises ``ConfigError`` with one line naming the key (and
    the file line or flag it came from). The typed attributes are what the broker and the
    coordinators read; ``get(key)`` reaches any other key. ``describe()`` and
    ``describe_topic()`` answer DescribeConfigs exactly as Kafka's ``ConfigHelper`` does,
    including its synonym lists (see ``_synonyms``).

    Precedence between synonyms is Kafka's: ``node.id`` = ``broker.id`` (must agree if both
    are set), ``log.dirs`` > ``log.dir``, ``log.retention.ms`` > ``.minutes`` > ``.hours``
    (negative = keep forever), ``log.roll.ms`` > ``log.roll.hours``, ``log.roll.jitter.ms``
    > ``.hours``, ``log.flush.interval.ms`` > ``log.flush.scheduler.interval.ms``.

    Listeners: ``listeners`` holds every bound endpoint; the *client listener* (``listen_*``,
    ``listener_name``, ``security_protocol``) is the first one not in
    ``controller.listener.names``. ``advertised_listeners`` is ``advertised.listeners`` or,
    unset, the non-controller listeners; ``advertised_host``/``advertised_port`` are its entry
    named like the client listener, else the client listener itself. An empty host becomes
    this machine's canonical host name, as in Kafka. Kafka refuses a wildcard listener with
    no advertised.listeners; moldau advertises the canonical host name for ``0.0.0.0``/``::``
    too, so that ``--listen 0.0.0.0:9092`` just works, but still refuses ``0.0.0.0`` written
    into advertised.listeners. A listen port of 0 (ephemeral) is advertised as 0: the server
    must substitute the port it bound.
    """

    node_id: int
    listeners: tuple[Endpoint, ...]
    advertised_listeners: tuple[Endpoint, ...]
    listener_name: str
    security_protocol: str
    listen_host: str
    listen_port: int
    advertised_host: str
    advertised_port: int
    data_dir: Path
    cluster_id: str | None
    num_partitions: int
    default_replication_factor: int
    auto_create_topics_enable: bool
    delete_topic_enable: bool
    message_max_bytes: int
    socket_request_max_bytes: int
    connections_max_idle_ms: int
    log_retention_check_interval_ms: int
    log_flush_scheduler_interval_ms: int
    log_cleaner_enable: bool
    log_cleaner_backoff_ms: int
    log_cleaner_threads: int
    log_cleaner_dedupe_buffer_size: int
    log_cleaner_io_max_bytes_per_second: float
    metrics_listen: tuple[str, int] | None
    flush_on_ack_all: bool
    offsets_topic_num_partitions: int
    offsets_topic_replication_factor: int
    offsets_topic_segment_bytes: int
    offsets_retention_minutes: int
    offsets_retention_check_interval_ms: int
    group_initial_rebalance_delay_ms: int
    group_min_session_timeout_ms: int
    group_max_session_timeout_ms: int
    group_max_size: int
    group_consumer_heartbeat_interval_ms: int
    group_consumer_session_timeout_ms: int
    group_consumer_max_size: int
    group_consumer_assignors: tuple[str, ...]
    transaction_state_log_num_partitions: int
    transaction_state_log_replication_factor: int
    transaction_state_log_min_isr: int
    transaction_state_log_segment_bytes: int
    transaction_max_timeout_ms: int
    transactional_id_expiration_ms: int
    transaction_abort_timed_out_transaction_cleanup_interval_ms: int
    transaction_remove_expired_transaction_cleanup_interval_ms: int
    producer_id_expiration_ms: int
    producer_id_expiration_check_interval_ms: int
    broker_rack: str | None
    metadata_endpoints: tuple[str, ...]
    """etcd endpoints as ``http://host:port``; empty for a single-node broker."""
    etcd_prefix: str
    etcd_startup_timeout_ms: int
    broker_session_timeout_ms: int
    broker_heartbeat_interval_ms: int
    replica_lag_time_max_ms: int
    replica_fetch_wait_max_ms: int
    replica_fetch_min_bytes: int
    replica_fetch_max_bytes: int
    replica_fetch_response_max_bytes: int
    replica_fetch_backoff_ms: int
    auto_leader_rebalance_enable: bool
    leader_imbalance_check_interval_seconds: int
    controlled_shutdown_enable: bool
    controlled_shutdown_timeout_ms: int

    def __init__(
        self,
        properties: Mapping[str, str] | None = None,
        *,
        origins: Mapping[str, str] | None = None,
    ) -> None:
        self._origins = dict(origins or {})
        self._static: dict[str, str] = {}
        self._values: dict[str, Any] = {name: key.default for name, key in BROKER_KEYS.items()}
        self._listener_overrides: dict[str, dict[str, Any]] = {}
        for name, raw in (properties or {}).items():
            if name.startswith(LISTENER_PREFIX):
                self._set_listener_override(name, raw)
                continue
            key = BROKER_KEYS.get(name)
            if key is None:
                raise ConfigError(_unknown_key_message(name) + self._where(name))
            try:
                self._values[name] = key.parse(raw)
            except ConfigError as exc:
                raise ConfigError(f"{exc}{self._where(name)}") from None
            self._static[name] = raw.strip()
        self._resolve_node_id()
        self._resolve_listeners()
        self._resolve_data_dir()
        self._log_config = self._build_log_config()

        value = self._values
        self.cluster_id = value["moldau.cluster.id"] or None
        self.num_partitions = value["num.partitions"]
        self.default_replication_factor = value["default.replication.factor"]
        self.auto_create_topics_enable = value["auto.create.topics.enable"]
        self.delete_topic_enable = value["delete.topic.enable"]
        self.message_max_bytes = value["message.max.bytes"]
        self.socket_request_max_bytes = value["socket.request.max.bytes"]
        self.connections_max_idle_ms = value["connections.max.idle.ms"]
        self.log_retention_check_interval_ms = value["log.retention.check.interval.ms"]
        self.log_flush_scheduler_interval_ms = value["log.flush.scheduler.interval.ms"]
        self.log_cleaner_enable = value["log.cleaner.enable"]
        self.log_cleaner_backoff_ms = value["log.cleaner.backoff.ms"]
        self.log_cleaner_threads = value["log.cleaner.threads"]
        self.log_cleaner_dedupe_buffer_size = value["log.cleaner.dedupe.buffer.size"]
        self.log_cleaner_io_max_bytes_per_second = value["log.cleaner.io.max.bytes.per.second"]
        self.metrics_listen = self._host_port("metrics.listen")
        self.flush_on_ack_all = value["moldau.flush.on.acks.all"]
        self.offsets_topic_num_partitions = value["offsets.topic.num.partitions"]
        self.offsets_topic_replication_factor = value["offsets.topic.replication.factor"]
        self.offsets_topic_segment_bytes = value["offsets.topic.segment.bytes"]
        self.offsets_retention_minutes = value["offsets.retention.minutes"]
        self.offsets_retention_check_interval_ms = value["offsets.retention.check.interval.ms"]
        self.group_initial_rebalance_delay_ms = value["group.initial.rebalance.delay.ms"]
        self.group_min_session_timeout_ms = value["group.min.session.timeout.ms"]
        self.group_max_session_timeout_ms = value["group.max.session.timeout.ms"]
        self.group_max_size = value["group.max.size"]
        self.group_consumer_heartbeat_interval_ms = value["group.consumer.heartbeat.interval.ms"]
        self.group_consumer_session_timeout_ms = value["group.consumer.session.timeout.ms"]
        self.group_consumer_max_size = value["group.consumer.max.size"]
        self.group_consumer_assignors = _lower_names(value["group.consumer.assignors"])
        self.transaction_state_log_num_partitions = value["transaction.state.log.num.partitions"]
        self.transaction_state_log_replication_factor = value[
            "transaction.state.log.replication.factor"
        ]
        self.transaction_state_log_min_isr = value["transaction.state.log.min.isr"]
        self.transaction_state_log_segment_bytes = value["transaction.state.log.segment.bytes"]
        self.transaction_max_timeout_ms = value["transaction.max.timeout.ms"]
        self.transactional_id_expiration_ms = value["transactional.id.expiration.ms"]
        self.transaction_abort_timed_out_transaction_cleanup_interval_ms = value[
            "transaction.abort.timed.out.transaction.cleanup.interval.ms"
        ]
        self.transaction_remove_expired_transaction_cleanup_interval_ms = value[
            "transaction.remove.expired.transaction.cleanup.interval.ms"
        ]
        self.producer_id_expiration_ms = value["producer.id.expiration.ms"]
        self.producer_id_expiration_check_interval_ms = value[
            "producer.id.expiration.check.interval.ms"
        ]
        self.broker_rack = value["broker.rack"] or None
        self.metadata_endpoints = _etcd_endpoints(value["moldau.metadata"], self._where)
        self.etcd_prefix = "/" + str(value["moldau.etcd.prefix"]).strip("/")
        self.etcd_startup_timeout_ms = value["moldau.etcd.startup.timeout.ms"]
        self.broker_session_timeout_ms = value["broker.session.timeout.ms"]
        self.broker_heartbeat_interval_ms = value["broker.heartbeat.interval.ms"]
        self.replica_lag_time_max_ms = value["replica.lag.time.max.ms"]
        self.replica_fetch_wait_max_ms = value["replica.fetch.wait.max.ms"]
        self.replica_fetch_min_bytes = value["replica.fetch.min.bytes"]
        self.replica_fetch_max_bytes = value["replica.fetch.max.bytes"]
        self.replica_fetch_response_max_bytes = value["replica.fetch.response.max.bytes"]
        self.replica_fetch_backoff_ms = value["replica.fetch.backoff.ms"]
        self.auto_leader_rebalance_enable = value["auto.leader.rebalance.enable"]
        self.leader_imbalance_check_interval_seconds = value[
            "leader.imbalance.check.interval.seconds"
        ]
        self.controlled_shutdown_enable = value["controlled.shutdown.enable"]
        self.controlled_shutdown_timeout_ms = value["moldau.controlled.shutdown.timeout.ms"]

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        config_file: Path | None,
        overrides: Sequence[str],
        *,
        listen: str | None,
        data_dir: Path | None,
        node_id: int | None,
    ) -> BrokerConfig:
        """Defaults ← ``config_file`` ← each ``--set key=value`` ← the CLI flags."""
        properties: dict[str, str] = {}
        origins: dict[str, str] = {}
        if config_file is not None:
            for key, value, line_number in read_properties(config_file):
                properties[key] = value
                origins[key] = f"{config_file}:{line_number}"
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"Invalid --set {item!r}: expected key=value")
            properties[key.strip()] = value.strip()
            origins[key.strip()] = "--set"
        if node_id is not None:
            for key in ("node.id", "broker.id"):
                if key == "node.id" or key in properties:
                    properties[key] = str(node_id)
                    origins[key] = "--node-id"
        if data_dir is not None:
            properties["log.dirs"] = str(data_dir)
            origins["log.dirs"] = "--data-dir"
        if listen is not None:
            properties["listeners"] = _apply_listen(listen, properties)
            origins["listeners"] = "--listen"
        return cls(properties, origins=origins)

    def _set_listener_override(self, name: str, raw: str) -> None:
        """``listener.name.<listener>.<key>``: Kafka's per-listener override of a broker key.

        The listener part is lower case in Kafka (``listener.name.sasl_ssl.``); it is matched
        case-insensitively. ``<key>`` is a broker key, or ``<mechanism>.sasl.jaas.config``
        (Kafka's per-mechanism JAAS config, e.g. ``plain.sasl.jaas.config``), kept as text.
        """
        rest = name[len(LISTENER_PREFIX) :]
        listener, _, key_name = rest.partition(".")
        if not listener or not key_name:
            raise ConfigError(f"Unknown configuration {name!r}" + self._where(name))
        key = BROKER_KEYS.get(key_name)
        if key is not None:
            try:
                value: Any = key.parse(raw)
            except ConfigError as exc:
                raise ConfigError(f"{exc} (as {name}){self._where(name)}") from None
        elif key_name.endswith(".sasl.jaas.config") and key_name.count(".") == 3:
            value = raw.strip()
        else:
            raise ConfigError(
                f"Unknown configuration {name!r}: {key_name!r} is not a broker key"
                + self._where(name)
            )
        self._listener_overrides.setdefault(listener.lower(), {})[key_name] = value

    def listener_value(self, listener_name: str, name: str) -> Any:
        """The value of ``name`` on one listener: ``listener.name.<listener>.<name>`` when set,
        else the broker-wide value of ``name`` (None for an unset per-mechanism JAAS key)."""
        overrides = self._listener_overrides.get(listener_name.lower(), {})
        if name in overrides:
            return overrides[name]
        return self._values[name] if name in BROKER_KEYS else None

    def _where(self, name: str) -> str:
        origin = self._origins.get(name)
        return f" (from {origin})" if origin else ""

    def _resolve_node_id(self) -> None:
        """node.id and broker.id name one id; as Kafka does, each one set fills the other."""
        node, broker = self._static.get("node.id"), self._static.get("broker.id")
        if node is not None and broker is not None:
            if self._values["node.id"] != self._values["broker.id"]:
                raise ConfigError(
                    f"node.id ({node}) and broker.id ({broker}) must be equal"
                    + self._where("node.id")
                )
        elif node is not None:
            self._static["broker.id"] = node
            self._values["broker.id"] = self._values["node.id"]
        elif broker is not None:
            self._static["node.id"] = broker
            self._values["node.id"] = self._values["broker.id"]
        self.node_id = self._values["node.id"]

    def _host_port(self, name: str) -> tuple[str, int] | None:
        """A ``host:port`` value (None when empty: the endpoint is off)."""
        raw = (self._values[name] or "").strip()
        if not raw:
            return None
        host, sep, port = raw.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigError(
                f"Invalid value {raw} for configuration {name}: expected host:port"
                f"{self._where(name)}"
            )
        return host.strip("[]") or "0.0.0.0", int(port)

    def _resolve_listeners(self) -> None:
        value = self._values
        try:
            protocols = _parse_protocol_map(value["listener.security.protocol.map"])
        except ConfigError as exc:
            raise ConfigError(f"{exc}{self._where('listener.security.protocol.map')}") from None
        controller_names = _names(value["controller.listener.names"])
        if "listener.security.protocol.map" not in self._static:
            # As Kafka: with the default map, controller listeners speak PLAINTEXT.
            protocols.update((name, "PLAINTEXT") for name in controller_names)
        try:
            listeners = _parse_endpoints(value["listeners"], "listeners", protocols)
            index = _client_listener(listeners, controller_names)
        except ConfigError as exc:
            raise ConfigError(f"{exc}{self._where('listeners')}") from None
        client = listeners[index]
        bound = {endpoint.listener_name: endpoint for endpoint in listeners}
        if value["advertised.listeners"] is None:
            advertised = [e for e in listeners if e.listener_name not in controller_names]
        else:
            where = self._where("advertised.listeners")
            try:
                advertised = list(
                    _parse_endpoints(value["advertised.listeners"], "advertised.listeners", {})
                )
            except ConfigError as exc:
                raise ConfigError(f"{exc}{where}") from None
            for endpoint in advertised:
                if endpoint.listener_name not in bound:
                    raise ConfigError(
                        f"Invalid value for configuration advertised.listeners: listener "
                        f"{endpoint.listener_name} is not in listeners{where}"
                    )
                if endpoint.host == "0.0.0.0":
                    raise ConfigError(
                        "Invalid value for configuration advertised.listeners: cannot use the "
                        f"nonroutable meta-address 0.0.0.0{where}"
                    )
        self.advertised_listeners = tuple(
            dataclasses.replace(
                endpoint,
                host=socket.getfqdn() if endpoint.host in _WILDCARD_HOSTS else endpoint.host,
                security_protocol=bound[endpoint.listener_name].security_protocol,
            )
            for endpoint in advertised
        )
        mine = [e for e in self.advertised_listeners if e.listener_name == client.listener_name]
        if mine:
            self.advertised_host, self.advertised_port = mine[0].host, mine[0].port
        else:
            host = socket.getfqdn() if client.host in _WILDCARD_HOSTS else client.host
            self.advertised_host, self.advertised_port = host, client.port
        self.listeners = listeners
        self.listener_name = client.listener_name
        self.security_protocol = client.security_protocol
        self.listen_host = client.host
        self.listen_port = client.port

    def _resolve_data_dir(self) -> None:
        key = "log.dirs" if self._values["log.dirs"] is not None else "log.dir"
        raw = self._values[key]
        dirs = [part.strip() for part in raw.split(",") if part.strip()]
        if len(dirs) != 1:
            raise ConfigError(
                f"Invalid value {raw!r} for configuration {key}: moldau keeps all partitions "
                f"in one directory, give exactly one{self._where(key)}"
            )
        self.data_dir = Path(dirs[0])

    def _first_ms(self, names: Sequence[str], units_ms: Sequence[int]) -> int:
        """The first set key of a synonym group, converted to milliseconds."""
        for name, unit_ms in zip(names, units_ms, strict=True):
            value = self._values[name]
            if value is not None:
                return int(value) * unit_ms
        raise AssertionError(f"{names[-1]} has a default")

    def _build_log_config(self) -> LogConfig:
        """Every broker key that defaults a topic config, applied to Kafka's topic defaults."""
        retention_ms = self._first_ms(_RETENTION, (1, _MS_PER_MINUTE, _MS_PER_HOUR))
        computed = {
            "log.retention.ms": -1 if retention_ms < 0 else retention_ms,
            "log.roll.ms": self._first_ms(_ROLL, (1, _MS_PER_HOUR)),
            "log.roll.jitter.ms": self._first_ms(_JITTER, (1, _MS_PER_HOUR)),
            "log.flush.interval.ms": self._first_ms(
                ("log.flush.interval.ms", "log.flush.scheduler.interval.ms"), (1, 1)
            ),
        }
        defaults: dict[str, str] = {}
        for broker_name, spec in broker_default_keys().items():
            value = computed[broker_name] if broker_name in computed else self._values[broker_name]
            defaults[spec.name] = spec.render(value)
        return LogConfig().with_overrides(defaults)

    # -- reading ----------------------------------------------------------------------------

    def get(self, name: str) -> Any:
        """The parsed value of any broker key (None when unset and without default)."""
        if name not in BROKER_KEYS:
            raise ConfigError(_unknown_key_message(name))
        return self._values[name]

    def default_log_config(self) -> LogConfig:
        """The broker-wide topic defaults: what a topic without overrides runs with."""
        return self._log_config

    @property
    def static_properties(self) -> Mapping[str, str]:
        """The keys set by file, ``--set`` or flags (both of node.id/broker.id if one was)."""
        return dict(self._static)

    def ignored_settings(self) -> list[str]:
        """Keys that were set but that moldau accepts without acting on them."""
        return sorted(name for name in self._static if BROKER_KEYS[name].ignored)

    def as_properties(self) -> dict[str, str]:
        """Every key with a value, as ``server.properties`` would spell it; passwords hidden."""
        properties: dict[str, str] = {}
        for name, key in BROKER_KEYS.items():
            rendered = key.render(self._values[name])
            if rendered is not None:
                properties[name] = "[hidden]" if key.sensitive else rendered
        return properties

    def __repr__(self) -> str:
        shown = {
            name: "[hidden]" if BROKER_KEYS[name].sensitive else raw
            for name, raw in self._static.items()
        }
        return f"BrokerConfig({shown!r})"

    # -- DescribeConfigs --------------------------------------------------------------------

    def _synonyms(self, name: str, sensitive: bool) -> list[ConfigSynonym]:
        """Kafka's ``ConfigHelper.configSynonyms`` for a single static broker config.

        The group's set keys (STATIC_BROKER_CONFIG, raw strings as written), then the group's
        keys that have a default (DEFAULT_CONFIG), then everything before the first entry
        for ``name`` itself is dropped. That last step is why Kafka reports
        ``retention.ms`` with source DEFAULT_CONFIG and no synonyms when only
        ``log.retention.hours`` is set: the value is right, the source says default. moldau
        copies that so clients see what a Kafka broker would tell them.
        """
        group = broker_synonym_names(name)
        found = [
            ConfigSynonym(
                n, None if sensitive else self._static[n], ConfigSource.STATIC_BROKER_CONFIG
            )
            for n in group
            if n in self._static
        ]
        for n in group:
            key = BROKER_KEYS[n]
            if key.default is not None:
                shown = None if sensitive else key.render(key.default)
                found.append(ConfigSynonym(n, shown, ConfigSource.DEFAULT_CONFIG))
        while found and found[0].name != name:
            found.pop(0)
        return found

    def describe(self, names: Collection[str] | None = None) -> list[ConfigEntry]:
        """DescribeConfigs for this broker's BROKER resource (``names`` None = every key).

        Every key is read-only: moldau has no dynamic broker configs, so none can be changed
        with (Incremental)AlterConfigs (Kafka marks its dynamic keys writable instead).
        """
        entries: list[ConfigEntry] = []
        for name, key in BROKER_KEYS.items():
            if names is not None and name not in names:
                continue
            synonyms = self._synonyms(name, key.sensitive)
            source = synonyms[0].source if synonyms else ConfigSource.DEFAULT_CONFIG
            entries.append(
                ConfigEntry(
                    name=name,
                    value=None if key.sensitive else key.render(self._values[name]),
                    source=source,
                    read_only=True,
                    is_default=source == ConfigSource.DEFAULT_CONFIG,
                    sensitive=key.sensitive,
                    synonyms=synonyms,
                    type=key.config_type,
                    documentation=key.doc or None,
                )
            )
        return entries

    def describe_topic(
        self, overrides: Mapping[str, str], names: Collection[str] | None = None
    ) -> list[ConfigEntry]:
        """DescribeConfigs for a TOPIC resource: every topic config, effective value, source.

        Synonyms run from the topic override (TOPIC_CONFIG) to the broker key that defaults
        it (STATIC_BROKER_CONFIG if set, then its DEFAULT_CONFIG), as Kafka lists them.
        """
        effective = self._log_config.with_overrides(overrides)
        entries: list[ConfigEntry] = []
        for name in sorted(TOPIC_CONFIGS):
            if names is not None and name not in names:
                continue
            spec = TOPIC_CONFIGS[name]
            value = spec.render(effective.get(name))
            synonyms: list[ConfigSynonym] = []
            if name in overrides:
                synonyms.append(ConfigSynonym(name, value, ConfigSource.TOPIC_CONFIG))
            if spec.broker_key is not None:
                synonyms += self._synonyms(spec.broker_key, False)
            source = synonyms[0].source if synonyms else ConfigSource.DEFAULT_CONFIG
            entries.append(
                ConfigEntry(
                    name=name,
                    value=value,
                    source=source,
                    read_only=False,
                    is_default=source == ConfigSource.DEFAULT_CONFIG,
                    sensitive=False,
                    synonyms=synonyms,
                    type=CONFIG_TYPES[spec.kind],
                    documentation=spec.doc or None,
                )
            )
        return entries


def _unknown_key_message(name: str) -> str:
    message = f"Unknown configuration {name!r}"
    topic = TOPIC_CONFIGS.get(name)
    if topic is not None and topic.broker_key is not None and topic.broker_key != name:
        return f"{message}: {name} is a topic config, its broker default is {topic.broker_key}"
    close = difflib.get_close_matches(name, BROKER_KEYS, n=1, cutoff=0.8)
    return f"{message} (did you mean {close[0]!r}?)" if close else message


def _etcd_endpoints(raw: str | None, where: Callable[[str], str]) -> tuple[str, ...]:
    """``etcd://h1:p1,h2:p2`` → ``("http://h1:p1", "http://h2:p2")``; None/empty → ()."""
    if raw is None or not raw.strip():
        return ()
    text = raw.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("etcd", "http"):
        raise ConfigError(
            f"Invalid value {text} for configuration moldau.metadata: expected "
            f"etcd://HOST:PORT[,HOST:PORT]{where('moldau.metadata')}"
        )
    endpoints: list[str] = []
    for item in rest.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"Invalid value {text} for configuration moldau.metadata: {item.strip()!r} is "
                f"not HOST:PORT{where('moldau.metadata')}"
            )
        endpoints.append(f"http://{host}:{int(port)}")
    return tuple(endpoints)
