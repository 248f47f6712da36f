"""One client connection: framing on an ``asyncio.BufferedProtocol``, in-order responses.

Reading: the protocol reads the 4-byte size, then points the transport straight at a
``bytearray`` of exactly that size, so a request's bytes are received without intermediate
copies (DESIGN.md §7: 2.5-3x faster than asyncio streams).

Ordering: requests are handled one at a time in arrival order, so their effects (appends,
commits) happen in order. A handler may finish with a ``Deferred`` — a response still waiting
on something (an fsync for acks=all, new data for a long-polling Fetch). The connection then
goes on with the next request while a writer task emits responses strictly in request order,
as Kafka clients require.

Broken frames (negative or oversized length, a header or body that does not parse, an API we
do not serve) close this connection only; every other connection keeps being served.

SASL listeners (``broker/auth/sasl.py`` holds the state machine): before authentication only
ApiVersions, SaslHandshake and SaslAuthenticate are served and frames are capped at
``sasl.server.max.receive.size``; anything else closes the connection, as in Kafka. After a
SaslHandshake v0 the frames are raw SASL tokens, answered raw. A refused login is answered,
then the connection stops reading and closes after ``connection.failed.authentication.delay.ms``
(a timer, not a blocked loop). Past ``reauth_deadline`` only re-authentication is served.

Client quotas (``broker/quotas.py``): while any quota is set, handlers run through
``handle_with_quotas``, which records the client's usage and sets ``throttle_time_ms``; a
throttled connection is then muted (``mute``) — it reads no requests until the throttle time
has passed, while the response that earned it is sent at once (KIP-219).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import struct
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, cast

from kio.schema.errors import ErrorCode

from moldau.broker.auth.sasl import (
    SaslAuthenticator,
    attach,
    detach,
    listener_sasl_config,
)
from moldau.broker.auth.session import Session
from moldau.broker.auth.tls import tls_principal
from moldau.broker.context import Deferred, RequestContext
from moldau.broker.handlers import HANDLERS
from moldau.broker.quotas import handle_with_quotas
from moldau.protocol.api import ADVERTISED, ApiKey, schema_for
from moldau.protocol.framing import (
    FramingError,
    decode_request_body,
    encode_response,
    parse_request_header_prefix,
    skip_header_tags,
)
from moldau.protocol.produce_request import ProduceParseError, parse_produce_request

if TYPE_CHECKING:
    from moldau.broker.server import Broker

log = logging.getLogger("moldau.connection")

_SIZE = struct.Struct(">i")
_HIGH_WATER = 4 * 1024 * 1024
_SASL_APIS = (ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE)


class _CloseWhenWritten:
    """A response-queue item that closes the connection when the writer reaches it, i.e.
    after every earlier response was written (``transport.close`` flushes them)."""

    def __init__(self, connection: KafkaConnection) -> None:
        self._connection = connection

    def __await__(self) -> Any:
        self._connection.close()
        return None
        yield  # a generator: awaiting it runs the lines above, no coroutine to leak


class KafkaConnection(asyncio.BufferedProtocol):
    """Protocol instance for one TCP connection (see module docstring)."""

    def __init__(
        self,
        broker: Broker,
        listener_name: str | None = None,
        security_protocol: str | None = None,
    ) -> None:
        self.broker = broker
        self.listener_name = listener_name or broker.config.listener_name
        self.security_protocol = security_protocol or broker.config.security_protocol
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.session = Session.accepted(self.listener_name, self.security_protocol, "?")
        self.sasl: SaslAuthenticator | None = None
        """SASL state on a SASL listener (see ``_sasl_permits``); None elsewhere."""
        self._size_buf = bytearray(4)
        self._size_got = 0
        self._frame: bytearray | None = None
        self._frame_view: memoryview | None = None
        self._frame_got = 0
        self._requests: collections.deque[bytearray] = collections.deque()
        self._wakeup = asyncio.Event()
        self._responses: asyncio.Queue[Awaitable[bytes | None] | bytes | None] = asyncio.Queue()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._reading_paused = False
        self._throttled_until = 0.0
        """Monotonic time until which a quota-throttled connection is muted (``mute``)."""

    # -- asyncio protocol callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its interface.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.session = Session.accepted(
            self.listener_name, self.security_protocol, str(peer[0]) if peer else "?"
        )
        if self.session.uses_tls and not self.session.uses_sasl:
            self.session.principal = tls_principal(self.listener_name, self.peer, transport)
        if self.session.uses_sasl:
            store = self.broker.security_store
            self.sasl = SaslAuthenticator(
                self.session,
                listener_sasl_config(self.broker.config, self.listener_name),
                lambda user, mechanism: store.image.credential(user, mechanism),
            )
            attach(self.sasl)
        self.transport.set_write_buffer_limits(high=_HIGH_WATER)
        self.broker.connections.add(self)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._process_requests()),
            loop.create_task(self._write_responses()),
        ]

    def get_buffer(self, sizehint: int) -> memoryview | bytearray:
        if self._frame_view is None:
            return memoryview(self._size_buf)[self._size_got :]
        return self._frame_view[self._frame_got :]

    def buffer_updated(self, nbytes: int) -> None:
        if self._frame_view is None:
            self._size_got += nbytes
            if self._size_got < 4:
                return
            (size,) = _SIZE.unpack(self._size_buf)
            self._size_got = 0
            if size <= 0 or size > self.broker.config.socket_request_max_bytes:
                log.warning(
                    "closing connection from %s: frame length %d outside 1..%d",
                    self.peer,
                    size,
                    self.broker.config.socket_request_max_bytes,
                )
                self.close()
                return
            if (
                self.sasl is not None
                and not self.session.authenticated
                and size > self.sasl.config.max_receive_size
            ):
                log.warning(
                    "closing connection from %s: %d-byte frame before SASL authentication "
                    "(sasl.server.max.receive.size is %d)",
                    self.peer,
                    size,
                    self.sasl.config.max_receive_size,
                )
                self.close()
                return
            self._frame = bytearray(size)
            self._frame_view = memoryview(self._frame)
            self._frame_got = 0
            return
        self._frame_got += nbytes
        if self._frame is not None and self._frame_got == len(self._frame):
            assert self._frame_view is not None
            self._frame_view.release()
            self._requests.append(self._frame)
            self._frame = None
            self._frame_view = None
            self._wakeup.set()
            if len(self._requests) > 64 and self.transport is not None:
                self.transport.pause_reading()
                self._reading_paused = True

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._wakeup.set()
        self._can_write.set()
        self._responses.put_nowait(None)
        self.broker.connections.discard(self)
        if self.sasl is not None:
            detach(self.sasl)
        for task in self._tasks:
            if not task.done() and task is not asyncio.current_task():
                task.cancel()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def mute(self, throttle_ms: int) -> None:
        """KIP-219 throttling (``broker/quotas.py``): read no further requests for
        ``throttle_ms``; the response that earned it is sent at once."""
        self._throttled_until = max(self._throttled_until, time.monotonic() + throttle_ms / 1000)

    async def _wait_until_unmuted(self) -> None:
        muted = self.transport is not None and not self._reading_paused
        if muted:
            assert self.transport is not None
            self.transport.pause_reading()
        while not self._closed and (delay := self._throttled_until - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        self._throttled_until = 0.0
        if muted and not self._closed and self.transport is not None:
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None and not self._closed:
            self._closed = True
            self.transport.close()

    # -- request processing ------------------------------------------------------------

    async def _process_requests(self) -> None:
        while not self._closed:
            if self._throttled_until:
                await self._wait_until_unmuted()
                continue
            if not self._requests:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            frame = self._requests.popleft()
            if self._reading_paused and len(self._requests) < 16 and self.transport is not None:
                self._reading_paused = False
                self.transport.resume_reading()
            if self.sasl is not None and (self.sasl.failed or self.sasl.raw_tokens):
                if not self.sasl.failed:
                    self._handle_raw_sasl_token(frame)
                continue
            try:
                await self._handle_frame(frame)
            except FramingError as exc:
                log.warning("closing connection from %s: %s", self.peer, exc)
                self.close()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("closing connection from %s: request handling failed", self.peer)
                self.close()

    async def _handle_frame(self, frame: bytearray) -> None:
        view = memoryview(frame).toreadonly()  # kio's native readers want read-only buffers
        header = parse_request_header_prefix(view)
        api_key, version = header.api_key, header.api_version
        if self.sasl is not None and not self._sasl_permits(api_key):
            raise FramingError(
                f"request {_api_name(api_key)} (client {header.client_id!r}) "
                + (
                    "before SASL authentication"
                    if not self.session.authenticated
                    else "after the SASL session expired (connections.max.reauth.ms) "
                    "without re-authentication"
                )
            )
        supported = ADVERTISED.get(api_key)
        if api_key == ApiKey.API_VERSIONS and (supported is None or not supported.decodes(version)):
            # KIP-511: answer an unknown ApiVersions version in v0 with our ranges.
            self._responses.put_nowait(self._unsupported_api_versions(header.correlation_id))
            return
        if supported is None:
            raise FramingError(f"unsupported API key {api_key} (client {header.client_id!r})")
        if not supported.decodes(version):
            raise FramingError(
                f"unsupported version {version} of API {ApiKey(api_key).name} "
                f"(client {header.client_id!r})"
            )
        schema = schema_for(api_key, version)
        if schema.request_flexible:
            header = skip_header_tags(view, header)
        if api_key == ApiKey.PRODUCE:
            # Zero-copy: record batches stay in the frame and are patched in place.
            try:
                request: Any = parse_produce_request(memoryview(frame), header.body_offset, version)
            except ProduceParseError as exc:
                raise FramingError(str(exc)) from None
        else:
            request = decode_request_body(schema, view, header.body_offset)
        ctx = RequestContext(
            header=header,
            schema=schema,
            broker=self.broker,
            peer=self.peer,
            frame=frame,
            session=self.session,
        )
        handler = HANDLERS[api_key]
        if self.broker.quotas.active:
            result = await handle_with_quotas(self.broker.quotas, ctx, request, handler, self.mute)
        else:
            result = await handler(ctx, request)
        if self.sasl is not None and self.sasl.failed:
            self._close_after_failed_authentication(
                encode_response(schema, header.correlation_id, result)
            )
            return
        if isinstance(result, Deferred):
            self._responses.put_nowait(asyncio.ensure_future(self._finish_deferred(ctx, result)))
        elif result is None:
            return  # acks=0 produce: no response at all
        elif isinstance(result, bytes):
            self._responses.put_nowait(result)  # encoded already (a quota-accounted Fetch)
        else:
            self._responses.put_nowait(encode_response(schema, header.correlation_id, result))

    async def _finish_deferred(self, ctx: RequestContext, deferred: Deferred) -> bytes | None:
        try:
            response = await deferred.awaitable
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "request %s v%d from %s (correlation %d) failed",
                ApiKey(ctx.header.api_key).name,
                ctx.header.api_version,
                self.peer,
                ctx.header.correlation_id,
            )
            self.close()
            return None
        if response is None:
            return None
        if isinstance(response, bytes):
            return response
        return encode_response(ctx.schema, ctx.header.correlation_id, response)

    # -- SASL -------------------------------------------------------------------------

    def _sasl_permits(self, api_key: int) -> bool:
        """Kafka's gate on SASL listeners: before authentication only ApiVersions,
        SaslHandshake and SaslAuthenticate; after an expired session (KIP-368) only the
        re-authentication requests."""
        assert self.sasl is not None
        if api_key in _SASL_APIS:
            return True
        if not self.session.authenticated:
            return api_key == ApiKey.API_VERSIONS
        return not self.sasl.session_expired()

    def _handle_raw_sasl_token(self, frame: bytearray) -> None:
        """A token after SaslHandshake v0: unframed, answered unframed (size + bytes)."""
        assert self.sasl is not None
        challenge = self.sasl.evaluate_raw(bytes(frame))
        if challenge is None:
            self._close_after_failed_authentication(None)
        else:
            self._responses.put_nowait(_SIZE.pack(len(challenge)) + challenge)

    def _close_after_failed_authentication(self, response: bytes | None) -> None:
        """Stop reading, send ``response`` after ``connection.failed.authentication.delay.ms``
        and close. The delay is a timer, not a blocked loop: a brute-force client waits,
        the broker does not."""
        assert self.sasl is not None
        self._requests.clear()
        if self.transport is not None and not self._closed:
            self.transport.pause_reading()
        delay_s = self.sasl.config.failed_auth_delay_ms / 1000
        self._responses.put_nowait(asyncio.ensure_future(_after(delay_s, response)))
        self._responses.put_nowait(_CloseWhenWritten(self))

    def _unsupported_api_versions(self, correlation_id: int) -> bytes:
        from moldau.broker.handlers.api_versions import api_versions_response

        schema = schema_for(ApiKey.API_VERSIONS, 0)
        response = api_versions_response(schema, ErrorCode.unsupported_version)
        return encode_response(schema, correlation_id, response)

    # -- response writing --------------------------------------------------------------

    async def _write_responses(self) -> None:
        while True:
            item: Any = await self._responses.get()
            if item is None and self._closed:
                return
            if item is None:
                continue
            data = item if isinstance(item, bytes) else await item
            if data is None or self._closed or self.transport is None:
                continue
            if not self._can_write.is_set():
                await self._can_write.wait()
            if self._closed:
                return
            self.transport.write(data)


async def _after(delay_s: float, response: bytes | None) -> bytes | None:
    await asyncio.sleep(delay_s)
    return response


def _api_name(api_key: int) -> str:
    try:
        return ApiKey(api_key).name
    except ValueError:
        return f"api key {api_key}"
