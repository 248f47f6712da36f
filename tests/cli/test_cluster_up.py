"""``moldau cluster up`` starts etcd and N brokers that work as one cluster, ``cluster info``
shows them, and Ctrl-C stops every process it started."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer

from moldau.testing.broker import wait_for_port

MOLDAU = [sys.executable, "-m", "moldau"]


def free_base_port(count: int) -> int:
    """A port p such that p .. p+count-1 were all free a moment ago."""
    for _ in range(50):
        # Below the kernel's ephemeral range, as free_port does, so no outgoing connection
        # can take one of these ports before the cluster binds it.
        base = random.randrange(20000, 32000 - count)
        try:
            sockets = []
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return base
    raise RuntimeError("no run of free ports")


def test_cluster_up_runs_a_working_cluster_and_stops_it(tmp_path: Path) -> None:
    base = free_base_port(3)
    process = subprocess.Popen(
        [
            *MOLDAU,
            "cluster",
            "up",
            "--brokers",
            "3",
            "--dir",
            str(tmp_path / "c"),
            "--base-port",
            str(base),
            "--set",
            "group.initial.rebalance.delay.ms=0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    bootstrap = ""
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not bootstrap:
            line = process.stdout.readline()
            if line.startswith("bootstrap:"):
                bootstrap = line.split(":", 1)[1].strip()
            elif not line and process.poll() is not None:
                break
        assert bootstrap == ",".join(f"127.0.0.1:{base + i}" for i in range(3))
        info = subprocess.run(
            [*MOLDAU, "cluster", "info", "--bootstrap", bootstrap, "--format", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        document = json.loads(info.stdout)
        assert [b["node_id"] for b in document["brokers"]] == [1, 2, 3]
        assert document["controller_id"] in (1, 2, 3)
        subprocess.run(
            [
                *MOLDAU,
                "topic",
                "create",
                "up-demo",
                "--partitions",
                "2",
                "--replication-factor",
                "3",
                "--bootstrap",
                bootstrap,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        for i in range(20):
            producer.produce("up-demo", b"m%d" % i)
        assert producer.flush(30) == 0
        consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "up", "auto.offset.reset": "earliest"}
        )
        consumer.subscribe(["up-demo"])
        seen: set[bytes] = set()
        read_deadline = time.monotonic() + 30
        while len(seen) < 20 and time.monotonic() < read_deadline:
            seen |= {m.value() for m in consumer.consume(50, 0.5) if m.error() is None}
        consumer.close()
        assert seen == {b"m%d" % i for i in range(20)}
        leadership = subprocess.run(
            [
                *MOLDAU,
                "cluster",
                "info",
                "--bootstrap",
                bootstrap,
                "--topic",
                "up-demo",
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        rows = json.loads(leadership.stdout)["partitions"]
        assert [(r["topic"], r["partition"]) for r in rows] == [("up-demo", 0), ("up-demo", 1)]
        assert all(sorted(r["isr"]) == [1, 2, 3] for r in rows)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(90)
        finally:
            if process.poll() is None:
                process.kill()  # the assertion below then names the leak
                process.wait()
            process.stdout.close()
    assert process.returncode == 0
    for port in range(base, base + 3):
        assert not wait_for_port("127.0.0.1", port, 0.5), f"a broker still listens on {port}"


def test_cluster_up_without_etcd_says_how_to_install_it(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))  # nothing on PATH, etcd included
    result = subprocess.run(
        [*MOLDAU, "cluster", "up", "--dir", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "apt-get install etcd-server" in lines[0]
