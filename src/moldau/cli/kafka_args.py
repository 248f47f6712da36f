"""What Kafka's tool front ends share: argument parsing, properties files, client configs.

Kafka's scripts parse with joptsimple: ``--long-name value`` or ``--long-name=value``, options
repeatable where Kafka allows it, unique prefixes accepted. argparse gives the same
surface; :class:`ToolArgumentParser` only changes how it fails — one line on stderr via
:class:`UsageProblem` instead of argparse's usage block.

Kafka's tools accept Java client properties (``--producer-property``, ``--command-config``);
librdkafka spells most of them the same, rejects what it does not know with a clear
message, and has no use for the Java-only ones (serializers, ``buffer.memory``), which
:func:`librdkafka_config` drops.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from moldau.cli.common import CliError

# Java client properties with no librdkafka counterpart; they configure JVM-side objects.
_JAVA_ONLY = frozenset(
    {
        "key.serializer",
        "value.serializer",
        "key.deserializer",
        "value.deserializer",
        "buffer.memory",
        "max.block.ms",
        "interceptor.classes",
        "metric.reporters",
        "partitioner.class",
        "default.api.timeout.ms",
    }
)
# Java names librdkafka spells differently.
_RENAMED = {"max.request.size": "message.max.bytes"}


class UsageProblem(Exception):
    """The command line itself is wrong; printed as one line, exit code 1 (like Kafka)."""


class ToolArgumentParser(argparse.ArgumentParser):
    """argparse that reports mistakes as :class:`UsageProblem` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageProblem(message)


def load_properties(path: str | Path) -> dict[str, str]:
    """A Java ``.properties`` file: ``key=value``/``key: value``, ``#``/``!`` comments,
    backslash line continuations. Enough for client and server configs."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read properties file '{path}': {exc.strerror or exc}") from None
    properties: dict[str, str] = {}
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if not line or line[0] in "#!":
            continue
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending = line[:-1]
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if cut < 0:
            key, value = line, ""
        else:
            key, value = line[:cut], line[cut + 1 :]
        properties[key.strip()] = value.strip()
    if pending:
        key, _, value = pending.partition("=")
        properties[key.strip()] = value.strip()
    return properties


def parse_properties(items: Iterable[str] | None, option: str) -> dict[str, str]:
    """``--property k=v`` items (repeatable) into a dict; the value may contain ``=``."""
    properties: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageProblem(f"Invalid {option} '{item}': expected key=value")
        properties[key.strip()] = value
    return properties


def librdkafka_config(java_properties: Mapping[str, str]) -> dict[str, str]:
    """Java client properties as librdkafka settings (see the module docstring)."""
    config: dict[str, str] = {}
    for key, value in java_properties.items():
        if key in _JAVA_ONLY:
            continue
        if key == "sasl.jaas.config":
            config.update(_jaas_credentials(value))
            continue
        config[_RENAMED.get(key, key)] = value
    return config


def _jaas_credentials(text: str) -> dict[str, str]:
    """Java clients put SASL credentials in ``sasl.jaas.config`` (PlainLoginModule /
    ScramLoginModule ``username=... password=...``); librdkafka wants ``sasl.username`` and
    ``sasl.password``. The error never quotes the text: it holds a password."""
    from moldau.broker.auth.plain import JaasConfigError, parse_jaas_config

    try:
        entries = parse_jaas_config(text)
    except JaasConfigError as exc:
        raise CliError(f"invalid sasl.jaas.config: {exc}", 2) from None
    for entry in entries:
        options = entry.options
        if "username" in options and "password" in options:
            return {"sasl.username": options["username"], "sasl.password": options["password"]}
    raise CliError("sasl.jaas.config has no username and password options", 2)


def run_tool(
    body: Callable[[Sequence[str]], int],
    argv: Sequence[str] | None,
    report: Callable[[CliError], str],
) -> int:
    """Run one tool; usage problems and CliErrors become one stderr line and exit code 1.

    ``report`` words a CliError the way the Kafka tool would (e.g. kafka-topics prefixes
    "Error while executing topic command : ").
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return body(args)
    except UsageProblem as exc:
        _line(str(exc))
        return 1
    except CliError as exc:
        _line(report(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except SystemExit as exc:  # argparse --help / --version
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:
        if os.environ.get("MOLDAU_DEBUG"):
            raise
        _line(f"internal error: {type(exc).__name__}: {exc} (set MOLDAU_DEBUG=1 for details)")
        return 1


def _line(message: str) -> None:
    print(" ".join(message.split()), file=sys.stderr)
