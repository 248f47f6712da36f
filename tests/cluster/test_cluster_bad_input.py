"""A cluster's bad input and start-up faults: each gets one clear line, and nothing that is
already running is disturbed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.testing.broker import BrokerProcess, free_port
from moldau.testing.etcd import EtcdProcess

FAST = {
    "broker.session.timeout.ms": "2000",
    "broker.heartbeat.interval.ms": "500",
}


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdProcess]:
    with EtcdProcess(tmp_path / "etcd") as process:
        yield process


def broker_command(data_dir: Path, node_id: int, metadata: str, **config: str) -> list[str]:
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
        f"127.0.0.1:{free_port()}",
        "--data-dir",
        str(data_dir),
        "--set",
        f"metrics.listen=127.0.0.1:{free_port()}",
    ]
    for key, value in {**FAST, **config}.items():
        args += ["--set", f"{key}={value}"]
    return args


def test_a_node_id_already_in_use_is_refused(etcd: EtcdProcess, tmp_path: Path) -> None:
    first = BrokerProcess(
        tmp_path / "one" / "data",
        node_id=1,
        config=FAST,
        extra_args=("--metadata", etcd.metadata_url),
    )
    with first:
        result = subprocess.run(
            broker_command(tmp_path / "two" / "data", 1, etcd.metadata_url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ")
        assert "node id 1" in last and "already registered" in last
        assert "Traceback" not in result.stderr
        # the broker that owns the id keeps serving
        admin = AdminClient({"bootstrap.servers": first.bootstrap})
        assert 1 in admin.list_topics(timeout=10).brokers


def test_an_unreachable_etcd_stops_start_up_with_one_line(tmp_path: Path) -> None:
    dead = f"etcd://127.0.0.1:{free_port()}"
    result = subprocess.run(
        broker_command(tmp_path / "data", 1, dead, **{"moldau.etcd.startup.timeout.ms": "1500"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: etcd at http://127.0.0.1:")
    assert "not reachable" in last
    assert "Traceback" not in result.stderr


def test_a_broker_waits_for_an_etcd_that_comes_up_late(tmp_path: Path) -> None:
    etcd = EtcdProcess(tmp_path / "etcd")
    broker = BrokerProcess(
        tmp_path / "b" / "data",
        node_id=1,
        config=FAST,
        extra_args=("--metadata", etcd.metadata_url),
    )
    try:
        process = subprocess.Popen(
            broker.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(1.5)
        assert process.poll() is None  # still trying, not crashed
        etcd.start()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        deadline = time.monotonic() + 30
        brokers: dict[int, object] = {}
        while time.monotonic() < deadline and 1 not in brokers:
            try:
                brokers = admin.list_topics(timeout=2).brokers
            except Exception:
                time.sleep(0.3)
        assert 1 in brokers
    finally:
        process.terminate()
        process.wait(30)
        etcd.close()


def test_replication_factor_above_the_broker_count_is_refused(
    etcd: EtcdProcess, tmp_path: Path
) -> None:
    brokers = [
        BrokerProcess(
            tmp_path / f"b{i}" / "data",
            node_id=i,
            config=FAST,
            extra_args=("--metadata", etcd.metadata_url),
        )
        for i in (1, 2)
    ]
    try:
        for broker in brokers:
            broker.start()
        admin = AdminClient({"bootstrap.servers": brokers[0].bootstrap})
        deadline = time.monotonic() + 20
        while len(admin.list_topics(timeout=5).brokers) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        futures = admin.create_topics([NewTopic("too-many", 1, 3), NewTopic("fits", 1, 2)])
        with pytest.raises(Exception) as info:
            futures["too-many"].result(15)
        assert "INVALID_REPLICATION_FACTOR" in str(info.value)
        assert "larger than available brokers: 2" in str(info.value)
        futures["fits"].result(15)
        topic = admin.list_topics("fits", timeout=10).topics["fits"]
        assert sorted(topic.partitions[0].replicas) == [1, 2]
    finally:
        for broker in brokers:
            broker.close()
