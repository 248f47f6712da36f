"""Smoke test of ``python -m bench.transactions``: a tiny run against both targets, structure only.

The benchmark measures; this only checks that it runs end to end (transactional and idempotent
producers against the mock cluster and a moldau broker process, every commit succeeding, both
tables printed, JSON written) so that the transaction benchmark does not rot. Timings are
never looked at.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TARGETS = ("mock", "moldau")


def _run_quick(tmp_path: Path, targets: tuple[str, ...]) -> tuple[str, list[dict[str, object]]]:
    out = tmp_path / "results.json"
    args = ["--quick", "--runs", "1", "--targets", ",".join(targets), "--json", str(out)]
    result = subprocess.run(
        [sys.executable, "-m", "bench.transactions", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout, json.loads(out.read_text())


@pytest.mark.compat
def test_quick_txn_bench_runs_against_both_targets(tmp_path: Path) -> None:
    stdout, measurements = _run_quick(tmp_path, TARGETS)

    seen = {(m["target"], m["workload"], m["partitions"]) for m in measurements}
    assert seen == {
        (target, workload, partitions)
        for target in TARGETS
        for workload, partitions in (
            ("small txn", 1),
            ("transactional", 1),
            ("idempotent", 1),
            ("transactional", 4),
            ("idempotent", 4),
        )
    }
    for m in measurements:
        if m["workload"] == "small txn":  # --quick: 20 transactions of 10 messages
            assert (m["transactions"], m["messages"], m["value_bytes"]) == (20, 200, 100)
        elif m["workload"] == "transactional":  # 4 transactions of 1,000 x 1 KiB
            assert (m["transactions"], m["messages"], m["value_bytes"]) == (4, 4000, 1024)
        else:  # the same messages without transactions
            assert (m["transactions"], m["messages"], m["value_bytes"]) == (0, 4000, 1024)

    assert "| 10 x 100 B, commit | 1 |" in stdout
    for partitions in (1, 4):
        assert f"| idempotent | {partitions} |" in stdout
        assert f"| transactional (4 x 1,000 x 1 KiB) | {partitions} |" in stdout
    assert stdout.count("moldau / mock") == 2  # a ratio column in both tables
    assert "moldau txn / idempotent" in stdout
