"""A small asyncio Kafka client for broker-to-broker requests (replication).

Followers talk to leaders with Fetch, OffsetForLeaderEpoch and ListOffsets; none of that
needs a client library's bootstrap, metadata or retry logic, only one TCP connection that
frames kio request entities and matches the answers to them. That is :class:`BrokerClient`.

Kafka answers the requests of one connection in the order they were sent, so the client
keeps a FIFO of the requests in flight: the next response frame belongs to the oldest one,
and its correlation id must say so (anything else means the stream is out of step and the
connection is dropped). Several requests may be in flight at once (pipelining): each caller
awaits its own future.

Reading uses :class:`asyncio.BufferedProtocol` (DESIGN §7: a protocol, not streams): the
4-byte size prefix is read into a small buffer, then the frame into a buffer of exactly its
size, so a 10 MiB fetch response is received without intermediate copies and decoded once.
The record bytes of a Fetch response stay bytes (kio's ``Records``): nothing here looks into
them.

Security (``ClientSecurity``): on an SSL or SASL_SSL listener the connection is TLS with
the given client context; on a SASL listener the client logs in right after connecting with
SaslHandshake v1 and SaslAuthenticate v1 (PLAIN, or SCRAM-SHA-256/512 through scramp's
``ScramClient``), before any caller's request is sent. When the broker grants a session
lifetime (``connections.max.reauth.ms``), the client counts as ``closed`` once 90% of it has
passed, so its owner opens a fresh, freshly authenticated connection instead of being cut off
(moldau's stand-in for KIP-368 client re-authentication).

Failure model: any connection problem — refused, reset, closed by the peer, a malformed
frame, a request that outlives ``timeout_s`` — closes the client for good and fails every
request in flight with a :class:`BrokerConnectionError` (a :class:`ConnectionError`). A
timed-out request cannot be skipped on an in-order stream, so the connection is dropped as
Kafka's ``NetworkClient`` does. Callers reconnect by making a new client. A caller that is
cancelled while waiting leaves the connection usable: its answer is read and discarded.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import struct
import time
from dataclasses import dataclass, field
from typing import Any, cast

from kio.schema.errors import ErrorCode

from moldau.protocol.framing import decode_response, encode_request

__all__ = [
    "AuthenticationFailedError",
    "BrokerClient",
    "BrokerConnectionError",
    "ClientSecurity",
    "RequestTimedOutError",
]

log = logging.getLogger("moldau.replication.client")

_INT32 = struct.Struct(">i")
MAX_RESPONSE_BYTES = 1 << 30
"""Refuse frames larger than this: a size that big means the stream is out of step."""


class BrokerConnectionError(ConnectionError):
    """The connection to the broker failed or was closed; the client is closed."""


class RequestTimedOutError(BrokerConnectionError, TimeoutError):
    """A request got no answer within the client's timeout; the connection was dropped."""


class AuthenticationFailedError(BrokerConnectionError):
    """The broker refused our SASL login (or TLS handshake); the client is closed."""


@dataclass(frozen=True, slots=True)
class ClientSecurity:
    """How to connect to a broker's listener: TLS context and/or SASL login (PLAIN,
    SCRAM-SHA-256, SCRAM-SHA-512). The default is PLAINTEXT."""

    ssl_context: ssl.SSLContext | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)

    @property
    def protocol(self) -> str:
        """The Kafka security protocol name this amounts to."""
        if self.sasl_mechanism is None:
            return "PLAINTEXT" if self.ssl_context is None else "SSL"
        return "SASL_PLAINTEXT" if self.ssl_context is None else "SASL_SSL"


PLAINTEXT = ClientSecurity()
_SASL_HANDSHAKE = 17
_SASL_AUTHENTICATE = 36
_REAUTH_FRACTION = 0.9


@dataclass(slots=True)
class _InFlight:
    api_key: int
    version: int
    correlation_id: int
    future: asyncio.Future[Any]


class _ResponseReader(asyncio.BufferedProtocol):
    """Cuts the byte stream into response frames and hands each to the client."""

    def __init__(self, client: BrokerClient) -> None:
        self._client = client
        self._size_buffer = bytearray(4)
        self._frame: bytearray | None = None
        self._filled = 0
        self.transport: asyncio.Transport | None = None
        self._can_write = asyncio.Event()
        self._can_write.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its interface.
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        target = self._size_buffer if self._frame is None else self._frame
        return memoryview(target)[self._filled :]

    def buffer_updated(self, nbytes: int) -> None:
        self._filled += nbytes
        if self._frame is None:
            if self._filled < 4:
                return
            (size,) = _INT32.unpack(self._size_buffer)
            if not 0 <= size <= MAX_RESPONSE_BYTES:
                self._client._fail(BrokerConnectionError(f"bad response frame size {size}"))
                return
            self._frame = bytearray(size)
            self._filled = 0
            if size > 0:
                return
        if self._filled < len(self._frame):
            return
        frame, self._frame, self._filled = self._frame, None, 0
        self._client._on_frame(frame)

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost fails what is in flight

    def connection_lost(self, exc: Exception | None) -> None:
        self._can_write.set()
        reason = f": {exc}" if exc is not None else ""
        self._client._fail(BrokerConnectionError(f"connection closed by the broker{reason}"))

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    async def drain(self) -> None:
        await self._can_write.wait()


class BrokerClient:
    """One connection to one broker; see the module docstring.

    Connects on the first request (or explicitly with :meth:`connect`). ``closed`` turns
    True when the connection fails or :meth:`close` is called, and never back.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str,
        timeout_s: float = 30.0,
        security: ClientSecurity = PLAINTEXT,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.timeout_s = timeout_s
        self.security = security
        self._session_expires_at: float | None = None
        self._protocol: _ResponseReader | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._in_flight: collections.deque[_InFlight] = collections.deque()
        self._next_correlation_id = 0
        self._error: BrokerConnectionError | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once the connection failed or was closed — or its SASL session is nearly
        over (the owner should open a new client then; requests still work meanwhile)."""
        expires = self._session_expires_at
        return self._closed or (expires is not None and time.monotonic() >= expires)

    @property
    def in_flight(self) -> int:
        """How many requests await their answer."""
        return len(self._in_flight)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"BrokerClient({self.host}:{self.port}, {state})"

    async def connect(self) -> None:
        """Open (and authenticate) the connection once; concurrent callers share it."""
        if self._closed:
            raise self._closed_error()
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
        await asyncio.shield(self._connecting)

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        context = self.security.ssl_context
        try:
            _transport, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _ResponseReader(self),
                    self.host,
                    self.port,
                    ssl=context,
                    server_hostname=self.host if context is not None else None,
                ),
                self.timeout_s,
            )
        except ssl.SSLError as exc:
            error: BrokerConnectionError = AuthenticationFailedError(
                f"TLS handshake with broker {self.host}:{self.port} failed: {exc.reason or exc}"
            )
            self._fail(error)
            raise error from exc
        except (OSError, TimeoutError) as exc:
            error = BrokerConnectionError(
                f"cannot connect to broker {self.host}:{self.port}: {exc or 'timed out'}"
            )
            self._fail(error)
            raise error from exc
        if self._closed:  # closed while connecting
            if protocol.transport is not None:
                protocol.transport.close()
            raise self._closed_error()
        self._protocol = protocol
        if self.security.sasl_mechanism is not None:
            await self._authenticate(self.security)

    async def _authenticate(self, security: ClientSecurity) -> None:
        """SaslHandshake v1 + SaslAuthenticate v1 round trips until the mechanism is done."""
        import kio.schema.sasl_authenticate.v1.request as authenticate
        import kio.schema.sasl_handshake.v1.request as handshake

        mechanism = security.sasl_mechanism
        assert mechanism is not None
        response = await self._send(
            _SASL_HANDSHAKE, 1, handshake.SaslHandshakeRequest(mechanism=mechanism)
        )
        if response.error_code != ErrorCode.none:
            self._refuse(
                f"mechanism {mechanism} refused ({response.error_code.name}); the broker "
                f"offers {', '.join(response.mechanisms) or 'none'}"
            )
        exchange = _SaslExchange(
            mechanism, security.sasl_username or "", security.sasl_password or ""
        )
        token: bytes | None = exchange.first()
        while token is not None:
            reply = await self._send(
                _SASL_AUTHENTICATE, 1, authenticate.SaslAuthenticateRequest(auth_bytes=token)
            )
            if reply.error_code != ErrorCode.none:
                self._refuse(f"{reply.error_code.name}: {reply.error_message or 'no reason'}")
            lifetime_ms = int(getattr(reply, "session_lifetime_ms", 0) or 0)
            if lifetime_ms > 0:
                self._session_expires_at = time.monotonic() + _REAUTH_FRACTION * lifetime_ms / 1000
            try:
                token = exchange.next(bytes(reply.auth_bytes))
            except ValueError as exc:
                self._refuse(f"the broker's {mechanism} answer does not check out: {exc}")

    def _refuse(self, reason: str) -> None:
        error = AuthenticationFailedError(
            f"SASL login to broker {self.host}:{self.port} as "
            f"{self.security.sasl_username!r} failed: {reason}"
        )
        self._fail(error)
        raise error

    async def request(self, api_key: int, version: int, body: Any) -> Any:
        """Send ``body`` (a kio request entity of that api/version) and return the decoded
        response. Raises BrokerConnectionError (RequestTimedOutError on timeout)."""
        await self.connect()
        return await self._send(api_key, version, body)

    async def _send(self, api_key: int, version: int, body: Any) -> Any:
        protocol = self._protocol
        if self._closed or protocol is None or protocol.transport is None:
            raise self._closed_error()
        self._next_correlation_id = (self._next_correlation_id + 1) & 0x7FFFFFFF
        correlation_id = self._next_correlation_id
        frame = encode_request(api_key, version, correlation_id, self.client_id, body)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._in_flight.append(_InFlight(api_key, version, correlation_id, future))
        protocol.transport.write(frame)
        try:
            async with asyncio.timeout(self.timeout_s):
                await protocol.drain()
                return await asyncio.shield(future)
        except BrokerConnectionError:
            raise  # the connection failed (perhaps another request timed out)
        except TimeoutError:
            error = RequestTimedOutError(
                f"request (api {api_key} v{version}, correlation id {correlation_id}) to "
                f"{self.host}:{self.port} got no answer within {self.timeout_s} s"
            )
            self._fail(error)
            raise error from None
        except asyncio.CancelledError:
            # the answer will still come: mark it unwanted, keep the connection
            future.cancel()
            raise

    def _on_frame(self, frame: bytearray) -> None:
        """One response frame arrived: it answers the oldest request in flight."""
        if not self._in_flight:
            self._fail(BrokerConnectionError("response without a request in flight"))
            return
        entry = self._in_flight.popleft()
        try:
            # kio wants a read-only buffer; the record bytes are copied out once, as bytes
            view = memoryview(frame).toreadonly()
            correlation_id, response = decode_response(entry.api_key, entry.version, view)  # type: ignore[arg-type]
        except Exception as exc:
            self._fail(
                BrokerConnectionError(
                    f"malformed response to api {entry.api_key} v{entry.version}: {exc}"
                )
            )
            if not entry.future.done():
                entry.future.set_exception(self._closed_error())
            return
        if correlation_id != entry.correlation_id:
            error = BrokerConnectionError(
                f"response correlation id {correlation_id} != {entry.correlation_id} "
                f"expected from {self.host}:{self.port}"
            )
            self._fail(error)
            if not entry.future.done():
                entry.future.set_exception(error)
            return
        if not entry.future.done():
            entry.future.set_result(response)

    def _closed_error(self) -> BrokerConnectionError:
        return self._error or BrokerConnectionError(f"client for {self.host}:{self.port} is closed")

    def _fail(self, error: BrokerConnectionError) -> None:
        """Close for good and fail every request in flight with ``error``."""
        if self._error is None:
            self._error = error
        self._closed = True
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()
        in_flight, self._in_flight = self._in_flight, collections.deque()
        for entry in in_flight:
            if not entry.future.done():
                entry.future.set_exception(error)
                # mark retrieved: a caller that was cancelled never looks at it
                entry.future.exception()

    def close_now(self) -> None:
        """Close without waiting (from synchronous code); pending requests fail."""
        if not self._closed:
            self._fail(BrokerConnectionError(f"client for {self.host}:{self.port} is closed"))

    async def close(self) -> None:
        """Close the connection; requests in flight fail with BrokerConnectionError."""
        self.close_now()
        connecting = self._connecting
        if connecting is not None and not connecting.done():
            connecting.cancel()
        await asyncio.sleep(0)  # let the transport's connection_lost run

    async def __aenter__(self) -> BrokerClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _SaslExchange:
    """The client side of one SASL mechanism: ``first()`` is the opening token, ``next``
    takes each server token and returns the reply, or None when the exchange is done.
    Raises ValueError when the server's answer fails the mechanism's checks."""

    def __init__(self, mechanism: str, username: str, password: str) -> None:
        self.mechanism = mechanism
        self._username = username
        self._password = password
        self._scram: Any = None
        self._step = 0

    def first(self) -> bytes:
        if self.mechanism == "PLAIN":
            return b"\0" + self._username.encode() + b"\0" + self._password.encode()
        if self.mechanism not in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise ValueError(f"unsupported SASL mechanism {self.mechanism}")
        import scramp

        self._scram = scramp.ScramClient([self.mechanism], self._username, self._password)
        return str(self._scram.get_client_first()).encode()

    def next(self, server_token: bytes) -> bytes | None:
        self._step += 1
        if self.mechanism == "PLAIN":
            return None
        import scramp

        try:
            if self._step == 1:
                self._scram.set_server_first(server_token.decode())
                return str(self._scram.get_client_final()).encode()
            self._scram.set_server_final(server_token.decode())
        except (scramp.ScramException, UnicodeDecodeError) as exc:
            raise ValueError(str(exc)) from None
        return None
