"""A queue checker in the spirit of Jepsen's Kafka tests: record what was sent and what was
read, then check the guarantees an acks=all, idempotent producer is promised.

* every acknowledged send is read back (at the offset it was acknowledged at);
* no offset of a partition ever holds two different values (across every read);
* no value is read at two offsets (idempotence: no duplicates);
* within one consumer session, the offsets read from a partition only go up.

Sends that failed or whose outcome is unknown may or may not appear; they are never counted
as violations. Values must be unique per run (the scenario writes ``run-N`` counters).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class Report:
    lost: list[bytes] = field(default_factory=list)
    moved: list[tuple[bytes, tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    conflicts: list[tuple[tuple[int, int], set[bytes]]] = field(default_factory=list)
    duplicates: list[tuple[bytes, set[tuple[int, int]]]] = field(default_factory=list)
    backwards: list[tuple[int, int, int, int]] = field(default_factory=list)
    acked: int = 0
    read: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.moved or self.conflicts or self.duplicates or self.backwards)

    def assert_ok(self) -> None:
        if self.ok:
            return
        lines = [f"history violates the guarantees ({self.acked} acked, {self.read} read):"]
        if self.lost:
            lines.append(f"  {len(self.lost)} acknowledged values never read, e.g. {self.lost[:5]}")
        if self.moved:
            lines.append(f"  {len(self.moved)} values read elsewhere than acked: {self.moved[:5]}")
        if self.conflicts:
            lines.append(f"  {len(self.conflicts)} offsets with two values: {self.conflicts[:5]}")
        if self.duplicates:
            lines.append(f"  {len(self.duplicates)} values read twice: {self.duplicates[:5]}")
        if self.backwards:
            lines.append(f"  {len(self.backwards)} reads went backwards: {self.backwards[:5]}")
        raise AssertionError("\n".join(lines))


class History:
    """Thread-safe log of sends (with outcomes) and reads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.acked: dict[bytes, tuple[int, int]] = {}
        self.failed: set[bytes] = set()
        self.attempted: set[bytes] = set()
        self.reads: list[tuple[int, int, int, bytes]] = []
        """(session, partition, offset, value)"""

    def sent(self, value: bytes) -> None:
        with self._lock:
            self.attempted.add(value)

    def ack(self, value: bytes, partition: int, offset: int) -> None:
        with self._lock:
            self.acked[value] = (partition, offset)

    def fail(self, value: bytes) -> None:
        with self._lock:
            self.failed.add(value)

    def read(self, session: int, partition: int, offset: int, value: bytes) -> None:
        with self._lock:
            self.reads.append((session, partition, offset, value))

    def delivery_callback(self):  # type: ignore[no-untyped-def]
        """A confluent_kafka ``on_delivery`` that records the outcome."""

        def on_delivery(err, msg) -> None:  # type: ignore[no-untyped-def]
            if err is None:
                self.ack(msg.value(), msg.partition(), msg.offset())
            else:
                self.fail(msg.value())

        return on_delivery

    def check(self) -> Report:
        with self._lock:
            reads = list(self.reads)
            acked = dict(self.acked)
        report = Report(acked=len(acked), read=len(reads))
        at_offset: dict[tuple[int, int], set[bytes]] = defaultdict(set)
        where: dict[bytes, set[tuple[int, int]]] = defaultdict(set)
        last: dict[tuple[int, int], int] = {}
        for session, partition, offset, value in reads:
            at_offset[(partition, offset)].add(value)
            where[value].add((partition, offset))
            key = (session, partition)
            if key in last and offset <= last[key]:
                report.backwards.append((session, partition, last[key], offset))
            last[key] = offset
        for position, values in sorted(at_offset.items()):
            if len(values) > 1:
                report.conflicts.append((position, values))
        for value, positions in where.items():
            if len(positions) > 1:
                report.duplicates.append((value, positions))
        for value, position in acked.items():
            positions = where.get(value)
            if not positions:
                report.lost.append(value)
            elif position not in positions:
                report.moved.append((value, position, min(positions)))
        return report
