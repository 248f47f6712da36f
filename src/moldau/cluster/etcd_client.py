"""A small async etcd v3 client over etcd's JSON gateway (grpc-gateway, ``/v3/...``).

Why the gateway and not gRPC: the ``etcd3`` package is broken with current protobuf, and the
gateway is plain HTTP/1.1 + JSON that httpx speaks. The gateway's conventions, which this
module hides from its callers:

- keys and values travel base64-encoded; int64 fields come back as JSON strings;
- fields equal to their zero value are omitted (no ``succeeded`` means false, no ``kvs`` means
  no keys, a keepalive answer without ``TTL`` means the lease is gone);
- streaming methods (``/v3/watch``, ``/v3/lease/keepalive``) answer newline-delimited
  ``{"result": {...}}`` objects, errors as ``{"error": {...}}`` or an HTTP status with
  ``{"code": N, "message": ...}``.

Failover: the client holds several endpoints and sticks to the one that last worked. Only a
*connection* failure moves it to the next endpoint and retries, because then the request
surely never reached etcd; a failure after sending (read error, timeout) is reported as
``EtcdError`` and not retried, so a compare-and-swap is never applied twice behind the
caller's back.

Transactions take the gateway's JSON dicts as they are; ``compare_*`` and ``op_*`` build them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from moldau.cluster.errors import EtcdError, WatchCompacted

log = logging.getLogger("moldau.cluster.etcd")

WATCH_BACKOFF_INITIAL_S = 0.1
WATCH_BACKOFF_MAX_S = 2.0


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def prefix_range_end(prefix: str | bytes) -> bytes:
    """The ``range_end`` that selects every key starting with ``prefix`` (etcd's rule: the
    prefix with its last byte incremented, dropping trailing 0xff bytes)."""
    raw = bytearray(prefix.encode() if isinstance(prefix, str) else prefix)
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return bytes(raw)
        raw.pop()
    return b"\x00"  # every key


def parse_metadata_url(url: str) -> list[str]:
    """``etcd://h1:p1,h2:p2`` (the broker's ``--metadata`` value) → ``["http://h1:p1", ...]``."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme != "etcd" or not rest.strip("/"):
        raise ValueError(f"not an etcd metadata URL (etcd://HOST:PORT[,HOST:PORT]): {url!r}")
    endpoints = []
    for part in rest.strip("/").split(","):
        host, colon, port = part.strip().rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError(f"bad etcd address {part!r} in {url!r} (expected HOST:PORT)")
        endpoints.append(f"http://{host}:{port}")
    return endpoints


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key as etcd stores it; revisions are etcd's global store revisions."""

    key: str
    value: bytes
    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    lease: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyValue:
        return cls(
            key=_unb64(data.get("key", "")).decode(),
            value=_unb64(data.get("value", "")),
            create_revision=int(data.get("create_revision", 0)),
            mod_revision=int(data.get("mod_revision", 0)),
            version=int(data.get("version", 0)),
            lease=int(data.get("lease", 0)),
        )


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """A change seen by a watch; for DELETE, ``kv`` has the key and the deleting revision."""

    type: Literal["PUT", "DELETE"]
    kv: KeyValue


@dataclass(frozen=True, slots=True)
class TxnResult:
    """Outcome of a transaction: which branch ran, the store revision after it, and the raw
    per-operation responses of that branch (``range_kvs`` decodes a range's keys)."""

    succeeded: bool
    revision: int
    responses: list[dict[str, Any]] = field(default_factory=list)

    def range_kvs(self, index: int) -> list[KeyValue]:
        response = self.responses[index].get("response_range", {})
        return [KeyValue.from_json(kv) for kv in response.get("kvs", [])]


# -- transaction builders -----------------------------------------------------------------


def compare_create_revision(key: str, revision: int) -> dict[str, Any]:
    """Compare on a key's create revision; ``revision=0`` means "the key does not exist"."""
    return {
        "key": _b64(key),
        "target": "CREATE",
        "result": "EQUAL",
        "create_revision": str(revision),
    }


def compare_mod_revision(key: str, revision: int) -> dict[str, Any]:
    """Compare on a key's last modification revision (the usual compare-and-swap check)."""
    return {"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}


def compare_lease(key: str, lease: int) -> dict[str, Any]:
    """Compare on the lease a key is attached to."""
    return {"key": _b64(key), "target": "LEASE", "result": "EQUAL", "lease": str(lease)}


def compare_exists(key: str) -> dict[str, Any]:
    """Compare that holds when the key exists (its version is above zero)."""
    return {"key": _b64(key), "target": "VERSION", "result": "GREATER", "version": "0"}


def op_put(key: str, value: str | bytes, lease: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
    if lease:
        body["lease"] = str(lease)
    return {"request_put": body}


def op_delete(key: str, *, prefix: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"key": _b64(key)}
    if prefix:
        body["range_end"] = _b64(prefix_range_end(key))
    return {"request_delete_range": body}


def op_get(key: str) -> dict[str, Any]:
    return {"request_range": {"key": _b64(key)}}


class EtcdClient:
    """Async etcd v3 client (KV, transactions, leases, watches) for one or more endpoints.

    One ``httpx.AsyncClient`` is shared by unary calls (connection pooling); each watch holds
    one streaming connection of its own. All methods raise ``EtcdError`` on failure.
    """

    def __init__(self, endpoints: Sequence[str], *, timeout_s: float = 5.0) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout_s = timeout_s
        self._current = 0
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s))

    @property
    def endpoint(self) -> str:
        """The endpoint currently in use."""
        return self.endpoints[self._current]

    async def close(self) -> None:
        await self._http.aclose()

    # -- transport ------------------------------------------------------------------------

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the current endpoint, moving on to the next ones on connection errors."""
        last: Exception | None = None
        for attempt in range(len(self.endpoints)):
            index = (self._current + attempt) % len(self.endpoints)
            endpoint = self.endpoints[index]
            try:
                response = await self._http.post(endpoint + path, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last = exc
                continue
            except httpx.HTTPError as exc:
                raise EtcdError(f"etcd at {endpoint} failed on {path}: {_describe(exc)}") from exc
            self._current = index
            return _decode_answer(endpoint, path, response)
        endpoint = self.endpoints[self._current]
        assert last is not None
        raise EtcdError(f"etcd at {endpoint} is not reachable: {_describe(last)}") from last

    # -- KV -------------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        answer = await self._post("/v3/kv/range", {"key": _b64(key)})
        kvs = answer.get("kvs", [])
        return KeyValue.from_json(kvs[0]) if kvs else None

    async def range_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under ``prefix`` and the store revision the read saw."""
        answer = await self._post(
            "/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_range_end(prefix))}
        )
        kvs = [KeyValue.from_json(kv) for kv in answer.get("kvs", [])]
        return kvs, _revision(answer)

    async def put(self, key: str, value: str | bytes, lease: int = 0) -> int:
        """Write a key; returns the store revision of the write."""
        body = op_put(key, value, lease)["request_put"]
        return _revision(await self._post("/v3/kv/put", body))

    async def delete(self, key: str, *, prefix: bool = False) -> int:
        """Delete a key (or every key under it); returns how many keys were deleted."""
        body = op_delete(key, prefix=prefix)["request_delete_range"]
        answer = await self._post("/v3/kv/deleterange", body)
        return int(answer.get("deleted", 0))

    async def txn(
        self,
        compare: list[dict[str, Any]],
        success: list[dict[str, Any]],
        failure: list[dict[str, Any]] | None = None,
    ) -> TxnResult:
        answer = await self._post(
            "/v3/kv/txn", {"compare": compare, "success": success, "failure": failure or []}
        )
        return TxnResult(
            succeeded=bool(answer.get("succeeded", False)),
            revision=_revision(answer),
            responses=list(answer.get("responses", [])),
        )

    async def compact(self, revision: int) -> None:
        """Drop history below ``revision`` (tests use it to provoke ``WatchCompacted``)."""
        await self._post("/v3/kv/compaction", {"revision": str(revision), "physical": True})

    # -- leases ---------------------------------------------------------------------------

    async def lease_grant(self, ttl_s: int) -> int:
        answer = await self._post("/v3/lease/grant", {"TTL": ttl_s})
        if answer.get("error"):
            raise EtcdError(f"etcd at {self.endpoint} refused a lease: {answer['error']}")
        return int(answer["ID"])

    async def lease_keepalive(self, lease_id: int) -> int:
        """Refresh a lease; returns its new TTL in seconds, 0 when etcd no longer has it."""
        answer = await self._post("/v3/lease/keepalive", {"ID": str(lease_id)})
        result = answer.get("result", answer)
        return max(int(result.get("TTL", 0)), 0)

    async def lease_time_to_live(self, lease_id: int) -> int:
        """Remaining TTL in seconds, or -1 when the lease does not exist."""
        answer = await self._post("/v3/lease/timetolive", {"ID": str(lease_id)})
        return int(answer.get("TTL", -1))

    async def lease_revoke(self, lease_id: int) -> None:
        """Revoke a lease (deleting its keys); a lease that is already gone is fine."""
        try:
            await self._post("/v3/lease/revoke", {"ID": str(lease_id)})
        except EtcdError as exc:
            if exc.code != 5:  # NOT_FOUND
                raise

    # -- watch ----------------------------------------------------------------------------

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
        """Changes under ``prefix`` from ``start_revision`` on, one list per etcd response.

        etcd never splits one revision's events over two responses, so a caller applying
        each list at once never sees half a transaction. When the stream breaks (etcd
        restarted, endpoint down) it reconnects, with backoff and across endpoints, from the
        last delivered revision + 1; it never gives up (cancel the consumer to stop). If etcd
        has compacted the revisions it needs, it raises ``WatchCompacted``.
        """
        next_revision = start_revision
        backoff_s = WATCH_BACKOFF_INITIAL_S
        body_base = {"key": _b64(prefix), "range_end": _b64(prefix_range_end(prefix))}
        failures = 0
        while True:
            endpoint = self.endpoints[self._current]
            body = {"create_request": {**body_base, "start_revision": str(next_revision)}}
            try:
                async with self._http.stream(
                    "POST",
                    endpoint + "/v3/watch",
                    json=body,
                    timeout=httpx.Timeout(self.timeout_s, read=None),
                ) as response:
                    if response.status_code != 200:
                        text = (await response.aread()).decode(errors="replace")
                        raise EtcdError(f"etcd at {endpoint} refused a watch: {text[:200]}")
                    async for line in response.aiter_lines():
                        if not line.strip():
                            continue
                        events = _parse_watch_line(endpoint, line)
                        failures = 0
                        backoff_s = WATCH_BACKOFF_INITIAL_S
                        if events:
                            next_revision = max(e.kv.mod_revision for e in events) + 1
                            yield events
                reason = "stream closed"
            except WatchCompacted:
                raise
            except (httpx.HTTPError, EtcdError) as exc:
                reason = _describe(exc)
                if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                    self._current = (self._current + 1) % len(self.endpoints)
            failures += 1
            level = logging.WARNING if failures in (1, 10) or failures % 50 == 0 else logging.DEBUG
            log.log(
                level,
                "etcd watch on %s broke (%s); reconnecting from revision %d",
                endpoint,
                reason,
                next_revision,
            )
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, WATCH_BACKOFF_MAX_S)


def _parse_watch_line(endpoint: str, line: str) -> list[WatchEvent]:
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise EtcdError(f"etcd at {endpoint} sent a bad watch line: {line[:200]!r}") from exc
    if "error" in message:
        raise EtcdError(f"etcd at {endpoint} watch error: {message['error']}")
    result = message.get("result", {})
    if result.get("canceled"):
        compact_revision = int(result.get("compact_revision", 0))
        if compact_revision:
            raise WatchCompacted(compact_revision)
        raise EtcdError(
            f"etcd at {endpoint} canceled the watch: {result.get('cancel_reason', '?')}"
        )
    events: list[WatchEvent] = []
    for raw in result.get("events", []):
        kind: Literal["PUT", "DELETE"] = "DELETE" if raw.get("type") == "DELETE" else "PUT"
        events.append(WatchEvent(kind, KeyValue.from_json(raw.get("kv", {}))))
    return events


def _decode_answer(endpoint: str, path: str, response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError as exc:
        raise EtcdError(
            f"etcd at {endpoint} answered {path} with HTTP {response.status_code}, not JSON"
        ) from exc
    if not isinstance(answer, dict):
        raise EtcdError(f"etcd at {endpoint} answered {path} with {answer!r}")
    error = answer.get("error")
    if isinstance(error, dict):  # a streaming method's error object
        answer = error
    if response.status_code != 200 or "code" in answer or "grpc_code" in answer:
        code = answer.get("code", answer.get("grpc_code"))
        message = answer.get("message") or answer.get("error") or response.reason_phrase
        raise EtcdError(
            f"etcd at {endpoint} refused {path}: {message}",
            code=int(code) if code is not None else None,
        )
    return answer


def _revision(answer: dict[str, Any]) -> int:
    header = answer.get("header") or answer.get("result", {}).get("header", {})
    return int(header.get("revision", 0))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
