"""The broker's HTTP endpoint (``metrics.listen``): routes, bad input, and isolation from Kafka.

Two halves. In-process tests run :func:`start_http_server` on the test's loop with a stand-in
broker (only ``cleaner``, ``metadata.image`` and ``node_id`` are reached), so the HTTP layer is
tested whatever the cleaner's state. Real-process tests start a BrokerProcess (its endpoint
gets a free port of its own) and talk to it as operators and the CLI do, with Kafka clients
running alongside.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from moldau.broker import http_server
from moldau.broker.http_server import HttpServer, Route, json_response, start_http_server
from moldau.testing import BrokerProcess

# -- a stand-in broker ---------------------------------------------------------------------


@dataclass
class FakeCleaner:
    """Answers like LogCleanerManager: a status per compacted partition, None otherwise."""

    statuses: dict[tuple[str, int], Any] = field(default_factory=dict)
    compacted: set[str] = field(default_factory=set)
    requested: list[str] = field(default_factory=list)

    def status(self, topic: str, partition: int) -> Any:
        return self.statuses.get((topic, partition))

    def request_clean(self, topic: str) -> int:
        self.requested.append(topic)
        return sum(1 for t, _ in self.statuses if t == topic) if topic in self.compacted else 0


class FakeImage:
    def __init__(self, partitions: dict[str, int]) -> None:
        self.partitions = partitions

    def topic(self, name: str) -> Any:
        count = self.partitions.get(name)
        return None if count is None else SimpleNamespace(name=name, partitions=count)


def make_status(ratio: float, last_clean_ms: int, with_result: bool) -> SimpleNamespace:
    result = (
        SimpleNamespace(
            bytes_read=1000,
            bytes_written=400,
            records_read=50,
            records_kept=20,
            duration_ms=7,
            end_offset=50,
        )
        if with_result
        else None
    )
    return SimpleNamespace(
        cleanable_ratio=ratio,
        first_dirty_offset=50 if with_result else 0,
        last_clean_time_ms=last_clean_ms,
        last_result=result,
        uncleanable_reason=None,
        cleaning=False,
    )


@pytest.fixture
def fake_broker() -> SimpleNamespace:
    cleaner = FakeCleaner(
        statuses={
            ("table", 0): make_status(0.75, 1_700_000_000_000, with_result=True),
            ("table", 1): make_status(0.0, -1, with_result=False),
        },
        compacted={"table"},
    )
    image = FakeImage({"table": 2, "events": 3, "a.b": 1})
    return SimpleNamespace(node_id=7, cleaner=cleaner, metadata=SimpleNamespace(image=image))


@pytest.fixture
async def server(fake_broker: SimpleNamespace) -> AsyncIterator[HttpServer]:
    srv = await start_http_server(fake_broker, "127.0.0.1", 0)  # type: ignore[arg-type]
    yield srv
    srv.close()
    await srv.wait_closed()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers["content-type"] == "application/json"
        return json.loads(self.body)


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return Reply(status, headers, body)


async def exchange(port: int, raw: bytes) -> tuple[Reply, bool]:
    """Send raw bytes, read one reply; also whether the server then closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        reply = await read_reply(reader)
        closed = reply.headers.get("connection") == "close" and await reader.read() == b""
        return reply, closed
    finally:
        writer.close()
        await writer.wait_closed()


def get(path: str, *extra: str) -> bytes:
    head = [f"GET {path} HTTP/1.1", "Host: test", "Connection: close", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def post(path: str, body: bytes = b"") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {len(body)}"
    return head.encode() + b"\r\n\r\n" + body


# -- in-process: routes ----------------------------------------------------------------------


async def test_health(server: HttpServer) -> None:
    reply, _ = await exchange(server.port, get("/v1/health"))
    assert reply.status == 200
    assert reply.json() == {"status": "ok", "node_id": 7}


async def test_cleaner_status_lists_compacted_partitions(server: HttpServer) -> None:
    reply, closed = await exchange(server.port, get("/v1/topics/table/cleaner"))
    assert reply.status == 200 and closed
    assert reply.json() == [
        {
            "partition": 0,
            "cleanable_ratio": 0.75,
            "first_dirty_offset": 50,
            "last_clean_time_ms": 1_700_000_000_000,
            "uncleanable_reason": None,
            "cleaning": False,
            "last_clean": {
                "bytes_read": 1000,
                "bytes_written": 400,
                "records_read": 50,
                "records_kept": 20,
                "duration_ms": 7,
            },
        },
        {
            "partition": 1,
            "cleanable_ratio": 0.0,
            "first_dirty_offset": 0,
            "last_clean_time_ms": -1,
            "uncleanable_reason": None,
            "cleaning": False,
            "last_clean": None,
        },
    ]


async def test_not_compacted_topic_has_no_status_and_queues_nothing(
    server: HttpServer, fake_broker: SimpleNamespace
) -> None:
    reply, _ = await exchange(server.port, get("/v1/topics/events/cleaner"))
    assert reply.status == 200 and reply.json() == []
    reply, _ = await exchange(server.port, post("/v1/topics/events/compact"))
    assert reply.status == 200 and reply.json() == {"queued": 0}
    assert fake_broker.cleaner.requested == ["events"]


async def test_compact_queues_partitions(server: HttpServer, fake_broker: SimpleNamespace) -> None:
    reply, _ = await exchange(server.port, post("/v1/topics/table/compact", b"{}"))
    assert reply.status == 200
    assert reply.json() == {"queued": 2}
    assert fake_broker.cleaner.requested == ["table"]


async def test_percent_encoded_topic_name(server: HttpServer) -> None:
    reply, _ = await exchange(server.port, get("/v1/topics/a%2Eb/cleaner"))
    assert reply.status == 200 and reply.json() == []
    reply, _ = await exchange(server.port, get("/v1/topics/%FF%FE/cleaner"))
    assert reply.status == 400


@pytest.mark.parametrize(
    "request_bytes",
    [
        get("/v1/topics/nope/cleaner"),
        post("/v1/topics/nope/compact"),
    ],
)
async def test_unknown_topic_is_404(server: HttpServer, request_bytes: bytes) -> None:
    reply, _ = await exchange(server.port, request_bytes)
    assert reply.status == 404
    assert reply.json()["error"] == "Not Found"
    assert "nope" in reply.json()["message"]


@pytest.mark.parametrize("path", ["/", "/v1", "/v1/topics", "/v1/topics//cleaner", "/v2/health"])
async def test_unknown_path_is_404(server: HttpServer, path: str) -> None:
    reply, _ = await exchange(server.port, get(path))
    assert reply.status == 404
    assert reply.json()["error"] == "Not Found"


async def test_wrong_method_is_405_with_allow(server: HttpServer) -> None:
    reply, _ = await exchange(server.port, post("/v1/topics/table/cleaner"))
    assert reply.status == 405 and reply.headers["allow"] == "GET"
    reply, _ = await exchange(server.port, get("/v1/topics/table/compact"))
    assert reply.status == 405 and reply.headers["allow"] == "POST"
    assert reply.json()["error"] == "Method Not Allowed"


async def test_keep_alive_serves_several_requests(server: HttpServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for _ in range(3):
            writer.write(b"GET /v1/health HTTP/1.1\r\nHost: t\r\n\r\n")
            reply = await read_reply(reader)
            assert reply.status == 200 and reply.headers["connection"] == "keep-alive"
        # pipelined: two requests in one write, two replies in order
        writer.write(b"GET /v1/health HTTP/1.1\r\n\r\nGET /v1/topics/x/cleaner HTTP/1.1\r\n\r\n")
        assert (await read_reply(reader)).status == 200
        assert (await read_reply(reader)).status == 404
    finally:
        writer.close()
        await writer.wait_closed()


async def test_http_1_0_closes_after_reply(server: HttpServer) -> None:
    reply, closed = await exchange(server.port, b"GET /v1/health HTTP/1.0\r\n\r\n")
    assert reply.status == 200 and closed


# -- in-process: malformed requests ----------------------------------------------------------

COMPACT = b"POST /v1/topics/table/compact HTTP/1.1\r\n"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # TLS hello, say
        (b"HELLO\r\n\r\n", 400),
        (b"get /v1/health HTTP/1.1\r\n\r\n", 400),
        (b"GET /v1/health HTTP/2.0\r\n\r\n", 505),
        (b"GET /v1/health SPDY/3\r\n\r\n", 400),
        (b"GET v1/health HTTP/1.1\r\n\r\n", 400),
        (b"GET /v1/health HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET /v1/health HTTP/1.1\r\n : x\r\n\r\n", 400),
        (b"POST /v1/topics/table/compact HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (
            COMPACT + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            400,
        ),
        (b"POST /v1/topics/table/compact HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
        (
            COMPACT + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            501,
        ),
    ],
)
async def test_malformed_request_gets_json_error_and_close(
    server: HttpServer, raw: bytes, status: int
) -> None:
    reply, closed = await exchange(server.port, raw)
    assert reply.status == status
    assert set(reply.json()) == {"error", "message"}
    assert closed


async def test_oversized_head_is_431(server: HttpServer) -> None:
    raw = b"GET /v1/health HTTP/1.1\r\nX-Big: " + b"a" * (http_server.MAX_HEAD_BYTES + 10)
    reply, closed = await exchange(server.port, raw + b"\r\n\r\n")
    assert reply.status == 431 and closed


async def test_clients_that_disconnect_mid_request_do_not_disturb_others(
    server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    partials = [
        b"",
        b"GET /v1/hea",
        b"GET /v1/health HTTP/1.1\r\nHost: x",
        b"POST /v1/topics/table/compact HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345",
    ]
    with caplog.at_level(logging.DEBUG, logger="moldau.broker.http"):
        for partial in partials:
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(partial)
            await writer.drain()
            writer.transport.abort()  # reset, not a polite close
        reply, _ = await exchange(server.port, get("/v1/health"))
        assert reply.status == 200
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    # the half-sent compact request was never dispatched
    assert server._broker.cleaner.requested == []  # type: ignore[attr-defined]


async def test_route_exception_is_500_and_server_keeps_serving(
    fake_broker: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(broker: Any, request: Any, params: Any) -> Any:
        raise RuntimeError("kaboom")

    async def hello(broker: Any, request: Any, params: Any) -> Any:
        return json_response({"hello": params["who"]})

    routes = [Route("GET", "/boom", boom), Route("GET", "/hello/{who}", hello)]
    srv = await start_http_server(fake_broker, "127.0.0.1", 0, routes=routes)  # type: ignore[arg-type]
    try:
        reply, _ = await exchange(srv.port, get("/boom"))
        assert reply.status == 500 and reply.json()["error"] == "Internal Server Error"
        assert "kaboom" not in reply.body.decode()
        assert any("kaboom" in (r.exc_text or "") for r in caplog.records)
        reply, _ = await exchange(srv.port, get("/hello/world"))
        assert reply.status == 200 and reply.json() == {"hello": "world"}
    finally:
        srv.close()
        await srv.wait_closed()


async def test_close_drops_idle_keep_alive_connections(fake_broker: SimpleNamespace) -> None:
    srv = await start_http_server(fake_broker, "127.0.0.1", 0)  # type: ignore[arg-type]
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(get("/v1/health").replace(b"Connection: close", b"X-A: b"))
    assert (await read_reply(reader)).status == 200
    silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", srv.port)
    port = srv.port
    for _ in range(100):  # let the server accept it
        if len(srv._connections) == 2:
            break
        await asyncio.sleep(0.01)
    srv.close()
    await srv.wait_closed()
    assert not srv.is_serving()
    assert await reader.read() == b""
    assert await silent_reader.read() == b""
    for w in (writer, silent_writer):
        w.close()
        await w.wait_closed()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_connections_beyond_the_cap_are_closed(
    fake_broker: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_server, "MAX_CONNECTIONS", 2)
    srv = await start_http_server(fake_broker, "127.0.0.1", 0)  # type: ignore[arg-type]
    held = []
    try:
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(b"GET /v1/health HTTP/1.1\r\n\r\n")
            assert (await read_reply(reader)).status == 200  # served, kept open
            held.append(writer)
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        held.append(writer)
        assert await reader.read() == b""
        held.pop(0).close()
        for _ in range(100):  # the server notices the close; then a new client is served
            await asyncio.sleep(0.01)
            if len(srv._connections) < 2:
                break
        reply, _ = await exchange(srv.port, get("/v1/health"))
        assert reply.status == 200
    finally:
        for w in held:
            w.close()
        srv.close()
        await srv.wait_closed()


# -- a real broker process ----------------------------------------------------------------

TIMEOUT_S = 30


def http(url: str, method: str = "GET", timeout_s: float = TIMEOUT_S) -> tuple[int, Any]:
    """(status, JSON body) of one request; no proxies (the endpoint is on loopback)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    data = b"" if method == "POST" else None
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def cleaning_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    data_dir = tmp_path_factory.mktemp("http") / "data"
    proc = BrokerProcess(data_dir, config={"log.cleaner.backoff.ms": "100"})
    proc.start()
    yield proc
    proc.close()


def create_topic(bootstrap: str, name: str, partitions: int, configs: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, partitions, 1, config=configs)])
    futures[name].result(TIMEOUT_S)


def produce_keyed(bootstrap: str, topic: str, count: int, keys: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(count):
        producer.produce(topic, key=f"k{i % keys}".encode(), value=f"v{i}".encode())
        if i % 50 == 0:
            producer.flush(TIMEOUT_S)  # one small batch at a time: several segments
    assert producer.flush(TIMEOUT_S) == 0


def test_broker_process_http_url_points_at_its_endpoint(cleaning_broker: BrokerProcess) -> None:
    assert cleaning_broker.http_url.startswith("http://127.0.0.1:")
    assert cleaning_broker.http_url != f"http://127.0.0.1:{cleaning_broker.port}"
    assert http(cleaning_broker.http_url + "/v1/health") == (
        200,
        {"status": "ok", "node_id": cleaning_broker.node_id},
    )


def test_status_and_compact_of_a_compacted_topic(cleaning_broker: BrokerProcess) -> None:
    topic = f"table-{uuid.uuid4().hex[:8]}"
    create_topic(
        cleaning_broker.bootstrap,
        topic,
        2,
        {"cleanup.policy": "compact", "segment.bytes": "1024", "min.cleanable.dirty.ratio": "0.99"},
    )
    produce_keyed(cleaning_broker.bootstrap, topic, 400, keys=5)
    url = f"{cleaning_broker.http_url}/v1/topics/{topic}"

    status, before = http(url + "/cleaner")
    assert status == 200
    assert [p["partition"] for p in before] == [0, 1]
    for p in before:
        assert 0.0 <= p["cleanable_ratio"] <= 1.0
        assert p["first_dirty_offset"] >= 0
        assert isinstance(p["cleaning"], bool)
        assert set(p) == {
            "partition",
            "cleanable_ratio",
            "first_dirty_offset",
            "last_clean_time_ms",
            "uncleanable_reason",
            "cleaning",
            "last_clean",
        }

    assert http(url + "/compact", "POST") == (200, {"queued": 2})

    deadline = time.monotonic() + TIMEOUT_S
    after: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        after = http(url + "/cleaner")[1]
        if all(p["last_clean_time_ms"] >= 0 and not p["cleaning"] for p in after):
            break
        time.sleep(0.1)
    for p in after:
        assert p["last_clean_time_ms"] > 0, after
        assert p["uncleanable_reason"] is None
        last = p["last_clean"]
        assert last is not None and last["records_kept"] <= last["records_read"]
        assert last["records_read"] > 0 and last["bytes_written"] <= last["bytes_read"]


def test_not_compacted_and_unknown_topics(cleaning_broker: BrokerProcess) -> None:
    topic = f"events-{uuid.uuid4().hex[:8]}"
    create_topic(cleaning_broker.bootstrap, topic, 1, {})
    base = cleaning_broker.http_url
    assert http(f"{base}/v1/topics/{topic}/cleaner") == (200, [])
    assert http(f"{base}/v1/topics/{topic}/compact", "POST") == (200, {"queued": 0})
    status, body = http(f"{base}/v1/topics/no-such-topic/cleaner")
    assert status == 404 and "no-such-topic" in body["message"]
    assert http(f"{base}/v1/topics/no-such-topic/compact", "POST")[0] == 404
    assert http(f"{base}/v1/nothing-here")[0] == 404
    assert http(f"{base}/v1/health", "POST")[0] == 405


def raw_http(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_malformed_requests_to_the_real_broker(cleaning_broker: BrokerProcess) -> None:
    address = cleaning_broker.http_address
    assert address is not None
    port = address[1]
    assert raw_http(port, b"\x00\x01garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw_http(port, b"GET /v1/health HTTP/9.9\r\n\r\n").startswith(b"HTTP/1.1 505 ")
    reply = raw_http(port, b"GET /v1/health HTTP/1.1\r\nX: " + b"y" * 100_000 + b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert http(cleaning_broker.http_url + "/v1/health")[0] == 200


def test_bad_http_clients_do_not_disturb_kafka_clients(cleaning_broker: BrokerProcess) -> None:
    topic = f"busy-{uuid.uuid4().hex[:8]}"
    bootstrap = cleaning_broker.bootstrap
    create_topic(bootstrap, topic, 1, {})
    address = cleaning_broker.http_address
    assert address is not None
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    idle: list[socket.socket] = []
    try:
        for round_ in range(5):
            for i in range(20):
                producer.produce(topic, key=b"k", value=f"{round_}-{i}".encode())
            # garbage, a half request left hanging, a reset mid-body, a silent connection
            for data in (
                b"\xff" * 5000,
                b"GET /v1/topics/x/cleaner HTTP/1.1\r\nHost: ",
                b"POST /v1/topics/x/compact HTTP/1.1\r\nContent-Length: 1000\r\n\r\nabc",
                b"",
            ):
                sock = socket.create_connection(address, timeout=TIMEOUT_S)
                sock.sendall(data)
                if round_ % 2:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
                    sock.close()  # RST
                else:
                    idle.append(sock)
            assert producer.flush(TIMEOUT_S) == 0
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"g-{topic}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        try:
            consumer.subscribe([topic])
            values: list[bytes] = []
            deadline = time.monotonic() + TIMEOUT_S
            while len(values) < 100 and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    values.append(msg.value())
        finally:
            consumer.close()
        assert values == [f"{r}-{i}".encode() for r in range(5) for i in range(20)]
        assert cleaning_broker.process is not None and cleaning_broker.process.poll() is None
        assert http(cleaning_broker.http_url + "/v1/health")[0] == 200
    finally:
        for sock in idle:
            sock.close()


def test_empty_metrics_listen_disables_the_endpoint(tmp_path: Path) -> None:
    with BrokerProcess(tmp_path / "data", config={"metrics.listen": ""}) as proc:
        assert proc.http_address is None
        with pytest.raises(RuntimeError, match=r"metrics\.listen"):
            _ = proc.http_url
        create_topic(proc.bootstrap, "still-works", 1, {})


def test_env_reaches_the_broker_process(tmp_path: Path) -> None:
    proc = BrokerProcess(tmp_path / "data", env={"MOLDAU_TEST_CLEANER_HOOK": "slow=1"})
    assert proc.env == {"MOLDAU_TEST_CLEANER_HOOK": "slow=1"}
    proc.env["EXTRA_FOR_TEST"] = "1"
    with proc:
        assert proc.process is not None
        environ = Path(f"/proc/{proc.process.pid}/environ").read_bytes().split(b"\0")
        assert b"MOLDAU_TEST_CLEANER_HOOK=slow=1" in environ
        assert b"EXTRA_FOR_TEST=1" in environ
