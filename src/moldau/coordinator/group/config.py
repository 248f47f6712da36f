"""The group coordinator's settings, with Kafka's names and defaults."""

from __future__ import annotations

from dataclasses import dataclass

INT_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class GroupCoordinatorConfig:
    """Plain values, so that the coordinator does not depend on the broker's config classes.

    The broker builds it from ``group.min.session.timeout.ms``,
    ``group.max.session.timeout.ms``, ``group.initial.rebalance.delay.ms``,
    ``group.max.size``, ``offsets.retention.minutes``,
    ``offsets.retention.check.interval.ms`` and ``offsets.topic.num.partitions``, and for
    KIP-848 consumer groups ``group.consumer.heartbeat.interval.ms``,
    ``group.consumer.session.timeout.ms``, ``group.consumer.max.size`` and
    ``group.consumer.assignors``.
    ``new_member_join_timeout_ms`` and ``offset_metadata_max_bytes`` are Kafka's fixed
    defaults (``group.classic.new.member.join.timeout.ms`` is internal in Kafka, and
    ``offset.metadata.max.bytes`` is 4096).
    """

    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1_800_000
    initial_rebalance_delay_ms: int = 3000
    max_size: int = INT_MAX
    new_member_join_timeout_ms: int = 300_000
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    offsets_retention_check_interval_ms: int = 600_000
    offset_metadata_max_bytes: int = 4096
    num_partitions: int = 50
    consumer_heartbeat_interval_ms: int = 5000
    consumer_session_timeout_ms: int = 45_000
    consumer_max_size: int = INT_MAX
    consumer_assignors: tuple[str, ...] = ("uniform", "range")
