"""``python -m bench.groups``: consumer-group rebalance time and offset commit rate,
moldau vs librdkafka's mock cluster, in one run.

Rebalance: N-1 confluent-kafka consumers form a stable group on a topic with 2N partitions;
then an N-th member subscribes. The clock runs from that subscribe until every member has
received its assignment of the new generation (its ``on_assign`` after the join) and the
assignments cover every partition exactly once — i.e. until the whole group consumes again.
With the eager protocol the existing members only learn of the rebalance at their next
heartbeat, so the client's ``heartbeat.interval.ms`` (librdkafka default 3 s) bounds it from
below on any broker; the mock cluster shows what that client-side floor is.

Commits: one consumer commits its position synchronously in a loop for a fixed time; we
report commits per second (each one a full OffsetCommit round trip, durable on moldau).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from bench.targets import MockTarget, MoldauTarget, Target

MEMBER_COUNTS = (2, 10, 50)


@dataclass
class Member:
    """One consumer polling in its own thread, recording when it got which assignment."""

    bootstrap: str
    group: str
    topic: str
    client_config: dict[str, object]
    assigned_at: float = 0.0
    assignment: frozenset[int] = frozenset()
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "enable.auto.commit": False,
                "session.timeout.ms": 10000,
                "log_level": 0,
                **self.client_config,
            }
        )

        def on_assign(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            self.assignment = frozenset(p.partition for p in partitions)
            self.assigned_at = time.monotonic()

        def on_revoke(_consumer: Consumer, _partitions: list[TopicPartition]) -> None:
            self.assignment = frozenset()

        consumer.subscribe([self.topic], on_assign=on_assign, on_revoke=on_revoke)
        while not self.stop.is_set():
            consumer.poll(0.05)
        consumer.close()


def _wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def _covers(members: list[Member], partitions: int, since: float) -> bool:
    if any(m.assigned_at < since for m in members):
        return False
    owned = [p for m in members for p in m.assignment]
    return sorted(owned) == list(range(partitions))


def measure_rebalance(target: Target, members: int, timeout_s: float = 120.0) -> float:
    """Seconds from the N-th member's subscribe until the whole group consumes again."""
    topic = f"rebalance-{uuid.uuid4().hex[:8]}"
    partitions = 2 * members
    target.create_topic(topic, partitions)
    group = f"bench-{uuid.uuid4().hex[:8]}"
    group_members = [Member(target.bootstrap, group, topic, {}) for _ in range(members - 1)]
    for member in group_members:
        member.start()
    try:
        if not _wait(lambda: _covers(group_members, partitions, 0.0), timeout_s):
            raise RuntimeError(f"{target.name}: the first {members - 1} members never stabilised")
        time.sleep(0.5)
        newcomer = Member(target.bootstrap, group, topic, {})
        started = time.monotonic()
        newcomer.start()
        everyone = [*group_members, newcomer]
        if not _wait(lambda: _covers(everyone, partitions, started), timeout_s):
            raise RuntimeError(f"{target.name}: no complete assignment after the join")
        return max(m.assigned_at for m in everyone) - started
    finally:
        for member in group_members:
            member.stop.set()
        for member in group_members:
            if member.thread is not None:
                member.thread.join(30)
        if "newcomer" in locals():
            newcomer.stop.set()
            if newcomer.thread is not None:
                newcomer.thread.join(30)
        target.delete_topic(topic)


def measure_commits(target: Target, seconds: float) -> float:
    """Synchronous offset commits per second by one consumer of a one-partition topic."""
    topic = f"commits-{uuid.uuid4().hex[:8]}"
    target.create_topic(topic, 1)
    consumer = Consumer(
        {
            "bootstrap.servers": target.bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "log_level": 0,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)  # warm up
        count = 0
        deadline = time.monotonic() + seconds
        started = time.monotonic()
        while time.monotonic() < deadline:
            count += 1
            consumer.commit(offsets=[TopicPartition(topic, 0, count)], asynchronous=False)
        return count / (time.monotonic() - started)
    finally:
        consumer.close()
        target.delete_topic(topic)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.groups", description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--members", default=",".join(map(str, MEMBER_COUNTS)))
    parser.add_argument("--commit-seconds", type=float, default=3.0)
    parser.add_argument("--targets", default="mock,moldau")
    return parser.parse_args(argv)


def _target(name: str) -> Target:
    if name == "mock":
        return MockTarget()
    return MoldauTarget(1, {"group.initial.rebalance.delay.ms": "0"})


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    counts = [int(n) for n in args.members.split(",")]
    rebalance: dict[tuple[str, int], list[float]] = {}
    commits: dict[str, list[float]] = {}
    for run in range(args.runs):
        order = names if run % 2 == 0 else list(reversed(names))
        for name in order:
            target = _target(name)
            try:
                for members in counts:
                    seconds = measure_rebalance(target, members)
                    rebalance.setdefault((name, members), []).append(seconds)
                    print(
                        f"{name:>6} rebalance {members:>3} members run {run + 1}: {seconds:.2f} s"
                    )
                rate = measure_commits(target, args.commit_seconds)
                commits.setdefault(name, []).append(rate)
                print(f"{name:>6} commits run {run + 1}: {rate:,.0f}/s")
            finally:
                target.close()
    print()
    print(f"`python -m bench.groups --runs {args.runs}` — medians")
    print()
    print("| measure | " + " | ".join(names) + " | moldau / mock |")
    print("|---|" + "---|" * (len(names) + 1))
    for members in counts:
        cells = [statistics.median(rebalance[(n, members)]) for n in names]
        ratio = _ratio(names, cells)
        print(
            f"| rebalance, {members} members (s) | "
            + " | ".join(f"{c:.2f}" for c in cells)
            + f" | {ratio} |"
        )
    rates = [statistics.median(commits[n]) for n in names]
    print(
        "| sync offset commits/s | "
        + " | ".join(f"{r:,.0f}" for r in rates)
        + f" | {_ratio(names, rates)} |"
    )
    return 0


def _ratio(names: list[str], values: list[float]) -> str:
    if "mock" in names and "moldau" in names:
        mock = values[names.index("mock")]
        return f"{values[names.index('moldau')] / mock:.2f}" if mock else "-"
    return "-"


if __name__ == "__main__":
    raise SystemExit(main())
