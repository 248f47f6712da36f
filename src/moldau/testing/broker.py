"""Start a real moldau broker process on a free loopback port, for tests and benchmarks.

The broker runs as a child process (``python -m moldau broker ...``) exactly as a user starts
it, so tests exercise the real listener, real files and real signals. Nothing here imports the
broker: the test kit talks to it over TCP only.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from moldau.testing.process import ChildProcess

# Ports are drawn below Linux's ephemeral range (32768-60999): a port the kernel hands out for
# ``bind(host, 0)`` or for an outgoing connection can then never be the one we just chose for a
# child that has not bound it yet. CI once lost a run to exactly that race.
_PORT_RANGE = (20000, 32000)
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago and that this process has not handed out before."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(*_PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_PORT_RANGE} on {host}")


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    """Poll until something accepts TCP connections on (host, port)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


class BrokerProcess(ChildProcess):
    """One broker child process with its own data directory.

    ``start()`` returns once the port accepts connections; ``stop()`` sends SIGTERM (clean
    shutdown), ``kill()`` SIGKILL (crash), ``pause()``/``resume()`` SIGSTOP/SIGCONT. The
    data directory survives ``stop``/``kill`` so a test can ``start()`` again and check what
    was kept. Output goes to ``<data_dir>/../broker-<port>.log`` for post-mortems.

    The broker's HTTP endpoint (``metrics.listen``) gets a free loopback port of its own unless
    the caller's config sets the key, so that parallel test brokers never collide on the
    default 9644; ``http_url`` says where it is. ``env`` is merged into the child's
    environment at every ``start()``; it is a plain mutable dict so that a test can set a hook
    (``MOLDAU_TEST_CLEANER_HOOK``) for one run and drop it before the restart.

    Named listeners: ``listeners={"PLAINTEXT": "PLAINTEXT", "SSL": "SSL"}`` (listener name →
    security protocol, in order) binds one listener per entry, each on a free port of its own,
    by writing ``listeners`` and ``listener.security.protocol.map``; the first entry is the
    client listener on ``port``. ``bootstrap_for(name)`` is a listener's ``host:port``;
    ``bootstrap`` stays the first one's. TLS files and SASL users go in ``config`` as usual
    (``moldau.testing.tls`` writes the files). ``start()`` waits until every listener accepts
    connections.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        config: Mapping[str, str] | None = None,
        node_id: int = 1,
        extra_args: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
        listeners: Mapping[str, str] | None = None,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="moldau-test-")
            data_dir = Path(self._tmp.name) / "data"
        self.data_dir = data_dir
        self.host = host
        self.port = port or free_port(host)
        self.config: dict[str, str] = dict(config or {})
        self.listener_ports: dict[str, int] = {}
        """Port of each named listener (empty without ``listeners``)."""
        if listeners:
            self._name_listeners(listeners)
        if "metrics.listen" not in self.config:
            self.config["metrics.listen"] = f"127.0.0.1:{free_port('127.0.0.1')}"
        self.env: dict[str, str] = dict(env or {})
        self.node_id = node_id
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"broker-{self.port}.log"

    def _name_listeners(self, listeners: Mapping[str, str]) -> None:
        for index, name in enumerate(listeners):
            upper = name.upper()
            self.listener_ports[upper] = self.port if index == 0 else free_port(self.host)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.config["listeners"] = ",".join(
            f"{name}://{host}:{port}" for name, port in self.listener_ports.items()
        )
        self.config["listener.security.protocol.map"] = ",".join(
            f"{name.upper()}:{protocol.upper()}" for name, protocol in listeners.items()
        )

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def bootstrap_for(self, listener_name: str) -> str:
        """``host:port`` of one named listener (see ``listeners``)."""
        try:
            port = self.listener_ports[listener_name.upper()]
        except KeyError:
            raise KeyError(
                f"no listener {listener_name!r}; this broker has "
                f"{', '.join(self.listener_ports) or 'only its default listener'}"
            ) from None
        return f"{self.host}:{port}"

    @property
    def http_address(self) -> tuple[str, int] | None:
        """(host, port) of the HTTP endpoint as a client reaches it; None when disabled."""
        raw = self.config.get("metrics.listen", "").strip()
        if not raw:
            return None
        host, _, port = raw.rpartition(":")
        host = host.strip("[]")
        if host in ("", "0.0.0.0", "::"):
            host = self.host
        return host, int(port)

    @property
    def http_url(self) -> str:
        """Base URL of the broker's HTTP endpoint, e.g. ``http://127.0.0.1:12345``."""
        address = self.http_address
        if address is None:
            raise RuntimeError("this broker runs with metrics.listen empty (no HTTP endpoint)")
        host, port = address
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    def command(self) -> list[str]:
        args = [
            sys.executable,
            "-m",
            "moldau",
            "broker",
            "--listen",
            self.bootstrap,
            "--data-dir",
            str(self.data_dir),
            "--node-id",
            str(self.node_id),
        ]
        for key, value in self.config.items():
            args += ["--set", f"{key}={value}"]
        return [*args, *self.extra_args]

    def start(self, timeout_s: float = 30.0) -> BrokerProcess:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("broker already running")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(self.env)
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"broker exited with {self.process.returncode}:\n{self.output()[-4000:]}"
                )
            if wait_for_port(self.host, self.port, 0.2) and all(
                wait_for_port(self.host, port, 0.2) for port in self.listener_ports.values()
            ):
                return self
        self.kill()
        raise RuntimeError(f"broker did not listen within {timeout_s}s:\n{self.output()[-4000:]}")


@contextlib.contextmanager
def running_broker(**kwargs: object) -> Iterator[BrokerProcess]:
    """``with running_broker(config={...}) as broker:`` — start, yield, clean up."""
    broker = BrokerProcess(**kwargs)  # type: ignore[arg-type]
    with broker:
        yield broker
