"""``moldau topic describe`` (cleaner columns) and ``moldau topic compact``, and the HTTP client
under them (:mod:`moldau.cli.broker_http`).

The client is first tested against the real HTTP server module run in a thread with a
stand-in broker, so its parsing and its one-line errors do not depend on the cleaner; then
the commands run against real broker processes.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cli_helpers import Runner
from confluent_kafka import Producer

from moldau.broker.http_server import start_http_server
from moldau.cli.admin import BrokerInfo, ConfigInfo
from moldau.cli.broker_http import BrokerHttpClient, CleanerPartitionStatus, LastClean
from moldau.cli.common import CliError
from moldau.cli.topic import _cleaner_cells
from moldau.testing import BrokerProcess, free_port

# -- the client against a stand-in broker --------------------------------------------------


class StandInCleaner:
    def __init__(self) -> None:
        self.requested: list[str] = []

    def status(self, topic: str, partition: int) -> Any:
        if topic != "table":
            return None
        return SimpleNamespace(
            cleanable_ratio=0.25 * partition,
            first_dirty_offset=10 * partition,
            last_clean_time_ms=-1 if partition == 0 else 1_700_000_000_000,
            last_result=None
            if partition == 0
            else SimpleNamespace(
                bytes_read=300, bytes_written=100, records_read=30, records_kept=10, duration_ms=3
            ),
            uncleanable_reason="corrupt segment 00000.log" if partition == 2 else None,
            cleaning=partition == 1,
        )

    def request_clean(self, topic: str) -> int:
        self.requested.append(topic)
        return 3 if topic == "table" else 0


class ThreadedServer:
    """The broker's HTTP server on an event loop in a thread (the CLI is synchronous)."""

    def __init__(self) -> None:
        self.cleaner = StandInCleaner()
        image = SimpleNamespace(
            topic=lambda name: (
                SimpleNamespace(name=name, partitions=3) if name in ("table", "plain") else None
            )
        )
        self.broker = SimpleNamespace(
            node_id=1, cleaner=self.cleaner, metadata=SimpleNamespace(image=image)
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            start_http_server(self.broker, "127.0.0.1", 0),  # type: ignore[arg-type]
            self.loop,
        ).result(10)
        self.url = f"http://127.0.0.1:{self.server.port}"

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def stand_in() -> Iterator[ThreadedServer]:
    server = ThreadedServer()
    yield server
    server.close()


def test_client_reads_cleaner_status(stand_in: ThreadedServer) -> None:
    statuses = BrokerHttpClient(stand_in.url, 5000).cleaner_status("table")
    assert statuses[0] == CleanerPartitionStatus(0, 0.0, 0, -1, None, False, None)
    assert statuses[1] == CleanerPartitionStatus(
        1, 0.25, 10, 1_700_000_000_000, None, True, LastClean(300, 100, 30, 10, 3)
    )
    assert statuses[2].uncleanable_reason == "corrupt segment 00000.log"


def test_client_requests_compaction(stand_in: ThreadedServer) -> None:
    client = BrokerHttpClient(stand_in.url, 5000)
    assert client.request_compaction("table") == 3
    assert client.request_compaction("plain") == 0
    assert stand_in.cleaner.requested == ["table", "plain"]


def test_client_ignores_environment_proxies(
    stand_in: ThreadedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert BrokerHttpClient(stand_in.url, 5000).health()["status"] == "ok"


def test_client_errors_are_one_line(stand_in: ThreadedServer) -> None:
    client = BrokerHttpClient(stand_in.url, 5000, node_id=1)
    with pytest.raises(CliError, match="topic 'nope' does not exist"):
        client.cleaner_status("nope")
    with pytest.raises(CliError, match="HTTP 404") as info:
        client.request("GET", "/v1/elsewhere")
    assert "\n" not in str(info.value)

    closed = BrokerHttpClient(f"http://127.0.0.1:{free_port()}", 2000, node_id=1)
    with pytest.raises(CliError) as refused:
        closed.cleaner_status("table")
    text = str(refused.value)
    assert text.startswith("cannot reach the HTTP endpoint of broker 1 at http://127.0.0.1:")
    assert "metrics.listen" in text and "refused" in text


class FakeSession:
    """What ``BrokerHttpClient.discover`` asks of an AdminSession."""

    def __init__(self, listen: str | None, brokers: int = 1) -> None:
        self.bootstrap = "kafka.example:9092,other:9092"
        self.timeout_ms = 1234
        self.listen = listen
        self.brokers = tuple(BrokerInfo(n, f"host{n}", 9092) for n in range(1, brokers + 1))
        self.described: list[tuple[str, str]] = []

    def cluster(self) -> Any:
        return SimpleNamespace(brokers=self.brokers)

    def describe_configs(self, resource_type: str, name: str) -> list[ConfigInfo]:
        self.described.append((resource_type, name))
        entries = [ConfigInfo("num.partitions", "1", "DEFAULT_CONFIG", True, False, True)]
        if self.listen is not None:
            entries.append(
                ConfigInfo("metrics.listen", self.listen, "DEFAULT_CONFIG", True, False, True)
            )
        return entries


@pytest.mark.parametrize(
    ("listen", "brokers", "node_id", "url"),
    [
        ("127.0.0.1:9644", 1, None, "http://127.0.0.1:9644"),
        ("0.0.0.0:9700", 1, None, "http://kafka.example:9700"),
        ("[::]:9700", 1, None, "http://kafka.example:9700"),
        ("0.0.0.0:9700", 3, 2, "http://host2:9700"),
        ("[::1]:9701", 1, None, "http://[::1]:9701"),
    ],
)
def test_discover_builds_the_url_from_describe_configs(
    listen: str, brokers: int, node_id: int | None, url: str
) -> None:
    session = FakeSession(listen, brokers)
    client = BrokerHttpClient.discover(session, node_id)  # type: ignore[arg-type]
    assert client.base_url == url
    assert client.timeout_ms == 1234
    assert session.described == [("broker", str(node_id or 1))]


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("", "is disabled (metrics.listen is empty)"),
        (None, "has no HTTP endpoint"),
        ("nonsense", "invalid metrics.listen"),
    ],
)
def test_discover_explains_a_missing_endpoint(listen: str | None, message: str) -> None:
    with pytest.raises(CliError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BrokerHttpClient.discover(FakeSession(listen))  # type: ignore[arg-type]


def test_cleaner_cells() -> None:
    never = CleanerPartitionStatus(0, 0.0, 0, -1, None, False, None)
    assert _cleaner_cells(never) == ["0.00", "0", "never", "idle"]
    busy = CleanerPartitionStatus(0, 0.567, 42, 1_700_000_000_000, None, True, None)
    ratio, dirty, last, state = _cleaner_cells(busy)
    assert (ratio, dirty, state) == ("0.57", "42", "cleaning")
    assert last.startswith(("2023-11-14 ", "2023-11-15 ")) and len(last) == 19
    broken = CleanerPartitionStatus(0, 0.5, 0, -1, "corrupt", False, None)
    assert _cleaner_cells(broken)[3] == "uncleanable"
    assert _cleaner_cells(None) == ["?", "?", "?", "?"]


# -- the commands against real brokers -----------------------------------------------------


def compacted_topic(moldau: Runner, broker: BrokerProcess, name: str) -> None:
    created = moldau(
        "topic",
        "create",
        name,
        "-p",
        "2",
        "-c",
        "cleanup.policy=compact",
        "-c",
        "segment.bytes=1024",
        "-b",
        broker.bootstrap,
    )
    assert created.code == 0, created.err
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for i in range(200):
        producer.produce(name, key=f"k{i % 4}".encode(), value=f"v{i}".encode())
        if i % 25 == 0:
            producer.flush(20)
    assert producer.flush(20) == 0


def test_describe_shows_cleaner_status_of_compacted_topic(
    moldau: Runner, broker: BrokerProcess, topic_name: str
) -> None:
    compacted_topic(moldau, broker, topic_name)
    text = moldau("topic", "describe", topic_name, "-b", broker.bootstrap)
    assert text.code == 0, text.err
    assert text.err == ""
    lines = text.out.splitlines()
    at = lines.index("Log cleaner:")
    header = lines[at + 1].split("  ")
    assert [h.strip() for h in header if h.strip()] == [
        "Partition",
        "Cleanable ratio",
        "First dirty offset",
        "Last clean",
        "State",
    ]
    rows = [line.split() for line in lines[at + 2 : at + 4]]
    assert [r[0] for r in rows] == ["0", "1"]
    for row in rows:
        assert 0.0 <= float(row[1]) <= 1.0 and int(row[2]) >= 0
        assert row[-1] in ("idle", "cleaning")

    doc = json.loads(
        moldau("topic", "describe", topic_name, "-f", "json", "-b", broker.bootstrap).out
    )
    assert [c["partition"] for c in doc["cleaner"]] == [0, 1]
    for c in doc["cleaner"]:
        assert 0.0 <= c["cleanable_ratio"] <= 1.0
        assert c["first_dirty_offset"] >= 0


def test_describe_of_a_plain_topic_has_no_cleaner_columns(
    moldau: Runner, broker: BrokerProcess, topic_name: str
) -> None:
    assert moldau("topic", "create", topic_name, "-b", broker.bootstrap).code == 0
    text = moldau("topic", "describe", topic_name, "-b", broker.bootstrap)
    assert text.code == 0 and "Log cleaner:" not in text.out
    doc = json.loads(
        moldau("topic", "describe", topic_name, "-f", "json", "-b", broker.bootstrap).out
    )
    assert "cleaner" not in doc


def test_compact_queues_every_partition(
    moldau: Runner, broker: BrokerProcess, topic_name: str
) -> None:
    compacted_topic(moldau, broker, topic_name)
    done = moldau("topic", "compact", topic_name, "-b", broker.bootstrap)
    assert done.code == 0, done.err
    assert done.out.strip() == f"Queued 2 partitions of topic {topic_name} for compaction."
    as_json = moldau("topic", "compact", topic_name, "-f", "json", "-b", broker.bootstrap)
    assert json.loads(as_json.out) == {"topic": topic_name, "queued": 2}


def test_compact_refuses_plain_and_unknown_topics(
    moldau: Runner, broker: BrokerProcess, topic_name: str
) -> None:
    assert moldau("topic", "create", topic_name, "-b", broker.bootstrap).code == 0
    plain = moldau("topic", "compact", topic_name, "-b", broker.bootstrap)
    assert plain.code == 1
    assert plain.err_lines == [
        f"error: topic '{topic_name}' is not compacted (cleanup.policy=delete); "
        "only compacted topics can be cleaned"
    ]
    unknown = moldau("topic", "compact", f"missing-{uuid.uuid4().hex[:6]}", "-b", broker.bootstrap)
    assert unknown.code == 1 and len(unknown.err_lines) == 1
    assert "does not exist" in unknown.err


def test_disabled_endpoint_gives_one_clear_line(moldau: Runner, tmp_path: Path) -> None:
    with BrokerProcess(tmp_path / "data", config={"metrics.listen": ""}) as proc:
        b = ("-b", proc.bootstrap)
        created = moldau("topic", "create", "t", "-c", "cleanup.policy=compact", *b)
        assert created.code == 0, created.err
        described = moldau("topic", "describe", "t", *b)
        assert described.code == 0
        assert described.err_lines == [
            "warning: no cleaner status: the HTTP endpoint of broker 1 is disabled "
            "(metrics.listen is empty); set it to host:port to use this command"
        ]
        assert "Partition" in described.out and "Log cleaner:" not in described.out
        doc = json.loads(moldau("topic", "describe", "t", "-f", "json", *b).out)
        assert doc["cleaner"] is None
        compact = moldau("topic", "compact", "t", *b)
        assert compact.code == 1
        assert len(compact.err_lines) == 1 and "metrics.listen is empty" in compact.err
