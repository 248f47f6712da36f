"""Client quotas against a real broker with real clients: a producer and a consumer slowed to
their byte rates (throughput measured and reported, throttle times seen by the client), a
user quota on SASL PLAIN users, the Describe/Alter round trip, persistence across a restart
and Kafka's errors.

The brokers run with ``quota.window.num=2`` (1-second samples): Kafka's Rate lets a client
burst ``(samples - 1)`` windows' worth before throttling, so with the default 11 samples a
fair throughput figure needs tens of seconds; with 2 the steady state comes after a second.
Throughput is measured over whole 2-second periods after that warm-up, and asserted only
together with the throttle times the client itself reports (librdkafka's statistics).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kio.schema.errors import ErrorCode
from sasl_helpers import ADMIN_PASSWORD, ALICE_PASSWORD, confluent_config, sasl_broker_config

from moldau.protocol.api import ApiKey, schema_for
from moldau.testing import BrokerProcess
from moldau.testing.wire import WireClient

QUOTA_CONFIG = {"quota.window.num": "2", "quota.window.size.seconds": "1"}
RATE = 200_000
PAYLOAD = b"q" * 1000
WARMUP_S = 2.0
MEASURE_S = 6.0


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with BrokerProcess(config=QUOTA_CONFIG) as process:
        yield process


# -- wire helpers ------------------------------------------------------------------------------


def _wire(broker: BrokerProcess) -> WireClient:
    return WireClient(broker.host, broker.port, client_id="quota-admin")


def alter_quotas(
    broker: BrokerProcess,
    pairs: list[tuple[str, str | None]],
    ops: list[tuple[str, float | None]],
    validate_only: bool = False,
) -> Any:
    """One AlterClientQuotas entry (a None value removes the key); returns the entry result."""
    schema = schema_for(ApiKey.ALTER_CLIENT_QUOTAS, 1)
    m = schema.request_module
    request = schema.request_type(
        entries=(
            m.EntryData(
                entity=tuple(m.EntityData(entity_type=k, entity_name=n) for k, n in pairs),
                ops=tuple(
                    m.OpData(key=key, value=value or 0.0, remove=value is None)
                    for key, value in ops
                ),
            ),
        ),
        validate_only=validate_only,
    )
    with _wire(broker) as client:
        response = client.request(ApiKey.ALTER_CLIENT_QUOTAS, 1, request)
    (entry,) = response.entries
    return entry


def describe_quotas(
    broker: BrokerProcess, components: list[tuple[str, int, str | None]], strict: bool = False
) -> Any:
    schema = schema_for(ApiKey.DESCRIBE_CLIENT_QUOTAS, 1)
    m = schema.request_module
    request = schema.request_type(
        components=tuple(
            m.ComponentData(entity_type=k, match_type=t, match=n) for k, t, n in components
        ),
        strict=strict,
    )
    with _wire(broker) as client:
        return client.request(ApiKey.DESCRIBE_CLIENT_QUOTAS, 1, request)


def described(response: Any) -> dict[tuple[tuple[str, str | None], ...], dict[str, float]]:
    assert response.error_code == ErrorCode.none, response.error_message
    return {
        tuple((e.entity_type, e.entity_name) for e in entry.entity): {
            v.key: float(v.value) for v in entry.values
        }
        for entry in response.entries
    }


def set_quota(broker: BrokerProcess, pairs: list[tuple[str, str | None]], **values: float) -> None:
    entry = alter_quotas(broker, pairs, list(values.items()))
    assert entry.error_code == ErrorCode.none, entry.error_message


# -- measuring ---------------------------------------------------------------------------------


class ThrottleStats:
    """librdkafka's own view: the ``throttle`` window of each broker in its statistics."""

    def __init__(self) -> None:
        self.max_ms = 0
        self.count = 0

    def __call__(self, text: str) -> None:
        for broker in json.loads(text).get("brokers", {}).values():
            if broker.get("nodeid", -1) >= 0:
                throttle = broker.get("throttle", {})
                self.max_ms = max(self.max_ms, int(throttle.get("max", 0)))
                self.count += int(throttle.get("cnt", 0))


def steady_rate(events: list[tuple[float, int]]) -> float:
    """Bytes per second over ``MEASURE_S`` after ``WARMUP_S`` from the first event."""
    start = events[0][0] + WARMUP_S
    end = start + MEASURE_S
    return sum(size for at, size in events if start <= at < end) / MEASURE_S


def produce_for(producer: Producer, topic: str, seconds: float) -> list[tuple[float, int]]:
    acked: list[tuple[float, int]] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is None:
            acked.append((time.monotonic(), len(msg.value())))

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            producer.produce(topic, PAYLOAD, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.05)
        producer.poll(0)
    producer.purge()
    producer.flush(10)
    return acked


# -- throttling --------------------------------------------------------------------------------


def test_producer_is_slowed_to_its_byte_rate(broker: BrokerProcess) -> None:
    set_quota(broker, [("client-id", "slow-producer")], producer_byte_rate=RATE)
    stats = ThrottleStats()
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "client.id": "slow-producer",
            "batch.size": 16384,
            "linger.ms": 5,
            "statistics.interval.ms": 250,
            "stats_cb": stats,
        }
    )
    acked = produce_for(producer, "quota-produce", WARMUP_S + MEASURE_S + 0.5)
    producer.poll(0.5)  # one more statistics callback
    rate = steady_rate(acked)
    print(
        f"\nproducer throughput {rate:,.0f} B/s against producer_byte_rate {RATE:,} B/s "
        f"({rate / RATE:.0%}); client saw throttle max {stats.max_ms} ms"
    )
    assert stats.max_ms > 0, "the client never saw a throttle time"
    assert 0.8 * RATE <= rate <= 1.2 * RATE


def test_consumer_is_slowed_to_its_byte_rate(broker: BrokerProcess) -> None:
    # Small batches: a record batch is never split, and one larger than the consumer's
    # allowance per window ((samples - 1) x window x rate) would be throttled forever.
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "batch.size": 16384}
    )
    for _ in range(4000):  # 4 MB, more than the consumer may read in the test
        producer.produce("quota-fetch", PAYLOAD)
        producer.poll(0)
    producer.flush(30)
    set_quota(broker, [("client-id", "slow-consumer")], consumer_byte_rate=RATE)
    stats = ThrottleStats()
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "client.id": "slow-consumer",
            "group.id": "quota-test",
            "fetch.max.bytes": 32768,
            "max.partition.fetch.bytes": 32768,
            "message.max.bytes": 32768,
            "statistics.interval.ms": 250,
            "stats_cb": stats,
        }
    )
    consumer.assign([TopicPartition("quota-fetch", 0, 0)])
    got: list[tuple[float, int]] = []
    deadline = time.monotonic() + WARMUP_S + MEASURE_S + 1.0
    while time.monotonic() < deadline:
        for message in consumer.consume(500, 0.1):
            if message.error() is None:
                got.append((time.monotonic(), len(message.value())))
    consumer.close()
    assert got, "nothing consumed"
    rate = steady_rate(got)
    print(
        f"\nconsumer throughput {rate:,.0f} B/s against consumer_byte_rate {RATE:,} B/s "
        f"({rate / RATE:.0%}); client saw throttle max {stats.max_ms} ms"
    )
    assert stats.max_ms > 0, "the client never saw a throttle time"
    assert 0.8 * RATE <= rate <= 1.2 * RATE


def test_a_user_quota_applies_to_that_sasl_user_only() -> None:
    seen = {"alice": ThrottleStats(), "admin": ThrottleStats()}
    with BrokerProcess(config=sasl_broker_config(**QUOTA_CONFIG)) as process:
        _sasl_alter(process, "alice", producer_byte_rate=20_000)
        for user, password in (("alice", ALICE_PASSWORD), ("admin", ADMIN_PASSWORD)):
            settings = {"statistics.interval.ms": 250, "stats_cb": seen[user], "batch.size": 16384}
            producer = Producer(
                confluent_config(process.bootstrap, "PLAIN", user, password, **settings)
            )
            produce_for(producer, "quota-user", 2.5)
            producer.poll(0.5)
    print(f"\nthrottle max: alice {seen['alice'].max_ms} ms, admin {seen['admin'].max_ms} ms")
    assert seen["alice"].max_ms > 0
    assert seen["admin"].max_ms == 0


def _sasl_alter(process: BrokerProcess, user: str, **values: float) -> None:
    """AlterClientQuotas from the admin over an authenticated SASL PLAIN connection."""
    with WireClient(process.host, process.port, client_id="quota-admin") as client:
        handshake = schema_for(ApiKey.SASL_HANDSHAKE, 1).request_type(mechanism="PLAIN")
        assert client.request(ApiKey.SASL_HANDSHAKE, 1, handshake).error_code == ErrorCode.none
        token = b"\0admin\0" + ADMIN_PASSWORD.encode()
        auth = schema_for(ApiKey.SASL_AUTHENTICATE, 2).request_type(auth_bytes=token)
        assert client.request(ApiKey.SASL_AUTHENTICATE, 2, auth).error_code == ErrorCode.none
        schema = schema_for(ApiKey.ALTER_CLIENT_QUOTAS, 1)
        m = schema.request_module
        request = schema.request_type(
            entries=(
                m.EntryData(
                    entity=(m.EntityData(entity_type="user", entity_name=user),),
                    ops=tuple(m.OpData(key=k, value=v, remove=False) for k, v in values.items()),
                ),
            ),
            validate_only=False,
        )
        (entry,) = client.request(ApiKey.ALTER_CLIENT_QUOTAS, 1, request).entries
        assert entry.error_code == ErrorCode.none, entry.error_message


def test_a_default_user_quota_applies_to_anonymous_plaintext_clients() -> None:
    with BrokerProcess(config=QUOTA_CONFIG) as process:
        set_quota(process, [("user", None)], producer_byte_rate=20_000)
        stats = ThrottleStats()
        producer = Producer(
            {
                "bootstrap.servers": process.bootstrap,
                "statistics.interval.ms": 250,
                "stats_cb": stats,
                "batch.size": 16384,
            }
        )
        produce_for(producer, "quota-anonymous", 2.5)
        producer.poll(0.5)
    assert stats.max_ms > 0


# -- Describe / Alter --------------------------------------------------------------------------


def test_describe_alter_round_trip(broker: BrokerProcess) -> None:
    set_quota(broker, [("user", "rt-alice")], producer_byte_rate=1024, request_percentage=12.5)
    set_quota(broker, [("user", "rt-alice"), ("client-id", "rt-app")], consumer_byte_rate=2048)
    set_quota(broker, [("user", None)], consumer_byte_rate=4096)
    exact = described(describe_quotas(broker, [("user", 0, "rt-alice")]))
    assert exact == {
        (("user", "rt-alice"),): {"producer_byte_rate": 1024.0, "request_percentage": 12.5},
        (("client-id", "rt-app"), ("user", "rt-alice")): {"consumer_byte_rate": 2048.0},
    }
    strict = described(describe_quotas(broker, [("user", 0, "rt-alice")], strict=True))
    assert list(strict) == [(("user", "rt-alice"),)]
    default = described(describe_quotas(broker, [("user", 1, None)], strict=True))
    assert default == {(("user", None),): {"consumer_byte_rate": 4096.0}}
    # Remove one key; removing the last key of an entity removes the entity.
    assert (
        alter_quotas(broker, [("user", "rt-alice")], [("request_percentage", None)]).error_code == 0
    )
    assert alter_quotas(broker, [("user", None)], [("consumer_byte_rate", None)]).error_code == 0
    after = described(describe_quotas(broker, [("user", 2, None)]))
    assert after[(("user", "rt-alice"),)] == {"producer_byte_rate": 1024.0}
    assert (("user", None),) not in after


def test_validate_only_changes_nothing(broker: BrokerProcess) -> None:
    entry = alter_quotas(broker, [("client-id", "vo")], [("producer_byte_rate", 5.0)], True)
    assert entry.error_code == ErrorCode.none
    assert described(describe_quotas(broker, [("client-id", 0, "vo")])) == {}


@pytest.mark.parametrize(
    ("pairs", "ops"),
    [
        ([("client-id", "bad")], [("no_such_quota", 1.0)]),
        ([("client-id", "bad")], [("producer_byte_rate", -1.0)]),
        ([("client-id", "bad")], [("producer_byte_rate", 1.5)]),
        ([("group", "bad")], [("producer_byte_rate", 1.0)]),
        ([("ip", "not-an-ip")], [("connection_creation_rate", 1.0)]),
        ([("ip", "10.0.0.1"), ("user", "u")], [("connection_creation_rate", 1.0)]),
    ],
)
def test_bad_alterations_are_invalid_request(
    broker: BrokerProcess, pairs: list[tuple[str, str | None]], ops: list[tuple[str, float]]
) -> None:
    entry = alter_quotas(broker, pairs, ops)
    assert entry.error_code == ErrorCode.invalid_request
    assert entry.error_message
    assert described(describe_quotas(broker, [("client-id", 0, "bad")])) == {}


def test_bad_describe_filters(broker: BrokerProcess) -> None:
    assert describe_quotas(broker, [("user", 0, None)]).error_code == ErrorCode.invalid_request
    assert (
        describe_quotas(broker, [("user", 2, None), ("user", 1, None)]).error_code
        == ErrorCode.invalid_request
    )
    assert describe_quotas(broker, [("group", 2, None)]).error_code == ErrorCode.unsupported_version


def test_quotas_persist_across_restart(broker: BrokerProcess) -> None:
    set_quota(broker, [("client-id", "kept")], producer_byte_rate=777)
    broker.restart()
    kept = described(describe_quotas(broker, [("client-id", 0, "kept")]))
    assert kept == {(("client-id", "kept"),): {"producer_byte_rate": 777.0}}


def test_request_percentage_throttles_any_request(broker: BrokerProcess) -> None:
    """0.001% of a thread is exceeded by a handful of Metadata requests; the response that
    crosses it carries throttle_time_ms (capped at one window, as Kafka caps it)."""
    set_quota(broker, [("client-id", "busy")], request_percentage=0.001)
    schema = schema_for(ApiKey.METADATA, 12)
    request = schema.request_type(
        topics=None,
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    throttles = []
    with WireClient(broker.host, broker.port, client_id="busy") as client:
        for _ in range(200):
            response = client.request(ApiKey.METADATA, 12, request)
            throttles.append(response.throttle_time.total_seconds() * 1000)
            if throttles[-1] > 0:
                break
    assert 0 < throttles[-1] <= 1000
