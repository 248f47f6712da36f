"""``python -m bench.compaction``: how fast the log cleaner compacts, and what it costs producers.

Two figures per compression codec, both from one moldau broker per run:

- **Cleaner throughput.** A compacted topic (one partition) is filled with ``--topic-mb`` MB of
  payload (1 KiB values round-robin over ``--keys`` keys, so every key is updated many times),
  then ``POST /v1/topics/{topic}/compact`` asks for a clean and ``GET
  /v1/topics/{topic}/cleaner`` is polled until the partition's ``last_clean_time_ms`` moves
  past the request. *Cleaner MB/s* is the clean's own ``bytes_read / duration_ms`` (the log
  bytes the worker read: the whole cleanable section, compressed as stored); *wall* is the
  time from sending the request to ``last_clean_time_ms``, which adds the scheduling, the
  job set-up on the event loop and the swap of the cleaned segments under the log's lock.
- **Produce latency while it runs.** A confluent-kafka producer (``acks=1``, ``linger.ms=0``,
  keyed 1 KiB values to the same compacted partition) sends at a steady ``--rate``; each
  message's latency is librdkafka's own (``Message.latency()``: from ``produce()`` to the
  broker's acknowledgement, so the benchmark's polling does not blur it). It runs for
  ``--idle-s`` seconds before the clean is requested (*idle*), then from the request until
  the clean has finished (*cleaning*): same broker, same connection, same partition, same rate.
  Writing to the partition being cleaned is the harsh case: besides CPU and disk competition
  it meets the swap, which takes the log's lock. The broker process's own CPU use per window
  (the cleaner's worker processes are not part of it) shows whether the clean's work stayed
  off the event loop.

Automatic cleaning is kept out of the way by the topic's ``min.cleanable.dirty.ratio=1.0``
(a ratio has to be strictly above it, so only the request cleans); the run fails if the
partition was cleaned before the request anyway, since the clean would then read a log that
is not the one described. Values are half random, half text, so lz4 has something to do (about
2:1); "topic MB" counts payload (10^6 bytes of values), the log on disk is larger uncompressed
(record framing, keys) and smaller with lz4.

Every run of every codec starts a fresh broker with an empty data directory (its HTTP
endpoint on a free port); codecs alternate which goes first; the tables give medians over
the runs. The active segment is never cleaned, so the clean reads all but the last
``segment.bytes`` of the log.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.report import cpu_seconds
from bench.targets import MoldauTarget, _wait_for_partitions
from bench.workload import BenchmarkError
from moldau.testing import free_port

TOPIC_MB = 200
KEYS = 10_000
VALUE_BYTES = 1024
CODECS = ("none", "lz4")
SEGMENT_BYTES = 16 * 1024 * 1024
RATE_PER_S = 1_000
IDLE_S = 5.0

QUICK = {"topic_mb": 4, "keys": 500, "segment_bytes": 1024 * 1024, "rate": 500, "idle_s": 1.0}
"""``--quick``: a smoke run of a few seconds per codec; its figures mean nothing."""

_CLEAN_TIMEOUT_S = 600.0
_STATUS_POLL_S = 0.05
_FLUSH_TIMEOUT_S = 120.0
_VALUE_POOL = 1024
"""Distinct values cycled through: 1 MiB, more than lz4's 64 KiB window, so lz4 cannot just
point back at the previous copy of the same value."""


# -- the broker's HTTP endpoint --------------------------------------------------------------


class CleanerEndpoint:
    """The two calls of the broker's HTTP endpoint the benchmark needs (``metrics.listen``)."""

    def __init__(self, host: str, port: int) -> None:
        self.base_url = f"http://{host}:{port}"

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(self.base_url + path, method=method, data=None)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")[:500]
            raise BenchmarkError(f"{method} {path}: HTTP {exc.code}: {body}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise BenchmarkError(f"{method} {path} at {self.base_url}: {exc}") from exc

    def compact(self, topic: str) -> int:
        """Ask for a clean of every partition of ``topic`` now; how many were queued."""
        return int(self._call("POST", f"/v1/topics/{topic}/compact")["queued"])

    def partition_status(self, topic: str, partition: int) -> dict[str, Any]:
        for entry in self._call("GET", f"/v1/topics/{topic}/cleaner"):
            if entry["partition"] == partition:
                return dict(entry)
        raise BenchmarkError(f"no cleaner status for {topic}-{partition}")


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CleanFigures:
    """One clean, as the broker reported it, plus the wall time the benchmark saw."""

    bytes_read: int
    bytes_written: int
    records_read: int
    records_kept: int
    duration_ms: int
    wall_ms: int
    """From just before the compact request to the partition's ``last_clean_time_ms``."""

    @property
    def mb_per_s(self) -> float:
        """Log bytes read per second of the clean itself (10^6 bytes)."""
        return self.bytes_read / max(self.duration_ms, 1) / 1e3

    @property
    def wall_mb_per_s(self) -> float:
        return self.bytes_read / max(self.wall_ms, 1) / 1e3


@dataclass(frozen=True)
class Latencies:
    """Per-message produce latencies of one window, in milliseconds."""

    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Latencies:
        if not seconds:
            raise BenchmarkError("no message was acknowledged in a latency window")
        ordered = sorted(seconds)
        return cls(
            len(ordered),
            round(percentile(ordered, 50) * 1e3, 3),
            round(percentile(ordered, 99) * 1e3, 3),
            round(ordered[-1] * 1e3, 3),
        )


@dataclass(frozen=True)
class RunResult:
    codec: str
    run: int
    topic_mb: int
    keys: int
    value_bytes: int
    rate: int
    clean: CleanFigures
    idle: Latencies
    cleaning: Latencies
    idle_cpu_pct: float
    cleaning_cpu_pct: float
    """CPU of the broker process itself (event loop and its threads; the cleaner's worker
    processes are not in it) per wall second of each window, in percent: what the clean
    costs the process that serves produce requests."""

    def as_dict(self) -> dict[str, object]:
        return {
            "codec": self.codec,
            "run": self.run,
            "topic_mb": self.topic_mb,
            "keys": self.keys,
            "value_bytes": self.value_bytes,
            "rate": self.rate,
            **asdict(self.clean),
            "cleaner_mb_per_s": round(self.clean.mb_per_s, 2),
            "wall_mb_per_s": round(self.clean.wall_mb_per_s, 2),
            "idle": asdict(self.idle),
            "cleaning": asdict(self.cleaning),
            "idle_cpu_pct": round(self.idle_cpu_pct, 1),
            "cleaning_cpu_pct": round(self.cleaning_cpu_pct, 1),
        }


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (p99 of 100 samples is the 99th)."""
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats' surprises
    return ordered[int(rank) - 1]


# -- the workloads ---------------------------------------------------------------------------


def value_pool(value_bytes: int, count: int = _VALUE_POOL) -> list[bytes]:
    """``count`` distinct values, each half random bytes and half text: lz4 gets ~2:1."""
    text = (b'{"status":"shipped","warehouse":"north","items":[1,2,3],"note":"ok"} ' * 64)[
        : value_bytes - value_bytes // 2
    ]
    return [os.urandom(value_bytes // 2) + text for _ in range(count)]


def fill(
    bootstrap: str, topic: str, codec: str, messages: int, keys: int, value_bytes: int
) -> float:
    """Produce ``messages`` keyed values to partition 0 as fast as possible; returns seconds."""
    from confluent_kafka import Producer

    failures: list[object] = []
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "1",
            "compression.type": codec,
            "linger.ms": 5,
            "batch.size": 256 * 1024,  # below the quick run's segment.bytes
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 2_097_151,
            "delivery.report.only.error": True,
            "on_delivery": lambda err, _msg: failures.append(err),
            "log_level": 3,
        }
    )
    values = value_pool(value_bytes)
    started = time.perf_counter()
    try:
        send = producer.produce
        for i in range(messages):
            key = b"key-%06d" % (i % keys)
            value = values[i % len(values)]
            while True:
                try:
                    send(topic, value, key, partition=0)
                    break
                except BufferError:
                    producer.poll(0.001)
        left = producer.flush(_FLUSH_TIMEOUT_S)
    finally:
        elapsed = time.perf_counter() - started
    if left:
        raise BenchmarkError(f"fill: {left} messages still undelivered after flush")
    if failures:
        raise BenchmarkError(f"fill: {len(failures)} deliveries failed, first: {failures[0]}")
    return elapsed


class PacedProducer:
    """Sends keyed values at a steady rate and records each message's latency.

    ``linger.ms=0`` so a message leaves as soon as the producer thread sees it: the latency is
    the broker's answer time plus the client's, not a batching delay. Sends are paced against
    an absolute schedule (message i at start + i / rate), so a stall is followed by a burst
    that catches up, as an open-loop load generator should, instead of silently lowering the
    rate while the broker is slow.
    """

    def __init__(self, bootstrap: str, topic: str, rate: int, keys: int, value_bytes: int) -> None:
        from confluent_kafka import Producer

        self.failures: list[object] = []
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "1",
                "linger.ms": 0,
                "compression.type": "none",
                "log_level": 3,
            }
        )
        self.topic = topic
        self.rate = rate
        self.keys = keys
        self.values = value_pool(value_bytes, 64)
        self._sent = 0
        self.producer.list_topics(topic, timeout=30)  # connect and learn the leader
        warm: list[float] = []
        self._send(warm)
        self.producer.flush(_FLUSH_TIMEOUT_S)

    def _send(self, bucket: list[float]) -> None:
        def delivered(err: object, msg: Any) -> None:
            if err is not None:
                self.failures.append(err)
            else:
                latency = msg.latency()
                if latency is not None:
                    bucket.append(latency)

        i = self._sent
        self._sent += 1
        key = b"key-%06d" % (i % self.keys)
        while True:
            try:
                self.producer.produce(
                    self.topic, self.values[i % len(self.values)], key, 0, on_delivery=delivered
                )
                return
            except BufferError:
                self.producer.poll(0.001)

    def run(self, until: Callable[[], bool]) -> list[float]:
        """Send at ``rate`` until ``until()`` is true, then wait for every acknowledgement."""
        bucket: list[float] = []
        interval = 1.0 / self.rate
        start = time.perf_counter()
        sent = 0
        while sent == 0 or not until():  # at least one message, however short the window
            due = start + sent * interval
            wait = due - time.perf_counter()
            if wait > 0:
                self.producer.poll(min(wait, 0.01))
                continue
            self._send(bucket)
            sent += 1
            self.producer.poll(0)
        left = self.producer.flush(_FLUSH_TIMEOUT_S)
        if left:
            raise BenchmarkError(f"latency producer: {left} messages undelivered after flush")
        if self.failures:
            raise BenchmarkError(
                f"latency producer: {len(self.failures)} failed, first: {self.failures[0]}"
            )
        return bucket

    def close(self) -> None:
        """Close before the broker goes, so librdkafka does not log reconnect failures."""
        self.producer.flush(_FLUSH_TIMEOUT_S)
        self.producer.close()


class CleanWatcher(threading.Thread):
    """Polls the cleaner status in a thread of its own until the requested clean is done.

    Polling from the producer's loop would put HTTP round trips into its pacing; here the
    producer only reads ``done``.
    """

    def __init__(self, endpoint: CleanerEndpoint, topic: str, requested_ms: int) -> None:
        super().__init__(name="clean-watcher", daemon=True)
        self.endpoint = endpoint
        self.topic = topic
        self.requested_ms = requested_ms
        self.status: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.finished_at = 0.0
        self._done = threading.Event()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def run(self) -> None:
        deadline = time.monotonic() + _CLEAN_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                status = self.endpoint.partition_status(self.topic, 0)
                if status.get("uncleanable_reason"):
                    raise BenchmarkError(f"partition uncleanable: {status['uncleanable_reason']}")
                if status["last_clean_time_ms"] >= self.requested_ms and status["last_clean"]:
                    self.status = status
                    return
                time.sleep(_STATUS_POLL_S)
            raise BenchmarkError(f"the clean did not finish within {_CLEAN_TIMEOUT_S:.0f} s")
        except BaseException as exc:  # handed to the main thread
            self.error = exc
        finally:
            self.finished_at = time.perf_counter()
            self._done.set()


# -- one run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    topic_mb: int
    keys: int
    value_bytes: int
    codecs: tuple[str, ...]
    segment_bytes: int
    rate: int
    idle_s: float

    @property
    def messages(self) -> int:
        return max(self.keys, self.topic_mb * 1_000_000 // self.value_bytes)


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _CpuClock:
    """The broker process's CPU use since construction, as a percentage of wall time."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self._cpu = cpu_seconds(pid)
        self._wall = time.perf_counter()

    def percent(self) -> float:
        wall = time.perf_counter() - self._wall
        return 100 * (cpu_seconds(self.pid) - self._cpu) / wall if wall > 0 else 0.0


def _create_compacted(bootstrap: str, topic: str, segment_bytes: int) -> None:
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AdminClient,
        NewTopic,
    )

    configs = {
        "cleanup.policy": "compact",
        "segment.bytes": str(segment_bytes),
        "min.cleanable.dirty.ratio": "1.0",  # only the benchmark's request cleans
    }
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, 1, 1, config=configs)], request_timeout=15)
    futures[topic].result(20)
    _wait_for_partitions(bootstrap, topic, 1, 30)


def measure(codec: str, run: int, plan: Plan, settings: dict[str, str]) -> RunResult:
    """Fill, idle window, clean window, all on one fresh broker."""
    port = free_port()
    target = MoldauTarget(1, {**settings, "metrics.listen": f"127.0.0.1:{port}"})
    try:
        endpoint = CleanerEndpoint("127.0.0.1", port)
        topic = f"bench-compact-{uuid.uuid4().hex[:10]}"
        _create_compacted(target.bootstrap, topic, plan.segment_bytes)
        seconds = fill(target.bootstrap, topic, codec, plan.messages, plan.keys, plan.value_bytes)
        _log(
            f"  {codec:>6} run {run}: filled {plan.messages} msgs "
            f"({plan.messages * plan.value_bytes / 1e6:.0f} MB payload) in {seconds:.1f} s"
        )
        producer = PacedProducer(target.bootstrap, topic, plan.rate, plan.keys, plan.value_bytes)
        try:
            # write the fill back now, so that the idle window does not meet the kernel's
            # writeback of it (it stays in the page cache: the clean reads it from there)
            os.sync()
            time.sleep(min(plan.idle_s, 1.0))
            idle_until = time.perf_counter() + plan.idle_s
            cpu_clock = _CpuClock(target.pid)
            idle = producer.run(lambda: time.perf_counter() >= idle_until)
            idle_cpu_pct = cpu_clock.percent()

            before = endpoint.partition_status(topic, 0)
            if before["last_clean_time_ms"] != -1:
                raise BenchmarkError(
                    "the partition was cleaned before the request "
                    f"(last_clean_time_ms={before['last_clean_time_ms']})"
                )
            cpu_clock = _CpuClock(target.pid)
            requested_ms = time.time_ns() // 1_000_000
            queued = endpoint.compact(topic)
            if queued != 1:
                raise BenchmarkError(f"compact request queued {queued} partitions, not 1")
            watcher = CleanWatcher(endpoint, topic, requested_ms)
            watcher.start()
            cleaning = producer.run(lambda: watcher.done)
            cleaning_cpu_pct = cpu_clock.percent()
            watcher.join()
        finally:
            producer.close()
        if watcher.error is not None:
            raise watcher.error
        assert watcher.status is not None
        last = watcher.status["last_clean"]
        figures = CleanFigures(
            bytes_read=int(last["bytes_read"]),
            bytes_written=int(last["bytes_written"]),
            records_read=int(last["records_read"]),
            records_kept=int(last["records_kept"]),
            duration_ms=int(last["duration_ms"]),
            wall_ms=int(watcher.status["last_clean_time_ms"]) - requested_ms,
        )
    finally:
        target.close()
    result = RunResult(
        codec,
        run,
        plan.topic_mb,
        plan.keys,
        plan.value_bytes,
        plan.rate,
        figures,
        Latencies.of(idle),
        Latencies.of(cleaning),
        idle_cpu_pct,
        cleaning_cpu_pct,
    )
    c = result.clean
    _log(
        f"  {codec:>6} run {run}: clean read {c.bytes_read / 1e6:.1f} MB, wrote "
        f"{c.bytes_written / 1e6:.1f} MB, kept {c.records_kept}/{c.records_read} records in "
        f"{c.duration_ms} ms ({c.mb_per_s:.1f} MB/s), wall {c.wall_ms} ms; produce p50/p99 "
        f"idle {result.idle.p50_ms:.2f}/{result.idle.p99_ms:.2f} ms, cleaning "
        f"{result.cleaning.p50_ms:.2f}/{result.cleaning.p99_ms:.2f} ms "
        f"({result.cleaning.samples} msgs)"
    )
    return result


# -- reporting -------------------------------------------------------------------------------


def _by_codec(results: list[RunResult]) -> dict[str, list[RunResult]]:
    groups: dict[str, list[RunResult]] = {}
    for r in results:
        groups.setdefault(r.codec, []).append(r)
    return groups


def _median(rs: list[RunResult], key: Callable[[RunResult], float]) -> float:
    return statistics.median(key(r) for r in rs)


def throughput_table(results: list[RunResult]) -> str:
    """Cleaner throughput per codec, medians over the runs."""
    head = [
        "codec",
        "topic",
        "keys",
        "log MB read",
        "MB written",
        "records read",
        "records kept",
        "clean ms",
        "cleaner MB/s",
        "request → done ms",
        "wall MB/s",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for codec, rs in _by_codec(results).items():
        first = rs[0]
        cells = [
            codec,
            f"{first.topic_mb} MB x {first.value_bytes} B",
            f"{first.keys:,}",
            f"{_median(rs, lambda r: r.clean.bytes_read) / 1e6:.1f}",
            f"{_median(rs, lambda r: r.clean.bytes_written) / 1e6:.1f}",
            f"{_median(rs, lambda r: r.clean.records_read):,.0f}",
            f"{_median(rs, lambda r: r.clean.records_kept):,.0f}",
            f"{_median(rs, lambda r: r.clean.duration_ms):,.0f}",
            f"**{_median(rs, lambda r: r.clean.mb_per_s):.1f}**",
            f"{_median(rs, lambda r: r.clean.wall_ms):,.0f}",
            f"{_median(rs, lambda r: r.clean.wall_mb_per_s):.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def latency_table(results: list[RunResult]) -> str:
    """Produce latency with and without a clean running, medians over the runs."""
    head = [
        "codec (cleaned topic)",
        "rate msg/s",
        "idle p50 ms",
        "idle p99 ms",
        "cleaning p50 ms",
        "cleaning p99 ms",
        "cleaning max ms",
        "p99 cleaning / idle",
        "msgs while cleaning",
        "broker CPU % idle",
        "broker CPU % cleaning",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for codec, rs in _by_codec(results).items():
        idle_p99 = _median(rs, lambda r: r.idle.p99_ms)
        cleaning_p99 = _median(rs, lambda r: r.cleaning.p99_ms)
        cells = [
            codec,
            f"{rs[0].rate:,}",
            f"{_median(rs, lambda r: r.idle.p50_ms):.2f}",
            f"{idle_p99:.2f}",
            f"{_median(rs, lambda r: r.cleaning.p50_ms):.2f}",
            f"{cleaning_p99:.2f}",
            f"{_median(rs, lambda r: r.cleaning.max_ms):.2f}",
            f"**{cleaning_p99 / idle_p99:.2f}**" if idle_p99 else "-",
            f"{_median(rs, lambda r: r.cleaning.samples):,.0f}",
            f"{_median(rs, lambda r: r.idle_cpu_pct):.0f}",
            f"{_median(rs, lambda r: r.cleaning_cpu_pct):.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.compaction", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per codec (median reported)")
    parser.add_argument("--quick", action="store_true", help="smoke run: a few seconds per run")
    parser.add_argument("--topic-mb", type=int, help=f"payload MB to fill (default {TOPIC_MB})")
    parser.add_argument("--keys", type=int, help=f"distinct keys (default {KEYS:,})")
    parser.add_argument("--value-bytes", type=int, default=VALUE_BYTES)
    parser.add_argument("--codecs", default=",".join(CODECS), help="producer compression.type")
    parser.add_argument(
        "--segment-bytes", type=int, help=f"topic segment.bytes (default {SEGMENT_BYTES})"
    )
    parser.add_argument("--rate", type=int, help=f"latency producer msg/s (default {RATE_PER_S})")
    parser.add_argument("--idle-s", type=float, help=f"idle latency window (default {IDLE_S})")
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
    defaults: dict[str, Any] = (
        QUICK
        if args.quick
        else {
            "topic_mb": TOPIC_MB,
            "keys": KEYS,
            "segment_bytes": SEGMENT_BYTES,
            "rate": RATE_PER_S,
            "idle_s": IDLE_S,
        }
    )

    def pick(name: str) -> Any:
        given = getattr(args, name)
        return defaults[name] if given is None else given

    codecs = tuple(c.strip() for c in args.codecs.split(",") if c.strip())
    return Plan(
        topic_mb=pick("topic_mb"),
        keys=pick("keys"),
        value_bytes=args.value_bytes,
        codecs=codecs,
        segment_bytes=pick("segment_bytes"),
        rate=pick("rate"),
        idle_s=pick("idle_s"),
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    plan = _plan(args)
    settings = dict(s.split("=", 1) for s in args.set)
    command = shlex.join(
        ["python", "-m", "bench.compaction", *(argv if argv is not None else sys.argv[1:])]
    )
    _log(f"{command}: {platform.python_version()}, {os.cpu_count()} CPUs; {plan}")

    results: list[RunResult] = []
    started = time.monotonic()
    for run in range(args.runs):
        order = plan.codecs if run % 2 == 0 else tuple(reversed(plan.codecs))
        results.extend(measure(codec, run, plan, settings) for codec in order)
    elapsed = time.monotonic() - started
    results.sort(key=lambda r: plan.codecs.index(r.codec))

    print()
    print(f"`{command}` — median of {args.runs} run(s), {elapsed:.0f} s in all")
    print()
    print(throughput_table(results))
    print()
    print(latency_table(results))
    if args.json is not None:
        args.json.write_text(json.dumps([r.as_dict() for r in results], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
