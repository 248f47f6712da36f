"""Smoke test of ``python -m bench.security``: a tiny run, structure only.

It checks that the benchmark runs end to end (one broker with PLAINTEXT, SSL and SASL_SSL
listeners, a SCRAM user created over the wire, produce and fetch over each) and prints its
table, so that it does not rot. Timings are never looked at.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_security_benchmark_runs_end_to_end() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.security", "--runs", "1", "--messages", "500", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads(result.stdout[: result.stdout.index("\nProduce")])
    assert set(document) == {"PLAINTEXT", "SSL", "SASL_SSL"}
    for figures in document.values():
        assert len(figures["produce"]) == 1 and figures["produce"][0] > 0
        assert len(figures["fetch"]) == 1 and figures["fetch"][0] > 0
    for protocol in ("PLAINTEXT", "SSL", "SASL_SSL"):
        assert f"| {protocol} |" in result.stdout
