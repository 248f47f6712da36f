"""The transaction coordinator's settings, with Kafka's names and defaults."""

from __future__ import annotations

from dataclasses import dataclass

TRANSACTION_STATE_TOPIC = "__transaction_state"


@dataclass(frozen=True, slots=True)
class TxnCoordinatorConfig:
    """Plain values, so that the coordinator does not depend on the broker's config classes.

    The broker builds it from ``transaction.state.log.num.partitions``,
    ``transaction.max.timeout.ms``,
    ``transaction.abort.timed.out.transaction.cleanup.interval.ms``,
    ``transactional.id.expiration.ms`` and
    ``transaction.remove.expired.transaction.cleanup.interval.ms``.
    The marker backoffs are ours: Kafka's marker channel retries on its own send loop; we
    retry the partitions that answered a retriable error after a doubling pause.
    """

    num_partitions: int = 50
    max_timeout_ms: int = 900_000
    abort_timed_out_interval_ms: int = 10_000
    transactional_id_expiration_ms: int = 604_800_000
    remove_expired_interval_ms: int = 3_600_000
    marker_retry_backoff_ms: int = 100
    marker_retry_backoff_max_ms: int = 2_000
