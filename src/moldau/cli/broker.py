"""``moldau broker``: start a broker in this process.

The command line is the only place above ``moldau.broker`` in the layering, and it imports
the broker lazily, inside the command: every other ``moldau`` command is a Kafka client and
should not pay for (or depend on) loading the server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from moldau.cli.common import CliError, parse_key_value
from moldau.cli.kafka_args import load_properties

DEFAULT_LISTEN = "127.0.0.1:9092"
DEFAULT_DATA_DIR = Path("./moldau-data")


def broker(
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help=f"Address to accept clients on, HOST:PORT [default: {DEFAULT_LISTEN}, "
            "unless the config sets listeners].",
            show_default=False,
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help=f"Directory for logs and metadata [default: {DEFAULT_DATA_DIR}, unless the "
            "config sets log.dirs].",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="server.properties file (Kafka's keys).", dir_okay=False),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one config, KEY=VALUE (repeatable)."),
    ] = None,
    node_id: Annotated[int | None, typer.Option("--node-id", help="This broker's id.")] = None,
    metadata: Annotated[
        str | None,
        typer.Option(
            "--metadata",
            help="Join a cluster: etcd://HOST:PORT[,HOST:PORT] (without it: single node).",
        ),
    ] = None,
) -> None:
    """Run a broker until interrupted (SIGINT/SIGTERM shut it down cleanly)."""
    overrides = list(set_ or [])
    if metadata is not None:
        overrides.append(f"moldau.metadata={metadata}")
    for item in overrides:
        parse_key_value(item, "--set value")  # a clear error before the broker starts
    if config is not None and not config.is_file():
        raise CliError(f"config file '{config}' does not exist", 2)
    # The shorthands' defaults apply only where the config leaves the key unset: a
    # server.properties with its own listeners/log.dirs must not be overridden silently.
    configured = {parse_key_value(item, "--set value")[0] for item in overrides}
    if config is not None:
        configured |= set(load_properties(config))
    if listen is None and "listeners" not in configured:
        listen = DEFAULT_LISTEN
    if data_dir is None and not configured & {"log.dirs", "log.dir"}:
        data_dir = DEFAULT_DATA_DIR
    try:
        from moldau.broker.main import run
    except ImportError as exc:
        raise CliError(f"the broker cannot be loaded: {exc}") from None
    code = run(listen, data_dir, config, overrides, node_id)
    raise typer.Exit(code)
