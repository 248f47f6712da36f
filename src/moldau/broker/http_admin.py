"""The ``/v1/`` routes of the broker's HTTP endpoint: health, and the log cleaner's status
and control for one topic.

Why HTTP and not a Kafka API: Kafka has no request for "how dirty is this log" or "clean it
now"; inventing a Kafka API key would clash with future Kafka versions, while an HTTP side
door is what operators already scrape (and issue 8's Prometheus ``/metrics`` shares it). The
CLI finds the endpoint through DescribeConfigs (``metrics.listen``), never through the
broker's internals.

Routes only read the broker's state on the event loop (``broker.cleaner.status`` is cheap:
a few segment sizes) or queue work (``request_clean``), so they never block the loop.

Shapes (contract of issue 5 §4)::

    GET  /v1/health                      {"status": "ok", "node_id": N}
    GET  /v1/topics/{topic}/cleaner      [{partition, cleanable_ratio, first_dirty_offset,
                                           last_clean_time_ms, uncleanable_reason, cleaning,
                                           last_clean: {bytes_read, bytes_written,
                                           records_read, records_kept, duration_ms} | null}]
    POST /v1/topics/{topic}/compact      {"queued": n}

An unknown topic is a 404; a topic that is not compacted has an empty status list and
``queued`` 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from moldau.broker.http_server import (
    HttpRequest,
    HttpResponse,
    Route,
    error_response,
    json_response,
)

if TYPE_CHECKING:
    from moldau.broker.server import Broker


def health(broker: Broker, request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
    return json_response({"status": "ok", "node_id": getattr(broker, "node_id", None)})


def cleaner_status(broker: Broker, request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
    name = params["topic"]
    topic = broker.metadata.image.topic(name)
    if topic is None:
        return error_response(404, f"unknown topic: {name}")
    partitions: list[dict[str, Any]] = []
    for partition in range(topic.partitions):
        status = broker.cleaner.status(name, partition)
        if status is None:
            continue
        result = status.last_result
        partitions.append(
            {
                "partition": partition,
                "cleanable_ratio": status.cleanable_ratio,
                "first_dirty_offset": status.first_dirty_offset,
                "last_clean_time_ms": status.last_clean_time_ms,
                "uncleanable_reason": status.uncleanable_reason,
                "cleaning": status.cleaning,
                "last_clean": None
                if result is None
                else {
                    "bytes_read": result.bytes_read,
                    "bytes_written": result.bytes_written,
                    "records_read": result.records_read,
                    "records_kept": result.records_kept,
                    "duration_ms": result.duration_ms,
                },
            }
        )
    return json_response(partitions)


def compact(broker: Broker, request: HttpRequest, params: Mapping[str, str]) -> HttpResponse:
    name = params["topic"]
    if broker.metadata.image.topic(name) is None:
        return error_response(404, f"unknown topic: {name}")
    return json_response({"queued": broker.cleaner.request_clean(name)})


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v1/health", health),
    Route("GET", "/v1/topics/{topic}/cleaner", cleaner_status),
    Route("POST", "/v1/topics/{topic}/compact", compact),
)
