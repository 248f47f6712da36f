"""``python -m bench.transactions``: what transactions cost, moldau vs librdkafka's mock cluster.

Two questions, both answered with confluent-kafka (librdkafka) producers, ``acks=all`` and
idempotence on (transactions require both):

- **Small transactions**: how many ``begin → 10 x 100 B to one partition → commit`` cycles a
  single producer completes per second. Each cycle is dominated by round trips to the
  transaction coordinator (AddPartitionsToTxn, Produce, EndTxn) and by the broker's work on
  commit (writing the COMMIT markers, persisting the transaction state), so it measures the
  broker's per-transaction latency, not its data path.
- **Large transactions**: throughput of a transactional producer writing transactions of
  10,000 x 1 KiB over 1 and 4 partitions, against a plain idempotent producer writing the same
  messages in the same run. Their ratio is the cost of transactions per byte: the extra
  requests per transaction, the markers, and the wait at each commit for everything in flight.

The mock cluster implements the transaction requests (InitProducerId with a transactional id,
AddPartitionsToTxn, EndTxn), so the same figures on it give a baseline for the ratio
moldau / mock, as in ``python -m bench``. It writes the COMMIT markers too (a committed
transaction of 10 messages moves its high watermark by 11), but keeps the transaction state in
memory and persists nothing, so it is a lower bound on what a commit can cost; moldau persists
the transaction state and fsyncs like an ``acks=all`` produce before it answers.

Every run starts a fresh moldau broker and a fresh mock cluster (one after the other, never
both measured at once), alternating which goes first; the tables give medians over the runs.
Connecting, metadata and ``init_transactions()`` happen before the clock starts; small
transactions also get one warm-up transaction off the clock.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import cpu_seconds
from bench.targets import MockTarget, MoldauTarget, Target
from bench.workload import PRODUCER_SETTINGS, BenchmarkError

SMALL_TXN_MESSAGES = 10
SMALL_VALUE_BYTES = 100
SMALL_TXNS = 1_000
"""Small transactions per run at full scale (about 2 s on the mock cluster)."""

LARGE_VALUE_BYTES = 1024
LARGE_TXN_MESSAGES = 10_000
LARGE_TXNS = 40
"""40 x 10,000 x 1 KiB: the same 400,000 messages per run as ``python -m bench``."""

PARTITIONS = (1, 4)

QUICK = {"small_txns": 20, "large_txns": 4, "txn_messages": 1_000}
"""``--quick``: a smoke run of a few seconds; its figures mean nothing."""

_COMMIT_TIMEOUT_S = 120.0

SMALL = "small txn"
TXN = "transactional"
IDEMPOTENT = "idempotent"


@dataclass(frozen=True)
class TxnResult:
    """One timed producer workload."""

    workload: str
    """``SMALL``, ``TXN`` or ``IDEMPOTENT``."""
    partitions: int
    transactions: int
    """Committed transactions (0 for the idempotent producer)."""
    messages: int
    value_bytes: int
    seconds: float
    broker_cpu_s: float
    """CPU the broker process (moldau, or the mock cluster's host) used while the clock ran."""

    @property
    def mb_per_s(self) -> float:
        """Payload (value) megabytes per second, 10^6 bytes."""
        return self.messages * self.value_bytes / self.seconds / 1e6

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.seconds

    @property
    def txns_per_s(self) -> float:
        return self.transactions / self.seconds


@dataclass(frozen=True)
class TxnMeasurement:
    target: str
    run: int
    result: TxnResult

    @property
    def cpu_s_per_gb(self) -> float:
        """Broker CPU seconds per GB of payload: efficiency, whoever limited throughput."""
        payload_gb = self.result.messages * self.result.value_bytes / 1e9
        return self.result.broker_cpu_s / payload_gb if payload_gb else 0.0

    @property
    def cpu_ms_per_txn(self) -> float:
        txns = self.result.transactions
        return self.result.broker_cpu_s * 1e3 / txns if txns else 0.0

    def as_dict(self) -> dict[str, object]:
        r = self.result
        return {
            "target": self.target,
            "workload": r.workload,
            "partitions": r.partitions,
            "run": self.run,
            "transactions": r.transactions,
            "messages": r.messages,
            "value_bytes": r.value_bytes,
            "seconds": round(r.seconds, 4),
            "txns_per_s": round(r.txns_per_s, 1),
            "mb_per_s": round(r.mb_per_s, 2),
            "msgs_per_s": round(r.msgs_per_s),
            "broker_cpu_s": round(r.broker_cpu_s, 3),
        }


# -- the workloads ---------------------------------------------------------------------------


class _Clock:
    """Wall time and the broker's CPU time between ``start()`` and ``stop()``.

    The broker's CPU is read at the same instants as the wall clock, so set-up off the clock
    (for moldau, the first InitProducerId creates ``__transaction_state``) is not charged.
    """

    def __init__(self, broker_pid: int | None) -> None:
        self.broker_pid = broker_pid
        self._wall = 0.0
        self._cpu = 0.0

    def start(self) -> None:
        self._cpu = cpu_seconds(self.broker_pid)
        self._wall = time.perf_counter()

    def stop(self) -> tuple[float, float]:
        """Elapsed seconds and broker CPU seconds since ``start()``."""
        wall = time.perf_counter() - self._wall
        return wall, cpu_seconds(self.broker_pid) - self._cpu


class _Producer:
    """A confluent-kafka producer with the benchmark's settings and delivery-error tracking.

    Both the transactional and the idempotent producer are built here so that they differ in
    ``transactional.id`` only: same batching (``bench.workload.PRODUCER_SETTINGS``), same deep
    queue, ``acks=all`` and idempotence on either way.
    """

    def __init__(self, bootstrap: str, topic: str, transactional_id: str | None) -> None:
        from confluent_kafka import Producer

        self.failures: list[object] = []
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            **PRODUCER_SETTINGS,
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 2_097_151,
            "delivery.report.only.error": True,
            "on_delivery": lambda err, _msg: self.failures.append(err),
            "log_level": 3,
        }
        if transactional_id is not None:
            config["transactional.id"] = transactional_id
        self.producer = Producer(config)
        self.topic = topic
        self.producer.list_topics(topic, timeout=30)  # connect and learn the leaders
        if transactional_id is not None:
            from confluent_kafka import KafkaException

            try:
                self.producer.init_transactions(60)
            except KafkaException as exc:
                raise BenchmarkError(
                    f"init_transactions against {bootstrap} failed: {exc.args[0]}"
                ) from exc

    def send(self, value: bytes, count: int, partitions: int, first: int = 0) -> None:
        """``count`` values round-robin over ``partitions``, waiting for room when full."""
        send = self.producer.produce
        topic = self.topic
        for i in range(first, first + count):
            while True:
                try:
                    send(topic, value, partition=i % partitions)
                    break
                except BufferError:
                    self.producer.poll(0.001)

    def commit(self) -> None:
        from confluent_kafka import KafkaException

        try:
            self.producer.commit_transaction(_COMMIT_TIMEOUT_S)
        except KafkaException as exc:
            raise BenchmarkError(f"commit_transaction failed: {exc.args[0]}") from exc

    def check(self) -> None:
        if self.failures:
            raise BenchmarkError(
                f"{len(self.failures)} deliveries failed, first: {self.failures[0]}"
            )

    def close(self) -> None:
        """Close before the broker goes, so librdkafka does not log reconnect failures."""
        self.producer.close()


def small_transactions(bootstrap: str, topic: str, transactions: int, clock: _Clock) -> TxnResult:
    """``transactions`` commits of 10 x 100 B each to partition 0 of ``topic``."""
    producer = _Producer(bootstrap, topic, f"bench-small-{uuid.uuid4().hex[:12]}")
    try:
        value = os.urandom(SMALL_VALUE_BYTES)
        begin = producer.producer.begin_transaction
        producer.producer.begin_transaction()  # warm-up: coordinator connection, first add
        producer.send(value, SMALL_TXN_MESSAGES, 1)
        producer.commit()
        clock.start()
        for _ in range(transactions):
            begin()
            producer.send(value, SMALL_TXN_MESSAGES, 1)
            producer.commit()
        elapsed, cpu = clock.stop()
        producer.check()
    finally:
        producer.close()
    messages = transactions * SMALL_TXN_MESSAGES
    return TxnResult(SMALL, 1, transactions, messages, SMALL_VALUE_BYTES, elapsed, cpu)


def large_transactions(
    bootstrap: str,
    topic: str,
    partitions: int,
    transactions: int,
    txn_messages: int,
    clock: _Clock,
) -> TxnResult:
    """``transactions`` commits of ``txn_messages`` x 1 KiB round-robin over ``partitions``."""
    producer = _Producer(bootstrap, topic, f"bench-large-{uuid.uuid4().hex[:12]}")
    try:
        value = os.urandom(LARGE_VALUE_BYTES)
        producer.producer.begin_transaction()  # warm-up, as for the idempotent producer
        producer.send(value, 1, partitions)
        producer.commit()
        clock.start()
        for txn in range(transactions):
            producer.producer.begin_transaction()
            producer.send(value, txn_messages, partitions, txn * txn_messages)
            producer.commit()
        elapsed, cpu = clock.stop()
        producer.check()
    finally:
        producer.close()
    messages = transactions * txn_messages
    return TxnResult(TXN, partitions, transactions, messages, LARGE_VALUE_BYTES, elapsed, cpu)


def idempotent(
    bootstrap: str, topic: str, partitions: int, messages: int, clock: _Clock
) -> TxnResult:
    """The baseline of ``large_transactions``: the same messages, no transactions, one flush."""
    producer = _Producer(bootstrap, topic, None)
    try:
        value = os.urandom(LARGE_VALUE_BYTES)
        # warm-up: the producer id arrives asynchronously and nothing is sent before it does
        producer.send(value, 1, partitions)
        producer.producer.flush(_COMMIT_TIMEOUT_S)
        clock.start()
        producer.send(value, messages, partitions)
        left = producer.producer.flush(_COMMIT_TIMEOUT_S)
        elapsed, cpu = clock.stop()
        if left:
            raise BenchmarkError(f"{left} messages still undelivered after flush")
        producer.check()
    finally:
        producer.close()
    return TxnResult(IDEMPOTENT, partitions, 0, messages, LARGE_VALUE_BYTES, elapsed, cpu)


# -- running and reporting -------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    small_txns: int
    large_txns: int
    txn_messages: int
    partitions: tuple[int, ...]


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


Workload = Callable[[str, str, _Clock], TxnResult]
"""(bootstrap, topic, clock) → result."""


def _timed(target: Target, run: int, work: Workload, partitions: int) -> TxnMeasurement:
    """Run one workload on a topic of its own, which is deleted afterwards."""
    topic = f"bench-txn-{uuid.uuid4().hex[:10]}"
    target.create_topic(topic, partitions)
    try:
        r = work(target.bootstrap, topic, _Clock(target.pid))
    finally:
        target.delete_topic(topic)
    _log(
        f"  {target.name:>6} {r.workload:<13} {r.partitions}p run {run}: "
        f"{r.txns_per_s:8.1f} txn/s {r.mb_per_s:7.1f} MB/s {r.msgs_per_s:9.0f} msg/s "
        f"({r.messages} msgs in {r.seconds:.2f} s, broker CPU {r.broker_cpu_s:.2f} s)"
    )
    return TxnMeasurement(target.name, run, r)


def measure_target(target: Target, run: int, plan: Plan) -> list[TxnMeasurement]:
    """Every workload once on ``target``; transactional and idempotent alternate per run."""
    out = [_timed(target, run, lambda b, t, c: small_transactions(b, t, plan.small_txns, c), 1)]
    messages = plan.large_txns * plan.txn_messages
    for partitions in plan.partitions:

        def txn(b: str, t: str, c: _Clock, p: int = partitions) -> TxnResult:
            return large_transactions(b, t, p, plan.large_txns, plan.txn_messages, c)

        def idem(b: str, t: str, c: _Clock, p: int = partitions) -> TxnResult:
            return idempotent(b, t, p, messages, c)

        pair = [txn, idem] if run % 2 == 0 else [idem, txn]
        out.extend(_timed(target, run, work, partitions) for work in pair)
    return out


def _start(name: str, settings: dict[str, str]) -> Target:
    return MockTarget() if name == "mock" else MoldauTarget(1, settings)


def _median(ms: list[TxnMeasurement], key: Callable[[TxnMeasurement], float]) -> float:
    return statistics.median(key(m) for m in ms)


def _group(
    measurements: list[TxnMeasurement],
) -> dict[tuple[str, int], dict[str, list[TxnMeasurement]]]:
    """(workload, partitions) → target → measurements, in the order first measured."""
    groups: dict[tuple[str, int], dict[str, list[TxnMeasurement]]] = {}
    for m in measurements:
        key = (m.result.workload, m.result.partitions)
        groups.setdefault(key, {}).setdefault(m.target, []).append(m)
    return groups


def _ratio(values: dict[str, float], top: str = "moldau", bottom: str = "mock") -> str:
    if top not in values or not values.get(bottom):
        return "-"
    return f"**{values[top] / values[bottom]:.2f}**"


def small_table(measurements: list[TxnMeasurement], targets: list[str]) -> str:
    """Transactions per second of the small-transaction workload."""
    head = ["workload", "partitions"]
    for t in targets:
        head += [f"{t} txn/s", f"{t} msg/s"]
    both = {"mock", "moldau"} <= set(targets)
    if both:
        head.append("moldau / mock")
    head += [f"{t} CPU ms/txn" for t in targets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (workload, partitions), by in _group(measurements).items():
        if workload != SMALL:
            continue
        txns = {t: _median(ms, lambda m: m.result.txns_per_s) for t, ms in by.items()}
        cells = [f"{SMALL_TXN_MESSAGES} x {SMALL_VALUE_BYTES} B, commit", str(partitions)]
        for t in targets:
            msgs = _median(by[t], lambda m: m.result.msgs_per_s) if t in by else None
            cells += [
                f"{txns[t]:,.1f}" if t in txns else "-",
                "-" if msgs is None else f"{msgs:,.0f}",
            ]
        if both:
            cells.append(_ratio(txns))
        for t in targets:
            cells.append(f"{_median(by[t], lambda m: m.cpu_ms_per_txn):.2f}" if t in by else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def throughput_table(measurements: list[TxnMeasurement], targets: list[str]) -> str:
    """MB/s of large transactions and of the idempotent baseline, with both ratios."""
    head = ["producer", "partitions"]
    for t in targets:
        head += [f"{t} MB/s", f"{t} msg/s"]
    both = {"mock", "moldau"} <= set(targets)
    if both:
        head.append("moldau / mock")
    head += [f"{t} txn / idempotent" for t in targets]
    head += [f"{t} CPU s/GB" for t in targets]
    groups = _group(measurements)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    keys = sorted((k for k in groups if k[0] != SMALL), key=lambda k: (k[1], k[0] != IDEMPOTENT))
    for workload, partitions in keys:
        by = groups[(workload, partitions)]
        mb = {t: _median(ms, lambda m: m.result.mb_per_s) for t, ms in by.items()}
        baseline = groups.get((IDEMPOTENT, partitions), {})
        label = "idempotent" if workload == IDEMPOTENT else "transactional"
        if workload == TXN:
            txns = statistics.median(m.result.transactions for ms in by.values() for m in ms)
            per_txn = statistics.median(
                m.result.messages // max(1, m.result.transactions) for ms in by.values() for m in ms
            )
            label = f"transactional ({int(txns)} x {int(per_txn):,} x 1 KiB)"
        cells = [label, str(partitions)]
        for t in targets:
            msgs = _median(by[t], lambda m: m.result.msgs_per_s) if t in by else None
            cells += [
                f"{mb[t]:.1f}" if t in mb else "-",
                "-" if msgs is None else f"{msgs:,.0f}",
            ]
        if both:
            cells.append(_ratio(mb))
        for t in targets:
            if workload == TXN and t in mb and t in baseline:
                base = _median(baseline[t], lambda m: m.result.mb_per_s)
                cells.append(f"{mb[t] / base:.2f}" if base else "-")
            else:
                cells.append("-")
        for t in targets:
            cells.append(f"{_median(by[t], lambda m: m.cpu_s_per_gb):.2f}" if t in by else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.transactions", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per target (median reported)")
    parser.add_argument("--quick", action="store_true", help="smoke run: a few seconds per run")
    parser.add_argument(
        "--targets", default="mock,moldau", help="comma-separated: mock, moldau (default both)"
    )
    parser.add_argument("--small-txns", type=int, help=f"small transactions (default {SMALL_TXNS})")
    parser.add_argument("--large-txns", type=int, help=f"large transactions (default {LARGE_TXNS})")
    parser.add_argument(
        "--txn-messages",
        type=int,
        help=f"messages per large transaction (default {LARGE_TXN_MESSAGES})",
    )
    parser.add_argument("--partitions", default=",".join(map(str, PARTITIONS)))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra moldau broker setting (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="write every measurement here")
    return parser.parse_args(argv)


def _plan(args: argparse.Namespace) -> Plan:
    defaults = (
        QUICK
        if args.quick
        else {
            "small_txns": SMALL_TXNS,
            "large_txns": LARGE_TXNS,
            "txn_messages": LARGE_TXN_MESSAGES,
        }
    )

    def pick(name: str) -> int:
        given: int | None = getattr(args, name)
        return defaults[name] if given is None else given

    partitions = tuple(int(p) for p in args.partitions.split(","))
    return Plan(pick("small_txns"), pick("large_txns"), pick("txn_messages"), partitions)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    plan = _plan(args)
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    unknown = set(names) - {"mock", "moldau"}
    if unknown:
        raise SystemExit(f"unknown target(s): {', '.join(sorted(unknown))}")
    settings = dict(s.split("=", 1) for s in args.set)
    command = shlex.join(
        ["python", "-m", "bench.transactions", *(argv if argv is not None else sys.argv[1:])]
    )
    _log(f"{command}: {platform.python_version()}, {os.cpu_count()} CPUs; {plan}")

    measurements: list[TxnMeasurement] = []
    started = time.monotonic()
    for run in range(args.runs):
        for name in names if run % 2 == 0 else list(reversed(names)):
            target = _start(name, settings)
            try:
                measurements.extend(measure_target(target, run, plan))
            finally:
                target.close()
    elapsed = time.monotonic() - started

    print()
    print(f"`{command}` — median of {args.runs} run(s), {elapsed:.0f} s in all")
    print()
    print(small_table(measurements, names))
    print()
    print(throughput_table(measurements, names))
    if args.json is not None:
        args.json.write_text(json.dumps([m.as_dict() for m in measurements], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
