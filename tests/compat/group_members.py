"""Drive consumer-group members running as separate processes (``group_member.py`` for the
Python clients, ``js/group_member.js`` for kafkajs) and check what they read.

Each member prints JSON events; a reader thread collects them so the test can wait for
conditions (bounded waits, never timing assertions) and verify afterwards that no record
was skipped and that a record was read twice only if its previous reader had not committed
it — "none read twice past the last commit".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

HERE = Path(__file__).resolve().parent
PYTHON_MEMBER = HERE / "group_member.py"
JS_MEMBER = HERE / "js" / "group_member.js"
WAIT_S = 60.0


class Member:
    """One member process and everything it reported."""

    def __init__(
        self,
        client: str,
        bootstrap: str,
        group: str,
        topic: str,
        log_dir: Path,
        **options: Any,
    ) -> None:
        self.client = client
        opts = {"client": client, "bootstrap": bootstrap, "group": group, "topic": topic}
        opts.update(options)
        if client == "kafkajs":
            command = ["node", str(JS_MEMBER), json.dumps(opts)]
        else:
            command = [sys.executable, str(PYTHON_MEMBER), json.dumps(opts)]
        self.name = f"{client}-{uuid.uuid4().hex[:6]}"
        self.stderr_path = log_dir / f"{self.name}.stderr"
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            with self._lock:
                self.events.append(event)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    @property
    def assignment(self) -> list[int] | None:
        """The latest assignment reported (None before the first)."""
        for event in reversed(self.snapshot()):
            if event["event"] == "assignment":
                return list(event["partitions"])
        return None

    def assignment_events(self) -> list[dict[str, Any]]:
        return [e for e in self.snapshot() if e["event"] == "assignment"]

    def reads(self) -> list[tuple[int, int]]:
        return [(e["p"], e["o"]) for e in self.snapshot() if e["event"] == "msg"]

    def committed(self) -> dict[int, int]:
        """Partition → the last offset this member committed (the next one to read)."""
        out: dict[int, int] = {}
        for e in self.snapshot():
            if e["event"] == "committed":
                out[e["p"]] = max(out.get(e["p"], 0), e["o"])
        return out

    def has(self, event: str) -> bool:
        return any(e["event"] == event for e in self.snapshot())

    def terminate(self) -> None:
        """Clean shutdown: the member closes its consumer (and so leaves the group)."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=WAIT_S)
        self._reader.join(timeout=5)

    def kill(self) -> None:
        """Crash: no leave, no last commit."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=WAIT_S)
        self._reader.join(timeout=5)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()

    def describe(self) -> str:
        stderr = self.stderr_path.read_text(errors="replace")[-3000:]
        return f"{self.name}: events={self.snapshot()[-20:]}\nstderr:\n{stderr}"


def wait_until(
    condition: Callable[[], bool], what: str, members: Iterable[Member], timeout_s: float = WAIT_S
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    details = "\n".join(m.describe() for m in members)
    raise AssertionError(f"timed out waiting for {what}\n{details}")


def assignments(members: Iterable[Member]) -> list[list[int] | None]:
    return [m.assignment for m in members]


def balanced(members: list[Member], partitions: int) -> bool:
    """Every member holds partitions // len(members) (± 1) and together they hold all."""
    current = assignments(members)
    if any(a is None for a in current):
        return False
    held = [p for a in current if a is not None for p in a]
    sizes = sorted(len(a) for a in current if a is not None)
    return sorted(held) == list(range(partitions)) and sizes[-1] - sizes[0] <= 1


def create_topic(bootstrap: str, partitions: int) -> str:
    name = f"groups-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=15)
    return name


class Feed:
    """Produces numbered records round-robin over a topic's partitions and remembers how
    many each partition got, i.e. every offset a group must read."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.topic = topic
        self.partitions = partitions
        self.end_offsets = [0] * partitions
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})

    def produce(self, per_partition: int) -> None:
        for p in range(self.partitions):
            for _ in range(per_partition):
                self._producer.produce(self.topic, value=b"x", partition=p)
                self.end_offsets[p] += 1
        assert self._producer.flush(15) == 0

    @property
    def total(self) -> int:
        return sum(self.end_offsets)


def everything_read(feed: Feed, members: Iterable[Member]) -> bool:
    read = {r for m in members for r in m.reads()}
    return all((p, o) in read for p in range(feed.partitions) for o in range(feed.end_offsets[p]))


def check_reads(feed: Feed, members: list[Member]) -> None:
    """No record skipped, and none read after a commit past it had been acknowledged.

    Members commit every record synchronously and report it with a wall-clock time, so a
    correct handoff means: whoever reads record ``o`` of a partition does so before anyone
    reported a commit beyond ``o`` there. Re-reading the records after the last commit of a
    member that crashed (or whose commit a rebalance refused) is expected.
    """
    reads: list[tuple[int, int, float, str]] = []
    commits: dict[int, list[tuple[float, int]]] = {}
    for member in members:
        for e in member.snapshot():
            if e["event"] == "msg":
                reads.append((e["p"], e["o"], e["t"], member.name))
            elif e["event"] == "committed":
                commits.setdefault(e["p"], []).append((e["t"], e["o"]))
    read = {(p, o) for p, o, _, _ in reads}
    missing = [
        (p, o)
        for p in range(feed.partitions)
        for o in range(feed.end_offsets[p])
        if (p, o) not in read
    ]
    assert not missing, f"records never read: {missing[:20]}"
    for p, o, t, name in reads:
        committed_before = max((c for ct, c in commits.get(p, ()) if ct < t), default=0)
        assert committed_before <= o, (
            f"{name} read {p}/{o} after a commit up to {committed_before} was acknowledged"
        )
