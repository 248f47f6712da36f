"""The broker's configuration keys: Kafka's ``server.properties`` names, types and defaults.

``BROKER_KEYS`` is the one table that loading, validation, ``as_properties()`` and
DescribeConfigs on the BROKER resource read, so supporting a key is one row here plus, when the
broker acts on it, one typed attribute on ``BrokerConfig``. The keys that only default a topic
config (``log.segment.bytes`` → ``segment.bytes``) are not written out: they are derived from
``moldau.log.config.TOPIC_CONFIGS``, so a topic config added there is accepted on the broker
too, with the same checks, under its broker name.

Defaults are Kafka's except where moldau deliberately differs (each such row says so): the
listener binds loopback, data lives in ``./moldau-data`` and the node id is 1, so that a bare
``moldau broker`` is a working single-node broker rather than one that asks to be configured.

Rows marked ``ignored`` are accepted so that a stock Kafka ``server.properties`` loads (thread
pools, socket buffers, KRaft quorum and ZooKeeper settings, internal-topic replication for
features moldau lacks), but nothing in moldau reads them; ``BrokerConfig.ignored_settings()``
lists the ones a file actually set, so the broker can say so at start-up.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moldau.log.config import LONG_MAX, ConfigDef, ConfigError, broker_default_keys

INT_MAX = 2**31 - 1
SHORT_MAX = 2**15 - 1
DOUBLE_MAX = 1.7976931348623157e308


class ConfigSource(enum.IntEnum):
    """Where a value came from, as DescribeConfigs (v1+) reports it (Kafka's ``ConfigSource``).

    moldau has no dynamic broker configs, so only TOPIC_CONFIG, STATIC_BROKER_CONFIG and
    DEFAULT_CONFIG occur today; the others are listed so handlers can name every wire value.
    """

    UNKNOWN = 0
    TOPIC_CONFIG = 1
    DYNAMIC_BROKER_CONFIG = 2
    DYNAMIC_DEFAULT_BROKER_CONFIG = 3
    STATIC_BROKER_CONFIG = 4
    DEFAULT_CONFIG = 5
    DYNAMIC_BROKER_LOGGER_CONFIG = 6
    CLIENT_METRICS_CONFIG = 7
    GROUP_CONFIG = 8


class ConfigType(enum.IntEnum):
    """A config's data type in DescribeConfigsResponse v3+ (Kafka's ``ConfigType``)."""

    UNKNOWN = 0
    BOOLEAN = 1
    STRING = 2
    INT = 3
    SHORT = 4
    LONG = 5
    DOUBLE = 6
    LIST = 7
    CLASS = 8
    PASSWORD = 9


CONFIG_TYPES: Mapping[str, ConfigType] = {
    "boolean": ConfigType.BOOLEAN,
    "string": ConfigType.STRING,
    "int": ConfigType.INT,
    "short": ConfigType.SHORT,
    "long": ConfigType.LONG,
    "double": ConfigType.DOUBLE,
    "list": ConfigType.LIST,
    "class": ConfigType.CLASS,
    "password": ConfigType.PASSWORD,
}
"""Kind names (``ConfigDef.kind`` plus short/class/password) to their wire type."""

# How a broker kind is parsed by the shared ConfigDef machinery: a short is an int with a
# narrower range, a class or password is a string.
_PARSE_KINDS = {"short": "int", "class": "string", "password": "string"}

_NUMBER_KINDS = {"int": "INT", "short": "SHORT", "long": "LONG", "double": "DOUBLE"}


@dataclass(frozen=True, slots=True)
class BrokerKey:
    """One broker config key: name, kind, Kafka default (``None`` = unset), checks, doc.

    ``kind`` is a ``CONFIG_TYPES`` name. ``ignored`` marks keys accepted for compatibility that
    moldau does not act on. Parsing reuses ``ConfigDef`` so broker and topic configs refuse
    bad values with the same wording.
    """

    name: str
    kind: str
    default: Any
    doc: str
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] = ()
    ignored: bool = False

    @property
    def config_type(self) -> ConfigType:
        return CONFIG_TYPES[self.kind]

    @property
    def sensitive(self) -> bool:
        """Passwords are never shown: DescribeConfigs returns their value as null."""
        return self.kind == "password"

    def parse(self, raw: str) -> Any:
        """Parse and check a string value; raise ConfigError naming this key."""
        number_kind = _NUMBER_KINDS.get(self.kind)
        if number_kind is not None:
            convert = float if self.kind == "double" else int
            try:
                convert(raw.strip())
            except ValueError:
                raise ConfigError(
                    f"Invalid value {raw!r} for configuration {self.name}: "
                    f"not a number of type {number_kind}"
                ) from None
        spec = ConfigDef(
            self.name,
            None,
            _PARSE_KINDS.get(self.kind, self.kind),
            self.default,
            self.allowed,
            self.minimum,
            self.doc,
        )
        value = spec.parse(raw)
        limit = SHORT_MAX if self.kind == "short" else self.maximum
        if limit is not None and value > limit:
            raise ConfigError(
                f"Invalid value {raw!r} for configuration {self.name}: "
                f"Value must be no more than {limit:g}"
            )
        return value

    def render(self, value: Any) -> str | None:
        """The value as Kafka prints it (lists comma-joined, booleans lower case)."""
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return repr(value)
        return str(value)


def _k(
    name: str,
    kind: str,
    default: Any,
    doc: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    allowed: tuple[str, ...] = (),
    ignored: bool = False,
) -> BrokerKey:
    return BrokerKey(name, kind, default, doc, minimum, maximum, allowed, ignored)


def _ignored(name: str, kind: str, default: Any, doc: str, **checks: Any) -> BrokerKey:
    return _k(
        name,
        kind,
        default,
        doc + " Accepted for compatibility; moldau ignores it.",
        ignored=True,
        **checks,
    )


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")

# Broker keys with no default of their own, that defer to a coarser synonym (hours, minutes)
# or to another key: their topic config is computed, not copied (see ``BrokerConfig``).
TIME_KEYS: tuple[BrokerKey, ...] = (
    _k(
        "log.retention.ms",
        "long",
        None,
        "Age after which a log segment may be deleted; -1 keeps data forever. "
        "Wins over log.retention.minutes and log.retention.hours.",
    ),
    _k(
        "log.retention.minutes",
        "int",
        None,
        "log.retention.ms in minutes; wins over log.retention.hours.",
    ),
    _k("log.retention.hours", "int", 168, "log.retention.ms in hours."),
    _k(
        "log.roll.ms",
        "long",
        None,
        "Age after which the active segment is rolled; wins over log.roll.hours.",
        minimum=1,
    ),
    _k("log.roll.hours", "int", 168, "log.roll.ms in hours.", minimum=1),
    _k(
        "log.roll.jitter.ms",
        "long",
        None,
        "Maximum random jitter subtracted from the roll time; wins over log.roll.jitter.hours.",
        minimum=0,
    ),
    _k("log.roll.jitter.hours", "int", 0, "log.roll.jitter.ms in hours.", minimum=0),
    _k(
        "log.flush.interval.ms",
        "long",
        None,
        "Maximum time a message may stay unflushed; unset means log.flush.scheduler.interval.ms.",
        minimum=0,
    ),
)

# fmt: off
_OWN_KEYS: tuple[BrokerKey, ...] = (
    # -- identity and listeners
    _k("node.id", "int", 1,
       "This broker's id (moldau default 1; Kafka requires it).", minimum=0),
    _k("broker.id", "int", 1,
       "Older name of node.id; when both are set they must agree.", minimum=0),
    _k("listeners", "string", "PLAINTEXT://127.0.0.1:9092",
       "Comma-separated NAME://host:port endpoints to bind; an empty host binds every "
       "interface (moldau default binds loopback; Kafka's is PLAINTEXT://:9092)."),
    _k("advertised.listeners", "string", None,
       "Endpoints given to clients in Metadata; defaults to listeners, with an empty host "
       "replaced by this machine's canonical host name."),
    _k("listener.security.protocol.map", "string",
       "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
       "Listener name to security protocol."),
    _k("controller.listener.names", "string", None,
       "Listeners used by the KRaft controller; moldau serves clients on the first listener "
       "not named here."),
    _k("moldau.cluster.id", "string", None,
       "moldau's own key: the cluster id to use when the data directory has none yet."),
    # -- socket server
    _k("socket.request.max.bytes", "int", 104857600,
       "Largest request the broker accepts; a bigger size prefix closes the connection.",
       minimum=1),
    _k("connections.max.idle.ms", "long", 600000,
       "Idle connections are closed after this long."),
    # -- log basics
    _k("log.dirs", "string", None,
       "The data directory (wins over log.dir); moldau supports exactly one."),
    _k("log.dir", "string", "./moldau-data",
       "The data directory when log.dirs is unset (moldau default; Kafka's is "
       "/tmp/kafka-logs)."),
    _k("num.partitions", "int", 1, "Partitions of an auto-created topic.", minimum=1),
    _k("default.replication.factor", "int", 1,
       "Replication factor of an auto-created topic.", minimum=1),
    _k("auto.create.topics.enable", "boolean", True,
       "Create a topic when a client asks for metadata of an unknown one."),
    _k("delete.topic.enable", "boolean", True, "Allow DeleteTopics."),
    _k("log.retention.check.interval.ms", "long", 300000,
       "How often retention is enforced.", minimum=1),
    _k("log.flush.scheduler.interval.ms", "long", LONG_MAX,
       "How often logs are checked for a due time-based flush; also flush.ms's default "
       "when log.flush.interval.ms is unset."),
    _k("log.cleaner.enable", "boolean", True,
       "Run the log cleaner, which compacts topics with cleanup.policy=compact."),
    _k("log.cleaner.backoff.ms", "long", 15000,
       "Sleep of the cleaner when there is nothing to clean.", minimum=0),
    _k("log.cleaner.threads", "int", 1,
       "Cleaner worker processes (moldau cleans in processes of its own so that compaction "
       "never competes with the event loop for the interpreter).", minimum=0),
    _k("log.cleaner.dedupe.buffer.size", "long", 134217728,
       "Memory for the key → offset map of one clean, across all cleaner workers; a dirty "
       "section with more keys is cleaned in several passes.", minimum=1),
    _k("log.cleaner.io.max.bytes.per.second", "double", DOUBLE_MAX,
       "Cap on the bytes per second the cleaner reads plus writes.", minimum=1),
    _k("metrics.listen", "string", "127.0.0.1:9644",
       "moldau's HTTP endpoint (host:port; empty disables it): cleaner status and control "
       "under /v1/ now, Prometheus /metrics later."),
    _k("moldau.flush.on.acks.all", "boolean", True,
       "moldau's own key: answer acks=all only after an fsync covering the write (group "
       "commit); false gives Kafka's lazy flushing driven by flush.messages/flush.ms."),
    # -- cluster (etcd metadata, replication, controller)
    _k("broker.rack", "string", None,
       "Rack of this broker; replicas of a partition are spread over racks."),
    _k("moldau.metadata", "string", None,
       "moldau's own key (also --metadata): etcd://HOST:PORT[,HOST:PORT] joins the cluster "
       "whose metadata those etcd endpoints keep; unset runs a single-node broker."),
    _k("moldau.etcd.prefix", "string", "/moldau",
       "moldau's own key: the etcd key prefix under which the cluster keeps its metadata."),
    _k("moldau.etcd.startup.timeout.ms", "long", 60000,
       "moldau's own key: how long a starting broker keeps trying to reach etcd before it "
       "gives up with an error.", minimum=0),
    _k("broker.session.timeout.ms", "int", 9000,
       "A broker whose etcd lease is not renewed for this long leaves the cluster (the lease "
       "TTL, whole seconds, at least 2 s); it stops leading once its own lease lapses.",
       minimum=1),
    _k("broker.heartbeat.interval.ms", "int", 2000,
       "How often the broker renews its etcd lease.", minimum=1),
    _k("replica.lag.time.max.ms", "long", 30000,
       "A follower that has not caught up with the leader for this long leaves the ISR.",
       minimum=1),
    _k("replica.fetch.wait.max.ms", "int", 500,
       "Longest wait of a follower's fetch when the leader has nothing new.", minimum=0),
    _k("replica.fetch.min.bytes", "int", 1,
       "Bytes a follower's fetch waits for.", minimum=1),
    _k("replica.fetch.max.bytes", "int", 1048576,
       "Bytes a follower fetches per partition.", minimum=0),
    _k("replica.fetch.response.max.bytes", "int", 10485760,
       "Bytes a follower fetches per request.", minimum=0),
    _k("replica.fetch.backoff.ms", "int", 1000,
       "Sleep of a follower after a fetch error.", minimum=0),
    _k("auto.leader.rebalance.enable", "boolean", True,
       "The controller moves leadership back to preferred replicas."),
    _k("leader.imbalance.check.interval.seconds", "long", 300,
       "How often the controller checks for leaders that are not the preferred replica.",
       minimum=1),
    _k("controlled.shutdown.enable", "boolean", True,
       "On SIGTERM, hand leadership over before stopping."),
    _k("moldau.controlled.shutdown.timeout.ms", "long", 30000,
       "moldau's own key: how long a stopping broker waits for its leaderships to move.",
       minimum=0),
    # -- group coordinator
    _k("offsets.topic.num.partitions", "int", 50,
       "Partitions of __consumer_offsets; fixed once the topic exists.", minimum=1),
    _k("offsets.topic.replication.factor", "short", 3,
       "Replication factor of __consumer_offsets, capped by the number of live brokers.",
       minimum=1),
    _k("offsets.topic.segment.bytes", "int", 104857600,
       "Segment size of __consumer_offsets.", minimum=1),
    _k("offsets.retention.minutes", "int", 10080,
       "Committed offsets of an empty group are dropped after this long.", minimum=1),
    _k("offsets.retention.check.interval.ms", "long", 600000,
       "How often stale offsets are looked for.", minimum=1),
    _k("group.initial.rebalance.delay.ms", "int", 3000,
       "How long the first rebalance of a new classic group waits for more members."),
    _k("group.min.session.timeout.ms", "int", 6000,
       "Smallest session timeout a member may ask for."),
    _k("group.max.session.timeout.ms", "int", 1800000,
       "Largest session timeout a member may ask for."),
    _k("group.max.size", "int", INT_MAX, "Most members a classic group may have.", minimum=1),
    _k("group.consumer.heartbeat.interval.ms", "int", 5000,
       "Heartbeat interval given to members of consumer (KIP-848) groups.", minimum=1),
    _k("group.consumer.session.timeout.ms", "int", 45000,
       "A consumer (KIP-848) group member that sends no heartbeat for this long is removed.",
       minimum=1),
    _k("group.consumer.max.size", "int", INT_MAX,
       "Most members a consumer (KIP-848) group may have.", minimum=1),
    _k("group.consumer.assignors", "list", "uniform,range",
       "Server-side assignors of consumer groups; the first is the default."),
    _k("group.coordinator.rebalance.protocols", "list", "classic,consumer",
       "Group protocols the coordinator accepts."),
    # -- transactions and producer ids
    _k("transaction.state.log.num.partitions", "int", 50,
       "Partitions of __transaction_state.", minimum=1),
    _k("transaction.state.log.replication.factor", "short", 3,
       "Replication factor of __transaction_state, capped by the number of live brokers.",
       minimum=1),
    _k("transaction.state.log.min.isr", "int", 2,
       "min.insync.replicas of __transaction_state.", minimum=1),
    _k("transaction.state.log.segment.bytes", "int", 104857600,
       "Segment size of __transaction_state.", minimum=1),
    _k("transaction.max.timeout.ms", "int", 900000,
       "Largest transaction timeout a producer may ask for.", minimum=1),
    _k("transactional.id.expiration.ms", "int", 604800000,
       "A transactional id unused for this long is forgotten.", minimum=1),
    _k("transaction.abort.timed.out.transaction.cleanup.interval.ms", "int", 10000,
       "How often timed-out transactions are aborted.", minimum=1),
    _k("transaction.remove.expired.transaction.cleanup.interval.ms", "int", 3600000,
       "How often expired transactional ids are removed.", minimum=1),
    _k("producer.id.expiration.ms", "int", 86400000,
       "Idempotent producer state unused for this long is dropped.", minimum=1),
    _k("producer.id.expiration.check.interval.ms", "int", 600000,
       "How often expired producer ids are looked for.", minimum=1),
    # -- TLS (per listener too: listener.name.<listener>.<key>); PEM files, as librdkafka
    _k("ssl.certificate.location", "string", None,
       "PEM file with this broker's certificate (and any intermediates) for SSL and SASL_SSL "
       "listeners; moldau's stand-in for Kafka's ssl.keystore.location."),
    _k("ssl.key.location", "string", None,
       "PEM file with the private key of ssl.certificate.location (may be the same file)."),
    _k("ssl.key.password", "password", None,
       "Password of an encrypted ssl.key.location."),
    _k("ssl.ca.location", "string", None,
       "PEM file of CA certificates that client certificates (and, inter-broker, peer "
       "brokers) are verified against; moldau's stand-in for ssl.truststore.location."),
    _k("ssl.client.auth", "string", "none",
       "Client certificates: required (refuse clients without a trusted one), requested "
       "(verify one if sent) or none.", allowed=("required", "requested", "none")),
    _k("ssl.enabled.protocols", "list", "TLSv1.2,TLSv1.3",
       "TLS versions accepted; moldau refuses anything older than TLSv1.2.",
       allowed=("TLSv1.2", "TLSv1.3")),
    _k("ssl.protocol", "string", "TLSv1.3",
       "Kafka's SSLContext protocol; with ssl.enabled.protocols it bounds the versions.",
       allowed=("TLSv1.2", "TLSv1.3", "TLS")),
    _k("ssl.endpoint.identification.algorithm", "string", "https",
       "Inter-broker TLS: https checks the peer broker's certificate names its host; "
       "empty turns the check off."),
    # -- inter-broker traffic (replica fetchers, transaction markers)
    _k("inter.broker.listener.name", "string", None,
       "Listener whose advertised endpoint brokers connect to each other on; unset means the "
       "listener named like security.inter.broker.protocol."),
    _k("security.inter.broker.protocol", "string", "PLAINTEXT",
       "Security protocol between brokers when inter.broker.listener.name is unset.",
       allowed=SECURITY_PROTOCOLS),
    _k("sasl.mechanism.inter.broker.protocol", "string", "PLAIN",
       "SASL mechanism brokers log in to each other with on a SASL_* inter-broker listener "
       "(moldau default PLAIN; Kafka's is GSSAPI, which moldau lacks). The credentials are "
       "the username/password of listener.name.<listener>.<mechanism>.sasl.jaas.config.",
       allowed=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")),
    # -- SASL (per listener too: listener.name.<listener>.<key>)
    _k("sasl.enabled.mechanisms", "list", "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
       "SASL mechanisms served on SASL listeners. moldau differs from Kafka (GSSAPI, which "
       "moldau lacks): PLAIN and both SCRAM mechanisms.",
       allowed=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")),
    _k("sasl.jaas.config", "password", None,
       "JAAS login config; for PLAIN, PlainLoginModule's user_<name>=\"<password>\" options "
       "list the users. Per listener and mechanism: "
       "listener.name.<listener>.plain.sasl.jaas.config."),
    _k("moldau.sasl.plain.users.file", "string", None,
       "File of PLAIN users, one name:password per line (# comments); read at each login, "
       "so edits apply without a restart. moldau's own, besides the JAAS config."),
    _k("sasl.server.max.receive.size", "int", 524288,
       "Largest SASL token accepted before authentication; larger closes the connection.",
       minimum=1),
    _k("connections.max.reauth.ms", "long", 0,
       "Session lifetime of SASL connections; they must re-authenticate (KIP-368) before it "
       "ends. 0 = sessions never expire.", minimum=0),
    _k("connection.failed.authentication.delay.ms", "int", 100,
       "How long a failed SASL login waits before its connection is closed (slows "
       "brute-force attempts).", minimum=0),
    # -- authorization
    _k("authorizer.class.name", "string", "",
       "Empty: no authorization (every request allowed). 'acl', or Kafka's "
       "org.apache.kafka.metadata.authorizer.StandardAuthorizer / "
       "kafka.security.authorizer.AclAuthorizer: check every request against the ACLs."),
    _k("super.users", "string", "",
       "Semicolon-separated principals (User:admin;User:broker) allowed everything."),
    _k("allow.everyone.if.no.acl.found", "boolean", False,
       "Allow a request on a resource that no ACL matches at all."),
    # -- client quotas (the quotas themselves are set with AlterClientQuotas)
    _k("quota.window.num", "int", 11,
       "Number of samples client quota rates are measured over.", minimum=1),
    _k("quota.window.size.seconds", "int", 1,
       "Length of each client quota sample.", minimum=1),
    # -- accepted so that stock Kafka configs load, but not acted on
    _ignored("process.roles", "list", "", "KRaft roles of this node.",
             allowed=("broker", "controller")),
    _ignored("controller.quorum.voters", "list", "", "Static KRaft voter set."),
    _ignored("controller.quorum.bootstrap.servers", "list", "", "KRaft quorum bootstrap."),
    _ignored("metadata.log.dir", "string", None, "Directory of the KRaft metadata log."),
    _ignored("num.network.threads", "int", 3, "Network threads.", minimum=1),
    _ignored("num.io.threads", "int", 8, "Request handler threads.", minimum=1),
    _ignored("background.threads", "int", 10, "Background task threads.", minimum=1),
    _ignored("queued.max.requests", "int", 500, "Request queue length.", minimum=1),
    _ignored("num.recovery.threads.per.data.dir", "int", 2, "Log recovery threads.",
             minimum=1),
    _ignored("num.replica.fetchers", "int", 1, "Replica fetcher threads."),
    _ignored("socket.send.buffer.bytes", "int", 102400, "SO_SNDBUF of sockets."),
    _ignored("socket.receive.buffer.bytes", "int", 102400, "SO_RCVBUF of sockets."),
    _ignored("max.connections", "int", INT_MAX, "Connection limit.", minimum=0),
    _ignored("max.connections.per.ip", "int", INT_MAX, "Per-address connection limit.",
             minimum=0),
    _ignored("log.flush.offset.checkpoint.interval.ms", "int", 60000,
             "Recovery point checkpoint interval.", minimum=0),
    _ignored("log.flush.start.offset.checkpoint.interval.ms", "int", 60000,
             "Log start offset checkpoint interval.", minimum=0),
    _ignored("log.cleaner.io.buffer.size", "int", 524288, "Cleaner I/O buffers.", minimum=0),
    _ignored("log.cleaner.io.buffer.load.factor", "double", 0.9, "Cleaner hash load."),
    _ignored("share.coordinator.state.topic.replication.factor", "short", 3,
             "Replication factor of __share_group_state.", minimum=1),
    _ignored("share.coordinator.state.topic.min.isr", "short", 2,
             "min.insync.replicas of __share_group_state.", minimum=1),
    _ignored("zookeeper.connect", "string", None, "ZooKeeper connection string."),
    _ignored("zookeeper.connection.timeout.ms", "int", None, "ZooKeeper connect timeout."),
    _ignored("zookeeper.session.timeout.ms", "int", 18000, "ZooKeeper session timeout."),
)
# fmt: on


def _topic_default_keys() -> tuple[BrokerKey, ...]:
    """Broker keys that default a topic config, with the topic config's type and checks."""
    computed = {key.name for key in TIME_KEYS}
    keys = []
    for broker_name, spec in broker_default_keys().items():
        if broker_name in computed:
            continue
        doc = spec.doc or f"Default of the topic config {spec.name}."
        keys.append(
            BrokerKey(broker_name, spec.kind, spec.default, doc, spec.minimum, None, spec.allowed)
        )
    return tuple(keys)


BROKER_KEYS: Mapping[str, BrokerKey] = {
    key.name: key
    for key in sorted((*_OWN_KEYS, *TIME_KEYS, *_topic_default_keys()), key=lambda k: k.name)
}
"""Every broker config key moldau accepts, by name, in name order."""

BROKER_SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("log.roll.ms", "log.roll.hours"),
    ("log.roll.jitter.ms", "log.roll.jitter.hours"),
    ("log.retention.ms", "log.retention.minutes", "log.retention.hours"),
)
"""Groups of keys that set one value, finest unit first (Kafka's ``brokerConfigSynonyms``)."""


def broker_synonym_names(name: str) -> tuple[str, ...]:
    """The keys consulted, in priority order, for the value of broker key ``name``.

    ``log.flush.interval.ms`` falls back to ``log.flush.scheduler.interval.ms`` but not the
    other way round, exactly as Kafka lists them.
    """
    if name == "log.flush.interval.ms":
        return (name, "log.flush.scheduler.interval.ms")
    for group in BROKER_SYNONYMS:
        if name in group:
            return group
    return (name,)
