"""The broker's small HTTP/1.1 endpoint (``metrics.listen``), on the broker's own event loop.

Why our own server rather than a framework: the endpoint answers a handful of tiny JSON (and
later Prometheus text) requests from operators and the CLI, and it shares the event loop with
the Kafka listener. What matters is that nothing a client does over HTTP can hurt the broker:

- every read is bounded (request head ``MAX_HEAD_BYTES``, body ``MAX_BODY_BYTES``) and timed
  (``HEAD_TIMEOUT_S`` for a request head to arrive, ``IDLE_TIMEOUT_S`` between keep-alive
  requests, ``IO_TIMEOUT_S`` for a body or a reply), so a slow or silent client costs one idle
  task until it is dropped and never blocks the loop;
- at most ``MAX_CONNECTIONS`` connections are served at once; more are closed on accept;
- anything malformed gets a JSON error (400, 404, 405, 411, 413, 431, 501, 505) and the
  connection is closed; an exception in a route is logged and answered with 500;
- ``close()`` also drops open keep-alive connections, so that the broker's shutdown does not
  wait for a client (Python 3.11's ``Server.close`` leaves them open).

Requests are HTTP/1.0 or 1.1 with ``Content-Length`` bodies (no chunked uploads); replies
always carry ``Content-Length``. Keep-alive follows the HTTP version and ``Connection``.

Routing is a table of :class:`Route` (method, path pattern with ``{name}`` segments,
handler). The broker's routes live in ``http_admin.py`` (cleaner status and control) and,
later, a metrics module; :func:`start_http_server` serves ``http_admin.ROUTES`` by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from moldau.broker.server import Broker

log = logging.getLogger("moldau.broker.http")

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
MAX_CONNECTIONS = 128
HEAD_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 30.0
IO_TIMEOUT_S = 10.0

JSON_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One parsed request. Header names are lower-case; ``path`` is percent-decoded per
    segment by the router, so here it is still the raw path of the target."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    version: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: Mapping[str, str] = field(default_factory=dict)


def json_response(document: object, status: int = 200) -> HttpResponse:
    """A JSON reply (compact, UTF-8, one trailing newline for people using curl)."""
    body = json.dumps(document, separators=(",", ":"), ensure_ascii=False) + "\n"
    return HttpResponse(status, body.encode())


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """The JSON error body every failure uses: ``{"error": <reason>, "message": <text>}``."""
    response = json_response({"error": _phrase(status), "message": message}, status)
    return HttpResponse(response.status, response.body, response.content_type, headers or {})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


Handler = Callable[
    ["Broker", HttpRequest, Mapping[str, str]], "Awaitable[HttpResponse] | HttpResponse"
]


@dataclass(frozen=True, slots=True)
class Route:
    """``method`` + ``pattern`` such as ``/v1/topics/{topic}/cleaner``. A ``{name}`` segment
    matches one non-empty path segment, passed to the handler percent-decoded."""

    method: str
    pattern: str
    handler: Handler

    def match(self, segments: Sequence[str]) -> dict[str, str] | None:
        parts = self.pattern.strip("/").split("/")
        if len(parts) != len(segments):
            return None
        params: dict[str, str] = {}
        for part, segment in zip(parts, segments, strict=True):
            if part.startswith("{") and part.endswith("}"):
                if not segment:
                    return None
                params[part[1:-1]] = segment
            elif part != segment:
                return None
        return params


class Router:
    """Finds the route for a request: 404 when no pattern matches the path, 405 (with
    ``Allow``) when patterns match but none for this method."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)

    async def dispatch(self, broker: Broker, request: HttpRequest) -> HttpResponse:
        segments = [unquote(s, errors="strict") for s in request.path.strip("/").split("/")]
        allowed: list[str] = []
        for route in self.routes:
            params = route.match(segments)
            if params is None:
                continue
            if route.method != request.method:
                allowed.append(route.method)
                continue
            result = route.handler(broker, request, params)
            if inspect.isawaitable(result):
                return await result
            return result
        if allowed:
            methods = ", ".join(sorted(set(allowed)))
            return error_response(
                405, f"{request.method} is not allowed here; use {methods}", {"Allow": methods}
            )
        return error_response(404, f"no such resource: {request.path}")


class BadRequest(Exception):
    """A request we answer with ``status`` and then close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpServer(asyncio.AbstractServer):
    """The listening socket plus the connections it serves (see the module docstring)."""

    def __init__(self, broker: Broker, router: Router) -> None:
        self._broker = broker
        self._router = router
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def listen(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(
            self._accept, host, port, limit=MAX_HEAD_BYTES, reuse_address=True
        )

    @property
    def sockets(self) -> tuple[Any, ...]:
        return () if self._server is None else tuple(self._server.sockets)

    @property
    def port(self) -> int:
        """The bound port (useful when started with port 0)."""
        return int(self.sockets[0].getsockname()[1])

    # -- asyncio.AbstractServer ------------------------------------------------------------

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._connections):
            task.cancel()

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()
        tasks = list(self._connections)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        assert self._server is not None
        return self._server.get_loop()

    def is_serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def start_serving(self) -> None:
        assert self._server is not None
        await self._server.start_serving()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    # -- connections -----------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._connections) >= MAX_CONNECTIONS or task is None:
            writer.close()
            return
        self._connections.add(task)
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away or stalled: nothing to answer
        except asyncio.CancelledError:
            pass  # server shutdown
        except Exception:
            log.exception("HTTP connection failed")
        finally:
            self._connections.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), IO_TIMEOUT_S)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = True
        while True:
            try:
                async with asyncio.timeout(HEAD_TIMEOUT_S if first else IDLE_TIMEOUT_S):
                    head = await _read_head(reader)
                if head is None:
                    return  # clean close between requests
                request = await _read_request(reader, head)
            except BadRequest as exc:
                await _send(writer, error_response(exc.status, exc.message), keep_alive=False)
                return
            first = False
            keep_alive = _wants_keep_alive(request)
            try:
                response = await self._router.dispatch(self._broker, request)
            except UnicodeDecodeError:
                response = error_response(400, "the path is not valid percent-encoded UTF-8")
            except Exception:
                log.exception("HTTP %s %s failed", request.method, request.path)
                response = error_response(500, "internal error (see the broker log)")
            await _send(writer, response, keep_alive=keep_alive)
            if not keep_alive:
                return


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The request line and headers up to the blank line; None on EOF before any byte."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise
    except asyncio.LimitOverrunError:
        raise BadRequest(431, f"request head larger than {MAX_HEAD_BYTES} bytes") from None


async def _read_request(reader: asyncio.StreamReader, head: bytes) -> HttpRequest:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequest(400, "undecodable request head") from None
    lines = text[:-4].split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[0].isupper():
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if not version.startswith("HTTP/1."):
        if version.startswith("HTTP/"):
            raise BadRequest(505, f"{version} is not supported; use HTTP/1.1")
        raise BadRequest(400, "malformed request line")
    if not target.startswith("/"):
        raise BadRequest(400, "the request target must be an absolute path")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or not name.isascii():
            raise BadRequest(400, "malformed header line")
        key = name.lower()
        if key in headers and key == "content-length":
            raise BadRequest(400, "repeated Content-Length")
        headers[key] = value.strip() if key not in headers else f"{headers[key]}, {value.strip()}"
    if "transfer-encoding" in headers:
        raise BadRequest(501, "Transfer-Encoding is not supported; send a Content-Length body")
    body = b""
    raw_length = headers.get("content-length")
    if raw_length is not None:
        if not raw_length.isdigit():
            raise BadRequest(400, "invalid Content-Length")
        length = int(raw_length)
        if length > MAX_BODY_BYTES:
            raise BadRequest(413, f"request body larger than {MAX_BODY_BYTES} bytes")
        async with asyncio.timeout(IO_TIMEOUT_S):
            body = await reader.readexactly(length)
    split = urlsplit(target)
    return HttpRequest(
        method=method,
        path=split.path,
        query=parse_qs(split.query),
        version=version,
        headers=headers,
        body=body,
    )


def _wants_keep_alive(request: HttpRequest) -> bool:
    tokens = {t.strip().lower() for t in request.headers.get("connection", "").split(",")}
    if request.version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


async def _send(writer: asyncio.StreamWriter, response: HttpResponse, *, keep_alive: bool) -> None:
    lines = [
        f"HTTP/1.1 {response.status} {_phrase(response.status)}",
        "Server: moldau",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{k}: {v}" for k, v in response.headers.items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
    async with asyncio.timeout(IO_TIMEOUT_S):
        await writer.drain()


async def start_http_server(
    broker: Broker, host: str, port: int, *, routes: Sequence[Route] | None = None
) -> HttpServer:
    """Listen on (host, port) and serve ``routes`` (default: the broker's admin routes).

    Returns the server; the caller closes it with ``close()`` and ``await wait_closed()``.
    """
    if routes is None:
        from moldau.broker.http_admin import ROUTES

        routes = ROUTES
    server = HttpServer(broker, Router(routes))
    await server.listen(host, port)
    log.info("HTTP endpoint listening on %s:%d", host, server.port)
    return server
