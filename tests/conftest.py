"""Shared fixtures: a real broker process per test module or per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from moldau.testing import BrokerProcess


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker shared by a test module; tests use distinct topic names and group ids.

    New groups form at once (no ``group.initial.rebalance.delay.ms``): the delay only waits
    for more members, and tests that care about it start brokers of their own."""
    data_dir = tmp_path_factory.mktemp("broker") / "data"
    proc = BrokerProcess(data_dir, config={"group.initial.rebalance.delay.ms": "0"})
    proc.start()
    yield proc
    proc.close()


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker of the test's own, for tests that restart, crash or reconfigure it."""
    proc = BrokerProcess(tmp_path / "data")
    yield proc
    proc.close()
