"""The CLI's client for a broker's HTTP endpoint (``metrics.listen``): log cleaner status and
"compact now".

Why discover the address over Kafka: the CLI is a wire client that only knows the bootstrap
address. The broker publishes its endpoint as the broker config ``metrics.listen``, so one
DescribeConfigs of the broker resource tells where it is, without guessing ports or reading
the broker's files. A wildcard host (``0.0.0.0``, ``::``) means "every interface": the CLI
then uses the host it already reaches the broker at.

Every failure is one sentence (:class:`~moldau.cli.common.CliError`): endpoint disabled,
unreachable, or an error the endpoint answered. Environment proxies are ignored on purpose:
the endpoint usually listens on loopback, and an ``http_proxy`` meant for the internet would
otherwise swallow the request.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from moldau.cli.admin import AdminSession, BrokerInfo
from moldau.cli.common import CliError, parse_bootstrap

ENDPOINT_KEY = "metrics.listen"
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})


@dataclass(frozen=True)
class LastClean:
    """The figures of a partition's last completed clean."""

    bytes_read: int
    bytes_written: int
    records_read: int
    records_kept: int
    duration_ms: int


@dataclass(frozen=True)
class CleanerPartitionStatus:
    """``GET /v1/topics/{topic}/cleaner``, one partition (issue 5 §4 of the contract)."""

    partition: int
    cleanable_ratio: float
    first_dirty_offset: int
    last_clean_time_ms: int
    """-1: not cleaned since the broker started."""
    uncleanable_reason: str | None
    cleaning: bool
    last_clean: LastClean | None


class BrokerHttpClient:
    """Requests to one broker's HTTP endpoint; ``base_url`` like ``http://127.0.0.1:9644``."""

    def __init__(self, base_url: str, timeout_ms: int, node_id: int | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_ms = timeout_ms
        self.node_id = node_id
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @classmethod
    def discover(cls, session: AdminSession, node_id: int | None = None) -> BrokerHttpClient:
        """The endpoint of broker ``node_id`` (default: the first broker in metadata)."""
        brokers = session.cluster().brokers
        if not brokers:
            raise CliError("the cluster reported no brokers")
        broker = brokers[0] if node_id is None else _broker(brokers, node_id)
        entries = {c.name: c for c in session.describe_configs("broker", str(broker.node_id))}
        entry = entries.get(ENDPOINT_KEY)
        if entry is None:
            raise CliError(
                f"broker {broker.node_id} has no HTTP endpoint ({ENDPOINT_KEY} is not one of "
                "its configs; is it an older moldau or another Kafka broker?)"
            )
        raw = (entry.value or "").strip()
        if not raw:
            raise CliError(
                f"the HTTP endpoint of broker {broker.node_id} is disabled ({ENDPOINT_KEY} is "
                "empty); set it to host:port to use this command"
            )
        host, sep, port = raw.rpartition(":")
        if not sep or not port.isdigit():
            raise CliError(f"broker {broker.node_id} reports an invalid {ENDPOINT_KEY}: {raw}")
        if host in _WILDCARD_HOSTS:
            host = _reachable_host(session.bootstrap, broker, len(brokers))
        host = host.strip("[]")
        netloc = f"[{host}]" if ":" in host else host
        return cls(f"http://{netloc}:{port}", session.timeout_ms, broker.node_id)

    # -- the routes -----------------------------------------------------------------------

    def cleaner_status(self, topic: str) -> list[CleanerPartitionStatus]:
        document = self.request("GET", f"/v1/topics/{_quote(topic)}/cleaner", topic=topic)
        if not isinstance(document, list):
            raise CliError(f"unexpected answer from {self.base_url}: not a list")
        return [_partition_status(item) for item in document]

    def request_compaction(self, topic: str) -> int:
        """Ask for a clean of every partition of ``topic`` now; returns how many were queued."""
        document = self.request("POST", f"/v1/topics/{_quote(topic)}/compact", topic=topic)
        try:
            return int(document["queued"])
        except (TypeError, KeyError, ValueError):
            raise CliError(f"unexpected answer from {self.base_url}: {document!r}") from None

    def health(self) -> Any:
        return self.request("GET", "/v1/health")

    # -- transport ------------------------------------------------------------------------

    def request(self, method: str, path: str, *, topic: str | None = None) -> Any:
        """One request; the decoded JSON answer, or a one-line CliError."""
        url = self.base_url + path
        data = b"" if method == "POST" else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        try:
            with self._opener.open(req, timeout=self.timeout_ms / 1000) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            message = _error_message(exc)
            if exc.code == 404 and topic is not None and "unknown topic" in message:
                raise CliError(f"topic '{topic}' does not exist", code=3) from None
            raise CliError(f"{method} {url} failed: HTTP {exc.code}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise CliError(
                f"cannot reach the HTTP endpoint of broker {self._who()} at {self.base_url} "
                f"({ENDPOINT_KEY}): {_reason_text(reason)}"
            ) from None
        try:
            return json.loads(body)
        except ValueError:
            raise CliError(f"the answer of {url} is not JSON") from None

    def _who(self) -> str:
        return "?" if self.node_id is None else str(self.node_id)


def _broker(brokers: tuple[BrokerInfo, ...], node_id: int) -> BrokerInfo:
    for broker in brokers:
        if broker.node_id == node_id:
            return broker
    raise CliError(f"broker {node_id} is not in the cluster")


def _reachable_host(bootstrap: str, broker: BrokerInfo, broker_count: int) -> str:
    """Where to reach a broker whose endpoint listens on every interface: the bootstrap host
    (known to work from here) for a single broker, else the host it advertises."""
    if broker_count == 1:
        return parse_bootstrap(bootstrap)[0][0]
    return broker.host


def _quote(topic: str) -> str:
    return urllib.parse.quote(topic, safe="")


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        document = json.loads(exc.read())
        return str(document.get("message") or document.get("error") or exc.reason)
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)


def _reason_text(reason: object) -> str:
    if isinstance(reason, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)


def _partition_status(item: Any) -> CleanerPartitionStatus:
    try:
        last = item.get("last_clean")
        return CleanerPartitionStatus(
            partition=int(item["partition"]),
            cleanable_ratio=float(item["cleanable_ratio"]),
            first_dirty_offset=int(item["first_dirty_offset"]),
            last_clean_time_ms=int(item["last_clean_time_ms"]),
            uncleanable_reason=item.get("uncleanable_reason"),
            cleaning=bool(item.get("cleaning", False)),
            last_clean=None
            if last is None
            else LastClean(
                bytes_read=int(last["bytes_read"]),
                bytes_written=int(last["bytes_written"]),
                records_read=int(last["records_read"]),
                records_kept=int(last["records_kept"]),
                duration_ms=int(last["duration_ms"]),
            ),
        )
    except (TypeError, KeyError, ValueError, AttributeError):
        raise CliError(f"unexpected cleaner status from the broker: {item!r}") from None
