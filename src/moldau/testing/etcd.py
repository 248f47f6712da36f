"""Start a real single-member etcd on free loopback ports, for cluster tests.

Cluster tests need etcd exactly as production runs it (Debian's ``etcd-server``), including
its failure modes: SIGKILL and restart on the same data directory (revisions survive, watches
must resume), SIGSTOP longer than a lease TTL (leases expire on resume). This module only
manages the process; it talks to etcd over HTTP (``/health``) and imports nothing of moldau's
cluster code, so the test kit stays a wire-level outsider.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from moldau.testing.broker import free_port
from moldau.testing.process import ChildProcess


class EtcdProcess(ChildProcess):
    """One etcd member as a child process with its own data directory and ports.

    The client and peer ports are chosen once, so ``restart()`` brings etcd back where its
    clients expect it. ``start()`` returns once ``/health`` answers healthy. ``stop()`` is
    SIGTERM, ``kill()`` SIGKILL (the data directory survives both), ``pause()``/``resume()``
    are SIGSTOP/SIGCONT. Output goes to ``etcd-<port>.log`` next to the data directory.
    """

    def __init__(self, data_dir: Path | None = None, *, host: str = "127.0.0.1") -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="moldau-etcd-")
            data_dir = Path(self._tmp.name) / "etcd"
        self.data_dir = data_dir
        self.host = host
        self.client_port = free_port(host)
        self.peer_port = free_port(host)
        while self.peer_port == self.client_port:
            self.peer_port = free_port(host)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"etcd-{self.client_port}.log"

    @property
    def endpoint(self) -> str:
        """``http://host:port`` for ``EtcdClient``."""
        return f"http://{self.host}:{self.client_port}"

    @property
    def metadata_url(self) -> str:
        """``etcd://host:port`` for ``moldau broker --metadata``."""
        return f"etcd://{self.host}:{self.client_port}"

    def command(self) -> list[str]:
        binary = shutil.which("etcd")
        if binary is None:
            raise RuntimeError("etcd is not installed (Debian: apt-get install etcd-server)")
        client = f"http://{self.host}:{self.client_port}"
        peer = f"http://{self.host}:{self.peer_port}"
        return [
            binary,
            "--name",
            "default",
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            client,
            "--advertise-client-urls",
            client,
            "--listen-peer-urls",
            peer,
            "--initial-advertise-peer-urls",
            peer,
            "--initial-cluster",
            f"default={peer}",
        ]

    def start(self, timeout_s: float = 30.0) -> EtcdProcess:
        if self.running:
            raise RuntimeError("etcd already running")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"etcd exited with {self.process.returncode}:\n{self.output()[-4000:]}"
                )
            if self.healthy():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"etcd was not healthy within {timeout_s}s:\n{self.output()[-4000:]}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.endpoint + "/health", timeout=1.0) as response:
                return bool(json.loads(response.read()).get("health") == "true")
        except (OSError, ValueError, urllib.error.URLError):
            return False
