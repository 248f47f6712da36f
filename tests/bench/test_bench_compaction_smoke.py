"""Smoke test of ``python -m bench.compaction``: a tiny run per codec, structure only.

The benchmark measures; this only checks that it runs end to end against a moldau broker
process (a compacted topic filled, a clean requested over the HTTP endpoint and reported
finished, produce latencies collected before and during it, both tables printed, JSON
written) so that the compaction benchmark does not rot. Timings are never looked at; the
counts checked are the ones the clean must get right whatever the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CODECS = ("none", "lz4")
QUICK_KEYS = 500


@pytest.mark.compat
def test_quick_compaction_bench_reports_every_codec(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.compaction", "--quick", "--runs", "1", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    measurements = json.loads(out.read_text())

    assert sorted(m["codec"] for m in measurements) == sorted(CODECS)
    for m in measurements:
        assert (m["topic_mb"], m["keys"], m["value_bytes"]) == (4, QUICK_KEYS, 1024)
        # the clean read closed segments of the fill (the active one is never cleaned) ...
        assert m["records_read"] > QUICK_KEYS
        assert m["bytes_read"] > 0
        # ... and kept at most one record per key (a producer's last batch may stay empty)
        assert 0 < m["records_kept"] <= QUICK_KEYS
        assert 0 < m["bytes_written"] < m["bytes_read"]
        assert m["idle"]["samples"] > 0
        assert m["cleaning"]["samples"] > 0

    stdout = result.stdout
    for codec in CODECS:
        assert f"| {codec} | 4 MB x 1024 B | {QUICK_KEYS} |" in stdout
        assert f"| {codec} | 500 |" in stdout  # the latency row at --quick's rate
    assert "cleaner MB/s" in stdout
    assert "p99 cleaning / idle" in stdout
