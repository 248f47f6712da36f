"""Mistakes that need no broker: each prints one line on stderr and exits non-zero."""

from __future__ import annotations

import pytest
from cli_helpers import Runner

from moldau.testing.broker import free_port


@pytest.fixture
def nobody() -> str:
    """A bootstrap address nobody listens on."""
    return f"127.0.0.1:{free_port()}"


@pytest.mark.parametrize(
    "argv",
    [
        ["topic", "list", "-b", "{addr}"],
        ["topic", "describe", "orders", "-b", "{addr}"],
        ["topic", "create", "orders", "-b", "{addr}"],
        ["cluster", "info", "--bootstrap", "{addr}"],
        ["consume", "orders", "-e", "-b", "{addr}"],
        ["produce", "orders", "-b", "{addr}"],
    ],
)
def test_broker_down_is_one_clear_line(moldau: Runner, nobody: str, argv: list[str]) -> None:
    result = moldau(*(a.format(addr=nobody) for a in argv), stdin="x\n")
    assert result.code == 1
    assert result.err_lines == [f"error: cannot connect to broker at {nobody}: connection refused"]
    assert result.out == ""


def test_bootstrap_from_environment(
    moldau: Runner, nobody: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOLDAU_BOOTSTRAP", nobody)
    result = moldau("topic", "list")
    assert result.code == 1
    assert nobody in result.err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["topic", "create", "t", "--bogus"], "No such option: --bogus"),
        (["topic", "create"], "Missing argument"),
        (["topic", "create", "t", "-p", "0"], "--partitions"),
        (["topic", "create", "t", "-c", "novalue"], "invalid config 'novalue'"),
        (["consume", "t", "--format", "%q"], "unknown placeholder %q"),
        (["consume", "t", "--from-beginning", "--offset", "3"], "cannot be used together"),
        (["produce", "t", "--acks", "2"], "--acks"),
        (["topic", "alter-config", "t"], "nothing to change"),
        (["topic", "describe", "t", "-b", "nohostport"], "invalid bootstrap address"),
        (["nosuchcommand"], "No such command"),
    ],
)
def test_usage_errors_are_one_line(moldau: Runner, argv: list[str], needle: str) -> None:
    result = moldau(*argv)
    assert result.code == 2
    assert len(result.err_lines) == 1, result.err
    assert result.err_lines[0].startswith("error: ")
    assert needle in result.err_lines[0]
    assert "Traceback" not in result.err


def test_group_without_subcommand_shows_help(moldau: Runner) -> None:
    result = moldau("topic")
    assert result.code == 2
    assert "create" in result.out and "describe" in result.out


def test_version(moldau: Runner) -> None:
    result = moldau("--version")
    assert result.code == 0
    assert result.out.startswith("moldau ")


def test_broker_command_rejects_bad_override_before_starting(moldau: Runner) -> None:
    result = moldau("broker", "--set", "novalue")
    assert result.code == 2
    assert result.err_lines == ["error: invalid --set value 'novalue': expected KEY=VALUE"]


def test_broker_command_passes_its_arguments_to_run(
    moldau: Runner, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    import moldau.broker.main as broker_main

    calls: list[tuple[object, ...]] = []

    def fake_run(*args: object) -> int:
        calls.append(args)
        return 3

    monkeypatch.setattr(broker_main, "run", fake_run)
    result = moldau(
        "broker", "--listen", "127.0.0.1:1234", "--data-dir", "d", "--set", "a=b", "--node-id", "7"
    )
    assert result.code == 3
    from pathlib import Path

    assert calls == [("127.0.0.1:1234", Path("d"), None, ["a=b"], 7)]


@pytest.mark.parametrize(
    ("tool", "argv", "needle"),
    [
        ("kafka_topics", ["--list"], "bootstrap-server"),
        ("kafka_topics", ["--bootstrap-server", "h:1"], "exactly one action"),
        ("kafka_topics", ["--bootstrap-server", "h:1", "--create"], '"[topic]"'),
        ("kafka_topics", ["--bootstrap-server", "h:1", "--list", "--nope"], "unrecognized"),
        (
            "kafka_topics",
            ["--bootstrap-server", "h:1", "--alter", "--topic", "t", "--config", "a=b"],
            "kafka-configs",
        ),
        ("kafka_configs", ["--bootstrap-server", "h:1", "--describe"], "entity type"),
        (
            "kafka_configs",
            ["--bootstrap-server", "h:1", "--alter", "--entity-type", "topics"],
            "entity name",
        ),
        (
            "kafka_configs",
            ["--bootstrap-server", "h:1", "--entity-type", "users", "--describe"],
            "not supported",
        ),
        (
            "kafka_configs",
            [
                "--bootstrap-server",
                "h:1",
                "--alter",
                "--entity-type",
                "brokers",
                "--entity-default",
                "--add-config",
                "a=b",
            ],
            "--entity-default",
        ),
        ("console_consumer", ["--bootstrap-server", "h:1"], "include/topic"),
        (
            "console_consumer",
            ["--bootstrap-server", "h:1", "--topic", "t", "--offset", "3"],
            "partition is required",
        ),
        (
            "console_consumer",
            ["--bootstrap-server", "h:1", "--topic", "t", "--partition", "0", "--offset", "x"],
            "offset value is incorrect",
        ),
        ("console_producer", ["--bootstrap-server", "h:1"], '"[topic]"'),
    ],
)
def test_kafka_tool_usage_errors_are_one_line(
    request: pytest.FixtureRequest, tool: str, argv: list[str], needle: str
) -> None:
    runner: Runner = request.getfixturevalue(tool)
    result = runner(*argv)
    assert result.code == 1
    assert len(result.err_lines) == 1, result.err
    assert needle in result.err_lines[0]


def test_kafka_topics_broker_down(kafka_topics: Runner, nobody: str) -> None:
    result = kafka_topics("--bootstrap-server", nobody, "--list")
    assert result.code == 1
    assert result.err_lines == [
        f"Error while executing topic command : cannot connect to broker at {nobody}: "
        "connection refused"
    ]


def test_console_consumer_broker_down(console_consumer: Runner, nobody: str) -> None:
    result = console_consumer("--bootstrap-server", nobody, "--topic", "t")
    assert result.code == 1
    assert result.err_lines == [f"ERROR cannot connect to broker at {nobody}: connection refused"]
