"""The transaction coordinator's state machine: every transition and error of Kafka's classic
protocol, driven through the sans-I/O shard with a fake runtime."""

from __future__ import annotations

import pytest
from kio.schema.errors import ErrorCode
from txn_shard_helpers import TIMEOUT_MS, TxnHarness

from moldau.coordinator.txn.config import TxnCoordinatorConfig
from moldau.coordinator.txn.coordinator import TransactionCoordinator
from moldau.coordinator.txn.messages import InitProducerIdResult, TxnMarkerRequest
from moldau.coordinator.txn.metadata import IllegalTransitionError
from moldau.coordinator.txn.records import (
    TransactionLogKey,
    TransactionLogValue,
    TxnRecord,
    decode_record,
    to_new_record,
)
from moldau.coordinator.txn.state import TransactionState as S

TP0 = ("out", 0)
TP1 = ("out", 1)
OFFSETS = ("__consumer_offsets", 7)


def state(h: TxnHarness, tid: str = "t") -> S:
    return h.coordinator.transactions[tid].state


def ongoing(h: TxnHarness, tid: str = "t") -> tuple[int, int]:
    """A producer with an ongoing transaction on TP0; returns (pid, epoch)."""
    r = h.init(tid)
    assert h.add(tid, r.producer_id, r.producer_epoch, TP0) is ErrorCode.none
    return r.producer_id, r.producer_epoch


# -- InitProducerId ------------------------------------------------------------------------


def test_init_new_id_allocates_producer_id_at_epoch_0() -> None:
    h = TxnHarness()
    assert h.init("t") == InitProducerIdResult(ErrorCode.none, 1000, 0)
    meta = h.coordinator.transactions["t"]
    assert (meta.state, meta.transaction_timeout_ms, meta.start_timestamp_ms) == (
        S.EMPTY,
        TIMEOUT_MS,
        -1,
    )
    assert len(h.log) == 1


@pytest.mark.parametrize("timeout_ms", [0, -1, 900_001])
def test_init_rejects_bad_timeout(timeout_ms: int) -> None:
    h = TxnHarness()
    assert h.init("t", timeout_ms).error is ErrorCode.invalid_transaction_timeout
    assert h.log == []


def test_init_accepts_max_timeout() -> None:
    assert TxnHarness().init("t", 900_000).error is ErrorCode.none


def test_init_empty_id_and_half_expected_are_invalid_requests() -> None:
    h = TxnHarness()
    assert h.init("").error is ErrorCode.invalid_request
    assert h.init("t", expected_pid=5).error is ErrorCode.invalid_request
    assert h.init("t", expected_epoch=5).error is ErrorCode.invalid_request


def test_init_existing_idle_id_bumps_epoch_and_keeps_producer_id() -> None:
    h = TxnHarness()
    h.init("t")
    h.now_ms += 5
    assert h.init("t", 30_000) == InitProducerIdResult(ErrorCode.none, 1000, 1)
    meta = h.coordinator.transactions["t"]
    assert (meta.transaction_timeout_ms, meta.last_update_timestamp_ms) == (30_000, h.now_ms)


def test_init_after_complete_commit_bumps_epoch_to_empty() -> None:
    h = TxnHarness()
    pid, epoch = ongoing(h)
    h.end("t", pid, epoch, commit=True)
    h.complete("t")
    assert state(h) is S.COMPLETE_COMMIT
    assert h.init("t") == InitProducerIdResult(ErrorCode.none, pid, epoch + 1)
    assert state(h) is S.EMPTY


def test_init_on_ongoing_fences_aborts_with_bumped_epoch_and_asks_to_retry() -> None:
    h = TxnHarness()
    pid, epoch = ongoing(h)
    h.add("t", pid, epoch, TP1)
    result = h.init("t")
    assert result == InitProducerIdResult(ErrorCode.concurrent_transactions)
    meta = h.coordinator.transactions["t"]
    assert (meta.state, meta.producer_epoch) == (S.PREPARE_ABORT, epoch + 1)
    assert h.markers == [TxnMarkerRequest(pid, epoch + 1, 3, False, (TP0, TP1))]
    # The zombie is fenced at once, and while markers are written everyone waits.
    assert h.add("t", pid, epoch, TP1) is ErrorCode.producer_fenced
    assert h.end("t", pid, epoch, commit=True) is ErrorCode.producer_fenced
    assert h.init("t").error is ErrorCode.concurrent_transactions
    h.complete("t")
    # The retry bumps once more: the fencing epoch is never handed out.
    assert h.init("t") == InitProducerIdResult(ErrorCode.none, pid, epoch + 2)


@pytest.mark.parametrize("commit", [True, False])
def test_init_during_prepare_is_concurrent_transactions(commit: bool) -> None:
    h = TxnHarness()
    pid, epoch = ongoing(h)
    h.end("t", pid, epoch, commit)
    before = len(h.log)
    assert h.init("t").error is ErrorCode.concurrent_transactions
    assert len(h.log) == before


def test_init_while_a_write_is_pending_is_concurrent_transactions() -> None:
    h = TxnHarness()
    h.init("t")
    result = h.coordinator.init_producer_id("t", TIMEOUT_MS, h.now_ms, h.allocate)
    assert result.transition is not None
    h.coordinator.begin(result.transition)
    assert h.init("t").error is ErrorCode.concurrent_transactions
    assert h.add("t", 1000, 0, TP0) is ErrorCode.concurrent_transactions
    assert h.end("t", 1000, 0, True) is ErrorCode.concurrent_transactions


def test_init_new_id_pending_is_concurrent_transactions() -> None:
    h = TxnHarness()
    result = h.coordinator.init_producer_id("t", TIMEOUT_MS, h.now_ms, h.allocate)
    assert result.transition is not None
    h.coordinator.begin(result.transition)
    assert h.init("t").error is ErrorCode.concurrent_transactions


def test_failed_write_leaves_state_unchanged() -> None:
    h = TxnHarness()
    _pid, epoch = ongoing(h)
    h.fail_next_write = True
    assert h.init("t").error is ErrorCode.concurrent_transactions  # answer if durable
    meta = h.coordinator.transactions["t"]
    assert (meta.state, meta.producer_epoch) == (S.ONGOING, epoch)
    assert "t" not in h.coordinator.pending
    # The fence is retried with the same single bump.
    h.init("t")
    assert h.coordinator.transactions["t"].producer_epoch == epoch + 1


def test_failed_first_init_leaves_no_metadata() -> None:
    h = TxnHarness()
    h.fail_next_write = True
    h.init("t")
    assert "t" not in h.coordinator.transactions
    assert h.init("t").error is ErrorCode.none


def test_epoch_exhaustion_rotates_producer_id() -> None:
    h = TxnHarness()
    h.init("t")
    h.coordinator.transactions["t"].producer_epoch = 32765
    assert h.init("t") == InitProducerIdResult(ErrorCode.none, 1000, 32766)
    assert h.init("t") == InitProducerIdResult(ErrorCode.none, 1001, 0)


def test_kip360_bump_with_expected_epoch_records_last_epoch() -> None:
    h = TxnHarness()
    r = h.init("t")
    bumped = h.init("t", expected_pid=r.producer_id, expected_epoch=r.producer_epoch)
    assert bumped == InitProducerIdResult(ErrorCode.none, r.producer_id, 1)
    # The client never got the answer and retries: same result, no second bump.
    again = h.init("t", expected_pid=r.producer_id, expected_epoch=r.producer_epoch)
    assert again == bumped


def test_kip360_stale_expected_epoch_is_fenced() -> None:
    h = TxnHarness()
    r = h.init("t")
    h.init("t")  # another instance: epoch 1, last epoch forgotten
    h.init("t")  # epoch 2
    fenced = h.init("t", expected_pid=r.producer_id, expected_epoch=0)
    assert fenced.error is ErrorCode.producer_fenced


def test_kip360_unknown_expected_producer_id_is_fenced() -> None:
    h = TxnHarness()
    h.init("t")
    assert h.init("t", expected_pid=999, expected_epoch=0).error is ErrorCode.producer_fenced


def test_kip360_new_id_with_expected_producer_id_gets_a_fresh_one() -> None:
    h = TxnHarness()
    r = h.init("t", expected_pid=55, expected_epoch=3)
    assert r == InitProducerIdResult(ErrorCode.none, 1000, 0)


def test_kip360_retry_after_rotation_returns_the_rotated_id() -> None:
    h = TxnHarness()
    h.init("t")
    h.coordinator.transactions["t"].producer_epoch = 32766
    rotated = h.init("t", expected_pid=1000, expected_epoch=32766)
    assert rotated == InitProducerIdResult(ErrorCode.none, 1001, 0)
    assert h.init("t", expected_pid=1000, expected_epoch=32766) == rotated
    assert h.init("t", expected_pid=1000, expected_epoch=32766) == rotated
    # The new producer id bumps normally from there.
    assert h.init("t", expected_pid=1001, expected_epoch=0).producer_epoch == 1


def test_kip360_exhausted_epoch_with_other_expected_epoch_is_fenced() -> None:
    h = TxnHarness()
    h.init("t")
    h.coordinator.transactions["t"].producer_epoch = 32766
    assert h.init("t", expected_pid=1000, expected_epoch=3).error is ErrorCode.producer_fenced


# -- AddPartitionsToTxn --------------------------------------------------------------------


def test_add_partitions_starts_transaction() -> None:
    h = TxnHarness()
    r = h.init("t")
    h.now_ms += 10
    assert h.add("t", r.producer_id, r.producer_epoch, TP0, OFFSETS) is ErrorCode.none
    meta = h.coordinator.transactions["t"]
    assert meta.state is S.ONGOING
    assert meta.partitions == {TP0, OFFSETS}
    assert meta.start_timestamp_ms == h.now_ms


def test_add_more_partitions_keeps_start_time() -> None:
    h = TxnHarness()
    pid, epoch = ongoing(h)
    start = h.coordinator.transactions["t"].start_timestamp_ms
    h.now_ms += 100
    assert h.add("t", pid, epoch, TP1) is ErrorCode.none
    meta = h.coordinator.transactions["t"]
    assert (meta.partitions, meta.start_timestamp_ms) == (frozenset({TP0, TP1}), start)


def test_add_known_partitions_answers_without_a_write() -> None:
    h = TxnHarness()
    pid, epoch = ongoing(h)
    before = len(h.log)
    assert h.add("t", pid, epoch, TP0) is ErrorCode.none
    assert len(h.log) == before


def test_add_after_complete_starts_a_new_transaction_now() -> None:
    h = TxnHarness()
    pid, epoch = ongoing(h)
    h.end("t", pid, epoch, commit=False)
    h.complete("t")
    h.now_ms += 1000
    assert h.add("t", pid, epoch, TP1) is ErrorCode.none
    meta = h.coordinator.transactions["t"]
    assert (meta.state, meta.partitions, meta.start_timestamp_ms) == (
        S.ONGOING,
        frozenset({TP1}),
        h.now_ms,
    )


def test_add_errors() -> None:
    h = TxnHarness()
    assert h.add("", 1, 0, TP0) is ErrorCode.invalid_request
    assert h.add("t", 1000, 0, TP0) is ErrorCode.invalid_producer_id_mapping
    r = h.init("t")
    assert h.add("t", r.producer_id + 1, 0, TP0) is ErrorCode.invalid_producer_id_mapping
    assert h.add("t", r.producer_id, 1, TP0) is ErrorCode.producer_fenced
    h.init("t")  # epoch 1 now
    assert h.add("t", r.producer_id, 0, TP0) is ErrorCode.producer_fenced
    assert h.log[-1].value is not None and h.log[-1].value.state is S.EMPTY


@pytest.mark.parametrize("commit", [True, False])
def test_add_during_prepare_is_concurrent_transactions(commit: bool) -> None:
    h = TxnHarness()
    pid, epoch = ongoing(h)
    h.end("t", pid, epoch, commit)
    assert h.add("t", pid, epoch, TP1) is ErrorCode.concurrent_transactions


# -- EndTxn --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("commit", "prepare", "complete"),
    [(True, S.PREPARE_COMMIT, S.COMPLETE_COMMIT), (False, S.PREPARE_ABORT, S.COMPLETE_ABORT)],
)
def test_end_transaction_prepares_then_completes(commit: bool, prepare: S, complete: S) -> None:
    h = TxnHarness()
    pid, epoch = ongoing(h)
    h.add("t", pid, epoch, OFFSETS)
    assert h.end("t", pid, epoch, commit) is ErrorCode.none
    assert state(h) is prepare
    assert h.markers == [TxnMarkerRequest(pid, epoch, 3, commit, (OFFSETS, TP0))]
    h.now_ms += 7
    h.complete("t")
    meta = h.coordinator.transactions["t"]
    assert (meta.state, meta.partitions, meta.last_update_timestamp_ms) == (
        complete,
        frozenset(),
        h.now_ms,
    )


@pytest.mark.parametrize("commit", [True, False])
def test_end_retry_after_completion_answers_none_without_write(commit: bool) -> None:
    h = TxnHarness()
    pid, epoch = ongoing(h)
    h.end("t", pid, epoch, commit)
    h.complete("t")
    before = len(h.log)
    assert h.end("t", pid, epoch, commit) is ErrorCode.none
    assert h.end("t", pid, epoch, not commit) is ErrorCode.invalid_txn_state
    assert len(h.log) == before


@pytest.mark.parametrize("commit", [True, False])
def test_end_during_prepare(commit: bool) -> None:
    h = TxnHarness()
    pid, epoch = ongoing(h)
    h.end("t", pid, epoch, commit)
    assert h.end("t", pid, epoch, commit) is ErrorCode.concurrent_transactions
    assert h.end("t", pid, epoch, not commit) is ErrorCode.invalid_txn_state
    assert len(h.markers) == 1


def test_end_on_empty_is_invalid_txn_state() -> None:
    h = TxnHarness()
    r = h.init("t")
    assert h.end("t", r.producer_id, r.producer_epoch, True) is ErrorCode.invalid_txn_state
    assert h.end("t", r.producer_id, r.producer_epoch, False) is ErrorCode.invalid_txn_state


def test_end_errors() -> None:
    h = TxnHarness()
    assert h.end("", 1, 0, True) is ErrorCode.invalid_request
    assert h.end("t", 1, 0, True) is ErrorCode.invalid_producer_id_mapping
    pid, epoch = ongoing(h)
    assert h.end("t", pid + 1, epoch, True) is ErrorCode.invalid_producer_id_mapping
    assert h.end("t", pid, epoch + 1, True) is ErrorCode.producer_fenced
    assert h.end("t", pid, epoch - 1, True) is ErrorCode.producer_fenced
    assert state(h) is S.ONGOING


def test_complete_transaction_ignores_stale_rounds() -> None:
    h = TxnHarness()
    pid, epoch = ongoing(h)
    c = h.coordinator
    assert c.complete_transaction("t", pid, epoch, h.now_ms) is None  # not prepared
    h.end("t", pid, epoch, True)
    assert c.complete_transaction("t", pid, epoch + 1, h.now_ms) is None
    assert c.complete_transaction("t", pid + 1, epoch, h.now_ms) is None
    assert c.complete_transaction("nope", pid, epoch, h.now_ms) is None
    assert c.complete_transaction("t", pid, epoch, h.now_ms) is not None


# -- timeouts and expiry -------------------------------------------------------------------


def test_timed_out_transaction_is_aborted_with_fencing_bump() -> None:
    h = TxnHarness()
    pid, epoch = ongoing(h)
    h.now_ms += TIMEOUT_MS
    assert h.coordinator.timed_out_transactions(h.now_ms) == []  # not older yet
    h.now_ms += 1
    (transition,) = h.coordinator.timed_out_transactions(h.now_ms)
    assert transition.pending_state is S.PREPARE_EPOCH_FENCE
    h.write(transition)
    meta = h.coordinator.transactions["t"]
    assert (meta.state, meta.producer_epoch) == (S.PREPARE_ABORT, epoch + 1)
    assert h.markers == [TxnMarkerRequest(pid, epoch + 1, 3, False, (TP0,))]
    assert h.end("t", pid, epoch, commit=True) is ErrorCode.producer_fenced
    assert h.coordinator.timed_out_transactions(h.now_ms + TIMEOUT_MS) == []


def test_timeout_skips_idle_and_pending_ids() -> None:
    h = TxnHarness()
    h.init("idle")
    ongoing(h, "busy")
    later = h.now_ms + 10 * TIMEOUT_MS
    (transition,) = h.coordinator.timed_out_transactions(later)
    assert transition.transactional_id == "busy"
    h.coordinator.begin(transition)
    assert h.coordinator.timed_out_transactions(later) == []


def test_expired_ids_are_tombstoned_and_removed() -> None:
    config = TxnCoordinatorConfig(transactional_id_expiration_ms=1000)
    h = TxnHarness(config)
    h.init("empty")
    pid, _epoch = ongoing(h, "open")
    ongoing(h, "done")
    meta = h.coordinator.transactions["done"]
    h.end("done", meta.producer_id, meta.producer_epoch, True)
    h.complete("done")
    assert h.coordinator.expired_transactional_ids(h.now_ms + 999) == []
    expired = h.coordinator.expired_transactional_ids(h.now_ms + 1000)
    assert sorted(t.transactional_id for t in expired) == ["done", "empty"]
    assert all(t.record.value is None and t.pending_state is S.DEAD for t in expired)
    for t in expired:
        h.coordinator.begin(t)
    # While the tombstone is written the id is already gone for the admin APIs.
    assert h.coordinator.describe("empty").error is ErrorCode.transactional_id_not_found
    for t in expired:
        h.write(t)
    assert set(h.coordinator.transactions) == {"open"}
    # An expired id starts over with a new producer id.
    assert h.init("empty").producer_id not in (1000, pid)


def test_expiry_skips_prepare_states() -> None:
    config = TxnCoordinatorConfig(transactional_id_expiration_ms=1000)
    h = TxnHarness(config)
    pid, epoch = ongoing(h)
    h.end("t", pid, epoch, True)
    assert h.coordinator.expired_transactional_ids(h.now_ms + 10**9) == []


# -- describe / list -----------------------------------------------------------------------


def test_describe() -> None:
    h = TxnHarness()
    pid, epoch = ongoing(h)
    h.add("t", pid, epoch, OFFSETS)
    d = h.coordinator.describe("t")
    assert (d.error, d.state, d.producer_id, d.producer_epoch) == (
        ErrorCode.none,
        "Ongoing",
        pid,
        epoch,
    )
    assert (d.transaction_timeout_ms, d.transaction_start_time_ms) == (TIMEOUT_MS, h.now_ms)
    assert d.partitions == (OFFSETS, TP0)
    assert h.coordinator.describe("x").error is ErrorCode.transactional_id_not_found


def test_list_filters() -> None:
    h = TxnHarness()
    h.init("a")
    ongoing(h, "b")
    h.now_ms += 5000
    ongoing(h, "c")
    c = h.coordinator
    names = [(t.transactional_id, t.state) for t in c.list_transactions([], [], -1, h.now_ms)]
    assert names == [("a", "Empty"), ("b", "Ongoing"), ("c", "Ongoing")]
    assert [t.transactional_id for t in c.list_transactions(["Ongoing"], [], -1, h.now_ms)] == [
        "b",
        "c",
    ]
    assert c.list_transactions(["Bogus"], [], -1, h.now_ms) == []
    pid_b = c.transactions["b"].producer_id
    assert [t.transactional_id for t in c.list_transactions([], [pid_b], -1, h.now_ms)] == ["b"]
    running = c.list_transactions(["Ongoing"], [], 1000, h.now_ms)
    assert [t.transactional_id for t in running] == ["b"]


# -- replay equals live --------------------------------------------------------------------


def test_replay_of_the_log_rebuilds_the_same_state() -> None:
    config = TxnCoordinatorConfig(transactional_id_expiration_ms=10**6)
    h = TxnHarness(config)
    h.init("gone")
    h.init("idle")
    h.now_ms += 2 * 10**6
    h.init("idle")
    pid, epoch = ongoing(h, "committed")
    h.add("committed", pid, epoch, OFFSETS)
    h.end("committed", pid, epoch, True)
    h.complete("committed")
    pid, epoch = ongoing(h, "preparing")
    h.end("preparing", pid, epoch, False)
    ongoing(h, "fenced")
    h.init("fenced")
    ongoing(h, "open")
    for t in h.coordinator.expired_transactional_ids(h.now_ms):
        h.write(t)

    fresh = TransactionCoordinator(config, coordinator_epoch=3)
    for record in h.log:
        new = to_new_record(record)
        fresh.replay(decode_record(new.key, new.value))

    def persisted(c: TransactionCoordinator) -> dict[str, tuple[object, ...]]:
        return {
            tid: (
                m.producer_id,
                m.producer_epoch,
                m.transaction_timeout_ms,
                m.state,
                m.partitions,
                m.last_update_timestamp_ms,
                m.start_timestamp_ms,
            )
            for tid, m in c.transactions.items()
        }

    assert persisted(fresh) == persisted(h.coordinator)
    assert set(fresh.transactions) == {"committed", "preparing", "fenced", "open", "idle"}
    assert fresh.prepared_transactions() == ["preparing", "fenced"]
    assert fresh.marker_request("fenced") == h.markers[-1]


def test_illegal_transitions_raise() -> None:
    h = TxnHarness()
    h.init("t")
    meta = h.coordinator.transactions["t"]
    with pytest.raises(IllegalTransitionError):
        meta.prepare_end(True, h.now_ms)
    with pytest.raises(IllegalTransitionError):
        meta.prepare_fence_and_abort(h.now_ms)
    with pytest.raises(IllegalTransitionError):
        meta.prepare_complete(h.now_ms)
    ongoing(h, "o")
    with pytest.raises(IllegalTransitionError):
        h.coordinator.transactions["o"].prepare_dead()


def test_replay_of_a_tombstone_for_an_unknown_id_is_harmless() -> None:
    c = TransactionCoordinator(TxnCoordinatorConfig())
    c.replay(TxnRecord(TransactionLogKey("x"), None))
    value = TransactionLogValue(7, 2, 1000, S.EMPTY, (), 5, -1)
    c.replay(TxnRecord(TransactionLogKey("x"), value))
    assert c.transactions["x"].producer_id == 7
    assert c.transactions["x"].last_producer_id == -1
