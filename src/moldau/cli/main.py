"""The ``moldau`` command: one typer app, one module per noun, one rule for errors.

Nouns: ``broker`` (run a broker), ``topic``, ``produce``, ``consume``, ``cluster``,
``group``, ``txn`` and ``producers`` (transactions). Every command except ``broker`` is a
Kafka client over the wire (confluent-kafka, or kio for the few APIs it lacks); none imports
the broker's internals.

Error policy, enforced here and nowhere else: a mistake — bad flag, unknown topic, broker
down, invalid config — prints ``error: <one line>`` on stderr and exits non-zero (2 for
usage errors, 1 otherwise); never a traceback. That is why :func:`run` drives click in
non-standalone mode: click's own handling prints multi-line usage blocks for bad flags.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from confluent_kafka import KafkaException

from moldau import __version__
from moldau.cli import acl as acl_cli
from moldau.cli import cluster, group, partitions, topic, txn
from moldau.cli import quota as quota_cli
from moldau.cli import user as user_cli
from moldau.cli.broker import broker
from moldau.cli.common import CliError, kafka_error_text, set_security_settings
from moldau.cli.consume import consume
from moldau.cli.kafka_args import librdkafka_config, load_properties
from moldau.cli.produce import produce

DEBUG_ENV = "MOLDAU_DEBUG"
COMMAND_CONFIG_ENV = "MOLDAU_COMMAND_CONFIG"

app = typer.Typer(
    name="moldau",
    help="moldau: Apache Kafka re-implemented in Python — broker and tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("broker")(broker)
app.add_typer(topic.app, name="topic")
app.command("produce")(produce)
app.command("consume")(consume)
app.add_typer(cluster.app, name="cluster")
app.add_typer(partitions.app, name="partitions")
app.add_typer(group.app, name="group")
app.add_typer(txn.app, name="txn")
app.add_typer(user_cli.app, name="user")
app.add_typer(acl_cli.app, name="acl")
app.add_typer(quota_cli.app, name="quota")
app.command("producers")(txn.producers)


def _version(value: bool) -> None:
    if value:
        print(f"moldau {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
    command_config: Annotated[
        Path | None,
        typer.Option(
            "--command-config",
            envvar=COMMAND_CONFIG_ENV,
            dir_okay=False,
            help="Client properties file (security.protocol, sasl.*, ssl.*; Kafka's or "
            "librdkafka's names) used by every client command.",
        ),
    ] = None,
) -> None:
    """moldau: Apache Kafka re-implemented in Python — broker and tools."""
    settings = librdkafka_config(load_properties(command_config)) if command_config else {}
    set_security_settings(settings)


def error_line(message: str) -> None:
    """The one line a failed command prints."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)


def run(argv: Sequence[str] | None = None) -> int:
    """Run ``moldau`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="moldau", standalone_mode=False)
    except typer.Abort:
        return 130
    except typer.TyperException as exc:
        # typer vendors click; its usage errors are only public as TyperException
        return _report_usage_error(exc)
    except CliError as exc:
        error_line(exc.message)
        return exc.exit_code
    except KafkaException as exc:
        error_line(kafka_error_text(exc))
        return 1
    except BrokenPipeError:
        # the reader went away (e.g. `moldau consume … | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:
        # A bug of ours. Users still get one line; MOLDAU_DEBUG=1 shows the traceback. The
        # broker keeps its tracebacks: its failures are for whoever runs and debugs it.
        if os.environ.get(DEBUG_ENV) or args[:1] == ["broker"]:
            raise
        error_line(f"internal error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for details)")
        return 1
    return result if isinstance(result, int) else 0


def _report_usage_error(exc: Exception) -> int:
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        # a group called without a subcommand: its help is the most useful answer
        print(ctx.get_help())
        return 2
    format_message = getattr(exc, "format_message", None)
    message = format_message() if callable(format_message) else str(exc)
    if ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    error_line(message)
    code = getattr(exc, "exit_code", 2)
    return code if isinstance(code, int) else 2


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point: exits the process with :func:`run`'s code."""
    raise SystemExit(run(argv))
