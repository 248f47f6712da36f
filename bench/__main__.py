"""``python -m bench`` (``make bench``): produce and fetch throughput, moldau vs the mock cluster.

For every cell of the matrix (value size x acks x partitions) both targets get a fresh broker;
each run produces N messages to a new topic and then fetches them all, alternating which target
goes first. The table reports the median of the runs and the ratio moldau / mock. The
benchmark process is only a client: the moldau broker and the mock cluster each run in a
process of their own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.profiling import PySpy
from bench.report import Measurement, cpu_seconds, markdown_table, summarise
from bench.targets import MockTarget, MoldauTarget, Target
from bench.workload import Cell, fetch, produce

VALUE_SIZES = (1024, 100)
ACKS = ("1", "all")
PARTITIONS = (1, 12)
TOTAL_BYTES = {1024: 400_000 * 1024, 100: 1_200_000 * 100}
"""Payload per produce run at full scale: ~1-3 s per measurement on the mock cluster."""


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per cell (median reported)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1/50 of the messages per run"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    parser.add_argument(
        "--targets", default="mock,moldau", help="comma-separated: mock, moldau (default both)"
    )
    parser.add_argument("--sizes", default=",".join(map(str, VALUE_SIZES)), help="value bytes")
    parser.add_argument("--acks", default=",".join(ACKS))
    parser.add_argument("--partitions", default=",".join(map(str, PARTITIONS)))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra moldau broker setting (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="write every measurement here")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record the moldau broker with py-spy during each cell's first run "
        "(one file per cell and phase in DIR; needs py-spy installed)",
    )
    parser.add_argument(
        "--profile-format",
        choices=("svg", "json", "txt"),
        default="svg",
        help="flamegraph SVG, speedscope JSON or collapsed stacks (default svg)",
    )
    return parser.parse_args(argv)


def _matrix(args: argparse.Namespace) -> list[Cell]:
    sizes = [int(s) for s in args.sizes.split(",")]
    acks = args.acks.split(",")
    partitions = [int(p) for p in args.partitions.split(",")]
    return [Cell(s, a, p) for s in sizes for a in acks for p in partitions]


def _messages(cell: Cell, scale: float) -> int:
    total = TOTAL_BYTES.get(cell.value_bytes, 400_000_000)
    return max(cell.partitions * 10, int(total / cell.value_bytes * scale))


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@contextmanager
def _targets(names: list[str], cell: Cell, settings: dict[str, str]) -> Iterator[list[Target]]:
    with ExitStack() as stack:
        targets: list[Target] = []
        for name in names:
            target: Target = (
                MockTarget() if name == "mock" else MoldauTarget(cell.partitions, settings)
            )
            stack.callback(target.close)
            targets.append(target)
        yield targets


def _measure(
    target: Target,
    cell: Cell,
    run: int,
    messages: int,
    profiler: Callable[[str], PySpy | None],
) -> list[Measurement]:
    topic = f"bench-{cell.slug}-r{run}"
    target.create_topic(topic, cell.partitions)
    out: list[Measurement] = []
    for phase, work in (("produce", produce), ("fetch", fetch)):
        spy = profiler(f"{cell.slug}-{phase}") if target.name == "moldau" and run == 0 else None
        cpu_before = cpu_seconds(target.pid)
        try:
            result = work(target.bootstrap, topic, cell, messages)
        finally:
            if spy is not None:
                spy.stop()
        measurement = Measurement(
            target.name, phase, cell, run, result, cpu_seconds(target.pid) - cpu_before
        )
        out.append(measurement)
        _log(
            f"  {target.name:>6} {phase:<7} {cell.label:<26} run {run}: "
            f"{result.mb_per_s:8.1f} MB/s {result.msgs_per_s:10.0f} msg/s "
            f"({result.messages} msgs in {result.seconds:.2f} s, "
            f"broker CPU {measurement.cpu_s_per_gb:.2f} s/GB)"
        )
    target.delete_topic(topic)
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    scale = args.scale * (0.02 if args.quick else 1.0)
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = set(names) - {"mock", "moldau"}
    if unknown:
        raise SystemExit(f"unknown target(s): {', '.join(sorted(unknown))}")
    settings = dict(s.split("=", 1) for s in args.set)
    command = shlex.join(["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])])
    _log(f"{command}: {platform.python_version()}, {os.cpu_count()} CPUs")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)

    measurements: list[Measurement] = []
    started = time.monotonic()
    for cell in _matrix(args):
        messages = _messages(cell, scale)
        _log(f"{cell.label}: {messages} messages per run")
        with _targets(names, cell, settings) as targets:

            def profiler(label: str, targets: list[Target] = targets) -> PySpy | None:
                if args.profile is None:
                    return None
                pid = next(t.pid for t in targets if t.name == "moldau")
                output = args.profile / f"{label}.{args.profile_format}"
                return PySpy.record(pid, output) if pid else None

            for run in range(args.runs):
                order = targets if run % 2 == 0 else list(reversed(targets))
                for target in order:
                    measurements.extend(_measure(target, cell, run, messages, profiler))
    elapsed = time.monotonic() - started

    rows = summarise(measurements)
    print()
    print(f"`{command}` — median of {args.runs} run(s), {elapsed:.0f} s in all")
    print()
    print(markdown_table(rows, names))
    if args.json is not None:
        args.json.write_text(json.dumps([m.as_dict() for m in measurements], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
