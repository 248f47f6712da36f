"""Transactions across restarts: open transactions, the LSO and the aborted list come back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from log_helpers import NOW_MS, OpenLog, crash, make_batch

from moldau.log import AbortedTxn
from moldau.log.config import LogConfig
from moldau.log.log import PartitionLog

FIRST_LOG = "00000000000000000000.log"


def send(log: PartitionLog, producer_id: int, count: int = 1, value_size: int = 10) -> int:
    entry = log.producer_state.producers.get(producer_id)
    seq = entry.last_seq + 1 if entry is not None and entry.last_seq >= 0 else 0
    return log.append_as_leader(
        make_batch(
            count,
            value_size=value_size,
            producer_id=producer_id,
            producer_epoch=0,
            base_sequence=seq,
            is_transactional=True,
        ),
        leader_epoch=0,
        now_ms=NOW_MS,
    ).base_offset


def end(log: PartitionLog, producer_id: int, commit: bool, coordinator_epoch: int = 0) -> int:
    return log.append_txn_marker(
        producer_id=producer_id,
        producer_epoch=0,
        commit=commit,
        coordinator_epoch=coordinator_epoch,
        leader_epoch=0,
        now_ms=NOW_MS,
    ).base_offset


def state(log: PartitionLog) -> tuple[int, int, list[AbortedTxn], dict[int, int]]:
    return (
        log.log_end_offset,
        log.last_stable_offset,
        log.aborted_transactions(0, log.log_end_offset),
        dict(log.producer_state.ongoing_transactions),
    )


def build_history(log: PartitionLog) -> None:
    """Aborted, committed and open transactions of three producers over several segments."""
    send(log, 1, 2, value_size=60)
    send(log, 2, 1, value_size=60)
    end(log, 1, commit=False, coordinator_epoch=2)
    log.append_as_leader(make_batch(2, value_size=60), leader_epoch=0, now_ms=NOW_MS)
    end(log, 2, commit=True)
    send(log, 3, 2, value_size=60)
    send(log, 1, 1, value_size=60)
    end(log, 3, commit=False)
    send(log, 2, 1, value_size=60)  # 2 and 1 stay open


@pytest.fixture
def config() -> LogConfig:
    return LogConfig(segment_bytes=400)


def test_clean_reopen_keeps_open_transactions_and_aborts(
    open_log: OpenLog, config: LogConfig
) -> None:
    log = open_log(config)
    build_history(log)
    before = state(log)
    assert before[1] < before[0]  # something is open
    assert len(before[2]) == 2
    log.close()
    reopened = open_log(config)
    assert state(reopened) == before
    entry = reopened.producer_state.producers[1]
    assert entry.coordinator_epoch == 2
    assert entry.current_txn_first_offset == before[3][1]


@pytest.mark.parametrize("damage", ["none", "no_snapshots", "corrupt_snapshots", "no_txnindex"])
def test_crash_recovery_rebuilds_the_same_state(
    open_log: OpenLog, log_dir: Path, config: LogConfig, damage: str
) -> None:
    log = open_log(config)
    build_history(log)
    before = state(log)
    crash(log)
    if damage == "no_snapshots":
        for path in log_dir.glob("*.snapshot"):
            path.unlink()
    elif damage == "corrupt_snapshots":
        for path in log_dir.glob("*.snapshot"):
            path.write_bytes(b"\x00\x01garbage")
    elif damage == "no_txnindex":
        assert list(log_dir.glob("*.txnindex"))
        for path in log_dir.glob("*.txnindex"):
            path.unlink()
    recovered = open_log(config, recover=True)
    assert state(recovered) == before
    if damage == "no_txnindex":
        # only the entries of the replayed stretch come back, with no duplicates
        assert sum(p.stat().st_size for p in log_dir.glob("*.txnindex")) <= 2 * 34


def test_missing_txnindex_is_rebuilt_from_the_log_when_no_snapshot_helps(
    open_log: OpenLog, log_dir: Path, config: LogConfig
) -> None:
    log = open_log(config)
    build_history(log)
    before = state(log)
    crash(log)
    for path in [*log_dir.glob("*.txnindex"), *log_dir.glob("*.snapshot")]:
        path.unlink()
    recovered = open_log(config, recover=True)
    assert state(recovered) == before
    assert sum(p.stat().st_size for p in log_dir.glob("*.txnindex")) == 2 * 34


def test_replay_does_not_duplicate_index_entries(
    open_log: OpenLog, log_dir: Path, config: LogConfig
) -> None:
    log = open_log(config)
    build_history(log)
    before = state(log)
    log.close()
    for path in log_dir.glob("*.snapshot"):
        path.unlink()  # a full replay over intact txn indexes
    reopened = open_log(config)
    assert state(reopened) == before
    assert sum(p.stat().st_size for p in log_dir.glob("*.txnindex")) == 2 * 34


def test_sigkill_mid_transaction_then_abort_hides_the_data(
    open_log: OpenLog, config: LogConfig
) -> None:
    log = open_log(config)
    log.append_as_leader(make_batch(3), leader_epoch=0, now_ms=NOW_MS)
    first = send(log, 8, 2)
    send(log, 8, 1)
    log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=NOW_MS)
    assert log.last_stable_offset == first == 3
    log.flush()
    crash(log)
    recovered = open_log(config, recover=True, recovery_point=log.recovery_point)
    assert recovered.last_stable_offset == first
    marker = end(recovered, 8, commit=False)
    assert recovered.last_stable_offset == marker + 1
    assert recovered.aborted_transactions(first, marker) == [
        AbortedTxn(8, first, marker, marker + 1)
    ]
    # the producer continues with its next sequence in a new transaction
    assert send(recovered, 8, 1) == marker + 1


def test_cut_log_tail_reopens_the_transaction_and_drops_its_entry(
    open_log: OpenLog, log_dir: Path
) -> None:
    log = open_log()
    first = send(log, 4, 2)
    size_before_marker = log.active_segment.size
    end(log, 4, commit=False)
    assert len(log.aborted_transactions(0, log.log_end_offset)) == 1
    crash(log)
    os.truncate(log_dir / FIRST_LOG, size_before_marker + 10)  # a torn marker
    recovered = open_log(recover=True)
    assert recovered.log_end_offset == 2
    assert recovered.aborted_transactions(0, 2) == []
    assert recovered.last_stable_offset == first
    assert (log_dir / "00000000000000000000.txnindex").stat().st_size == 0
    assert end(recovered, 4, commit=True) == 2
    assert recovered.last_stable_offset == 3
