"""The aborted-transaction index: Kafka's file format, search, and its life with segments."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from log_helpers import NOW_MS, OpenLog, make_batch

from moldau.log import AbortedTxn
from moldau.log.config import LogConfig
from moldau.log.log import PartitionLog
from moldau.log.txn_index import ENTRY_SIZE, TransactionIndex

FIRST_TXN_INDEX = "00000000000000000000.txnindex"


def abort_txn(log: PartitionLog, producer_id: int, count: int = 1, value_size: int = 10) -> int:
    """Write a transaction of ``count`` records and abort it; return the marker offset."""
    entry = log.producer_state.producers.get(producer_id)
    seq = entry.last_seq + 1 if entry is not None else 0
    log.append_as_leader(
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
    )
    return log.append_txn_marker(
        producer_id=producer_id,
        producer_epoch=0,
        commit=False,
        coordinator_epoch=0,
        leader_epoch=0,
        now_ms=NOW_MS,
    ).base_offset


def test_entries_use_kafkas_34_byte_format(tmp_path: Path) -> None:
    index = TransactionIndex(tmp_path / FIRST_TXN_INDEX, 0)
    assert not index.path.exists()  # created lazily
    index.append(AbortedTxn(7, 10, 20, 15))
    index.append(AbortedTxn(-2, 21, 30, 31))
    data = index.path.read_bytes()
    assert ENTRY_SIZE == 34
    assert data == struct.pack(">hqqqq", 0, 7, 10, 20, 15) + struct.pack(
        ">hqqqq", 0, -2, 21, 30, 31
    )
    loaded = TransactionIndex(index.path, 0)
    loaded.load()
    assert loaded.entries == [AbortedTxn(7, 10, 20, 15), AbortedTxn(-2, 21, 30, 31)]


def test_entries_must_come_in_marker_order(tmp_path: Path) -> None:
    index = TransactionIndex(tmp_path / FIRST_TXN_INDEX, 0)
    index.append(AbortedTxn(1, 0, 5, 6))
    with pytest.raises(ValueError):
        index.append(AbortedTxn(2, 1, 5, 6))
    assert len(index.entries) == 1


def test_torn_tail_is_cut_on_load(tmp_path: Path) -> None:
    index = TransactionIndex(tmp_path / FIRST_TXN_INDEX, 0)
    index.append(AbortedTxn(1, 0, 5, 6))
    index.append(AbortedTxn(2, 6, 8, 9))
    with open(index.path, "ab") as f:
        f.write(b"\x00\x01\x02")
    loaded = TransactionIndex(index.path, 0)
    loaded.load()
    assert [t.last_offset for t in loaded.entries] == [5, 8]
    assert index.path.stat().st_size == 2 * ENTRY_SIZE
    # an unknown version ends the valid entries too
    raw = bytearray(index.path.read_bytes())
    raw[ENTRY_SIZE : ENTRY_SIZE + 2] = b"\x00\x09"
    index.path.write_bytes(bytes(raw))
    loaded.load()
    assert [t.last_offset for t in loaded.entries] == [5]


def test_truncate_to_drops_entries_at_and_after_the_offset(tmp_path: Path) -> None:
    index = TransactionIndex(tmp_path / FIRST_TXN_INDEX, 0)
    for marker in (3, 6, 9):
        index.append(AbortedTxn(marker, marker - 2, marker, marker + 1))
    index.truncate_to(6)
    assert [t.last_offset for t in index.entries] == [3]
    assert index.path.stat().st_size == ENTRY_SIZE
    index.append(AbortedTxn(1, 7, 8, 9))
    assert [t.last_offset for t in index.entries] == [3, 8]


def test_collect_follows_kafkas_window_rules(tmp_path: Path) -> None:
    index = TransactionIndex(tmp_path / FIRST_TXN_INDEX, 0)
    a = AbortedTxn(1, 0, 4, 2)  # another transaction held the LSO at 2
    b = AbortedTxn(2, 2, 6, 7)
    c = AbortedTxn(3, 8, 10, 11)
    for txn in (a, b, c):
        index.append(txn)
    assert index.collect(0, 3) == ([a, b], True)  # b's LSO 7 ≥ 3: complete
    assert index.collect(5, 8) == ([b], True)
    assert index.collect(5, 20) == ([b, c], False)  # later segments may hold more
    assert index.collect(11, 20) == ([], False)
    assert index.collect(7, 8) == ([], True)  # b ended before 7; its LSO proves completeness


def test_abort_creates_the_index_file_of_the_marker_segment(
    open_log: OpenLog, log_dir: Path
) -> None:
    log = open_log(LogConfig(segment_bytes=300))
    log.append_as_leader(make_batch(1), leader_epoch=0, now_ms=NOW_MS)
    assert not (log_dir / FIRST_TXN_INDEX).exists()
    markers = [abort_txn(log, 1, value_size=60) for _ in range(4)]
    assert len(log.segments) > 1
    txn_indexes = {
        s.base_offset: [t.last_offset for t in s.txn_index.entries] for s in log.segments
    }
    for marker in markers:
        holder = next(s for s in log.segments if s.base_offset <= marker < s.next_offset)
        assert marker in txn_indexes[holder.base_offset]
        assert (log_dir / f"{holder.base_offset:020d}.txnindex").exists()
    assert [t.last_offset for t in log.aborted_transactions(0, log.log_end_offset)] == markers


def test_aborted_txn_with_data_in_an_earlier_segment_is_found(open_log: OpenLog) -> None:
    log = open_log(LogConfig(segment_bytes=300))
    log.append_as_leader(
        make_batch(2, value_size=100, producer_id=5, producer_epoch=0, base_sequence=0,
                   is_transactional=True),
        leader_epoch=0, now_ms=NOW_MS,
    )  # fmt: skip
    for _ in range(3):
        log.append_as_leader(make_batch(1, value_size=100), leader_epoch=0, now_ms=NOW_MS)
    marker = log.append_txn_marker(
        producer_id=5, producer_epoch=0, commit=False, coordinator_epoch=0, leader_epoch=0,
        now_ms=NOW_MS,
    ).base_offset  # fmt: skip
    assert log.segments[0].next_offset <= marker  # data and marker in different segments
    assert log.aborted_transactions(0, 1) == [AbortedTxn(5, 0, marker, marker + 1)]


def test_retention_deletes_txn_indexes_with_their_segments(
    open_log: OpenLog, log_dir: Path
) -> None:
    log = open_log(LogConfig(segment_bytes=300))
    markers = [abort_txn(log, 1, value_size=80) for _ in range(4)]
    assert (log_dir / FIRST_TXN_INDEX).exists()
    log.delete_records_before(markers[-1])
    assert log.log_start_offset == markers[-1]
    assert not (log_dir / FIRST_TXN_INDEX).exists()
    remaining = [t.last_offset for s in log.segments for t in s.txn_index.entries]
    assert remaining == [m for m in markers if m >= log.segments[0].base_offset]
    assert sorted(p.name for p in log_dir.glob("*.txnindex")) == sorted(
        f"{s.base_offset:020d}.txnindex" for s in log.segments if s.txn_index.entries
    )


def test_truncation_trims_and_deletes_txn_indexes(open_log: OpenLog, log_dir: Path) -> None:
    log = open_log(LogConfig(segment_bytes=300))
    markers = [abort_txn(log, 1, value_size=80) for _ in range(4)]
    log.truncate_to(markers[1])  # removes the second marker and everything after it
    assert [t.last_offset for t in log.aborted_transactions(0, log.log_end_offset)] == [markers[0]]
    files = list(log_dir.glob("*.txnindex"))
    assert sum(p.stat().st_size for p in files) == 34
    # the transaction whose marker was cut is open again
    assert log.producer_state.producers[1].current_txn_first_offset == markers[0] + 1
    assert log.last_stable_offset == markers[0] + 1
    log.truncate_fully_and_start_at(100)
    assert list(log_dir.glob("*.txnindex")) == []
    assert log.aborted_transactions(100, 100) == []
    assert log.last_stable_offset == 100


def test_orphan_txn_index_is_removed_on_open(open_log: OpenLog, log_dir: Path) -> None:
    log = open_log()
    log.close()
    orphan = log_dir / "00000000000000000500.txnindex"
    orphan.write_bytes(struct.pack(">hqqqq", 0, 1, 500, 501, 502))
    open_log()
    assert not orphan.exists()
