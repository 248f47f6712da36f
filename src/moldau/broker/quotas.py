"""Client quotas: Kafka's rules for which quota applies, how rates are measured, how long a
client is throttled — and the hook the connection calls after each request.

Rules (Kafka's ``ClientQuotaManager`` and ``DefaultQuotaCallback``):

- Quotas are stored per *entity* (``/users/<u>``, ``/clients/<c>``, ``/users/<u>/clients/<c>``
  and the ``<default>`` variants) in the security metadata. Each quota key
  (``producer_byte_rate``, ``consumer_byte_rate``, ``request_percentage``) is resolved on
  its own: the first entity in Kafka's precedence order that sets the key wins (see
  ``PRECEDENCE``).
- Usage is measured per *sensor*: a client is tracked under the user and/or client id the
  winning entity names, with the ``<default>`` parts replaced by the client's own names. So
  ``/users/<default>`` gives every user a separate allowance, while ``/users/alice`` shares
  one among all of alice's client ids.
- A sensor is Kafka's ``Rate`` over ``quota.window.num`` samples of
  ``quota.window.size.seconds`` (``Rate`` below). After recording, a rate ``O`` above the
  quota ``T`` over the rate's window ``W`` means a throttle of ``(O - T) / T * W`` — the
  delay that brings the average back to the quota if nothing more arrives. Request-time
  throttles are capped at one window, as Kafka caps them.

Enforcement (KIP-219), ``handle_with_quotas``: the response goes out at once carrying
``throttle_time_ms``; then the connection is *muted* — it reads no further requests — until
the throttle time has passed. Produce counts the request frame's bytes, a consumer Fetch the
response's bytes (a throttled Fetch is answered empty and its bytes un-recorded, as Kafka
does, so the client fetches them again later), and every request the time its handler took,
as a percentage of one thread. Replica fetches and the SASL/ApiVersions requests are exempt.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from moldau.broker.context import Deferred
from moldau.cluster.security_state import QUOTA_ENTITY_TYPES, QuotaEntity, SecurityImage
from moldau.protocol.api import ApiKey
from moldau.protocol.framing import encode_response
from moldau.protocol.messages import has_field

if TYPE_CHECKING:
    from moldau.broker.context import RequestContext

log = logging.getLogger("moldau.quotas")

PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
CONTROLLER_MUTATION_RATE = "controller_mutation_rate"
CONNECTION_CREATION_RATE = "connection_creation_rate"

ENFORCED_KEYS = (PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE)

CLIENT_QUOTA_KEYS: Mapping[str, bool] = {
    PRODUCER_BYTE_RATE: True,
    CONSUMER_BYTE_RATE: True,
    REQUEST_PERCENTAGE: False,
    CONTROLLER_MUTATION_RATE: False,
}
"""Keys valid for user / client-id entities → whether the value must be a whole number
(Kafka's LONG keys). ``controller_mutation_rate`` is stored but not enforced."""

IP_QUOTA_KEYS: Mapping[str, bool] = {CONNECTION_CREATION_RATE: True}
"""Keys valid for ip entities; stored, not enforced (moldau has no connection quotas)."""

USER = "user"
CLIENT_ID = "client-id"
IP = "ip"

PRECEDENCE: tuple[tuple[str, str], ...] = (
    ("user", "client"),
    ("user", "client-default"),
    ("user", ""),
    ("user-default", "client"),
    ("user-default", "client-default"),
    ("user-default", ""),
    ("", "client"),
    ("", "client-default"),
)
"""Kafka's order, most specific first: /users/<u>/clients/<c>, /users/<u>/clients/<default>,
/users/<u>, /users/<default>/clients/<c>, /users/<default>/clients/<default>,
/users/<default>, /clients/<c>, /clients/<default>."""

INT32_MAX = 2**31 - 1
_NANOS_TO_PERCENT = 100.0 / 1e9
_EXEMPT_APIS = frozenset(
    {ApiKey.API_VERSIONS, ApiKey.SASL_HANDSHAKE, ApiKey.SASL_AUTHENTICATE, ApiKey.WRITE_TXN_MARKERS}
)
_INT32 = struct.Struct(">i")
_INACTIVE_SENSOR_MS = 3_600_000.0
"""Kafka drops a client's sensors after an hour without traffic."""


# -- validation (AlterClientQuotas) ------------------------------------------------------------


def validate_entity(pairs: Iterable[tuple[str, str | None]]) -> str | None:
    """Why ``pairs`` is not a valid quota entity, or None. Kafka's rules: known types, each
    once, no empty names, user and client-id may combine, ip stands alone."""
    seen: set[str] = set()
    for kind, name in pairs:
        if kind not in QUOTA_ENTITY_TYPES:
            return f"Unhandled client quota entity type: {kind}"
        if kind in seen:
            return f"Invalid client quota entity, duplicate entity entry {kind}"
        if name is not None and not name:
            return f"Empty {kind} not supported"
        seen.add(kind)
    if not seen:
        return "Invalid empty client quota entity"
    if IP in seen and len(seen) > 1:
        return "Invalid quota entity combination: ip cannot be combined with user or client-id"
    return None


def valid_keys(entity_types: Iterable[str]) -> Mapping[str, bool]:
    return IP_QUOTA_KEYS if IP in set(entity_types) else CLIENT_QUOTA_KEYS


def validate_quota_value(entity_types: Iterable[str], key: str, value: float) -> str | None:
    """Why ``key = value`` cannot be set on an entity of these types, or None."""
    keys = valid_keys(entity_types)
    if key not in keys:
        return f"Invalid configuration key {key}"
    if not math.isfinite(value) or value <= 0:
        return f"Quota {key} must be a positive number, not {value!r}"
    if keys[key] and abs(round(value) - value) > 1e-6:
        return f"Configuration {key} must be a Long value"
    return None


# -- rates -------------------------------------------------------------------------------------


class _Sample:
    __slots__ = ("start_ms", "value")

    def __init__(self, start_ms: float) -> None:
        self.start_ms = start_ms
        self.value = 0.0

    def reset(self, start_ms: float) -> None:
        self.start_ms = start_ms
        self.value = 0.0


class Rate:
    """Kafka's ``Rate`` over a ``WindowedSum``: a ring of ``samples`` sums, each open for
    ``window_ms`` from its first record.

    The rate is the sum of the live samples divided by the elapsed time since the oldest
    one started, but never by less than ``samples - 1`` whole windows — so a new client is
    not throttled for a first burst, and a burst of ``quota * (samples - 1) * window`` is the
    most that passes unthrottled. Samples older than ``samples * window`` are reset.
    Times are caller-supplied milliseconds (monotonic), which keeps this pure and testable.
    """

    __slots__ = ("_current", "_samples", "num_samples", "window_ms")

    def __init__(self, num_samples: int, window_ms: float) -> None:
        self.num_samples = max(1, num_samples)
        self.window_ms = float(window_ms)
        self._samples: list[_Sample] = []
        self._current = 0

    def record(self, value: float, now_ms: float) -> None:
        if not self._samples:
            self._samples.append(_Sample(now_ms))
        sample = self._samples[self._current]
        if now_ms - sample.start_ms >= self.window_ms:
            sample = self._advance(now_ms)
        sample.value += value

    def _advance(self, now_ms: float) -> _Sample:
        self._current = (self._current + 1) % self.num_samples
        if self._current >= len(self._samples):
            sample = _Sample(now_ms)
            self._samples.append(sample)
        else:
            sample = self._samples[self._current]
            sample.reset(now_ms)
        return sample

    def _purge(self, now_ms: float) -> None:
        expire_ms = self.num_samples * self.window_ms
        for sample in self._samples:
            if now_ms - sample.start_ms >= expire_ms:
                sample.reset(now_ms)

    def total(self, now_ms: float) -> float:
        self._purge(now_ms)
        return sum(sample.value for sample in self._samples)

    def window_size_ms(self, now_ms: float) -> float:
        """The time the rate divides by (Kafka's ``Rate.windowSize``)."""
        self._purge(now_ms)
        oldest = min((s.start_ms for s in self._samples), default=now_ms)
        elapsed = now_ms - oldest
        full_windows = int(elapsed // self.window_ms)
        min_full_windows = self.num_samples - 1
        if full_windows < min_full_windows:
            elapsed += (min_full_windows - full_windows) * self.window_ms
        return elapsed

    def measure(self, now_ms: float) -> float:
        """Units per second."""
        window_ms = self.window_size_ms(now_ms)
        if window_ms <= 0:
            return 0.0
        return self.total(now_ms) / (window_ms / 1000.0)


def throttle_time_ms(observed: float, quota: float, window_ms: float) -> int:
    """Kafka's throttle: the delay X with ``observed * W / (W + X) = quota``."""
    if observed <= quota or quota <= 0:
        return 0
    return min(round((observed - quota) / quota * window_ms), INT32_MAX)


# -- quota resolution --------------------------------------------------------------------------


def candidate_entities(user: str, client_id: str) -> list[tuple[QuotaEntity, tuple[str, str]]]:
    """The entities that may hold a client's quota, in precedence order, each with the sensor
    tags (user, client id) it tracks usage under."""
    out: list[tuple[QuotaEntity, tuple[str, str]]] = []
    for user_part, client_part in PRECEDENCE:
        pairs: list[tuple[str, str | None]] = []
        if user_part:
            pairs.append((USER, user if user_part == "user" else None))
        if client_part:
            pairs.append((CLIENT_ID, client_id if client_part == "client" else None))
        entity: QuotaEntity = tuple(sorted(pairs))
        tags = (user if user_part else "", client_id if client_part else "")
        out.append((entity, tags))
    return out


def resolve_quota(
    quotas: Mapping[QuotaEntity, Mapping[str, float]], key: str, user: str, client_id: str
) -> tuple[QuotaEntity, tuple[str, str], float] | None:
    """The entity whose ``key`` applies to (user, client id), its sensor tags and the quota;
    None when no entity sets ``key`` for this client."""
    for entity, tags in candidate_entities(user, client_id):
        values = quotas.get(entity)
        if values is not None and key in values:
            return entity, tags, float(values[key])
    return None


class QuotaManager:
    """Quota state of one broker: the quotas of the current security image and a ``Rate``
    per (quota key, sensor tags).

    ``update`` takes each new ``SecurityImage`` (the broker subscribes it to its security
    store); sensors survive quota changes, as Kafka's do, so a changed quota applies to the
    usage already measured. ``record`` returns the throttle time in ms. Single-threaded:
    called only from the broker's event loop.
    """

    def __init__(
        self,
        window_num: int = 11,
        window_size_seconds: int = 1,
        clock_ms: Callable[[], float] | None = None,
    ) -> None:
        self.window_num = max(1, window_num)
        self.window_ms = max(1, window_size_seconds) * 1000.0
        self._clock_ms = clock_ms or (lambda: time.monotonic() * 1000.0)
        self._quotas: Mapping[QuotaEntity, Mapping[str, float]] = {}
        self._enabled: frozenset[str] = frozenset()
        self._sensors: dict[tuple[str, str, str], Rate] = {}
        self._last_used: dict[tuple[str, str, str], float] = {}
        self._last_purge_ms = 0.0

    @property
    def active(self) -> bool:
        """Is any enforced quota set? When not, the connection skips the hook entirely."""
        return bool(self._enabled)

    def enabled(self, key: str) -> bool:
        return key in self._enabled

    def update(self, image: SecurityImage) -> None:
        self._quotas = image.quotas
        self._enabled = frozenset(
            key for values in image.quotas.values() for key in values if key in ENFORCED_KEYS
        )

    def now_ms(self) -> float:
        return self._clock_ms()

    def quota(self, key: str, user: str, client_id: str) -> float | None:
        resolved = resolve_quota(self._quotas, key, user, client_id)
        return None if resolved is None else resolved[2]

    def max_value_in_window(self, key: str, user: str, client_id: str) -> float | None:
        """Kafka's ``getMaxValueInQuotaWindow``: the most one request may use without being
        throttled for sure — what a consumer Fetch's ``max_bytes`` is capped to."""
        quota = self.quota(key, user, client_id)
        if quota is None:
            return None
        return quota * max(1, self.window_num - 1) * self.window_ms / 1000.0

    def record(
        self, key: str, user: str, client_id: str, value: float, now_ms: float | None = None
    ) -> int:
        """Record ``value`` (bytes, or percent-seconds for ``request_percentage``) and return
        the throttle time in ms (0 within quota, or when no quota applies)."""
        if key not in self._enabled:
            return 0
        resolved = resolve_quota(self._quotas, key, user, client_id)
        if resolved is None:
            return 0
        _entity, tags, quota = resolved
        now = self._clock_ms() if now_ms is None else now_ms
        rate = self._sensor(key, tags, now)
        rate.record(value, now)
        observed = rate.measure(now)
        throttle_ms = throttle_time_ms(observed, quota, rate.window_size_ms(now))
        if key == REQUEST_PERCENTAGE:
            throttle_ms = min(throttle_ms, int(self.window_ms))
        return throttle_ms

    def unrecord(
        self, key: str, user: str, client_id: str, value: float, now_ms: float | None = None
    ) -> None:
        """Take back a recorded ``value`` (a throttled Fetch is answered empty)."""
        resolved = resolve_quota(self._quotas, key, user, client_id)
        if resolved is None:
            return
        now = self._clock_ms() if now_ms is None else now_ms
        self._sensor(key, resolved[1], now).record(-value, now)

    def observed_rate(
        self, key: str, user: str, client_id: str, now_ms: float | None = None
    ) -> float:
        """The measured rate of the sensor this client's ``key`` quota tracks (0 if none)."""
        resolved = resolve_quota(self._quotas, key, user, client_id)
        if resolved is None:
            return 0.0
        sensor = self._sensors.get((key, *resolved[1]))
        now = self._clock_ms() if now_ms is None else now_ms
        return 0.0 if sensor is None else sensor.measure(now)

    def _sensor(self, key: str, tags: tuple[str, str], now_ms: float) -> Rate:
        name = (key, tags[0], tags[1])
        sensor = self._sensors.get(name)
        if sensor is None:
            self._maybe_purge(now_ms)
            sensor = self._sensors[name] = Rate(self.window_num, self.window_ms)
        self._last_used[name] = now_ms
        return sensor

    def _maybe_purge(self, now_ms: float) -> None:
        if now_ms - self._last_purge_ms < 60_000.0:
            return
        self._last_purge_ms = now_ms
        for name, used in list(self._last_used.items()):
            if now_ms - used > _INACTIVE_SENSOR_MS:
                del self._last_used[name]
                self._sensors.pop(name, None)


# -- the connection hook -----------------------------------------------------------------------


def client_identity(ctx: RequestContext) -> tuple[str, str]:
    """(user, client id) a request is accounted to: the principal's name (``ANONYMOUS`` on
    unauthenticated PLAINTEXT) and the header's client id ("" when null)."""
    return ctx.session.principal.name, ctx.header.client_id or ""


def with_throttle_time(response: Any, throttle_ms: int) -> Any:
    """``response`` carrying ``throttle_time_ms`` when its version has the field (kio classes
    are frozen: a copy)."""
    if throttle_ms <= 0 or not has_field(type(response), "throttle_time"):
        return response
    return dataclasses.replace(response, throttle_time=datetime.timedelta(milliseconds=throttle_ms))


def patch_throttle_time(frame: bytes | bytearray, header_flexible: bool, throttle_ms: int) -> bytes:
    """Write ``throttle_time_ms`` into an encoded response whose body starts with it (Fetch
    v1+, Produce is not one): size, correlation id, [header tags], throttle_time_ms."""
    data = bytearray(frame)
    _INT32.pack_into(data, 9 if header_flexible else 8, throttle_ms)
    return bytes(data)


async def handle_with_quotas(
    manager: QuotaManager,
    ctx: RequestContext,
    request: Any,
    handler: Callable[[RequestContext, Any], Awaitable[Any]],
    mute: Callable[[int], None],
) -> Any:
    """Run ``handler`` under the client's quotas; the connection calls this instead of the
    handler while any quota is set. Returns what the handler returns (kio response,
    ``Deferred`` or None), or ready-encoded response bytes for a consumer Fetch.

    ``mute(ms)`` is the connection's: it stops reading requests for that long (KIP-219: the
    response is not delayed, the connection's *next* requests are)."""
    api_key = ctx.header.api_key
    if api_key in _EXEMPT_APIS:
        return await handler(ctx, request)
    user, client_id = client_identity(ctx)
    consumer_fetch = api_key == ApiKey.FETCH and int(getattr(request, "replica_id", -1)) < 0
    if consumer_fetch:
        cap = manager.max_value_in_window(CONSUMER_BYTE_RATE, user, client_id)
        if cap is not None and cap < request.max_bytes:
            request = dataclasses.replace(request, max_bytes=max(1, int(cap)))
    started_ns = time.perf_counter_ns()
    result = await handler(ctx, request)
    handler_ns = time.perf_counter_ns() - started_ns
    request_ms = 0
    if manager.enabled(REQUEST_PERCENTAGE):
        request_ms = manager.record(
            REQUEST_PERCENTAGE, user, client_id, handler_ns * _NANOS_TO_PERCENT
        )
    if api_key == ApiKey.PRODUCE:
        bytes_ms = manager.record(PRODUCER_BYTE_RATE, user, client_id, len(ctx.frame))
        throttle_ms = max(bytes_ms, request_ms)
        if throttle_ms > 0:
            mute(throttle_ms)
        return _map(result, lambda r: with_throttle_time(r, throttle_ms))
    if consumer_fetch:
        return _map(
            result, lambda r: _fetch_response(manager, ctx, r, user, client_id, request_ms, mute)
        )
    if request_ms > 0:
        mute(request_ms)
        return _map(result, lambda r: with_throttle_time(r, request_ms))
    return result


def _map(result: Any, apply: Callable[[Any], Any]) -> Any:
    """Apply to the response now, or when a Deferred response is ready."""
    if result is None:
        return None
    if isinstance(result, Deferred):
        return Deferred(_then(result.awaitable, apply))
    return apply(result)


def _fetch_response(
    manager: QuotaManager,
    ctx: RequestContext,
    response: Any,
    user: str,
    client_id: str,
    request_ms: int,
    mute: Callable[[int], None],
) -> Any:
    """Kafka's consumer path: record the response's size; if throttled (by bytes or by
    request time), un-record it and answer an empty response instead — the client fetches
    those records again after the throttle. A response that arrives pre-encoded is sent as
    it is, with ``throttle_time_ms`` patched in and its bytes kept recorded."""
    if response is None:
        return None
    encoded = isinstance(response, bytes | bytearray)
    frame = (
        response if encoded else encode_response(ctx.schema, ctx.header.correlation_id, response)
    )
    size = len(frame)
    throttle_ms = request_ms
    now = manager.now_ms()
    if manager.enabled(CONSUMER_BYTE_RATE):
        throttle_ms = max(
            throttle_ms, manager.record(CONSUMER_BYTE_RATE, user, client_id, size, now)
        )
    if throttle_ms <= 0:
        return bytes(frame)
    mute(throttle_ms)
    if encoded:
        return patch_throttle_time(frame, ctx.schema.response_header_flexible, throttle_ms)
    manager.unrecord(CONSUMER_BYTE_RATE, user, client_id, size, now)
    return _empty_fetch_response(response, throttle_ms)


def _empty_fetch_response(response: Any, throttle_ms: int) -> Any:
    """Kafka's ``getThrottledResponse``: no data, the session kept, the throttle set."""
    empty = dataclasses.replace(response, responses=())
    return with_throttle_time(empty, throttle_ms)


async def _then(awaitable: Awaitable[Any], apply: Callable[[Any], Any]) -> Any:
    return apply(await awaitable)
