"""``moldau topic …``: create, list, describe, alter the config of, compact and delete topics.

Thin typer commands over :class:`~moldau.cli.admin.AdminSession`: parse flags, call the
session, render. Text output is for people (rich tables); ``--format json`` prints one JSON
document whose shape is the dataclasses of ``admin.py``, for scripts.

Log compaction has no Kafka API, so ``describe`` (cleanable ratio, last clean of a compacted
topic) and ``compact`` talk to the broker's HTTP endpoint, found through DescribeConfigs
(:mod:`moldau.cli.broker_http`). ``describe`` still answers when that endpoint is off or
unreachable: it says so in one line on stderr and shows the rest.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from typing import Annotated

import typer
from confluent_kafka import KafkaError
from rich.table import Table

from moldau.cli.admin import (
    UNKNOWN_TOPIC_CODES,
    AdminSession,
    ConfigInfo,
    TopicInfo,
    is_internal_topic,
)
from moldau.cli.broker_http import BrokerHttpClient, CleanerPartitionStatus
from moldau.cli.common import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_TIMEOUT_MS,
    BootstrapOption,
    CliError,
    FormatOption,
    OutputFormat,
    TimeoutOption,
    parse_key_values,
    print_json,
    stdout_console,
)

app = typer.Typer(help="Create, list, describe, alter and delete topics.", no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(help="Topic name.", show_default=False)]


@app.command("create")
def create(
    name: NameArgument,
    partitions: Annotated[
        int | None,
        typer.Option("--partitions", "-p", min=1, help="Partition count [broker default]."),
    ] = None,
    replication_factor: Annotated[
        int | None,
        typer.Option(
            "--replication-factor", "-r", min=1, help="Replicas per partition [broker default]."
        ),
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option("--config", "-c", help="Topic config KEY=VALUE (repeatable)."),
    ] = None,
    if_not_exists: Annotated[
        bool, typer.Option("--if-not-exists", help="Succeed if the topic already exists.")
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Create a topic."""
    configs = parse_key_values(config or [])
    session = AdminSession(bootstrap, timeout_ms)
    created = True
    try:
        session.create_topic(name, partitions, replication_factor, configs)
    except CliError as exc:
        if not (if_not_exists and exc.code == KafkaError.TOPIC_ALREADY_EXISTS):
            raise
        created = False
    if output is OutputFormat.json:
        print_json({"topic": name, "created": created})
    else:
        stdout_console().print(
            f"Created topic {name}." if created else f"Topic {name} already exists."
        )


@app.command("list")
def list_(
    internal: Annotated[
        bool, typer.Option("--internal/--no-internal", help="Include internal topics.")
    ] = True,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """List topic names, one per line (JSON: name and partition count)."""
    counts = AdminSession(bootstrap, timeout_ms).topic_partition_counts()
    if not internal:
        counts = {n: c for n, c in counts.items() if not is_internal_topic(n)}
    if output is OutputFormat.json:
        print_json([{"name": n, "partitions": c} for n, c in counts.items()])
    else:
        for name in counts:
            print(name)


@app.command("describe")
def describe(
    name: NameArgument,
    all_configs: Annotated[
        bool, typer.Option("--all-configs", help="Show every config, defaults included.")
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Partitions (leader, replicas, ISR, log start offset, high watermark) and configs;
    for a compacted topic also each partition's cleanable ratio and last clean time."""
    session = AdminSession(bootstrap, timeout_ms)
    (topic,) = session.describe_topics([name], with_offsets=True)
    configs = list(topic.configs) if all_configs else topic.overridden_configs()
    cleaner: list[CleanerPartitionStatus] | None = None
    if is_compacted(topic):
        try:
            cleaner = BrokerHttpClient.discover(session).cleaner_status(name)
        except CliError as exc:
            print(f"warning: no cleaner status: {exc.message}", file=sys.stderr)
    if output is OutputFormat.json:
        document = topic_document(topic, configs)
        if is_compacted(topic):
            document["cleaner"] = None if cleaner is None else [asdict(c) for c in cleaner]
        print_json(document)
    else:
        render_topic(topic, configs, cleaner)


@app.command("compact")
def compact(
    name: NameArgument,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Ask the broker to clean a compacted topic now, whatever its dirty ratio.

    The clean itself runs in the background; `topic describe` shows when it has happened.
    """
    session = AdminSession(bootstrap, timeout_ms)
    policy = _cleanup_policy(session.topic_configs(name))
    if "compact" not in policy:
        shown = ",".join(sorted(policy)) or "delete"
        raise CliError(
            f"topic '{name}' is not compacted (cleanup.policy={shown}); "
            "only compacted topics can be cleaned"
        )
    queued = BrokerHttpClient.discover(session).request_compaction(name)
    if queued == 0:
        raise CliError(
            f"the broker queued no partition of '{name}' for cleaning: its log cleaner is not "
            "running (log.cleaner.enable=false or log.cleaner.threads=0)"
        )
    if output is OutputFormat.json:
        print_json({"topic": name, "queued": queued})
    else:
        plural = "partition" if queued == 1 else "partitions"
        stdout_console().print(f"Queued {queued} {plural} of topic {name} for compaction.")


@app.command("delete")
def delete(
    name: NameArgument,
    if_exists: Annotated[
        bool, typer.Option("--if-exists", help="Succeed if the topic does not exist.")
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Delete a topic and all its data."""
    session = AdminSession(bootstrap, timeout_ms)
    deleted = True
    try:
        session.delete_topic(name)
    except CliError as exc:
        if not (if_exists and exc.code in UNKNOWN_TOPIC_CODES):
            raise
        deleted = False
    if output is OutputFormat.json:
        print_json({"topic": name, "deleted": deleted})
    else:
        stdout_console().print(
            f"Deleted topic {name}." if deleted else f"Topic {name} does not exist."
        )


@app.command("alter-config")
def alter_config(
    name: NameArgument,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Set KEY=VALUE (repeatable).")
    ] = None,
    delete: Annotated[
        list[str] | None,
        typer.Option("--delete", help="Remove an override, back to the default (repeatable)."),
    ] = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Change topic configs incrementally: keys not named keep their values."""
    to_set = parse_key_values(set_ or [])
    to_delete = [k.strip() for k in delete or []]
    if not to_set and not to_delete:
        raise CliError("nothing to change: give --set KEY=VALUE and/or --delete KEY", 2)
    AdminSession(bootstrap, timeout_ms).alter_configs("topic", name, to_set, to_delete)
    if output is OutputFormat.json:
        print_json({"topic": name, "set": to_set, "deleted": to_delete})
    else:
        changes = [f"{k}={v}" for k, v in to_set.items()] + [f"-{k}" for k in to_delete]
        stdout_console().print(f"Updated config of topic {name}: {', '.join(changes)}")


def topic_document(topic: TopicInfo, configs: list[ConfigInfo]) -> dict[str, object]:
    """The JSON shape of ``topic describe``."""
    return {
        "topic": topic.name,
        "topic_id": topic.topic_id,
        "partition_count": len(topic.partitions),
        "replication_factor": topic.replication_factor,
        "partitions": [asdict(p) for p in topic.partitions],
        "configs": [
            {
                "name": c.name,
                "value": c.value,
                "source": c.source,
                "sensitive": c.is_sensitive,
                "read_only": c.is_read_only,
            }
            for c in configs
        ],
    }


def is_compacted(topic: TopicInfo) -> bool:
    return "compact" in _cleanup_policy(topic.configs)


def _cleanup_policy(configs: Iterable[ConfigInfo]) -> set[str]:
    for c in configs:
        if c.name == "cleanup.policy":
            return {p.strip() for p in (c.value or "").split(",") if p.strip()}
    return set()


def render_topic(
    topic: TopicInfo,
    configs: list[ConfigInfo],
    cleaner: list[CleanerPartitionStatus] | None = None,
) -> None:
    console = stdout_console()
    console.print(
        f"[bold]Topic:[/bold] {topic.name}   [bold]Id:[/bold] {topic.topic_id or '-'}   "
        f"[bold]Partitions:[/bold] {len(topic.partitions)}   "
        f"[bold]Replication factor:[/bold] {topic.replication_factor}",
        markup=True,
    )
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("Partition", "Leader", "Replicas", "ISR", "Log start offset", "High watermark"):
        numeric = column in ("Log start offset", "High watermark")
        table.add_column(column, no_wrap=True, justify="right" if numeric else "left")
    for p in topic.partitions:
        table.add_row(
            str(p.partition),
            "none" if p.leader is None else str(p.leader),
            ",".join(map(str, p.replicas)),
            ",".join(map(str, p.isr)),
            _offset(p.log_start_offset),
            _offset(p.high_watermark),
        )
    console.print(table)
    if cleaner is not None:
        render_cleaner(cleaner, [p.partition for p in topic.partitions])
    if configs:
        console.print("[bold]Configs:[/bold]", markup=True)
        for c in configs:
            value = "<sensitive>" if c.is_sensitive else c.value
            console.print(f"  {c.name}={value}  ({c.source})", markup=False)
    else:
        console.print("[bold]Configs:[/bold] (all defaults)", markup=True)


def render_cleaner(cleaner: list[CleanerPartitionStatus], partitions: list[int]) -> None:
    """A second table for compacted topics, so that the first still fits 80 columns."""
    console = stdout_console()
    console.print("[bold]Log cleaner:[/bold]", markup=True)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("Partition", "Cleanable ratio", "First dirty offset", "Last clean", "State"):
        left = column in ("Partition", "Last clean", "State")
        table.add_column(column, no_wrap=True, justify="left" if left else "right")
    status = {c.partition: c for c in cleaner}
    for partition in partitions:
        table.add_row(str(partition), *_cleaner_cells(status.get(partition)))
    console.print(table)
    for skipped in cleaner:
        if skipped.uncleanable_reason:
            console.print(
                f"  partition {skipped.partition} is not cleaned: {skipped.uncleanable_reason}",
                markup=False,
            )


def _cleaner_cells(status: CleanerPartitionStatus | None) -> list[str]:
    """Cleanable ratio (dirty share of the cleanable bytes), first dirty offset, when the
    last clean ended (local time) and whether one runs now."""
    if status is None:
        return ["?", "?", "?", "?"]
    if status.last_clean_time_ms < 0:
        last = "never"
    else:
        when = datetime.fromtimestamp(status.last_clean_time_ms / 1000)
        last = when.isoformat(sep=" ", timespec="seconds")
    if status.uncleanable_reason:
        state = "uncleanable"
    else:
        state = "cleaning" if status.cleaning else "idle"
    return [f"{status.cleanable_ratio:.2f}", str(status.first_dirty_offset), last, state]


def _offset(offset: int | None) -> str:
    return "?" if offset is None else str(offset)
