"""Smoke test of ``python -m bench.cluster``: a tiny run, structure only.

It checks that the benchmark runs end to end (a local etcd + 3 brokers, the three produce
set-ups, one leader kill with a recovery) and prints its table, so that it does not rot.
Timings are never looked at.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_cluster_benchmark_runs_end_to_end() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.cluster",
            "--runs",
            "1",
            "--messages",
            "300",
            "--kills",
            "1",
            "--json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads(result.stdout[: result.stdout.index("\nProduce")])
    assert set(document["throughput"]) == {"RF=1 acks=1", "RF=1 acks=all", "RF=3 acks=all"}
    assert all(len(v) == 1 and v[0] > 0 for v in document["throughput"].values())
    assert len(document["failover_s"]) == 1 and document["failover_s"][0] > 0
    assert "| RF=3 acks=all |" in result.stdout
    assert "Failover" in result.stdout
