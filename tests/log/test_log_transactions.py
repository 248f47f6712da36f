"""Transactions on the partition log: markers, the last stable offset, aborted lists."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode
from log_helpers import NOW_MS, OpenLog, batch_offsets, make_batch

from moldau.log import AbortedTxn, AppendInfo, AppendOrigin, LogAppendError
from moldau.log.config import LogConfig
from moldau.log.log import PartitionLog
from moldau.protocol.records import NewRecord, build_batch, end_txn_marker


class Txn:
    """A transactional producer writing to one partition log (its own sequence numbers)."""

    def __init__(self, log: PartitionLog, producer_id: int, epoch: int = 0) -> None:
        self.log = log
        self.producer_id = producer_id
        self.epoch = epoch
        self.seq = 0

    def send(self, count: int = 1) -> AppendInfo:
        batch = make_batch(
            count,
            producer_id=self.producer_id,
            producer_epoch=self.epoch,
            base_sequence=self.seq,
            is_transactional=True,
        )
        info = self.log.append_as_leader(batch, leader_epoch=0, now_ms=NOW_MS)
        self.seq += count
        return info

    def end(self, commit: bool, *, coordinator_epoch: int = 0, epoch: int | None = None) -> int:
        info = self.log.append_txn_marker(
            producer_id=self.producer_id,
            producer_epoch=self.epoch if epoch is None else epoch,
            commit=commit,
            coordinator_epoch=coordinator_epoch,
            leader_epoch=0,
            now_ms=NOW_MS,
        )
        assert info.base_offset == info.last_offset
        return info.base_offset


def plain(log: PartitionLog, count: int = 1) -> AppendInfo:
    return log.append_as_leader(make_batch(count), leader_epoch=0, now_ms=NOW_MS)


def all_aborted(log: PartitionLog) -> list[AbortedTxn]:
    return log.aborted_transactions(0, log.log_end_offset)


def test_commit_moves_the_lso_past_the_transaction(open_log: OpenLog) -> None:
    log = open_log()
    plain(log, 2)
    txn = Txn(log, 7)
    assert log.last_stable_offset == 2
    assert txn.send(3).base_offset == 2
    txn.send(1)
    assert log.last_stable_offset == 2
    assert log.high_watermark == 6
    assert log.producer_state.producers[7].current_txn_first_offset == 2
    marker = txn.end(commit=True)
    assert marker == 6
    assert log.last_stable_offset == log.log_end_offset == 7
    assert log.producer_state.producers[7].current_txn_first_offset == -1
    assert all_aborted(log) == []


def test_abort_is_indexed_with_its_range_and_lso(open_log: OpenLog) -> None:
    log = open_log()
    txn = Txn(log, 7)
    txn.send(2)
    txn.send(2)
    marker = txn.end(commit=False, coordinator_epoch=3)
    assert marker == 4
    assert all_aborted(log) == [AbortedTxn(7, 0, 4, 5)]
    assert log.last_stable_offset == 5
    entry = log.producer_state.producers[7]
    assert entry.coordinator_epoch == 3
    assert entry.current_txn_first_offset == -1


def test_a_transaction_spans_partitions_independently(tmp_path: Path) -> None:
    logs = [PartitionLog.open(tmp_path / f"t-{i}", LogConfig(), recover=False) for i in range(2)]
    try:
        plain(logs[1], 5)
        producers = [Txn(log, 42) for log in logs]
        producers[0].send(1)
        producers[1].send(2)
        assert [log.last_stable_offset for log in logs] == [0, 5]
        producers[0].end(commit=False)
        assert [log.last_stable_offset for log in logs] == [2, 5]
        producers[1].end(commit=False)
        assert [log.last_stable_offset for log in logs] == [2, 8]
        assert all_aborted(logs[0]) == [AbortedTxn(42, 0, 1, 2)]
        assert all_aborted(logs[1]) == [AbortedTxn(42, 5, 7, 8)]
    finally:
        for log in logs:
            log.close()


def test_lso_with_two_interleaved_producers(open_log: OpenLog) -> None:
    log = open_log()
    a, b = Txn(log, 1), Txn(log, 2)
    a.send(2)  # 0-1
    b.send(1)  # 2
    a.send(1)  # 3
    plain(log)  # 4
    assert log.last_stable_offset == 0
    a.end(commit=True)  # 5
    assert log.last_stable_offset == 2
    b.send(1)  # 6
    assert log.last_stable_offset == 2
    a.send(1)  # 7: a new transaction of producer 1
    assert log.last_stable_offset == 2
    b.end(commit=False)  # 8: the LSO after it is a's open transaction
    assert log.last_stable_offset == 7
    a.end(commit=False)  # 9
    assert log.last_stable_offset == 10
    assert all_aborted(log) == [AbortedTxn(2, 2, 8, 7), AbortedTxn(1, 7, 9, 10)]


def test_read_up_to_the_lso_hides_the_open_transaction(open_log: OpenLog) -> None:
    log = open_log()
    plain(log, 2)
    txn = Txn(log, 5)
    txn.send(2)
    plain(log, 1)
    data = log.read(0, 1 << 20, max_offset=log.last_stable_offset)
    assert batch_offsets(data.read_bytes()) == [(0, 1)]
    assert log.read(2, 1 << 20, max_offset=log.last_stable_offset).size == 0
    txn.end(commit=True)
    data = log.read(0, 1 << 20, max_offset=log.last_stable_offset)
    assert batch_offsets(data.read_bytes()) == [(0, 1), (2, 3), (4, 4), (5, 5)]


def test_fetch_aborted_transactions_cover_the_returned_batches(open_log: OpenLog) -> None:
    log = open_log()
    a, b = Txn(log, 1), Txn(log, 2)
    a.send(2)  # 0-1
    a.end(commit=False)  # 2
    plain(log, 3)  # 3-5
    b.send(1)  # 6
    b.end(commit=False)  # 7
    # everything: both aborted transactions
    data = log.read(0, 1 << 20, max_offset=log.last_stable_offset)
    assert log.fetch_aborted_transactions(0, data) == [
        AbortedTxn(1, 0, 2, 3),
        AbortedTxn(2, 6, 7, 8),
    ]
    # only the first batch: the bound is the next batch's base offset (2)
    first = log.read(0, 1, max_offset=log.last_stable_offset)
    assert batch_offsets(first.read_bytes()) == [(0, 1)]
    assert log.fetch_aborted_transactions(0, first) == [AbortedTxn(1, 0, 2, 3)]
    # from the plain batch on: producer 1's transaction ended before it
    middle = log.read(3, 1 << 20, max_offset=log.last_stable_offset)
    assert log.fetch_aborted_transactions(3, middle) == [AbortedTxn(2, 6, 7, 8)]
    plain_only = log.read(3, 1, max_offset=log.last_stable_offset)
    assert log.fetch_aborted_transactions(3, plain_only) == []


def test_stale_producer_epoch_marker_is_refused(open_log: OpenLog) -> None:
    log = open_log()
    txn = Txn(log, 9, epoch=4)
    txn.send(1)
    end = log.log_end_offset
    with pytest.raises(LogAppendError) as raised:
        txn.end(commit=True, epoch=3)
    assert raised.value.error_code == ErrorCode.invalid_producer_epoch
    assert log.log_end_offset == end
    assert log.last_stable_offset == 0


def test_stale_coordinator_epoch_marker_is_fenced(open_log: OpenLog) -> None:
    log = open_log()
    txn = Txn(log, 9)
    txn.send(1)
    txn.end(commit=True, coordinator_epoch=5)
    txn.send(1)
    end = log.log_end_offset
    with pytest.raises(LogAppendError) as raised:
        txn.end(commit=False, coordinator_epoch=4)
    assert raised.value.error_code == ErrorCode.transaction_coordinator_fenced
    assert log.log_end_offset == end
    assert txn.end(commit=False, coordinator_epoch=5) == end


def test_marker_without_data_is_written_but_not_indexed(open_log: OpenLog) -> None:
    log = open_log()
    plain(log, 2)
    assert Txn(log, 3).end(commit=False) == 2
    assert log.log_end_offset == 3
    assert log.last_stable_offset == 3
    assert all_aborted(log) == []
    assert log.producer_state.producers[3].current_txn_first_offset == -1


def test_marker_with_a_bumped_epoch_fences_the_old_epoch(open_log: OpenLog) -> None:
    # the coordinator aborts a fenced producer's transaction with epoch + 1
    log = open_log()
    txn = Txn(log, 9, epoch=1)
    txn.send(1)
    txn.end(commit=False, epoch=2)
    assert log.producer_state.producers[9].producer_epoch == 2
    with pytest.raises(LogAppendError) as raised:
        txn.send(1)
    assert raised.value.error_code == ErrorCode.invalid_producer_epoch


def test_control_batch_from_a_client_is_invalid(open_log: OpenLog) -> None:
    log = open_log()
    batch = bytearray(
        build_batch(
            [end_txn_marker(True, 0)],
            producer_id=1,
            producer_epoch=0,
            base_sequence=0,
            is_transactional=True,
            is_control=True,
        )
    )
    with pytest.raises(LogAppendError) as raised:
        log.append_as_leader(batch, leader_epoch=0, now_ms=NOW_MS)
    assert raised.value.error_code == ErrorCode.invalid_record
    assert log.log_end_offset == 0


def test_coordinator_control_batch_must_be_a_marker(open_log: OpenLog) -> None:
    log = open_log()
    not_a_marker = bytearray(
        build_batch(
            [NewRecord(key=b"\x00\x00\x00\x05", value=None)],
            producer_id=1,
            producer_epoch=0,
            is_transactional=True,
            is_control=True,
        )
    )
    with pytest.raises(LogAppendError) as raised:
        log.append_as_leader(
            not_a_marker, leader_epoch=0, now_ms=NOW_MS, origin=AppendOrigin.COORDINATOR
        )
    assert raised.value.error_code == ErrorCode.invalid_record
    no_producer = bytearray(build_batch([end_txn_marker(True, 0)], is_control=True))
    with pytest.raises(LogAppendError):
        log.append_as_leader(
            no_producer, leader_epoch=0, now_ms=NOW_MS, origin=AppendOrigin.COORDINATOR
        )
    assert log.log_end_offset == 0


def test_coordinator_data_batch_skips_sequences_but_checks_the_epoch(open_log: OpenLog) -> None:
    log = open_log()

    def offsets_batch(epoch: int) -> bytearray:
        return make_batch(1, producer_id=11, producer_epoch=epoch, is_transactional=True)

    with pytest.raises(LogAppendError) as raised:  # base sequence -1 from a client
        log.append_as_leader(offsets_batch(2), leader_epoch=0, now_ms=NOW_MS)
    assert raised.value.error_code == ErrorCode.invalid_record
    coordinator = AppendOrigin.COORDINATOR
    log.append_as_leader(offsets_batch(2), leader_epoch=0, now_ms=NOW_MS, origin=coordinator)
    log.append_as_leader(offsets_batch(2), leader_epoch=0, now_ms=NOW_MS, origin=coordinator)
    assert log.log_end_offset == 2
    assert log.last_stable_offset == 0
    with pytest.raises(LogAppendError) as raised:
        log.append_as_leader(offsets_batch(1), leader_epoch=0, now_ms=NOW_MS, origin=coordinator)
    assert raised.value.error_code == ErrorCode.invalid_producer_epoch
    Txn(log, 11, epoch=2).end(commit=True)
    assert log.last_stable_offset == 3


def test_completed_transaction_stays_unstable_until_the_hw_passes_its_marker(
    tmp_path: Path,
) -> None:
    leader = PartitionLog.open(tmp_path / "t-0", LogConfig(), recover=False)
    follower = PartitionLog.open(tmp_path / "t-1", LogConfig(), recover=False)
    try:
        plain(leader, 1)
        txn = Txn(leader, 4)
        txn.send(2)  # 1-2
        txn.end(commit=False)  # 3
        follower.append_as_follower(leader.read(0, 1 << 20).read_bytes(), now_ms=NOW_MS)
        assert follower.log_end_offset == 4
        follower.high_watermark = 3  # the marker is not replicated everywhere yet
        assert follower.last_stable_offset == 1
        follower.high_watermark = 4
        assert follower.last_stable_offset == 4
        assert all_aborted(follower) == all_aborted(leader) == [AbortedTxn(4, 1, 3, 4)]
        assert follower.producer_state.producers[4].current_txn_first_offset == -1
    finally:
        leader.close()
        follower.close()


def test_non_transactional_appends_leave_no_transaction_state(open_log: OpenLog) -> None:
    log = open_log()
    log.append_as_leader(
        make_batch(2, producer_id=3, producer_epoch=0, base_sequence=0), leader_epoch=0,
        now_ms=NOW_MS,
    )  # fmt: skip
    plain(log)
    assert log.producer_state.ongoing_transactions == {}
    assert log.last_stable_offset == log.high_watermark == 3


# --- property: random interleavings against a model -----------------------------------------

Op = tuple[str, int, int]
ops_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(0, 3), st.integers(1, 3)),
        st.tuples(st.sampled_from(["commit", "abort"]), st.integers(0, 3), st.just(0)),
        st.tuples(st.just("plain"), st.just(0), st.integers(1, 3)),
        st.tuples(st.sampled_from(["reopen", "crash"]), st.just(0), st.just(0)),
    ),
    max_size=40,
)


class Model:
    """The obvious specification: open transactions by producer, aborted list, LSO."""

    def __init__(self) -> None:
        self.end = 0
        self.open: dict[int, int] = {}
        self.aborted: list[AbortedTxn] = []

    def lso(self) -> int:
        return min([*self.open.values(), self.end])

    def send(self, pid: int, count: int) -> None:
        self.open.setdefault(pid, self.end)
        self.end += count

    def finish(self, pid: int, commit: bool) -> None:
        marker = self.end
        self.end += 1
        first = self.open.pop(pid, None)
        if first is not None and not commit:
            self.aborted.append(AbortedTxn(pid, first, marker, self.lso()))

    def window(self, fetch_offset: int, upper: int) -> list[AbortedTxn]:
        found = []
        for txn in self.aborted:
            if txn.last_offset >= fetch_offset and txn.first_offset < upper:
                found.append(txn)
            if txn.last_stable_offset >= upper:
                break
        return found


@settings(max_examples=60, deadline=None)
@given(ops=ops_strategy, data=st.data())
def test_random_interleavings_match_the_model(ops: list[Op], data: st.DataObject) -> None:
    from log_helpers import crash

    config = LogConfig(segment_bytes=400)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "t-0"
        log = PartitionLog.open(directory, config, recover=False, now_ms=NOW_MS)
        model = Model()
        producers = {pid: Txn(log, 100 + pid) for pid in range(4)}
        try:
            for kind, pid, count in ops:
                if kind == "send":
                    producers[pid].send(count)
                    model.send(100 + pid, count)
                elif kind in ("commit", "abort"):
                    producers[pid].end(commit=kind == "commit")
                    model.finish(100 + pid, kind == "commit")
                elif kind == "plain":
                    plain(log, count)
                    model.end += count
                else:
                    if kind == "reopen":
                        log.close()
                    else:
                        crash(log)
                    log = PartitionLog.open(
                        directory, config, recover=kind == "crash", now_ms=NOW_MS
                    )
                    for producer in producers.values():
                        producer.log = log
                assert log.log_end_offset == model.end
                assert log.last_stable_offset == model.lso()
            assert all_aborted(log) == model.aborted
            assert {
                pid: first for pid, first in log.producer_state.ongoing_transactions.items()
            } == model.open
            if model.end:
                fetch_offset = data.draw(st.integers(0, model.end - 1))
                upper = data.draw(st.integers(fetch_offset + 1, model.end))
                assert log.aborted_transactions(fetch_offset, upper) == model.window(
                    fetch_offset, upper
                )
        finally:
            if not log.closed:
                log.close()


def test_lso_never_falls_below_the_log_start(open_log: OpenLog) -> None:
    log = open_log()
    Txn(log, 1).send(2)
    plain(log, 3)
    assert log.last_stable_offset == 0
    log.delete_records_before(3)
    assert log.last_stable_offset == 3
