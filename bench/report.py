"""Medians per cell and the markdown table that goes into docs/performance.md."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass

from bench.workload import Cell, Result


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``; 0 elsewhere)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Measurement:
    target: str
    phase: str
    cell: Cell
    run: int
    result: Result
    broker_cpu_s: float
    """CPU the broker process (moldau, or the mock cluster's host) used during the run."""

    @property
    def cpu_s_per_gb(self) -> float:
        """Broker CPU seconds per GB of payload: efficiency, whoever limited throughput."""
        payload_gb = self.result.messages * self.result.value_bytes / 1e9
        return self.broker_cpu_s / payload_gb if payload_gb else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "target": self.target,
            "phase": self.phase,
            "value_bytes": self.cell.value_bytes,
            "acks": self.cell.acks,
            "partitions": self.cell.partitions,
            "run": self.run,
            "messages": self.result.messages,
            "seconds": round(self.result.seconds, 4),
            "mb_per_s": round(self.result.mb_per_s, 2),
            "msgs_per_s": round(self.result.msgs_per_s),
            "broker_cpu_s": round(self.broker_cpu_s, 3),
        }


@dataclass(frozen=True)
class Row:
    phase: str
    cell: Cell
    mb_per_s: dict[str, float]
    """target name → median MB/s over the runs."""
    msgs_per_s: dict[str, float]
    cpu_s_per_gb: dict[str, float]

    def ratio(self, numerator: str = "moldau", denominator: str = "mock") -> float | None:
        top, bottom = self.mb_per_s.get(numerator), self.mb_per_s.get(denominator)
        if top is None or not bottom:
            return None
        return top / bottom


def summarise(measurements: list[Measurement]) -> list[Row]:
    """One row per (phase, cell), in the order first measured, with medians per target."""
    groups: dict[tuple[str, Cell], dict[str, list[Measurement]]] = {}
    for m in measurements:
        groups.setdefault((m.phase, m.cell), {}).setdefault(m.target, []).append(m)
    rows = [
        Row(
            phase,
            cell,
            {t: statistics.median(m.result.mb_per_s for m in ms) for t, ms in by.items()},
            {t: statistics.median(m.result.msgs_per_s for m in ms) for t, ms in by.items()},
            {t: statistics.median(m.cpu_s_per_gb for m in ms) for t, ms in by.items()},
        )
        for (phase, cell), by in groups.items()
    ]
    rows.sort(
        key=lambda r: (r.phase != "produce", -r.cell.value_bytes, r.cell.acks, r.cell.partitions)
    )
    return rows


def markdown_table(rows: list[Row], targets: list[str]) -> str:
    head = ["phase", "value", "acks", "partitions"]
    for t in targets:
        head += [f"{t} MB/s", f"{t} msg/s"]
    both = {"mock", "moldau"} <= set(targets)
    if both:
        head.append("moldau / mock")
    head += [f"{t} CPU s/GB" for t in targets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        size = row.cell.value_bytes
        cells = [
            row.phase,
            f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B",
            row.cell.acks,
            str(row.cell.partitions),
        ]
        for t in targets:
            mb, msgs = row.mb_per_s.get(t), row.msgs_per_s.get(t)
            cells += ["-" if mb is None else f"{mb:.1f}", "-" if msgs is None else f"{msgs:,.0f}"]
        if both:
            ratio = row.ratio()
            cells.append("-" if ratio is None else f"**{ratio:.2f}**")
        for t in targets:
            cpu = row.cpu_s_per_gb.get(t)
            cells.append("-" if cpu is None else f"{cpu:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
