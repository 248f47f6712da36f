"""What every moldau command shares: where the broker is, how failures reach the user, output.

The command line has one rule for failure: a single line on stderr and a non-zero exit, never
a traceback. Everything below the typer/argparse layer therefore raises :class:`CliError`
with a finished sentence, and the front ends (``main.run`` and ``kafka_tools``) are the only
places that print it. Client errors from librdkafka arrive as ``KafkaException``; they are
translated here so that every command words them the same way.

Clients are confluent-kafka (librdkafka) talking to the broker over the wire. librdkafka
logs connection failures straight to stderr from its own threads, which would bury the one
line we print, so client logging is off unless ``MOLDAU_CLIENT_DEBUG`` names librdkafka
debug contexts (e.g. ``broker,protocol``).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from confluent_kafka import KafkaError, KafkaException
from rich.console import Console

DEFAULT_BOOTSTRAP = "localhost:9092"
BOOTSTRAP_ENV = "MOLDAU_BOOTSTRAP"
DEBUG_ENV = "MOLDAU_CLIENT_DEBUG"
DEFAULT_TIMEOUT_MS = 10_000
CLIENT_ID = "moldau-cli"

T = TypeVar("T")


class CliError(Exception):
    """A failure the user must see: one finished sentence, printed as one line.

    ``exit_code`` lets a command distinguish "you asked for something wrong" (2, like a
    usage error) from "the cluster said no" (1, the default). ``code`` keeps the Kafka (or
    librdkafka) error code when there was one, so a front end can react to it — e.g.
    ``kafka-topics --if-not-exists`` ignoring TOPIC_ALREADY_EXISTS.
    """

    def __init__(self, message: str, exit_code: int = 1, code: int | None = None) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())  # one line, always
        self.exit_code = exit_code
        self.code = code

    def __str__(self) -> str:
        return self.message


class OutputFormat(StrEnum):
    """``--format``: ``text`` for people (rich), ``json`` for programs (one document)."""

    text = "text"
    json = "json"


# Typer option types shared by every command, so the flags read the same everywhere.
BootstrapOption = Annotated[
    str,
    typer.Option(
        "--bootstrap",
        "-b",
        envvar=BOOTSTRAP_ENV,
        help="Broker address(es), HOST:PORT[,HOST:PORT...].",
        show_envvar=True,
    ),
]
FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output format.", case_sensitive=False)
]
TimeoutOption = Annotated[
    int,
    typer.Option("--timeout-ms", min=1, help="How long to wait for the broker, in milliseconds."),
]


def parse_key_value(item: str, what: str = "config") -> tuple[str, str]:
    """Split ``key=value`` at the first ``=``; the value may be empty, the key may not."""
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise CliError(f"invalid {what} '{item}': expected KEY=VALUE", exit_code=2)
    return key, value.strip()


def parse_key_values(items: Iterable[str], what: str = "config") -> dict[str, str]:
    """Several ``key=value`` items into a dict; a repeated key keeps its last value."""
    return dict(parse_key_value(item, what) for item in items)


def parse_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    """``host:port[,host:port]`` (``[v6]:port`` allowed) into addresses, or a CliError."""
    addresses: list[tuple[str, int]] = []
    for raw in bootstrap.split(","):
        entry = raw.strip()
        # librdkafka accepts an optional scheme prefix such as PLAINTEXT://
        entry = entry.split("://", 1)[-1]
        host, sep, port = entry.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise CliError(f"invalid bootstrap address '{raw.strip()}': expected HOST:PORT", 2)
        addresses.append((host, int(port)))
    if not addresses:
        raise CliError("no bootstrap address given", 2)
    return addresses


def ensure_reachable(bootstrap: str, timeout_ms: int) -> None:
    """Fail fast, with a clear sentence, when nothing listens at the bootstrap address.

    librdkafka retries a refused connection until the request times out and then reports
    a generic transport error; a plain TCP connect answers "nobody is there" in a
    millisecond, so every command checks this first.
    """
    timeout_s = min(timeout_ms, 5_000) / 1000
    reasons: list[str] = []
    for host, port in parse_bootstrap(bootstrap):
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return
        except OSError as exc:
            reasons.append(_socket_reason(exc))
    raise CliError(f"cannot connect to broker at {bootstrap}: {'; '.join(dict.fromkeys(reasons))}")


def _socket_reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "connection timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    return (exc.strerror or str(exc)).lower()


_security_settings: dict[str, str] = {}
"""librdkafka settings from ``moldau --command-config FILE`` (security.protocol, sasl.*,
ssl.*), set once per invocation by the root command and added to every client's config."""


def set_security_settings(settings: Mapping[str, str]) -> None:
    _security_settings.clear()
    _security_settings.update(settings)


def client_config(bootstrap: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """librdkafka settings every moldau tool starts from: ``moldau --command-config``'s
    security settings, then ``extra``, which wins."""
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "client.id": CLIENT_ID}
    config.update(_security_settings)
    debug = os.environ.get(DEBUG_ENV)
    if debug:
        config["debug"] = debug
    else:
        config["log_level"] = 0  # see the module docstring: keep stderr for our one line
    config.update(extra or {})
    return config


def admin_client(bootstrap: str | None, command_config: Path | None, timeout_ms: int) -> Any:
    """A confluent-kafka AdminClient for one command: the root ``--command-config`` settings,
    then the command's own ``--command-config`` file (Kafka's tools take it there)."""
    from confluent_kafka.admin import AdminClient

    from moldau.cli.kafka_args import librdkafka_config, load_properties

    bootstrap = bootstrap or DEFAULT_BOOTSTRAP
    extra = librdkafka_config(load_properties(command_config)) if command_config else {}
    ensure_reachable(bootstrap, timeout_ms)
    try:
        return AdminClient(client_config(bootstrap, extra))
    except KafkaException as exc:
        raise CliError(f"invalid client configuration: {kafka_error_text(exc)}", 2) from None


def kafka_error_text(exc: BaseException) -> str:
    """The human part of a librdkafka error, without the ``KafkaError{code=…}`` wrapper."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
    if isinstance(error, KafkaError):
        text = error.str() or error.name()
        return text.rstrip(".") if text else str(error.code())
    return str(error) or type(error).__name__


def kafka_error_code(exc: BaseException) -> int | None:
    """The numeric librdkafka/Kafka error code of ``exc``, if it carries one."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return error.code() if isinstance(error, KafkaError) else None


def wait(future: Future[T], timeout_ms: int, doing: str) -> T:
    """Resolve an admin future; a timeout or KafkaException becomes a one-line CliError.

    ``doing`` completes the sentence "… while <doing>", e.g. "creating topic 'orders'".
    """
    try:
        return future.result(timeout=timeout_ms / 1000 + 1)
    except FutureTimeoutError:
        raise CliError(f"timed out after {timeout_ms} ms while {doing}") from None
    except KafkaException as exc:
        raise CliError(
            f"{doing} failed: {kafka_error_text(exc)}", code=kafka_error_code(exc)
        ) from None


def stdout_console() -> Console:
    """A rich console on the *current* ``sys.stdout`` (tests swap it), never wrapping text."""
    return Console(file=sys.stdout, soft_wrap=True, highlight=False)


def print_json(document: object) -> None:
    """One compact JSON document on one line of stdout."""
    sys.stdout.write(json.dumps(document, separators=(",", ":"), ensure_ascii=False) + "\n")


def decode_text(data: bytes | None) -> str | None:
    """Bytes from Kafka as text: UTF-8, with undecodable bytes shown as ``\\xNN``."""
    return None if data is None else data.decode("utf-8", errors="backslashreplace")


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "0": "\0", "\\": "\\"}


def unescape(text: str) -> str:
    """Turn the two-character escapes ``\\t \\n \\r \\0 \\\\`` into the characters.

    Shells make a literal tab awkward to type, so separators and formats accept the
    escapes kcat users know; any other backslash is kept as written.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPES:
            out.append(_ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)
