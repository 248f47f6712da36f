"""librdkafka's in-memory mock cluster, hosted in a process of its own: the benchmark baseline.

librdkafka ships a mock Kafka cluster (``rdkafka_mock.h``) that speaks the wire protocol over
real loopback sockets and keeps partitions in memory, served by one C thread. It is the
baseline DESIGN.md §7 asks for: a fast broker with no storage cost, so a ratio against it
says how much of the gap is ours.

confluent-kafka can start one (``test.mock.num.brokers``) but exposes neither its bootstrap
address directly nor topic creation, and the mock auto-creates topics with a fixed partition
count. So the host process below drives the very librdkafka that confluent-kafka bundles
through ``ctypes``: ``rd_kafka_mock_cluster_new`` on a bare producer handle,
``rd_kafka_mock_cluster_bootstraps`` for the address, ``rd_kafka_mock_topic_create`` and
``rd_kafka_mock_topic_delete`` for topics (deleting frees the memory a run used).

The host is a separate process so that, as with the moldau broker, the benchmark's clients
never share a process (or a GIL) with the broker. It reads one command per line on stdin
(``create <topic> <partitions>``, ``delete <topic>``), answers ``ok`` or ``error <code>``, and
exits at end of input.

Run alone: ``python -m bench.mock_cluster`` prints the bootstrap address first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType

_RD_KAFKA_PRODUCER = 0


def _load_librdkafka() -> ctypes.CDLL:
    """The librdkafka confluent-kafka was built with (its wheel bundles a copy)."""
    import confluent_kafka

    package_dir = Path(confluent_kafka.__file__).resolve().parent
    bundled = sorted(glob.glob(str(package_dir.parent / "confluent_kafka.libs" / "librdkafka*")))
    name = bundled[0] if bundled else ctypes.util.find_library("rdkafka")
    if name is None:
        raise RuntimeError("librdkafka not found (neither bundled with confluent-kafka nor system)")
    lib = ctypes.CDLL(name)
    lib.rd_kafka_conf_new.restype = ctypes.c_void_p
    lib.rd_kafka_conf_set.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
    ]
    lib.rd_kafka_new.restype = ctypes.c_void_p
    lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.rd_kafka_destroy.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
    lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.rd_kafka_mock_cluster_destroy.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
    lib.rd_kafka_mock_topic_create.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.rd_kafka_mock_topic_delete.restype = ctypes.c_int
    lib.rd_kafka_mock_topic_delete.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return lib


def host(num_brokers: int = 1) -> None:
    """The host process's main: start the cluster, print its bootstrap, serve commands."""
    lib = _load_librdkafka()
    errstr = ctypes.create_string_buffer(512)
    conf = lib.rd_kafka_conf_new()
    lib.rd_kafka_conf_set(conf, b"log_level", b"3", errstr, len(errstr))
    rk = lib.rd_kafka_new(_RD_KAFKA_PRODUCER, conf, errstr, len(errstr))
    if not rk:
        raise RuntimeError(f"rd_kafka_new failed: {errstr.value.decode()}")
    cluster = lib.rd_kafka_mock_cluster_new(rk, num_brokers)
    if not cluster:
        raise RuntimeError("rd_kafka_mock_cluster_new failed")
    print(lib.rd_kafka_mock_cluster_bootstraps(cluster).decode(), flush=True)
    for line in sys.stdin:
        words = line.split()
        err = -1
        if len(words) == 3 and words[0] == "create":
            err = lib.rd_kafka_mock_topic_create(cluster, words[1].encode(), int(words[2]), 1)
        elif len(words) == 2 and words[0] == "delete":
            err = lib.rd_kafka_mock_topic_delete(cluster, words[1].encode())
        print("ok" if err == 0 else f"error {err}", flush=True)
    lib.rd_kafka_mock_cluster_destroy(cluster)
    lib.rd_kafka_destroy(rk)


class MockCluster:
    """Start and command a mock-cluster host process from the benchmark (the client side)."""

    def __init__(self, num_brokers: int = 1) -> None:
        self.num_brokers = num_brokers
        self.process: subprocess.Popen[str] | None = None
        self.bootstrap = ""

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> MockCluster:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH")) if p
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.mock_cluster", str(self.num_brokers)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        self.bootstrap = self.process.stdout.readline().strip()
        if not self.bootstrap:
            self.stop()
            raise RuntimeError("the mock cluster host did not start")
        return self

    def _command(self, line: str) -> None:
        assert self.process is not None
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        if answer != "ok":
            raise RuntimeError(f"mock cluster: {line!r} failed: {answer or 'host exited'}")

    def create_topic(self, topic: str, partitions: int) -> None:
        self._command(f"create {topic} {partitions}")

    def delete_topic(self, topic: str) -> None:
        self._command(f"delete {topic}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def __enter__(self) -> MockCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    host(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
