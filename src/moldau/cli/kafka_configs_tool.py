"""``kafka-configs``: Kafka's ConfigCommand for topics and brokers.

Output follows Kafka's ConfigCommand: ``Completed updating config for topic T.`` after an
alter; ``--describe`` prints ``Dynamic configs for topic T are:`` (``All configs`` with
``--all``) and one ``  name=value sensitive=false synonyms={SOURCE:name=value, …}`` line per
entry. "Dynamic" means set on the entity itself: DYNAMIC_TOPIC_CONFIG for a topic,
DYNAMIC_BROKER_CONFIG for a broker id. The cluster-wide broker default (Kafka's
``--entity-default``, resource name "") cannot be addressed through librdkafka and is
refused.

Alters use IncrementalAlterConfigs, as Kafka does: only the named keys change. As in Kafka,
deleting a key that is not set on the entity fails with "Invalid config(s): …", and
``--add-config`` splits on commas outside square brackets (``k=[a,b]`` keeps ``a,b``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from moldau.cli.admin import AdminSession, ConfigInfo
from moldau.cli.common import DEFAULT_TIMEOUT_MS, CliError
from moldau.cli.kafka_args import (
    ToolArgumentParser,
    UsageProblem,
    librdkafka_config,
    load_properties,
)

ENTITY_TYPES = (
    "topics",
    "clients",
    "users",
    "brokers",
    "broker-loggers",
    "ips",
    "client-metrics",
    "groups",
)
SUPPORTED = {"topics": "topic", "brokers": "broker"}
_DYNAMIC_SOURCE = {"topics": "DYNAMIC_TOPIC_CONFIG", "brokers": "DYNAMIC_BROKER_CONFIG"}


def build_parser() -> ToolArgumentParser:
    parser = ToolArgumentParser(
        prog="kafka-configs",
        description="Add/Remove entity config for a topic, client, user or broker.",
    )
    parser.add_argument("--bootstrap-server")
    parser.add_argument("--bootstrap-controller")
    parser.add_argument("--command-config")
    parser.add_argument("--entity-type", action="append")
    parser.add_argument("--entity-name", action="append")
    parser.add_argument("--entity-default", action="store_true")
    parser.add_argument("--topic")
    parser.add_argument("--broker")
    parser.add_argument("--broker-defaults", action="store_true")
    parser.add_argument("--alter", action="store_true")
    parser.add_argument("--describe", action="store_true")
    parser.add_argument("--all", action="store_true")
    parser.add_argument("--add-config")
    parser.add_argument("--add-config-file")
    parser.add_argument("--delete-config", action="append")
    parser.add_argument("--force", action="store_true", help=argparse.SUPPRESS)
    return parser


def report(error: CliError) -> str:
    return f"Error while executing config command : {error}"


def main(argv: Sequence[str]) -> int:
    opts = build_parser().parse_args(argv)
    if opts.alter == opts.describe:
        raise UsageProblem("Command must include exactly one action: --describe, --alter")
    if opts.bootstrap_controller and not opts.bootstrap_server:
        raise UsageProblem(
            "--bootstrap-controller is not supported by moldau; use --bootstrap-server"
        )
    if not opts.bootstrap_server:
        raise UsageProblem("Either --bootstrap-server or --bootstrap-controller must be specified.")
    entity_type, entity_name = _entity(opts)
    to_add = _configs_to_add(opts)
    to_delete = [
        k.strip() for item in opts.delete_config or [] for k in item.split(",") if k.strip()
    ]
    if opts.alter and not to_add and not to_delete:
        raise UsageProblem(
            "At least one of --add-config, --add-config-file, or --delete-config must be "
            "specified with --alter"
        )
    if opts.describe and (to_add or to_delete):
        raise UsageProblem('Option "[describe]" can\'t be used with option "[add-config]"')
    extra = librdkafka_config(load_properties(opts.command_config)) if opts.command_config else {}
    session = AdminSession(opts.bootstrap_server, DEFAULT_TIMEOUT_MS, extra)
    if opts.alter:
        _alter(session, entity_type, entity_name, to_add, to_delete)
    else:
        _describe(session, entity_type, entity_name, describe_all=opts.all)
    return 0


def _entity(opts: argparse.Namespace) -> tuple[str, str | None]:
    """(entity type, name); the name is None for "every entity of the type"."""
    types = list(opts.entity_type or [])
    names = list(opts.entity_name or [])
    if opts.topic:
        types.append("topics")
        names.append(opts.topic)
    if opts.broker:
        types.append("brokers")
        names.append(opts.broker)
    if opts.broker_defaults:
        types.append("brokers")
        opts.entity_default = True
    if not types:
        raise UsageProblem("At least one entity type must be specified")
    if len(types) > 1:
        raise UsageProblem("Only one entity type may be specified (moldau supports one at a time)")
    (entity_type,) = types
    if entity_type not in ENTITY_TYPES:
        raise UsageProblem(
            f"Invalid entity type {entity_type}, the entity type must be one of "
            f"{', '.join(ENTITY_TYPES)}"
        )
    if entity_type not in SUPPORTED:
        raise UsageProblem(f"Entity type {entity_type} is not supported by moldau yet")
    if len(names) > 1:
        raise UsageProblem("Only one entity name may be specified")
    if opts.entity_default:
        # Kafka addresses the cluster-wide default as broker "", which librdkafka refuses
        raise UsageProblem("--entity-default is not supported by moldau yet")
    name = names[0] if names else None
    if opts.alter and name is None:
        raise UsageProblem(f"An entity name must be specified with --alter of {entity_type}")
    if entity_type == "brokers" and name is not None and not name.isdigit():
        raise UsageProblem(
            f"The entity name for {entity_type} must be a valid integer broker id, found: {name}"
        )
    return entity_type, name


def split_add_config(text: str) -> dict[str, str]:
    """``k1=v1,k2=[a,b]`` → ``{"k1": "v1", "k2": "a,b"}`` (Kafka's --add-config syntax)."""
    items: list[str] = []
    depth = 0
    current = ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    items.append(current)
    configs: dict[str, str] = {}
    for item in items:
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageProblem(
                'Invalid entity config: all configs to be added must be in the format "key=val".'
            )
        configs[key.strip()] = value.replace("[", "").replace("]", "").strip()
    return configs


def _configs_to_add(opts: argparse.Namespace) -> dict[str, str]:
    configs: dict[str, str] = {}
    if opts.add_config_file:
        configs.update(load_properties(opts.add_config_file))
    if opts.add_config:
        configs.update(split_add_config(opts.add_config))
    return configs


def _resource(entity_type: str) -> str:
    return SUPPORTED[entity_type]


def _alter(
    session: AdminSession,
    entity_type: str,
    name: str | None,
    to_add: dict[str, str],
    to_delete: list[str],
) -> None:
    assert name is not None
    current = {c.name for c in _dynamic_configs(session, entity_type, name, describe_all=False)}
    invalid = [k for k in to_delete if k not in current]
    if invalid:
        raise UsageProblem(f"Invalid config(s): {','.join(invalid)}")
    session.alter_configs(_resource(entity_type), name, to_add, to_delete)
    print(f"Completed updating config for {entity_type[:-1]} {name}.")


def _dynamic_configs(
    session: AdminSession, entity_type: str, name: str, describe_all: bool
) -> list[ConfigInfo]:
    configs = session.describe_configs(_resource(entity_type), name)
    if describe_all:
        return configs
    source = _DYNAMIC_SOURCE[entity_type]
    return [c for c in configs if c.source == source]


def _describe(
    session: AdminSession, entity_type: str, name: str | None, describe_all: bool
) -> None:
    if entity_type == "topics":
        existing = session.topic_names()
        if name is not None and name not in existing and not describe_all:
            print(f"The topic '{name}' doesn't exist and doesn't have dynamic config.")
            return
        names = [name] if name is not None else existing
    else:
        broker_ids = [str(b.node_id) for b in session.cluster().brokers]
        if name is not None and name not in broker_ids and not describe_all:
            print(f"The broker '{name}' doesn't exist and doesn't have dynamic config.")
            return
        names = [name] if name is not None else broker_ids
    kind = "All" if describe_all else "Dynamic"
    for entity in names:
        print(f"{kind} configs for {entity_type[:-1]} {entity} are:")
        for config in _dynamic_configs(session, entity_type, entity, describe_all):
            print(config_line(config))


def config_line(config: ConfigInfo) -> str:
    """``  name=value sensitive=false synonyms={SOURCE:name=value, …}`` (Kafka's layout)."""
    value = "null" if config.value is None else config.value
    synonyms = ", ".join(
        f"{s.source}:{s.name}={'null' if s.value is None else s.value}" for s in config.synonyms
    )
    sensitive = "true" if config.is_sensitive else "false"
    return f"  {config.name}={value} sensitive={sensitive} synonyms={{{synonyms}}}"
