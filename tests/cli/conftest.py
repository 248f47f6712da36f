"""Helpers for the CLI tests: run a tool in-process and capture what it printed."""

from __future__ import annotations

import re
import uuid

import pytest
from cli_helpers import Runner, make_runner

from moldau.cli import kafka_tools
from moldau.cli.main import run


@pytest.fixture
def moldau(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Runner:
    """``moldau(*argv, stdin=...)`` runs the ``moldau`` command in-process."""
    monkeypatch.delenv("MOLDAU_BOOTSTRAP", raising=False)
    return make_runner(run, capsys, monkeypatch)


@pytest.fixture
def kafka_topics(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Runner:
    return make_runner(kafka_tools.kafka_topics, capsys, monkeypatch)


@pytest.fixture
def kafka_configs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Runner:
    return make_runner(kafka_tools.kafka_configs, capsys, monkeypatch)


@pytest.fixture
def console_producer(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Runner:
    return make_runner(kafka_tools.kafka_console_producer, capsys, monkeypatch)


@pytest.fixture
def console_consumer(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Runner:
    return make_runner(kafka_tools.kafka_console_consumer, capsys, monkeypatch)


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name unique to the test (the broker is shared by the module)."""
    base = re.sub(r"[^A-Za-z0-9-]+", "-", request.node.name).strip("-")[:40]
    return f"{base}-{uuid.uuid4().hex[:6]}"
