"""FaultProxy against a tiny echo server, a fake Kafka server, and a real broker process.

The echo and fake-Kafka servers run in threads of this process; only the tests marked
``compat`` start a broker. No test asserts on timings: latency is checked by ordering (a
delayed connection answers after an undelayed one) and cuts by the absence of data while cut.
"""

from __future__ import annotations

import contextlib
import itertools
import select
import socket
import socketserver
import struct
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kio.schema.types import BrokerId
from kio.serial import entity_reader
from kio.static.primitive import i32

from moldau.protocol.api import schema_for
from moldau.protocol.framing import encode_response
from moldau.protocol.messages import make
from moldau.testing import BrokerProcess, free_port
from moldau.testing.fault_proxy import FaultProxy, KafkaFrameScanner, rewrite_broker_addresses

# -- helpers ---------------------------------------------------------------------------------


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: type[socketserver.BaseRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.received: list[bytes] = []
        self.recv_calls = 0
        self.lock = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server_address[:2]
        return str(host), int(port)


class _EchoHandler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.request.recv(65536):
                with self.server.lock:
                    self.server.received.append(data)
                    self.server.recv_calls += 1
                self.request.sendall(data)


class _FakeKafkaHandler(socketserver.BaseRequestHandler):
    """Answers each request frame with ``size, correlation_id, b"ok" + api_key``."""

    server: _Server

    def handle(self) -> None:
        stream = self.request.makefile("rb")
        with contextlib.suppress(OSError):
            while size_bytes := stream.read(4):
                (size,) = struct.unpack(">i", size_bytes)
                frame = stream.read(size)
                api_key, _version, correlation_id = struct.unpack_from(">hhi", frame)
                with self.server.lock:
                    self.server.received.append(frame)
                body = struct.pack(">i", correlation_id) + b"ok" + struct.pack(">h", api_key)
                self.request.sendall(struct.pack(">i", len(body)) + body)


@contextlib.contextmanager
def _serve(handler: type[socketserver.BaseRequestHandler]) -> Iterator[_Server]:
    server = _Server(handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def echo() -> Iterator[_Server]:
    with _serve(_EchoHandler) as server:
        yield server


@pytest.fixture
def proxy(echo: _Server) -> Iterator[FaultProxy]:
    with FaultProxy(upstream=echo.address) as proxy:
        yield proxy


def _connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection((proxy.host, proxy.port), timeout=10)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _readable(sock: socket.socket, wait_s: float) -> bool:
    return bool(select.select([sock], [], [], wait_s)[0])


def _request(api_key: int, correlation_id: int) -> bytes:
    body = struct.pack(">hhi", api_key, 0, correlation_id) + struct.pack(">h", -1)
    return struct.pack(">i", len(body)) + body


def _read_response(sock: socket.socket) -> tuple[int, int] | None:
    """(correlation_id, api_key) of the next fake-Kafka response, or None at EOF."""
    head = _recv_exactly(sock, 4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack(">i", head)
    body = _recv_exactly(sock, size)
    if len(body) < size:
        return None
    correlation_id, _ok, api_key = struct.unpack(">i2sh", body)
    return correlation_id, api_key


# -- KafkaFrameScanner -------------------------------------------------------------------


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


@given(
    payloads=st.lists(st.binary(max_size=40), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
    hold=st.booleans(),
)
def test_scanner_finds_every_header_whatever_the_chunking(
    payloads: list[bytes], cuts: list[int], hold: bool
) -> None:
    stream = b"".join(_frame(p) for p in payloads)
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    scanner = KafkaFrameScanner(8)
    out = b""
    headers: list[bytes] = []
    for start, end in itertools.pairwise(bounds):
        for data, header in scanner.feed(stream[start:end], hold=hold):
            out += data
            if header is not None:
                headers.append(header)
                # the piece completing a header ends with the header's last byte
                assert out.endswith(header)
    assert out == stream
    assert headers == [p[:8] for p in payloads]


def test_scanner_holds_an_incomplete_header_only_when_asked() -> None:
    frame = _frame(b"\x00\x00\x00\x07rest")
    held = KafkaFrameScanner(4)
    assert held.feed(frame[:6], hold=True) == []
    assert held.feed(frame[6:], hold=True) == [(frame[:8], b"\x00\x00\x00\x07"), (b"rest", None)]
    passing = KafkaFrameScanner(4)
    assert passing.feed(frame[:6], hold=False) == [(frame[:6], None)]
    assert passing.feed(frame[6:], hold=False)[0] == (frame[6:8], b"\x00\x00\x00\x07")


def test_scanner_gives_up_on_a_negative_size() -> None:
    scanner = KafkaFrameScanner(4)
    assert scanner.feed(b"\xff\xff\xff\xffabc", hold=True) == [
        (b"\xff\xff\xff\xff", None),
        (b"abc", None),
    ]
    assert scanner.broken
    assert scanner.feed(b"xyz", hold=True) == [(b"xyz", None)]


# -- plain TCP faults against an echo server -----------------------------------------------


def test_forwards_both_ways_and_counts(proxy: FaultProxy, echo: _Server) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"hello proxy")
        assert _recv_exactly(sock, 11) == b"hello proxy"
    assert proxy.connections_total == 1
    assert proxy.bytes_upstream == 11
    assert proxy.bytes_downstream == 11
    assert b"".join(echo.received) == b"hello proxy"


def test_half_close_is_passed_on(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        assert _recv_exactly(sock, 100) == b"last words"  # then EOF, not a hang


def test_latency_delays_a_connection_behind_an_undelayed_one(echo: _Server) -> None:
    with FaultProxy(upstream=echo.address) as slow, FaultProxy(upstream=echo.address) as fast:
        slow.latency(3000, direction="downstream")
        with _connect(slow) as slow_sock, _connect(fast) as fast_sock:
            slow_sock.sendall(b"slow")
            fast_sock.sendall(b"fast")
            assert _recv_exactly(fast_sock, 4) == b"fast"
            assert not _readable(slow_sock, 0)  # still held back by the proxy
            assert _recv_exactly(slow_sock, 4) == b"slow"


def test_jitter_never_reorders(proxy: FaultProxy) -> None:
    proxy.latency(5, jitter_ms=5)
    proxy.slice(7)  # many small chunks, each with its own random delay
    message = bytes(range(256)) * 8
    with _connect(proxy) as sock:
        sock.sendall(message)
        assert _recv_exactly(sock, len(message)) == message


def test_cut_stops_traffic_and_heal_resumes_it(proxy: FaultProxy, echo: _Server) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"before")
        assert _recv_exactly(sock, 6) == b"before"
        proxy.cut()
        sock.sendall(b"during")
        assert not _readable(sock, 0.5)
        with _connect(proxy) as newcomer:  # accepted, but not connected through
            newcomer.sendall(b"new")
            assert not _readable(newcomer, 0.2)
            assert b"".join(echo.received) == b"before"
            proxy.heal()
            assert _recv_exactly(sock, 6) == b"during"  # the socket survived the partition
            assert _recv_exactly(newcomer, 3) == b"new"


def test_reset_all_resets_open_connections(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"ping")
        assert _recv_exactly(sock, 4) == b"ping"
        proxy.reset_all()
        with pytest.raises(ConnectionResetError):
            sock.recv(10)
    assert proxy.connections_open == 0
    with _connect(proxy) as again:  # the proxy itself keeps serving
        again.sendall(b"pong")
        assert _recv_exactly(again, 4) == b"pong"


def test_refuse_new_refuses_connections_but_keeps_open_ones(proxy: FaultProxy) -> None:
    port = proxy.port
    with _connect(proxy) as sock:
        sock.sendall(b"hi")
        assert _recv_exactly(sock, 2) == b"hi"  # accepted by the proxy, not just the kernel
        proxy.refuse_new(True)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"still here")
        assert _recv_exactly(sock, 10) == b"still here"
        proxy.refuse_new(False)
        assert proxy.port == port
        with _connect(proxy) as again:
            again.sendall(b"back")
            assert _recv_exactly(again, 4) == b"back"


def test_slice_forwards_in_small_chunks(proxy: FaultProxy, echo: _Server) -> None:
    proxy.slice(10, delay_ms=5)
    message = b"x" * 200
    with _connect(proxy) as sock:
        sock.sendall(message)
        assert _recv_exactly(sock, 200) == message
    assert echo.recv_calls > 1
    assert max(len(chunk) for chunk in echo.received) < 200


def test_limit_data_closes_the_connection_after_n_bytes(proxy: FaultProxy, echo: _Server) -> None:
    proxy.limit_data(150)
    message = bytes(range(100))
    with _connect(proxy) as sock:
        sock.sendall(message)
        received = _recv_exactly(sock, 1000)  # returns at EOF
    upstream = b"".join(echo.received)
    assert upstream == message[: len(upstream)]
    assert received == upstream[: len(received)]
    assert len(upstream) + len(received) == 150
    proxy.limit_data(None)
    with _connect(proxy) as sock:
        sock.sendall(b"z" * 300)
        assert _recv_exactly(sock, 300) == b"z" * 300


def test_clear_removes_every_fault(proxy: FaultProxy) -> None:
    proxy.latency(10_000)
    proxy.cut()
    proxy.refuse_new(True)
    proxy.limit_data(1)
    proxy.clear()
    with _connect(proxy) as sock:
        sock.sendall(b"free")
        assert _recv_exactly(sock, 4) == b"free"


def test_upstream_down_closes_the_client() -> None:
    with FaultProxy(upstream=("127.0.0.1", free_port())) as proxy, _connect(proxy) as sock:
        assert sock.recv(10) == b""


# -- Kafka-aware response dropping against a fake Kafka server -----------------------------


@pytest.fixture
def fake_kafka() -> Iterator[_Server]:
    with _serve(_FakeKafkaHandler) as server:
        yield server


def test_drop_responses_swallows_only_the_chosen_api(fake_kafka: _Server) -> None:
    with FaultProxy(upstream=fake_kafka.address) as proxy:
        proxy.drop_responses(count=1, api_key=0)
        with _connect(proxy) as sock:
            sock.sendall(_request(18, 1))
            assert _read_response(sock) == (1, 18)
            # pipelined: the metadata response before the produce response still arrives
            sock.sendall(_request(3, 2) + _request(0, 3) + _request(3, 4))
            assert _read_response(sock) == (2, 3)
            assert _read_response(sock) is None  # produce response lost, connection closed
        assert proxy.responses_dropped == 1
        assert proxy.drops_pending == 0
        # the server did get the produce request: the work was done, only the answer lost
        assert any(struct.unpack_from(">hhi", f) == (0, 0, 3) for f in fake_kafka.received)
        with _connect(proxy) as sock:  # the budget is spent: the retry gets its answer
            sock.sendall(_request(0, 5))
            assert _read_response(sock) == (5, 0)
        assert proxy.responses_dropped == 1


def test_drop_responses_any_api_counts_across_connections(fake_kafka: _Server) -> None:
    with FaultProxy(upstream=fake_kafka.address) as proxy:
        proxy.drop_responses(count=2, api_key=None)
        for correlation_id in (1, 2):
            with _connect(proxy) as sock:
                sock.sendall(_request(1, correlation_id))
                assert _read_response(sock) is None
        with _connect(proxy) as sock:
            sock.sendall(_request(1, 3))
            assert _read_response(sock) == (3, 1)
        assert proxy.responses_dropped == 2


def test_drop_responses_with_a_header_split_across_chunks(fake_kafka: _Server) -> None:
    with FaultProxy(upstream=fake_kafka.address) as proxy:
        proxy.slice(3, delay_ms=1)  # requests and responses arrive a few bytes at a time
        proxy.drop_responses(count=1, api_key=0)
        with _connect(proxy) as sock:
            sock.sendall(_request(3, 7) + _request(0, 8))
            assert _read_response(sock) == (7, 3)
            assert _read_response(sock) is None
        assert proxy.responses_dropped == 1


# -- Metadata / FindCoordinator rewriting ----------------------------------------------------

UPSTREAM = ("127.0.0.1", 9092)
PROXY = ("127.0.0.1", 40001)


def _encode(api_key: int, version: int, **fields: object) -> bytes:
    schema = schema_for(api_key, version)
    return encode_response(schema, 77, make(schema.response_type, **fields))


def _decode(frame: bytes, api_key: int, version: int) -> Any:
    schema = schema_for(api_key, version)
    assert struct.unpack_from(">ii", frame) == (len(frame) - 4, 77)
    offset = 9 if schema.response_header_flexible else 8
    value, _size = entity_reader(schema.response_type)(frame, offset)
    return value


@pytest.mark.parametrize("version", [0, 1, 9, 12])
def test_rewrites_the_upstream_broker_in_metadata(version: int) -> None:
    module = schema_for(3, version).response_module
    brokers = (
        make(module.MetadataResponseBroker, node_id=BrokerId(1), host="localhost", port=i32(9092)),
        make(module.MetadataResponseBroker, node_id=BrokerId(2), host="10.0.0.2", port=i32(9092)),
    )
    frame = _encode(
        3, version, brokers=brokers, topics=(), controller_id=BrokerId(1), throttle_time=0
    )
    rewritten = rewrite_broker_addresses(frame, 3, version, UPSTREAM, PROXY)
    response = _decode(rewritten, 3, version)
    assert [(b.node_id, b.host, b.port) for b in response.brokers] == [
        (1, "127.0.0.1", 40001),
        (2, "10.0.0.2", 9092),  # another broker of the cluster: not ours to redirect
    ]


def test_rewrites_find_coordinator_old_and_new() -> None:
    old = _encode(
        10,
        1,
        node_id=BrokerId(1),
        host="127.0.0.1",
        port=i32(9092),
        error_code=0,
        error_message=None,
        throttle_time=0,
    )
    response = _decode(rewrite_broker_addresses(old, 10, 1, UPSTREAM, PROXY), 10, 1)
    assert (response.host, response.port) == PROXY
    module = schema_for(10, 4).response_module
    coordinator = make(
        module.Coordinator,
        key="g",
        node_id=BrokerId(1),
        host="127.0.0.1",
        port=i32(9092),
        error_code=0,
        error_message=None,
    )
    new = _encode(10, 4, coordinators=(coordinator,), throttle_time=0)
    response = _decode(rewrite_broker_addresses(new, 10, 4, UPSTREAM, PROXY), 10, 4)
    assert [(c.host, c.port) for c in response.coordinators] == [PROXY]


def test_rewrite_leaves_other_frames_alone() -> None:
    module = schema_for(3, 12).response_module
    other = make(module.MetadataResponseBroker, node_id=BrokerId(2), host="h", port=i32(1))
    frame = _encode(3, 12, brokers=(other,), topics=(), controller_id=BrokerId(2), throttle_time=0)
    assert rewrite_broker_addresses(frame, 3, 12, UPSTREAM, PROXY) is frame
    garbage = struct.pack(">ii", 5, 77) + b"\xff"
    assert rewrite_broker_addresses(garbage, 3, 12, UPSTREAM, PROXY) is garbage


# -- against a real broker process ------------------------------------------------------------


@pytest.fixture
def proxied_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[BrokerProcess, FaultProxy]]:
    """A broker advertising its own address, and a proxy in front of it: clients that
    bootstrap at the proxy stay behind it (Metadata rewriting), others talk to the broker."""
    broker = BrokerProcess(tmp_path_factory.mktemp("proxied") / "data")
    with broker, FaultProxy(upstream=(broker.host, broker.port)) as proxy:
        yield broker, proxy


def _consume_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    values: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        empty_polls = 0
        while len(values) < expected and empty_polls < 30:
            msg = consumer.poll(1.0)
            if msg is None:
                empty_polls += 1
                continue
            assert msg.error() is None, msg.error()
            values.append(bytes(msg.value() or b""))
        # anything beyond `expected` would be a duplicate: give it a moment to show up
        msg = consumer.poll(1.0)
        while msg is not None:
            assert msg.error() is None, msg.error()
            values.append(bytes(msg.value() or b""))
            msg = consumer.poll(0.5)
    finally:
        consumer.close()
    return values


@pytest.mark.compat
def test_clients_behind_the_proxy_see_the_proxy_as_the_broker(
    proxied_broker: tuple[BrokerProcess, FaultProxy],
) -> None:
    from confluent_kafka.admin import AdminClient

    broker, proxy = proxied_broker
    behind = AdminClient({"bootstrap.servers": proxy.bootstrap})
    brokers = behind.list_topics(timeout=10).brokers
    assert [(b.host, b.port) for b in brokers.values()] == [(proxy.host, proxy.port)]
    direct = AdminClient({"bootstrap.servers": broker.bootstrap})
    brokers = direct.list_topics(timeout=10).brokers
    assert [(b.host, b.port) for b in brokers.values()] == [(broker.host, broker.port)]


@pytest.mark.compat
def test_confluent_idempotent_producer_retries_without_duplicates(
    proxied_broker: tuple[BrokerProcess, FaultProxy],
) -> None:
    from confluent_kafka import Producer

    broker, proxy = proxied_broker
    topic = f"idem-ck-{uuid.uuid4().hex[:8]}"
    proxy.drop_responses(count=1, api_key=0)
    producer = Producer(
        {
            "bootstrap.servers": proxy.bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 60_000,
        }
    )
    errors: list[object] = []
    n = 200
    for i in range(n):
        producer.produce(
            topic, value=b"m%05d" % i, partition=0, on_delivery=lambda err, _m: errors.append(err)
        )
    assert producer.flush(60) == 0
    assert [e for e in errors if e is not None] == []
    assert proxy.responses_dropped == 1
    assert proxy.connections_total >= 2  # the producer reconnected after the lost response
    values = _consume_all(broker.bootstrap, topic, n)
    assert values == [b"m%05d" % i for i in range(n)]


@pytest.mark.compat
def test_kafka_python_idempotent_producer_retries_without_duplicates(
    proxied_broker: tuple[BrokerProcess, FaultProxy],
) -> None:
    from kafka import KafkaProducer

    broker, proxy = proxied_broker
    topic = f"idem-kp-{uuid.uuid4().hex[:8]}"
    proxy.drop_responses(count=1, api_key=0)
    producer = KafkaProducer(
        bootstrap_servers=proxy.bootstrap,
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=10_000,
        retry_backoff_ms=100,
    )
    n = 200
    try:
        futures = [producer.send(topic, value=b"m%05d" % i, partition=0) for i in range(n)]
        producer.flush(60)
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close(10)
    assert proxy.responses_dropped == 1
    values = _consume_all(broker.bootstrap, topic, n)
    assert values == [b"m%05d" % i for i in range(n)]


@pytest.mark.compat
def test_producer_survives_reset_and_cut(proxied_broker: tuple[BrokerProcess, FaultProxy]) -> None:
    from confluent_kafka import Producer

    broker, proxy = proxied_broker
    topic = f"faults-{uuid.uuid4().hex[:8]}"
    producer = Producer(
        {"bootstrap.servers": proxy.bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    for i in range(50):
        producer.produce(topic, value=b"a%03d" % i, partition=0)
    assert producer.flush(30) == 0
    opened = proxy.connections_total
    proxy.reset_all()
    proxy.cut()
    for i in range(50):
        producer.produce(topic, value=b"b%03d" % i, partition=0)
    assert producer.flush(1) > 0  # nothing gets through while cut
    proxy.heal()
    assert producer.flush(60) == 0
    assert proxy.connections_total > opened  # reconnected after the reset
    values = _consume_all(broker.bootstrap, topic, 100)
    assert values == [b"a%03d" % i for i in range(50)] + [b"b%03d" % i for i in range(50)]
