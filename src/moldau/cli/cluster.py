"""``moldau cluster info``: who is in the cluster, who controls it, how many topics it holds."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.table import Table

from moldau.cli.admin import AdminSession, ClusterInfo
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

app = typer.Typer(help="Inspect the cluster.", no_args_is_help=True)


@app.command("info")
def info(
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Cluster id, controller, brokers and topic count."""
    cluster = AdminSession(bootstrap, timeout_ms).cluster()
    if output is OutputFormat.json:
        print_json(cluster_document(cluster))
    else:
        render_cluster(cluster)


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
