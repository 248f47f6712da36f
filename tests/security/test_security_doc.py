"""docs/security.md's worked example (TLS + SCRAM + ACLs) runs as written: its shell blocks,
in order, in an empty directory, with the example's port replaced by a free one."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from moldau.testing.broker import free_port

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
EXAMPLE_PORT = "9094"

pytestmark = pytest.mark.compat


def example_blocks() -> list[str]:
    text = DOC.read_text()
    worked = text[text.index("## Worked example") :]
    return re.findall(r"```sh\n(.*?)```", worked, re.S)


def expected_output() -> list[str]:
    """The lines the doc says the consume step prints (the block after "prints")."""
    worked = DOC.read_text().split("## Worked example", 1)[1]
    block = re.search(r"prints\n\n```\n(.*?)```", worked, re.S)
    assert block is not None, "the worked example lost its expected output"
    return block.group(1).splitlines()


def test_the_worked_example_runs_as_documented(tmp_path: Path) -> None:
    blocks = example_blocks()
    assert len(blocks) >= 6, "the worked example lost its steps"
    port = str(free_port())
    script = "set -euo pipefail\n" + "\n".join(b.replace(EXAMPLE_PORT, port) for b in blocks)
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    try:
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        pid_file = tmp_path / "broker.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):  # the example stopped it, as it should
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
    log = (tmp_path / "broker.log").read_text() if (tmp_path / "broker.log").exists() else ""
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{log[-3000:]}"
    lines = result.stdout.splitlines()
    expected = expected_output()
    start = lines.index(expected[0])
    assert lines[start : start + len(expected)] == expected
    assert "Topic authorization failed" in (tmp_path / "refused.txt").read_text()
    assert "SASL SCRAM-SHA-512 authenticated as User:alice" in log
    for secret in ("admin-secret", "alice-secret"):
        assert secret not in log
