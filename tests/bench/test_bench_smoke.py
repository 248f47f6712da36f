"""Smoke test of ``python -m bench``: one tiny cell against both targets, structure only.

The benchmark measures; this only checks that it runs end to end (mock cluster host, broker
process, produce, fetch, table, JSON) so that ``make bench`` does not rot between releases.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.compat
def test_quick_bench_runs_against_both_targets(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    args = ["--quick", "--runs", "1", "--sizes", "100", "--acks", "1", "--partitions", "1,12"]
    result = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    measurements = json.loads(out.read_text())
    seen = {(m["target"], m["phase"], m["partitions"]) for m in measurements}
    assert seen == {
        (target, phase, partitions)
        for target in ("mock", "moldau")
        for phase in ("produce", "fetch")
        for partitions in (1, 12)
    }
    produced = {
        (m["target"], m["partitions"]): m["messages"]
        for m in measurements
        if m["phase"] == "produce"
    }
    for m in measurements:
        if m["phase"] == "fetch":  # everything produced was read back (at least)
            assert m["messages"] >= produced[(m["target"], m["partitions"])]
    assert "| produce | 100 B | 1 | 12 |" in result.stdout
    assert "moldau / mock" in result.stdout
