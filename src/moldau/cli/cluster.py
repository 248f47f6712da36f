"""``moldau cluster info``: who is in the cluster, who controls it, who leads each partition;
``moldau cluster up``: a local etcd and N brokers on this machine (see cluster_up.py)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from moldau.cli.admin import AdminSession, ClusterInfo, PartitionLeadership
from moldau.cli.cluster_up import up
from moldau.cli.common import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_TIMEOUT_MS,
    BootstrapOption,
    FormatOption,
    OutputFormat,
    TimeoutOption,
    print_json,
    stdout_console,
)

app = typer.Typer(help="Inspect the cluster, or run one locally.", no_args_is_help=True)
app.command("up")(up)


@app.command("info")
def info(
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", help="Show leadership of this topic's partitions (repeatable)."),
    ] = None,
    partitions: Annotated[
        bool, typer.Option("--partitions", help="Show leadership of every partition.")
    ] = False,
) -> None:
    """Cluster id, controller, brokers and topic count; partition leaders, replicas and ISR
    with --partitions or --topic."""
    cluster = AdminSession(bootstrap, timeout_ms).cluster()
    wanted = set(topic or ())
    shown = [
        p
        for p in cluster.partitions
        if (partitions and not p.topic.startswith("__")) or p.topic in wanted
    ]
    if output is OutputFormat.json:
        document = cluster_document(cluster)
        if shown:
            document["partitions"] = [asdict(p) for p in shown]
        print_json(document)
    else:
        render_cluster(cluster)
        if shown:
            render_partitions(shown, {b.node_id for b in cluster.brokers})


def cluster_document(cluster: ClusterInfo) -> dict[str, object]:
    return {
        "cluster_id": cluster.cluster_id,
        "controller_id": cluster.controller_id,
        "brokers": [asdict(b) for b in cluster.brokers],
        "topic_count": cluster.topic_count,
    }


def render_cluster(cluster: ClusterInfo) -> None:
    console = stdout_console()
    controller = "none" if cluster.controller_id is None else str(cluster.controller_id)
    console.print(f"Cluster id: {cluster.cluster_id or '-'}", markup=False)
    console.print(f"Controller: {controller}", markup=False)
    console.print(f"Topics:     {cluster.topic_count}", markup=False)
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("Broker", "Host", "Port", "Controller"):
        table.add_column(column, no_wrap=True)
    for b in cluster.brokers:
        is_controller = "yes" if b.node_id == cluster.controller_id else ""
        table.add_row(str(b.node_id), b.host, str(b.port), is_controller)
    console.print(table)


def render_partitions(partitions: Sequence[PartitionLeadership], live: Collection[int]) -> None:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("Topic", "Partition", "Leader", "Replicas", "Isr", "Offline"):
        table.add_column(column, no_wrap=True)
    for p in partitions:
        offline = [r for r in p.replicas if r not in live]
        table.add_row(
            p.topic,
            str(p.partition),
            "none" if p.leader < 0 else str(p.leader),
            ",".join(map(str, p.replicas)),
            ",".join(map(str, p.isr)),
            ",".join(map(str, offline)),
        )
    stdout_console().print(table)
