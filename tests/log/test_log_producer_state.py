"""Idempotent producers: duplicates, sequence and epoch rules, snapshots, rebuild, expiry."""

from __future__ import annotations

from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode
from log_helpers import NOW_MS, OpenLog, crash, make_batch

from moldau.log.config import LogConfig
from moldau.log.errors import LogAppendError
from moldau.log.log import AppendInfo, PartitionLog
from moldau.log.producer_state import (
    BatchMetadata,
    ProducerStateEntry,
    ProducerStateManager,
)

PID = 4242
INT32_MAX = 2**31 - 1


def send(
    log: PartitionLog, seq: int, count: int = 1, *, epoch: int = 0, pid: int = PID
) -> AppendInfo:
    batch = make_batch(count, producer_id=pid, producer_epoch=epoch, base_sequence=seq)
    return log.append_as_leader(batch, leader_epoch=0, now_ms=NOW_MS)


def refused(log: PartitionLog, seq: int, count: int = 1, *, epoch: int = 0) -> int:
    with pytest.raises(LogAppendError) as info:
        send(log, seq, count, epoch=epoch)
    return info.value.error_code


def test_retry_of_a_recent_batch_is_a_duplicate(open_log: OpenLog) -> None:
    log = open_log()
    first = send(log, 0, 3)
    send(log, 3, 2)
    end = log.log_end_offset
    again = send(log, 0, 3)
    assert again.duplicate
    assert (again.base_offset, again.last_offset) == (first.base_offset, first.last_offset)
    assert log.log_end_offset == end
    assert send(log, 5, 1).base_offset == end


def test_only_the_last_five_batches_are_remembered(open_log: OpenLog) -> None:
    log = open_log()
    for seq in range(6):
        send(log, seq)
    assert send(log, 1).duplicate
    assert refused(log, 0) == ErrorCode.out_of_order_sequence_number


def test_gap_in_sequence_is_out_of_order(open_log: OpenLog) -> None:
    log = open_log()
    send(log, 0, 2)
    assert refused(log, 3) == ErrorCode.out_of_order_sequence_number
    assert refused(log, 1) == ErrorCode.out_of_order_sequence_number
    assert send(log, 2).base_offset == 2


def test_epochs(open_log: OpenLog) -> None:
    log = open_log()
    send(log, 0, epoch=3)
    assert refused(log, 1, epoch=2) == ErrorCode.invalid_producer_epoch
    assert refused(log, 5, epoch=4) == ErrorCode.out_of_order_sequence_number
    send(log, 0, epoch=4)
    assert send(log, 1, epoch=4).base_offset == 2
    assert refused(log, 2, epoch=3) == ErrorCode.invalid_producer_epoch


def test_unknown_producer_may_start_anywhere(open_log: OpenLog) -> None:
    # Kafka since KIP-360: no UNKNOWN_PRODUCER_ID for a producer the partition never saw.
    log = open_log()
    assert send(log, 17).base_offset == 0
    assert send(log, 18).base_offset == 1


def test_sequence_wraps_at_int32_max(open_log: OpenLog) -> None:
    log = open_log()
    send(log, INT32_MAX - 1, 2)  # sequences MAX-1 and MAX
    assert send(log, 0).base_offset == 2
    assert send(log, INT32_MAX - 1, 2).duplicate


def test_non_idempotent_batches_are_not_tracked(open_log: OpenLog) -> None:
    log = open_log()
    log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=NOW_MS)
    log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=NOW_MS)
    assert log.log_end_offset == 2
    assert not log.producer_state.producers


def test_transactional_producer_must_stay_transactional(open_log: OpenLog) -> None:
    log = open_log()
    batch = make_batch(1, producer_id=PID, producer_epoch=0, base_sequence=0, is_transactional=True)
    log.append_as_leader(batch, leader_epoch=0, now_ms=NOW_MS)
    assert refused(log, 1) == ErrorCode.invalid_txn_state


def test_duplicates_survive_a_clean_restart(open_log: OpenLog, log_dir: Path) -> None:
    log = open_log()
    offsets = [send(log, seq * 2, 2).base_offset for seq in range(5)]
    log.close()
    assert (log_dir / "00000000000000000010.snapshot").exists()
    reopened = open_log()
    for seq, offset in zip(range(5), offsets, strict=True):
        info = send(reopened, seq * 2, 2)
        assert info.duplicate and info.base_offset == offset
    assert refused(reopened, 11) == ErrorCode.out_of_order_sequence_number


def test_state_is_rebuilt_from_the_log_after_a_crash(open_log: OpenLog) -> None:
    log = open_log(LogConfig(segment_bytes=300))
    for seq in range(8):
        send(log, seq)
    send(log, 0, pid=7)
    assert len(log.segments) > 2
    crash(log)
    reopened = open_log(LogConfig(segment_bytes=300), recover=True)
    assert send(reopened, 7).duplicate
    assert send(reopened, 0, pid=7).duplicate
    assert refused(reopened, 9) == ErrorCode.out_of_order_sequence_number
    assert send(reopened, 8).base_offset == 9


def test_rebuild_without_any_snapshot(open_log: OpenLog, log_dir: Path) -> None:
    log = open_log()
    for seq in range(3):
        send(log, seq)
    log.close()
    for snapshot in log_dir.glob("*.snapshot"):
        snapshot.unlink()
    reopened = open_log()
    assert send(reopened, 2).duplicate
    assert refused(reopened, 4) == ErrorCode.out_of_order_sequence_number


def test_corrupt_snapshot_is_ignored_and_state_replayed(open_log: OpenLog, log_dir: Path) -> None:
    log = open_log()
    send(log, 0)
    send(log, 1)
    log.close()
    (snapshot,) = log_dir.glob("*.snapshot")
    snapshot.write_bytes(snapshot.read_bytes()[:-1] + b"\x00")
    reopened = open_log()
    assert not snapshot.exists()
    assert send(reopened, 1).duplicate


def test_producer_ids_expire(open_log: OpenLog) -> None:
    log = open_log(producer_id_expiration_ms=1000)
    send(log, 0)
    assert log.expire_producers(NOW_MS + 999) == 0
    assert log.expire_producers(NOW_MS + 1000) == 1
    assert send(log, 40).base_offset == 1  # unknown again: any sequence


def test_snapshot_round_trip_keeps_batches_and_wrapped_sequences(tmp_path: Path) -> None:
    manager = ProducerStateManager(tmp_path)
    entry = ProducerStateEntry(1, 3)
    entry.add_batch(3, BatchMetadata(INT32_MAX - 1, 1, 10, 13, 500))
    entry.add_batch(3, BatchMetadata(2, 2, 14, 14, 600))
    manager._producers[1] = entry
    other = ProducerStateEntry(2, 0)
    other.last_timestamp_ms = 700
    manager._producers[2] = other
    decoded = ProducerStateManager.decode_snapshot(manager.encode_snapshot())
    assert list(decoded[1].batches) == list(entry.batches)
    assert decoded[1].producer_epoch == 3
    assert not decoded[2].batches and decoded[2].producer_epoch == 0
    assert decoded[2].last_timestamp_ms == 700


def test_snapshot_taken_on_roll(open_log: OpenLog, log_dir: Path) -> None:
    log = open_log()
    send(log, 0, 4)
    log.roll()
    assert (log_dir / "00000000000000000004.snapshot").exists()
