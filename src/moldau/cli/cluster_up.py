"""``moldau cluster up``: a whole cluster on one machine — a local etcd and N brokers.

For trying replication, failover and the tools without a fleet: etcd (Debian's
``etcd-server``) and the brokers run as child processes, each broker exactly as a user would
start it (``moldau broker --metadata etcd://…``), with its data and log under ``--dir``. The
ports are recorded in ``<dir>/cluster.json``, so running the command again with the same
directory resumes the same cluster. Ctrl-C or SIGTERM stops the brokers with SIGTERM (each
hands its leaderships over first), then etcd.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from moldau.cli.common import CliError, parse_key_value
from moldau.testing.broker import free_port, wait_for_port
from moldau.testing.etcd import EtcdProcess

STATE_FILE = "cluster.json"


def up(
    brokers: Annotated[int, typer.Option("--brokers", min=1, max=64, help="How many.")] = 3,
    directory: Annotated[
        Path, typer.Option("--dir", help="Where etcd and the brokers keep data and logs.")
    ] = Path("./moldau-cluster"),
    base_port: Annotated[
        int, typer.Option("--base-port", help="Broker i listens on base-port + i - 1.")
    ] = 9092,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="A broker config for every broker, KEY=VALUE (repeatable)."),
    ] = None,
) -> None:
    """Start etcd and N brokers here, print the bootstrap string, stop all on Ctrl-C."""
    overrides = list(set_ or [])
    for item in overrides:
        parse_key_value(item, "--set value")
    if shutil.which("etcd") is None:
        raise CliError(
            "etcd is not installed: install it with 'apt-get install etcd-server' "
            "(make run does this for you)",
            2,
        )
    directory.mkdir(parents=True, exist_ok=True)
    state = _load_state(directory, brokers, base_port)
    etcd = EtcdProcess(directory / "etcd")
    etcd.client_port, etcd.peer_port = state["etcd_client_port"], state["etcd_peer_port"]
    etcd.log_path = directory / "etcd.log"
    children: list[subprocess.Popen[bytes]] = []
    stopping = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stopping.set()

    # SIGINT too: a process started in the background inherits SIGINT as ignored, and
    # Ctrl-C (or a supervisor's SIGINT) must stop the cluster all the same.
    previous = signal.signal(signal.SIGTERM, request_stop)
    previous_int = signal.signal(signal.SIGINT, request_stop)
    try:
        try:
            etcd.start()
        except RuntimeError as exc:
            raise CliError(f"etcd did not start: {str(exc).splitlines()[0]}") from None
        for node_id in range(1, brokers + 1):
            children.append(_start_broker(directory, node_id, state, etcd.metadata_url, overrides))
        bootstrap = ",".join(f"127.0.0.1:{base_port + i}" for i in range(brokers))
        for node_id, child in enumerate(children, start=1):
            port = base_port + node_id - 1
            if not _wait_listening(child, port):
                log = directory / f"broker-{node_id}.log"
                raise CliError(f"broker {node_id} did not start; see {log}")
        typer.echo(f"etcd:      {etcd.metadata_url} (log {etcd.log_path})")
        typer.echo(f"brokers:   {brokers} (logs {directory}/broker-N.log)")
        typer.echo(f"bootstrap: {bootstrap}")
        typer.echo("Ctrl-C stops the cluster.", err=True)
        while not stopping.is_set():
            if any(child.poll() is not None for child in children):
                typer.echo("a broker exited; stopping the cluster", err=True)
                break
            stopping.wait(0.5)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        _stop_all(children)
        with contextlib.suppress(Exception):
            etcd.stop()


def _load_state(directory: Path, brokers: int, base_port: int) -> dict[str, int]:
    path = directory / STATE_FILE
    if path.exists():
        try:
            state: dict[str, int] = json.loads(path.read_text())
            if state.get("brokers") == brokers and state.get("base_port") == base_port:
                return state
        except (ValueError, OSError):
            pass
    client = free_port()
    peer = free_port()
    while peer == client:
        peer = free_port()
    state = {
        "brokers": brokers,
        "base_port": base_port,
        "etcd_client_port": client,
        "etcd_peer_port": peer,
    }
    for node_id in range(1, brokers + 1):
        state[f"metrics_port_{node_id}"] = free_port()
    path.write_text(json.dumps(state, indent=1))
    return state


def _start_broker(
    directory: Path, node_id: int, state: dict[str, int], metadata: str, overrides: list[str]
) -> subprocess.Popen[bytes]:
    port = state["base_port"] + node_id - 1
    args = [
        sys.executable,
        "-m",
        "moldau",
        "broker",
        "--node-id",
        str(node_id),
        "--metadata",
        metadata,
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(directory / f"broker-{node_id}"),
        "--set",
        f"metrics.listen=127.0.0.1:{state[f'metrics_port_{node_id}']}",
    ]
    for item in overrides:
        args += ["--set", item]
    with (directory / f"broker-{node_id}.log").open("ab") as log:
        return subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def _wait_listening(child: subprocess.Popen[bytes], port: int, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return False
        if wait_for_port("127.0.0.1", port, 0.2):
            return True
    return False


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(45)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
