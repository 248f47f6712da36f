"""Client-quota rules without a broker: precedence, Kafka's Rate, throttle math, validation,
and DescribeClientQuotas filter matching."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from moldau.broker.handlers.client_quotas import matches
from moldau.broker.quotas import (
    CONSUMER_BYTE_RATE,
    PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    QuotaManager,
    Rate,
    candidate_entities,
    patch_throttle_time,
    resolve_quota,
    throttle_time_ms,
    validate_entity,
    validate_quota_value,
)
from moldau.cluster.security_state import QuotaEntity, SecurityImage, normalize_entity


def entity(**names: str | None) -> QuotaEntity:
    return normalize_entity({k.replace("_", "-"): v for k, v in names.items()})


EVERY_LEVEL: dict[QuotaEntity, dict[str, float]] = {
    entity(user="alice", client_id="app"): {PRODUCER_BYTE_RATE: 1},
    entity(user="alice", client_id=None): {PRODUCER_BYTE_RATE: 2},
    entity(user="alice"): {PRODUCER_BYTE_RATE: 3},
    entity(user=None, client_id="app"): {PRODUCER_BYTE_RATE: 4},
    entity(user=None, client_id=None): {PRODUCER_BYTE_RATE: 5},
    entity(user=None): {PRODUCER_BYTE_RATE: 6},
    entity(client_id="app"): {PRODUCER_BYTE_RATE: 7},
    entity(client_id=None): {PRODUCER_BYTE_RATE: 8},
}


# -- precedence --------------------------------------------------------------------------------


def test_precedence_order_is_kafkas() -> None:
    order = [e for e, _tags in candidate_entities("alice", "app")]
    assert order == list(EVERY_LEVEL)


@pytest.mark.parametrize("level", range(8))
def test_most_specific_entity_wins(level: int) -> None:
    quotas = dict(list(EVERY_LEVEL.items())[level:])
    resolved = resolve_quota(quotas, PRODUCER_BYTE_RATE, "alice", "app")
    assert resolved is not None
    assert resolved[2] == level + 1


def test_precedence_is_per_key() -> None:
    quotas = {
        entity(user="alice"): {CONSUMER_BYTE_RATE: 10},
        entity(client_id="app"): {PRODUCER_BYTE_RATE: 20},
    }
    assert resolve_quota(quotas, PRODUCER_BYTE_RATE, "alice", "app") is not None
    assert resolve_quota(quotas, PRODUCER_BYTE_RATE, "alice", "app")[2] == 20  # type: ignore[index]
    assert resolve_quota(quotas, CONSUMER_BYTE_RATE, "alice", "app")[2] == 10  # type: ignore[index]
    assert resolve_quota(quotas, REQUEST_PERCENTAGE, "alice", "app") is None


def test_other_names_do_not_match() -> None:
    quotas = {entity(user="bob"): {PRODUCER_BYTE_RATE: 1}, entity(client_id="x"): {"a": 1}}
    assert resolve_quota(quotas, PRODUCER_BYTE_RATE, "alice", "app") is None


def test_sensor_tags_replace_defaults_with_the_clients_names() -> None:
    """A default quota gives each user (client) its own allowance; /users/alice is shared by
    all of alice's client ids."""
    tags = dict(candidate_entities("alice", "app"))
    assert tags[entity(user=None)] == ("alice", "")
    assert tags[entity(user="alice")] == ("alice", "")
    assert tags[entity(client_id=None)] == ("", "app")
    assert tags[entity(user=None, client_id=None)] == ("alice", "app")


# -- Rate --------------------------------------------------------------------------------------


def test_rate_divides_by_at_least_samples_minus_one_windows() -> None:
    rate = Rate(11, 1000)
    rate.record(10_000, now_ms=0)
    assert rate.window_size_ms(0) == 10_000
    assert rate.measure(0) == pytest.approx(1000.0)
    # After 12 s of whole windows the elapsed time itself is used.
    for second in range(1, 13):
        rate.record(1000, now_ms=second * 1000)
    assert rate.window_size_ms(12_500) == pytest.approx(10_500)


def test_rate_forgets_samples_older_than_the_whole_window() -> None:
    rate = Rate(2, 1000)
    rate.record(5000, now_ms=0)
    assert rate.total(1999) == 5000
    assert rate.total(2000) == 0
    assert rate.measure(2000) == 0


def test_rate_uses_a_ring_of_samples() -> None:
    rate = Rate(3, 1000)
    for second in range(5):
        rate.record(100, now_ms=second * 1000)
    assert rate.total(4000) == 300  # the three newest samples


def test_throttle_time_is_kafkas_formula() -> None:
    # observed 300/s against 200/s over 10 s: (300 - 200) / 200 * 10 s = 5 s.
    assert throttle_time_ms(300, 200, 10_000) == 5000
    assert throttle_time_ms(200, 200, 10_000) == 0
    assert throttle_time_ms(100, 200, 10_000) == 0


def test_patch_throttle_time_writes_after_the_header() -> None:
    frame = bytes(4) + (7).to_bytes(4, "big") + b"\x00" + bytes(4) + b"rest"
    patched = patch_throttle_time(frame, header_flexible=True, throttle_ms=1234)
    assert patched[9:13] == (1234).to_bytes(4, "big")
    assert patched[13:] == b"rest" and patched[:9] == frame[:9]


# -- QuotaManager ------------------------------------------------------------------------------


def manager_with(quotas: dict[QuotaEntity, dict[str, float]], **kwargs: int) -> QuotaManager:
    manager = QuotaManager(**kwargs)
    manager.update(SecurityImage(quotas=MappingProxyType(quotas)))
    return manager


def test_manager_throttles_only_past_the_quota() -> None:
    manager = manager_with({entity(client_id="app"): {PRODUCER_BYTE_RATE: 1000}})
    assert manager.active
    # 10 windows' worth passes unthrottled (Kafka's first-burst allowance) ...
    assert manager.record(PRODUCER_BYTE_RATE, "u", "app", 10_000, now_ms=0) == 0
    # ... the next 5000 bytes make 1500/s over 10 s: (1500 - 1000) / 1000 * 10 s.
    assert manager.record(PRODUCER_BYTE_RATE, "u", "app", 5000, now_ms=0) == 5000
    # Another client id has no quota at all.
    assert manager.record(PRODUCER_BYTE_RATE, "u", "other", 10**9, now_ms=0) == 0


def test_user_quota_is_shared_and_default_quota_is_per_user() -> None:
    manager = manager_with(
        {
            entity(user="alice"): {PRODUCER_BYTE_RATE: 100},
            entity(user=None): {PRODUCER_BYTE_RATE: 100},
        }
    )
    manager.record(PRODUCER_BYTE_RATE, "alice", "a", 1000, now_ms=0)
    assert manager.record(PRODUCER_BYTE_RATE, "alice", "b", 1000, now_ms=0) > 0  # shared
    manager.record(PRODUCER_BYTE_RATE, "bob", "a", 1000, now_ms=0)
    assert manager.record(PRODUCER_BYTE_RATE, "carol", "a", 1000, now_ms=0) == 0  # own


def test_unrecord_takes_the_value_back() -> None:
    manager = manager_with({entity(client_id="c"): {CONSUMER_BYTE_RATE: 100}}, window_num=2)
    assert manager.record(CONSUMER_BYTE_RATE, "u", "c", 500, now_ms=0) > 0
    manager.unrecord(CONSUMER_BYTE_RATE, "u", "c", 500, now_ms=0)
    assert manager.observed_rate(CONSUMER_BYTE_RATE, "u", "c", now_ms=0) == 0
    assert manager.record(CONSUMER_BYTE_RATE, "u", "c", 100, now_ms=0) == 0


def test_request_percentage_throttle_is_capped_at_one_window() -> None:
    manager = manager_with({entity(client_id="c"): {REQUEST_PERCENTAGE: 1}})
    assert manager.record(REQUEST_PERCENTAGE, "u", "c", 10_000, now_ms=0) == 1000


def test_max_value_in_window_caps_a_fetch() -> None:
    manager = manager_with({entity(client_id="c"): {CONSUMER_BYTE_RATE: 1000}}, window_num=11)
    assert manager.max_value_in_window(CONSUMER_BYTE_RATE, "u", "c") == 10_000
    assert manager.max_value_in_window(CONSUMER_BYTE_RATE, "u", "d") is None


def test_a_changed_quota_applies_to_measured_usage() -> None:
    manager = manager_with({entity(client_id="c"): {PRODUCER_BYTE_RATE: 10_000}})
    assert manager.record(PRODUCER_BYTE_RATE, "u", "c", 50_000, now_ms=0) == 0
    manager.update(
        SecurityImage(quotas=MappingProxyType({entity(client_id="c"): {PRODUCER_BYTE_RATE: 1000}}))
    )
    assert manager.record(PRODUCER_BYTE_RATE, "u", "c", 1, now_ms=0) > 0


def test_no_enforced_quota_means_inactive() -> None:
    assert not manager_with({entity(client_id="c"): {"controller_mutation_rate": 5}}).active
    assert not manager_with({}).active


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pairs", "problem"),
    [
        ([("user", "alice")], None),
        ([("user", None), ("client-id", "app")], None),
        ([("ip", "10.0.0.1")], None),
        ([], "empty"),
        ([("group", "g")], "entity type: group"),
        ([("user", "a"), ("user", "b")], "duplicate"),
        ([("user", "")], "Empty user"),
        ([("ip", "10.0.0.1"), ("user", "a")], "ip cannot be combined"),
    ],
)
def test_validate_entity(pairs: list[tuple[str, str | None]], problem: str | None) -> None:
    result = validate_entity(pairs)
    if problem is None:
        assert result is None
    else:
        assert result is not None and problem in result


@pytest.mark.parametrize(
    ("types", "key", "value", "ok"),
    [
        (["user"], PRODUCER_BYTE_RATE, 1024, True),
        (["client-id"], REQUEST_PERCENTAGE, 12.5, True),
        (["user"], "controller_mutation_rate", 2.5, True),
        (["user"], "bogus_rate", 1, False),
        (["user"], "connection_creation_rate", 1, False),
        (["ip"], "connection_creation_rate", 10, True),
        (["ip"], PRODUCER_BYTE_RATE, 10, False),
        (["user"], PRODUCER_BYTE_RATE, 10.5, False),
        (["user"], PRODUCER_BYTE_RATE, 0, False),
        (["user"], PRODUCER_BYTE_RATE, -5, False),
        (["user"], REQUEST_PERCENTAGE, float("nan"), False),
    ],
)
def test_validate_quota_value(types: list[str], key: str, value: float, ok: bool) -> None:
    assert (validate_quota_value(types, key, value) is None) is ok


# -- DescribeClientQuotas filters ----------------------------------------------------------------


def test_describe_filter_matching() -> None:
    alice_app = entity(user="alice", client_id="app")
    alice = entity(user="alice")
    default_user = entity(user=None)
    assert matches(alice_app, {"user": "alice"}, set(), strict=False)
    assert not matches(alice_app, {"user": "alice"}, set(), strict=True)
    assert matches(alice, {"user": "alice"}, set(), strict=True)
    assert matches(default_user, {"user": None}, set(), strict=True)
    assert not matches(alice, {"user": None}, set(), strict=False)
    assert matches(alice_app, {}, {"client-id"}, strict=False)
    assert not matches(alice, {}, {"client-id"}, strict=False)
    assert matches(alice, {}, set(), strict=False)
    assert not matches(alice, {}, set(), strict=True)
