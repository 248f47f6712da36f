"""A TCP fault proxy for tests: latency, partitions, resets, slicing, byte limits and lost
Kafka responses, switchable while traffic flows.

Fault tests need the network to misbehave in controlled ways between a real client and a real
broker. ``FaultProxy`` sits on a loopback port in front of one upstream address and forwards
bytes both ways; the test flips faults on and off from its own thread. It runs its own asyncio
loop in a background thread so that synchronous clients (confluent-kafka, kafka-python) can be
driven from the test thread while the proxy keeps forwarding.

Clients learn broker addresses from Metadata (and coordinators from FindCoordinator)
responses, so to keep a client behind the proxy the proxy rewrites the upstream broker's
address in those responses to its own (``rewrite_metadata``, on by default). A broker can
then advertise itself as usual: clients that bootstrap through the proxy stay behind it, and
clients that bootstrap at the broker talk to it directly. The proxy follows Kafka's framing
in both directions for this and for ``drop_responses``; any other byte stream passes through
untouched, so the proxy also serves plain TCP tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import random
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, TypeVar

from kio.serial import entity_reader
from kio.serial.readers import read_unsigned_varint
from kio.static.primitive import i32

from moldau.protocol.api import schema_for
from moldau.protocol.framing import encode_response

Direction = Literal["both", "upstream", "downstream"]
"""``upstream`` is client → server (requests), ``downstream`` server → client (responses)."""

_T = TypeVar("_T")
_E = TypeVar("_E")
_READ_SIZE = 65536
_QUEUE_CHUNKS = 64
_MAX_PENDING_REQUESTS = 10_000
_REQUEST_PREFIX = struct.Struct(">hhi")  # api_key, api_version, correlation_id
_RESPONSE_PREFIX = struct.Struct(">i")  # correlation_id
_LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_EOF = _Marker("EOF")
"""Queued after the last chunk when the source half-closed: pass the FIN on."""
_CLOSE = _Marker("CLOSE")
"""Queued when the link must end after the chunks before it (limit reached, response lost)."""
_Item = tuple[float, bytes] | _Marker

_METADATA = 3
_FIND_COORDINATOR = 10
_REWRITTEN_APIS = (_METADATA, _FIND_COORDINATOR)
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


class _Action(enum.Enum):
    FORWARD = "forward"
    DROP = "drop"
    REWRITE = "rewrite"


def _is_address(host: str, port: int, address: tuple[str, int]) -> bool:
    if port != address[1]:
        return False
    return host == address[0] or (host in _LOOPBACK_NAMES and address[0] in _LOOPBACK_NAMES)


def rewrite_broker_addresses(
    frame: bytes,
    api_key: int,
    api_version: int,
    upstream: tuple[str, int],
    proxy: tuple[str, int],
) -> bytes:
    """Point the upstream broker's entries in a Metadata or FindCoordinator response frame at
    the proxy instead; any other frame, or one that does not decode, comes back unchanged.

    This is what keeps a client behind the proxy when the broker advertises its own address:
    everything the client learns about that broker names the proxy. Other brokers of a
    cluster are left alone (one proxy stands in for one broker).
    """
    try:
        schema = schema_for(api_key, api_version)
        (correlation_id,) = _RESPONSE_PREFIX.unpack_from(frame, 4)
        offset = 8
        if schema.response_header_flexible:
            count, size = read_unsigned_varint(frame, offset)
            offset += size
            for _ in range(count):
                _tag, size = read_unsigned_varint(frame, offset)
                offset += size
                length, size = read_unsigned_varint(frame, offset)
                offset += size + length
        response, _size = entity_reader(schema.response_type)(frame, offset)
    except Exception:  # not ours to judge: pass the bytes on as they came
        return frame

    def moved(entity: _E) -> _E:
        if _is_address(entity.host, int(entity.port), upstream):  # type: ignore[attr-defined]
            return dataclasses.replace(entity, host=proxy[0], port=i32(proxy[1]))  # type: ignore[type-var]
        return entity

    if api_key == _METADATA:
        changed = dataclasses.replace(response, brokers=tuple(moved(b) for b in response.brokers))
    elif hasattr(response, "coordinators"):  # FindCoordinator v4+
        changed = dataclasses.replace(
            response, coordinators=tuple(moved(c) for c in response.coordinators)
        )
    else:
        changed = moved(response)
    if changed == response:
        return frame
    return encode_response(schema, correlation_id, changed)


class KafkaFrameScanner:
    """Follows Kafka's framing (``int32 size`` + ``size`` bytes) through one direction of a
    byte stream and reports where each frame's header completes.

    ``header_size`` is how many bytes after the size prefix the caller wants to see (8 for a
    request: api_key, api_version, correlation_id; 4 for a response: correlation_id). ``feed``
    splits a chunk into ``(data, header)`` pieces in stream order: ``header`` is not None on the
    piece that completes a frame's header, and that piece's data ends with the header's last
    byte. With ``hold=True`` the bytes of a header still incomplete at the end of a chunk are
    withheld until it completes, so the caller can swallow the whole frame; with
    ``hold=False`` they are released at once (nothing stalls on a stream that is not Kafka).
    A frame shorter than ``header_size`` reports a short header.
    """

    def __init__(self, header_size: int) -> None:
        self.header_size = header_size
        self._remaining = 0
        self._head = bytearray()
        self._head_emitted = 0
        self._frame_size: int | None = None
        self.broken = False
        """A negative size was seen: the stream is not Kafka, so stop interpreting it."""

    def feed(self, data: bytes, *, hold: bool) -> list[tuple[bytes, bytes | None]]:
        if self.broken:
            return [(data, None)]
        pieces: list[tuple[bytes, bytes | None]] = []
        view = memoryview(data)
        pos, end = 0, len(data)
        while pos < end:
            if self._remaining:
                take = min(self._remaining, end - pos)
                pieces.append((bytes(view[pos : pos + take]), None))
                self._remaining -= take
                pos += take
                continue
            target = 4 if self._frame_size is None else 4 + min(self._frame_size, self.header_size)
            take = min(target - len(self._head), end - pos)
            self._head += view[pos : pos + take]
            pos += take
            if self._frame_size is None and len(self._head) == 4:
                self._frame_size = int.from_bytes(self._head, "big", signed=True)
                if self._frame_size < 0:
                    self.broken = True
                    pieces.append((bytes(self._head[self._head_emitted :]), None))
                    pieces.append((bytes(view[pos:]), None))
                    return pieces
                target = 4 + min(self._frame_size, self.header_size)
            if self._frame_size is not None and len(self._head) == target:
                header = bytes(self._head[4:])
                pieces.append((bytes(self._head[self._head_emitted :]), header))
                self._remaining = self._frame_size - len(header)
                self._head.clear()
                self._head_emitted = 0
                self._frame_size = None
        if not hold and len(self._head) > self._head_emitted:
            pieces.append((bytes(self._head[self._head_emitted :]), None))
            self._head_emitted = len(self._head)
        return pieces


@dataclass
class _Faults:
    """The proxy's switchable state. Read and written only on the proxy's loop."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    latency_direction: Direction = "both"
    slice_bytes: int = 0
    slice_delay_ms: float = 0.0
    limit_bytes: int | None = None
    drop_count: int = 0
    drop_api_key: int | None = 0


def _applies(direction: Direction, upstream: bool) -> bool:
    return direction == "both" or (direction == "upstream") == upstream


class _Link:
    """One proxied client connection and its upstream connection.

    Each direction is a pipe of two tasks: a reader that takes chunks off one socket and queues
    them with the time they arrived, and a writer that delivers each chunk once its latency has
    passed (so pipelined traffic is delayed, not serialised), slicing it if asked, and waiting
    while the proxy is cut. The bounded queue keeps TCP back-pressure intact.
    """

    def __init__(
        self,
        proxy: FaultProxy,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.client_reader = client_reader
        self.client_writer = client_writer
        self.upstream_writer: asyncio.StreamWriter | None = None
        self.forwarded_bytes = 0
        self.pending_requests: dict[int, tuple[int, int]] = {}
        """correlation_id → (api_key, api_version) of requests sent and not yet answered."""
        self.rewrites_pending = 0
        """How many of those are Metadata/FindCoordinator requests, whose answers we rewrite."""
        self.tasks: list[asyncio.Task[None]] = []
        self.aborted = False
        self.closed = asyncio.Event()

    async def run(self) -> None:
        proxy = self.proxy
        await proxy._flowing.wait()  # a partition also stops new connections getting through
        if self.aborted:
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*proxy.upstream)
        except OSError:
            self.client_writer.close()
            return
        self.upstream_writer = upstream_writer
        if self.aborted:
            upstream_writer.close()
            return
        requests = KafkaFrameScanner(_REQUEST_PREFIX.size)
        responses = KafkaFrameScanner(_RESPONSE_PREFIX.size)
        up: asyncio.Queue[_Item] = asyncio.Queue(_QUEUE_CHUNKS)
        down: asyncio.Queue[_Item] = asyncio.Queue(_QUEUE_CHUNKS)
        self.tasks = [
            asyncio.create_task(self._read(self.client_reader, up, requests, upstream=True)),
            asyncio.create_task(self._write(up, upstream_writer, upstream=True)),
            asyncio.create_task(self._read(upstream_reader, down, responses, upstream=False)),
            asyncio.create_task(self._write(down, self.client_writer, upstream=False)),
        ]
        try:
            await asyncio.wait(self.tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            self.abort(reset=False)
            await asyncio.gather(*self.tasks, return_exceptions=True)
            self.closed.set()

    def abort(self, *, reset: bool) -> None:
        """Tear the link down now; with ``reset`` both peers see an RST, not a FIN."""
        self.aborted = True
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for writer in (self.client_writer, self.upstream_writer):
            if writer is None:
                continue
            if reset:
                sock = writer.transport.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                writer.transport.abort()
            elif not writer.transport.is_closing():
                writer.close()

    async def _read(
        self,
        reader: asyncio.StreamReader,
        queue: asyncio.Queue[_Item],
        scanner: KafkaFrameScanner,
        *,
        upstream: bool,
    ) -> None:
        proxy, faults = self.proxy, self.proxy._faults
        loop = asyncio.get_running_loop()
        collecting: bytearray | None = None  # a response frame being gathered for rewriting
        collect_left = 0
        collect_api = (0, 0)
        try:
            while True:
                data = await reader.read(_READ_SIZE)
                if not data:
                    break
                now = loop.time()
                # hold back incomplete response headers only when a response may be dropped
                # or rewritten, so that streams which are not Kafka never stall
                hold = not upstream and (faults.drop_count > 0 or self.rewrites_pending > 0)
                for part, header in scanner.feed(data, hold=hold):
                    piece = part
                    if collecting is not None:  # the rest of a frame to rewrite
                        collecting += piece
                        collect_left -= len(piece)
                        if collect_left > 0:
                            continue
                        piece = proxy._rewrite(bytes(collecting), *collect_api)
                        collecting = None
                    elif header is not None:
                        action, api = self._on_header(header, upstream=upstream)
                        if action is _Action.DROP:
                            # the response is lost: deliver what came before it, then the
                            # client sees its connection close
                            proxy.responses_dropped += 1
                            await queue.put(_CLOSE)
                            return
                        if action is _Action.REWRITE and len(piece) == 4 + len(header):
                            left = int.from_bytes(piece[:4], "big") - len(header)
                            if left > 0:
                                collecting, collect_left, collect_api = bytearray(piece), left, api
                                continue
                            piece = proxy._rewrite(piece, *api)
                    if not piece:
                        continue
                    if faults.limit_bytes is not None:
                        room = max(faults.limit_bytes - self.forwarded_bytes, 0)
                        if room <= len(piece):
                            self.forwarded_bytes += room
                            if room:
                                await queue.put((now, piece[:room]))
                            await queue.put(_CLOSE)
                            return
                    self.forwarded_bytes += len(piece)
                    await queue.put((now, piece))
        except OSError:
            pass
        await queue.put(_EOF)

    def _on_header(self, header: bytes, *, upstream: bool) -> tuple[_Action, tuple[int, int]]:
        """Track a frame header; say what to do with this frame."""
        if upstream:
            if len(header) >= _REQUEST_PREFIX.size:
                api_key, api_version, correlation_id = _REQUEST_PREFIX.unpack_from(header)
                if len(self.pending_requests) >= _MAX_PENDING_REQUESTS:
                    # acks=0 produce requests are never answered; forget the oldest
                    forgotten = self.pending_requests.pop(next(iter(self.pending_requests)))
                    self.rewrites_pending -= forgotten[0] in _REWRITTEN_APIS
                self.pending_requests[correlation_id] = (api_key, api_version)
                self.rewrites_pending += api_key in _REWRITTEN_APIS
            return _Action.FORWARD, (0, 0)
        if len(header) < _RESPONSE_PREFIX.size:
            return _Action.FORWARD, (0, 0)
        (correlation_id,) = _RESPONSE_PREFIX.unpack_from(header)
        api = self.pending_requests.pop(correlation_id, None)
        if api is None:
            return _Action.FORWARD, (0, 0)
        api_key = api[0]
        self.rewrites_pending -= api_key in _REWRITTEN_APIS
        faults = self.proxy._faults
        if faults.drop_count > 0 and faults.drop_api_key in (None, api_key):
            faults.drop_count -= 1
            return _Action.DROP, api
        if self.proxy.rewrite_metadata and api_key in _REWRITTEN_APIS:
            return _Action.REWRITE, api
        return _Action.FORWARD, api

    async def _write(
        self,
        queue: asyncio.Queue[_Item],
        writer: asyncio.StreamWriter,
        *,
        upstream: bool,
    ) -> None:
        proxy, faults = self.proxy, self.proxy._faults
        loop = asyncio.get_running_loop()
        deliver_at = 0.0
        while True:
            item = await queue.get()
            if item is _EOF:
                if writer.can_write_eof() and not writer.transport.is_closing():
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                return
            if item is _CLOSE:
                self.abort(reset=False)
                return
            assert isinstance(item, tuple)
            arrived, data = item
            if faults.latency_ms and _applies(faults.latency_direction, upstream):
                delay_s = faults.latency_ms / 1000
                if faults.jitter_ms:
                    delay_s += random.uniform(-faults.jitter_ms, faults.jitter_ms) / 1000
                # never reorder: a chunk is due no earlier than the one before it
                deliver_at = max(deliver_at, arrived + max(delay_s, 0.0))
                wait_s = deliver_at - loop.time()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
            step = faults.slice_bytes or len(data)
            for start in range(0, len(data), step):
                if not proxy._flowing.is_set():
                    await proxy._flowing.wait()
                chunk = data[start : start + step]
                # count first: a test that saw the bytes arrive must see them counted
                if upstream:
                    proxy.bytes_upstream += len(chunk)
                else:
                    proxy.bytes_downstream += len(chunk)
                writer.write(chunk)
                await writer.drain()
                if faults.slice_bytes and faults.slice_delay_ms and start + step < len(data):
                    await asyncio.sleep(faults.slice_delay_ms / 1000)


class FaultProxy:
    """A toxiproxy-like TCP proxy for one upstream address, with faults switchable at run time.

    Use it as a context manager (``with FaultProxy(upstream=("127.0.0.1", port)) as proxy``);
    clients connect to ``proxy.bootstrap``. Every fault method is thread-safe and synchronous:
    it runs on the proxy's loop and returns once the fault is in force. Faults apply to open
    and new connections alike; ``clear()`` removes them all.

    Counters (plain ints, read from any thread): ``connections_total``, ``responses_dropped``,
    ``bytes_upstream`` (client → server) and ``bytes_downstream`` (server → client), counting
    bytes forwarded (a rewritten Metadata response counts at its rewritten size).

    Threading: the public methods and counters are the only things touched from outside the
    proxy's thread; every mutation of fault state happens on the proxy's loop, so a fault and
    the traffic it applies to never race.
    """

    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        rewrite_metadata: bool = True,
    ) -> None:
        self.upstream = upstream
        self.host = listen_host
        self.port = listen_port
        self.rewrite_metadata = rewrite_metadata
        self.connections_total = 0
        self.responses_dropped = 0
        self.bytes_upstream = 0
        self.bytes_downstream = 0
        self._faults = _Faults()
        self._links: set[_Link] = set()
        self._accepting: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._flowing: asyncio.Event  # created on the proxy's loop

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def _rewrite(self, frame: bytes, api_key: int, api_version: int) -> bytes:
        return rewrite_broker_addresses(
            frame, api_key, api_version, self.upstream, (self.host, self.port)
        )

    @property
    def connections_open(self) -> int:
        return len(self._links)

    def start(self) -> FaultProxy:
        if self._thread is not None:
            raise RuntimeError("proxy already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(
            target=main, name=f"fault-proxy-{self.upstream}", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    async def _open(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        """Listen with a socket of our own rather than ``asyncio.start_server``: accepting
        synchronously in a reader callback means ``refuse_new`` can stop listening at a point
        where every connection is either fully ours or still in the kernel's backlog (which
        the close resets), never half accepted and left hanging."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
            listener.listen(128)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        self.port = int(listener.getsockname()[1])
        self._listener = listener
        asyncio.get_running_loop().add_reader(listener.fileno(), self._on_acceptable)

    def _close_listener(self) -> None:
        if self._listener is not None:
            asyncio.get_running_loop().remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None

    def _on_acceptable(self) -> None:
        while self._listener is not None:
            try:
                conn, _address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. out of file descriptors: try again on the next wake-up
                return
            conn.setblocking(False)
            task = asyncio.get_running_loop().create_task(self._serve(conn))
            self._accepting.add(task)
            task.add_done_callback(self._accepting.discard)

    async def _serve(self, conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
        except OSError:
            conn.close()
            return
        self.connections_total += 1
        link = _Link(self, reader, writer)
        self._links.add(link)
        try:
            await link.run()
        finally:
            self._links.discard(link)
            link.closed.set()

    def stop(self) -> None:
        """Close the listener and every connection, and end the proxy's thread."""
        if self._thread is None or self._loop is None:
            return
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None

    async def _shutdown(self) -> None:
        self._close_listener()
        self._flowing.set()
        links = list(self._links)
        for link in links:
            link.abort(reset=False)
        for link in links:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(link.closed.wait(), 1.0)
        await asyncio.sleep(0)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- faults (called from any thread) -----------------------------------------------

    def _call(self, fn: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        if self._loop is None or self._thread is None:
            raise RuntimeError("proxy not started")
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result()

    def _set(self, **changes: Any) -> None:
        async def apply() -> None:
            for name, value in changes.items():
                setattr(self._faults, name, value)

        self._call(apply)

    def latency(self, ms: float, jitter_ms: float = 0, direction: Direction = "both") -> None:
        """Delay every chunk by ``ms`` ± ``jitter_ms`` in ``direction``; order is kept."""
        if direction not in ("both", "upstream", "downstream"):
            raise ValueError(f"direction must be both, upstream or downstream, not {direction!r}")
        self._set(latency_ms=ms, jitter_ms=jitter_ms, latency_direction=direction)

    def cut(self) -> None:
        """Stop forwarding both ways but keep every socket open: a network partition.

        Bytes in flight wait (TCP back-pressure builds up) and new connections are accepted
        but not connected upstream; ``heal()`` lets everything through again, as TCP
        retransmission would after a short partition.
        """

        async def apply() -> None:
            self._flowing.clear()

        self._call(apply)

    def heal(self) -> None:
        async def apply() -> None:
            self._flowing.set()

        self._call(apply)

    def reset_all(self) -> None:
        """Reset (RST, via SO_LINGER 0) every open connection, client and upstream side."""

        async def apply() -> None:
            links = list(self._links)
            for link in links:
                link.abort(reset=True)
            for link in links:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(link.closed.wait(), 1.0)

        self._call(apply)

    def refuse_new(self, refuse: bool = True) -> None:
        """Stop (or resume) listening, so new connections are refused; open ones carry on."""

        async def apply() -> None:
            if refuse:
                self._close_listener()
            elif self._listener is None:
                await self._listen()

        self._call(apply)

    def slice(self, size_bytes: int, delay_ms: float = 0) -> None:
        """Forward in chunks of at most ``size_bytes`` with ``delay_ms`` between them;
        ``slice(0)`` turns slicing off."""
        if size_bytes < 0:
            raise ValueError("size_bytes must be >= 0")
        self._set(slice_bytes=size_bytes, slice_delay_ms=delay_ms)

    def limit_data(self, n_bytes: int | None) -> None:
        """Close a connection once ``n_bytes`` (both directions together) have been forwarded
        on it; ``None`` lifts the limit."""
        if n_bytes is not None and n_bytes < 0:
            raise ValueError("n_bytes must be >= 0 or None")
        self._set(limit_bytes=n_bytes)

    def drop_responses(self, count: int = 1, api_key: int | None = 0) -> None:
        """Swallow the next ``count`` responses to requests with ``api_key`` (None: any API)
        and close the client's connection after each, as a lost response looks to a client.

        The proxy follows Kafka framing both ways and remembers the correlation id and api
        key of every request, so it recognises the responses; Produce is api key 0. The
        server has done the work (appended the batch) — only the answer is lost.
        """
        if count < 0:
            raise ValueError("count must be >= 0")
        self._set(drop_count=count, drop_api_key=api_key)

    @property
    def drops_pending(self) -> int:
        """How many of the responses asked for by ``drop_responses`` are still to be dropped."""
        return self._faults.drop_count

    def clear(self) -> None:
        """Remove every fault: no latency, slicing, limit or drops; heal; accept again."""
        self.heal()
        self.refuse_new(False)
        self._set(**{f: getattr(_Faults(), f) for f in _Faults.__dataclass_fields__})
