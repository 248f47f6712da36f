"""``kafka-topics``: Kafka's TopicCommand, flag for flag, printing what Kafka prints.

Tutorials paste these commands verbatim, so the output matches Kafka's ``TopicCommand``
(tools/src/main/java/org/apache/kafka/tools/TopicCommand.java): ``Created topic T.``;
``--list`` one name per line; ``--describe`` a tab-separated topic line followed by one
line per partition, including the ``Elr``/``LastKnownElr`` columns that Kafka 3.7+ prints
— ``N/A``, as Kafka's own tool shows for a broker that does not report eligible leader
replicas. ``--alter`` and ``--delete`` print nothing on success, as in Kafka.

As in Kafka, ``--topic`` is a regular expression (full match) for every action but
``--create``, and errors read "Error while executing topic command : …".
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from confluent_kafka import KafkaError

from moldau.cli.admin import AdminSession, TopicInfo, is_internal_topic
from moldau.cli.common import DEFAULT_TIMEOUT_MS, CliError
from moldau.cli.kafka_args import (
    ToolArgumentParser,
    UsageProblem,
    librdkafka_config,
    load_properties,
)

ACTIONS = ("list", "describe", "create", "alter", "delete")


def build_parser() -> ToolArgumentParser:
    parser = ToolArgumentParser(
        prog="kafka-topics",
        description="Create, delete, describe, or change a topic.",
    )
    parser.add_argument("--bootstrap-server", metavar="<String: server to connect to>")
    parser.add_argument("--command-config", metavar="<String: command config property file>")
    for action in ACTIONS:
        parser.add_argument(f"--{action}", action="store_true")
    parser.add_argument("--topic", metavar="<String: topic>")
    parser.add_argument("--topic-id", metavar="<String: topic-id>")
    parser.add_argument("--partitions", type=int, metavar="<Integer: # of partitions>")
    parser.add_argument("--replication-factor", type=int, metavar="<Integer: replication factor>")
    parser.add_argument("--replica-assignment", metavar="<String: broker_id_for_part1_replica1>")
    parser.add_argument("--config", action="append", metavar="<String: name=value>")
    parser.add_argument("--delete-config", action="append", metavar="<String: name>")
    parser.add_argument("--if-exists", action="store_true")
    parser.add_argument("--if-not-exists", action="store_true")
    parser.add_argument("--exclude-internal", action="store_true")
    parser.add_argument("--under-replicated-partitions", action="store_true")
    parser.add_argument("--unavailable-partitions", action="store_true")
    parser.add_argument("--under-min-isr-partitions", action="store_true")
    parser.add_argument("--at-min-isr-partitions", action="store_true")
    parser.add_argument("--topics-with-overrides", action="store_true")
    parser.add_argument("--partition-size-limit-per-response", type=int)
    parser.add_argument("--version", action="store_true")
    return parser


def report(error: CliError) -> str:
    return f"Error while executing topic command : {error}"


def main(argv: Sequence[str]) -> int:
    opts = build_parser().parse_args(argv)
    if opts.version:
        from moldau import __version__

        print(f"{__version__} (moldau)")
        return 0
    actions = [a for a in ACTIONS if getattr(opts, a)]
    if len(actions) != 1:
        raise UsageProblem(
            "Command must include exactly one action: --list, --describe, --create, --alter "
            "or --delete"
        )
    if not opts.bootstrap_server:
        raise UsageProblem('Missing required argument "[bootstrap-server]"')
    (action,) = actions
    _check_combinations(opts, action)
    extra = librdkafka_config(load_properties(opts.command_config)) if opts.command_config else {}
    session = AdminSession(opts.bootstrap_server, DEFAULT_TIMEOUT_MS, extra)
    if action == "create":
        _create(session, opts)
    elif action == "list":
        _list(session, opts)
    elif action == "describe":
        _describe(session, opts)
    elif action == "alter":
        _alter(session, opts)
    else:
        _delete(session, opts)
    return 0


def _check_combinations(opts: argparse.Namespace, action: str) -> None:
    def has(name: str) -> bool:
        value = getattr(opts, name)
        return value not in (None, False, [])

    if action in ("create", "alter", "delete") and not has("topic"):
        raise UsageProblem('Missing required argument "[topic]"')
    if has("replica_assignment") or has("topic_id"):
        option = "replica-assignment" if has("replica_assignment") else "topic-id"
        raise UsageProblem(f"--{option} is not supported by moldau yet")
    if has("if_not_exists") and action != "create":
        raise UsageProblem('Option "[if-not-exists]" can\'t be used with option "[' + action + ']"')
    if has("if_exists") and action not in ("alter", "delete", "describe"):
        raise UsageProblem('Option "[if-exists]" can\'t be used with option "[' + action + ']"')
    if action == "alter":
        if has("config") or has("delete_config"):
            raise UsageProblem(
                'Option "[config]" can\'t be used with option "[alter]"; '
                "change topic configs with kafka-configs --alter"
            )
        if not has("partitions"):
            raise UsageProblem('Missing required argument "[partitions]"')
    if action != "create" and action != "alter":
        for name in ("partitions", "replication_factor"):
            if has(name):
                flag = name.replace("_", "-")
                raise UsageProblem(f'Option "[{flag}]" can\'t be used with option "[{action}]"')
    if has("config") and action != "create":
        raise UsageProblem(f'Option "[config]" can\'t be used with option "[{action}]"')


def _parse_configs(items: list[str] | None) -> dict[str, str]:
    configs: dict[str, str] = {}
    for item in items or []:
        parts = [p.strip() for p in re.split(r"\s*=\s*", item)]
        if len(parts) != 2 or not parts[0]:
            raise UsageProblem(
                "requirement failed: Invalid topic config: all configs to be added must be in "
                'the format "key=val".'
            )
        configs[parts[0]] = parts[1]
    return configs


def _create(session: AdminSession, opts: argparse.Namespace) -> None:
    name: str = opts.topic
    partitions: int | None = opts.partitions
    replication: int | None = opts.replication_factor
    if replication is not None and not 1 <= replication <= 32767:
        raise UsageProblem("The replication factor must be between 1 and 32767 inclusive")
    if partitions is not None and partitions < 1:
        raise UsageProblem("The partitions must be greater than 0")
    configs = _parse_configs(opts.config)
    if "." in name or "_" in name:
        print(
            "WARNING: Due to limitations in metric names, topics with a period ('.') or "
            "underscore ('_') could collide. To avoid issues it is best to use either, but "
            "not both."
        )
    try:
        session.create_topic(name, partitions, replication, configs)
    except CliError as exc:
        if exc.code == KafkaError.TOPIC_ALREADY_EXISTS:
            if opts.if_not_exists:
                return
            raise CliError(f"Topic '{name}' already exists.", code=exc.code) from None
        raise
    print(f"Created topic {name}.")


def _matching_topics(session: AdminSession, opts: argparse.Namespace, require: bool) -> list[str]:
    """Kafka's getTopics + ensureTopicExists: ``--topic`` is a full-match regex list."""
    names = session.topic_names()
    if opts.exclude_internal:
        names = [n for n in names if not is_internal_topic(n)]
    topic: str | None = opts.topic
    if topic:
        pattern = "|".join(part.strip() for part in topic.split(","))
        try:
            regex = re.compile(pattern)
        except re.error:
            regex = re.compile(re.escape(topic))
        names = [n for n in names if regex.fullmatch(n)]
        if require and not names and not opts.if_exists:
            raise UsageProblem(f"Topic '{topic}' does not exist as expected")
    return names


def _list(session: AdminSession, opts: argparse.Namespace) -> None:
    names = _matching_topics(session, opts, require=False)
    print("\n".join(names))


def _alter(session: AdminSession, opts: argparse.Namespace) -> None:
    for name in _matching_topics(session, opts, require=True):
        session.create_partitions(name, opts.partitions)


def _delete(session: AdminSession, opts: argparse.Namespace) -> None:
    for name in _matching_topics(session, opts, require=True):
        session.delete_topic(name)


def _describe(session: AdminSession, opts: argparse.Namespace) -> None:
    names = _matching_topics(session, opts, require=True)
    topics = session.describe_topics(names, with_configs=True)
    reports = [
        flag
        for flag in (
            "under_replicated_partitions",
            "unavailable_partitions",
            "under_min_isr_partitions",
            "at_min_isr_partitions",
        )
        if getattr(opts, flag)
    ]
    overrides_only: bool = opts.topics_with_overrides
    for topic in topics:
        if not reports and (not overrides_only or topic.overridden_configs()):
            print(topic_line(topic))
        if overrides_only:
            continue
        for index in range(len(topic.partitions)):
            if not reports or any(_partition_matches(topic, index, r) for r in reports):
                print(partition_line(topic, index))


def _partition_matches(topic: TopicInfo, index: int, report_flag: str) -> bool:
    p = topic.partitions[index]
    min_isr = next((c.value for c in topic.configs if c.name == "min.insync.replicas"), "1")
    min_isr_count = int(min_isr) if min_isr and min_isr.isdigit() else 1
    if report_flag == "under_replicated_partitions":
        return len(p.isr) < len(p.replicas)
    if report_flag == "unavailable_partitions":
        return p.leader is None
    if report_flag == "under_min_isr_partitions":
        return p.leader is None or len(p.isr) < min_isr_count
    return len(p.isr) == min_isr_count  # at_min_isr_partitions


def topic_line(topic: TopicInfo) -> str:
    """``Topic: T\\tTopicId: …\\tPartitionCount: N\\tReplicationFactor: R\\tConfigs: k=v,…``"""
    configs = ",".join(f"{c.name}={c.value}" for c in topic.overridden_configs())
    fields = [f"Topic: {topic.name}"]
    if topic.topic_id:
        fields.append(f"TopicId: {topic.topic_id}")
    fields += [
        f"PartitionCount: {len(topic.partitions)}",
        f"ReplicationFactor: {topic.replication_factor}",
        f"Configs: {configs}",
    ]
    return "\t".join(fields)


def partition_line(topic: TopicInfo, index: int) -> str:
    """``\\tTopic: T\\tPartition: p\\tLeader: l\\tReplicas: …\\tIsr: …\\tElr: N/A\\t…``"""
    p = topic.partitions[index]
    leader = "none" if p.leader is None else str(p.leader)
    return "\t" + "\t".join(
        [
            f"Topic: {topic.name}",
            f"Partition: {p.partition}",
            f"Leader: {leader}",
            f"Replicas: {','.join(map(str, p.replicas))}",
            f"Isr: {','.join(map(str, p.isr))}",
            "Elr: N/A",
            "LastKnownElr: N/A",
        ]
    )
