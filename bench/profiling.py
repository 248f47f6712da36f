"""Sample the moldau broker with py-spy while a measurement runs (``--profile DIR``).

py-spy attaches to the running broker process from outside (no restart, no code changes)
and writes a flamegraph when it is stopped with SIGINT. It is not a dependency of the
project: install it with ``.venv/bin/pip install py-spy`` to use ``--profile``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path


class PySpy:
    def __init__(self, process: subprocess.Popen[bytes], output: Path) -> None:
        self.process = process
        self.output = output

    @classmethod
    def record(cls, pid: int, output: Path, rate_hz: int = 250) -> PySpy:
        """Start sampling ``pid``; the format follows ``output``'s suffix: ``.svg`` a
        flamegraph, ``.json`` speedscope, anything else collapsed stacks (``raw``), the
        easiest to aggregate with a few lines of Python."""
        fmt = {".svg": "flamegraph", ".json": "speedscope"}.get(output.suffix, "raw")
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(exe).exists():
            raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
        process = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate_hz),
                "--output",
                str(output),
                "--format",
                fmt,
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return cls(process, output)

    def stop(self) -> None:
        """Stop sampling and let py-spy write its output."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
