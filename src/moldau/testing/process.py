"""What every test-kit child process shares: signals, clean stop, crash, pause, clean-up.

``BrokerProcess`` and ``EtcdProcess`` differ only in how they start and when they count as
up; stopping (SIGCONT then SIGTERM, SIGKILL after a timeout), crashing (SIGKILL), pausing
(SIGSTOP/SIGCONT), reading the output log and removing a temporary data directory are the
same, so they live here once.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self


class ChildProcess:
    """A child process with a log file; subclasses set ``log_path`` and implement
    ``start()`` (which sets ``process`` and returns self once the child is up)."""

    process: subprocess.Popen[bytes] | None = None
    log_path: Path
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def start(self, timeout_s: float = 30.0) -> Self:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """Clean shutdown (SIGTERM, after a SIGCONT in case it is paused); returns the exit
        code, killing the child if it does not exit within ``timeout_s``."""
        if self.process is None:
            return None
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        """Crash (SIGKILL): nothing is flushed or closed."""
        if self.process is None:
            return
        self._signal(signal.SIGKILL)
        self.process.wait()

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
