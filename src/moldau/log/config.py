"""Topic-level configuration: Kafka's topic config names, their broker-wide defaults, validation.

Every topic config has a broker-level key that sets its default (``segment.bytes`` is defaulted
by ``log.segment.bytes``), exactly as in Kafka. ``TOPIC_CONFIGS`` is the single table that the
log, the admin handlers (DescribeConfigs lists *every* entry with its value and source) and
config validation all read, so adding a config is one row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LONG_MAX = 9223372036854775807


class ConfigError(ValueError):
    """A config value that Kafka would refuse; the message names the key and the reason."""


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ValueError("expected true or false")


def _parse_list(text: str) -> str:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    return ",".join(parts)


@dataclass(frozen=True, slots=True)
class ConfigDef:
    """One topic config: name, the broker key that defaults it, its type and its check."""

    name: str
    broker_key: str | None
    kind: str  # "long" | "int" | "double" | "boolean" | "string" | "list"
    default: Any
    allowed: tuple[str, ...] = ()
    minimum: float | None = None
    doc: str = ""

    def parse(self, raw: str) -> Any:
        """Parse and validate a string value; raise ConfigError naming the key."""
        try:
            value: Any
            if self.kind in ("long", "int"):
                value = int(raw.strip())
            elif self.kind == "double":
                value = float(raw.strip())
            elif self.kind == "boolean":
                value = _parse_bool(raw)
            elif self.kind == "list":
                value = _parse_list(raw)
            else:
                value = raw.strip()
        except ValueError as exc:
            raise ConfigError(
                f"Invalid value {raw!r} for configuration {self.name}: {exc}"
            ) from None
        if self.kind == "int" and not -(2**31) <= value < 2**31:
            raise ConfigError(
                f"Invalid value {raw!r} for configuration {self.name}: out of int range"
            )
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(
                f"Invalid value {raw!r} for configuration {self.name}: "
                f"Value must be at least {self.minimum:g}"
            )
        if self.allowed:
            items = value.split(",") if self.kind == "list" else [value]
            for item in items:
                if item not in self.allowed:
                    raise ConfigError(
                        f"Invalid value {raw!r} for configuration {self.name}: "
                        f"String must be one of: {', '.join(self.allowed)}"
                    )
        return value

    def render(self, value: Any) -> str:
        """The value as Kafka prints it in DescribeConfigs."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return repr(value)
        return str(value)


_DEFS: tuple[ConfigDef, ...] = (
    ConfigDef("cleanup.policy", "log.cleanup.policy", "list", "delete", ("delete", "compact")),
    ConfigDef(
        "compression.type",
        "compression.type",
        "string",
        "producer",
        ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"),
    ),
    ConfigDef(
        "delete.retention.ms", "log.cleaner.delete.retention.ms", "long", 86400000, minimum=0
    ),
    ConfigDef("file.delete.delay.ms", "log.segment.delete.delay.ms", "long", 60000, minimum=0),
    ConfigDef("flush.messages", "log.flush.interval.messages", "long", LONG_MAX, minimum=1),
    ConfigDef("flush.ms", "log.flush.interval.ms", "long", LONG_MAX, minimum=0),
    ConfigDef("index.interval.bytes", "log.index.interval.bytes", "int", 4096, minimum=0),
    ConfigDef(
        "max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", "long", LONG_MAX, minimum=1
    ),
    ConfigDef("max.message.bytes", "message.max.bytes", "int", 1048588, minimum=0),
    ConfigDef(
        "message.timestamp.after.max.ms",
        "log.message.timestamp.after.max.ms",
        "long",
        LONG_MAX,
        minimum=0,
    ),
    ConfigDef(
        "message.timestamp.before.max.ms",
        "log.message.timestamp.before.max.ms",
        "long",
        LONG_MAX,
        minimum=0,
    ),
    ConfigDef(
        "message.timestamp.type",
        "log.message.timestamp.type",
        "string",
        "CreateTime",
        ("CreateTime", "LogAppendTime"),
    ),
    ConfigDef(
        "min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", "double", 0.5, minimum=0
    ),
    ConfigDef("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", "long", 0, minimum=0),
    ConfigDef("min.insync.replicas", "min.insync.replicas", "int", 1, minimum=1),
    ConfigDef("preallocate", "log.preallocate", "boolean", False),
    ConfigDef("retention.bytes", "log.retention.bytes", "long", -1),
    ConfigDef("retention.ms", "log.retention.ms", "long", 604800000, minimum=-1),
    ConfigDef("segment.bytes", "log.segment.bytes", "int", 1073741824, minimum=14),
    ConfigDef("segment.index.bytes", "log.index.size.max.bytes", "int", 10485760, minimum=4),
    ConfigDef("segment.jitter.ms", "log.roll.jitter.ms", "long", 0, minimum=0),
    ConfigDef("segment.ms", "log.roll.ms", "long", 604800000, minimum=1),
    ConfigDef("unclean.leader.election.enable", "unclean.leader.election.enable", "boolean", False),
)

TOPIC_CONFIGS: Mapping[str, ConfigDef] = {d.name: d for d in _DEFS}
"""Every topic config Kafka users can set, by name."""


def _attr(name: str) -> str:
    return name.replace(".", "_")


@dataclass(frozen=True, slots=True)
class LogConfig:
    """The effective configuration of one partition log (topic overrides over broker defaults).

    Immutable: an AlterConfigs produces a new LogConfig and the log swaps it in. Attribute
    names are the Kafka names with dots as underscores (``segment.bytes`` → ``segment_bytes``).
    """

    cleanup_policy: str = "delete"
    compression_type: str = "producer"
    delete_retention_ms: int = 86400000
    file_delete_delay_ms: int = 60000
    flush_messages: int = LONG_MAX
    flush_ms: int = LONG_MAX
    index_interval_bytes: int = 4096
    max_compaction_lag_ms: int = LONG_MAX
    max_message_bytes: int = 1048588
    message_timestamp_after_max_ms: int = LONG_MAX
    message_timestamp_before_max_ms: int = LONG_MAX
    message_timestamp_type: str = "CreateTime"
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    min_insync_replicas: int = 1
    preallocate: bool = False
    retention_bytes: int = -1
    retention_ms: int = 604800000
    segment_bytes: int = 1073741824
    segment_index_bytes: int = 10485760
    segment_jitter_ms: int = 0
    segment_ms: int = 604800000
    unclean_leader_election_enable: bool = False

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy.split(",")

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy.split(",")

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == "LogAppendTime"

    def get(self, name: str) -> Any:
        """The value of the config called ``name`` (Kafka spelling)."""
        return getattr(self, _attr(name))

    def with_overrides(self, overrides: Mapping[str, str]) -> LogConfig:
        """A copy with topic-level overrides (string values, Kafka names) applied and validated."""
        changes: dict[str, Any] = {}
        for name, raw in overrides.items():
            definition = TOPIC_CONFIGS.get(name)
            if definition is None:
                raise ConfigError(f"Unknown topic config name: {name}")
            changes[_attr(name)] = definition.parse(raw)
        return dataclasses.replace(self, **changes)

    @classmethod
    def validate_overrides(cls, overrides: Mapping[str, str]) -> None:
        """Raise ConfigError for the first override Kafka would refuse."""
        cls().with_overrides(overrides)


def broker_default_keys() -> Mapping[str, ConfigDef]:
    """Broker keys (``log.segment.bytes``…) mapped to the topic config they default."""
    return {d.broker_key: d for d in _DEFS if d.broker_key is not None}
