"""The leader-epoch cache: Kafka's endOffsetFor rules, the checkpoint file, and how the
partition log keeps it in step with appends, truncation and restarts."""

from __future__ import annotations

from pathlib import Path

from log_helpers import NOW_MS, OpenLog, make_batch

from moldau.log.leader_epoch import CHECKPOINT_FILE, LeaderEpochCache
from moldau.protocol.records import NewRecord, build_batch


def cache_with(tmp_path: Path, entries: list[tuple[int, int]]) -> LeaderEpochCache:
    cache = LeaderEpochCache(tmp_path)
    for epoch, start in entries:
        cache.assign(epoch, start)
    return cache


def test_end_offset_for_follows_kafkas_rules(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, [(1, 0), (3, 10), (5, 20)])
    assert cache.end_offset_for(5, 30) == (5, 30)  # the latest epoch ends at the LEO
    assert cache.end_offset_for(3, 30) == (3, 20)  # ends where the next epoch starts
    assert cache.end_offset_for(4, 30) == (3, 20)  # unknown epoch: the largest below it
    assert cache.end_offset_for(2, 30) == (1, 10)
    assert cache.end_offset_for(0, 30) == (0, 0)  # older than all: ends at the first start
    assert cache.end_offset_for(6, 30) == (-1, -1)  # newer than all: undefined
    assert cache.end_offset_for(-1, 30) == (-1, -1)
    assert LeaderEpochCache(tmp_path / "x").end_offset_for(0, 5) == (-1, -1)


def test_assign_keeps_epochs_and_offsets_increasing(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, [(1, 0), (3, 10)])
    assert not cache.assign(3, 15)  # same epoch later: nothing new
    assert not cache.assign(2, 12)  # an older epoch after a newer one: refused
    assert cache.assign(4, 10)  # same start, newer epoch: replaces epoch 3
    assert cache.entries() == [(1, 0), (4, 10)]
    assert cache.assign(6, 5)  # an earlier start drops what it contradicts
    assert cache.entries() == [(1, 0), (6, 5)]


def test_truncation_from_both_ends(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, [(1, 0), (3, 10), (5, 20)])
    cache.truncate_from_end(20)
    assert cache.entries() == [(1, 0), (3, 10)]
    cache.truncate_from_start(15)
    assert cache.entries() == [(3, 15)]
    cache.truncate_from_start(2)  # below the first entry: nothing to do
    assert cache.entries() == [(3, 15)]


def test_checkpoint_round_trip_and_corruption(tmp_path: Path) -> None:
    cache_with(tmp_path, [(0, 0), (2, 7)])
    text = (tmp_path / CHECKPOINT_FILE).read_text()
    assert text == "0\n2\n0 0\n2 7\n"
    assert LeaderEpochCache.load(tmp_path).entries() == [(0, 0), (2, 7)]
    (tmp_path / CHECKPOINT_FILE).write_text("0\n3\n0 0\n")
    assert LeaderEpochCache.load(tmp_path).entries() == []
    (tmp_path / CHECKPOINT_FILE).write_text("garbage")
    assert LeaderEpochCache.load(tmp_path).entries() == []


def test_leader_appends_record_each_new_epoch(open_log: OpenLog) -> None:
    log = open_log()
    for epoch in (0, 0, 1, 3):
        log.append_as_leader(make_batch(2), leader_epoch=epoch, now_ms=NOW_MS)
    assert log.leader_epochs.entries() == [(0, 0), (1, 4), (3, 6)]
    assert log.end_offset_for_epoch(0) == (0, 4)
    assert log.end_offset_for_epoch(2) == (1, 6)
    assert log.end_offset_for_epoch(3) == (3, 8)
    log.assign_leader_epoch(4)  # became leader again, before any append
    assert log.end_offset_for_epoch(3) == (3, 8)
    assert log.end_offset_for_epoch(4) == (4, 8)


def test_follower_appends_copy_epochs_and_truncation_drops_them(open_log: OpenLog) -> None:
    log = open_log()
    log.hw_follows_appends = False
    offset = 0
    for epoch in (2, 2, 5):
        batch = build_batch(
            [NewRecord(key=None, value=b"v", timestamp_ms=NOW_MS)] * 3,
            base_offset=offset,
            partition_leader_epoch=epoch,
        )
        log.append_as_follower(batch)
        offset += 3
    assert log.leader_epochs.entries() == [(2, 0), (5, 6)]
    assert log.high_watermark == 0  # a follower's HW comes from its leader
    log.truncate_to(6)
    assert log.leader_epochs.entries() == [(2, 0)]
    assert log.log_end_offset == 6


def test_epochs_survive_a_restart_and_a_cut_tail(open_log: OpenLog) -> None:
    log = open_log()
    log.append_as_leader(make_batch(2), leader_epoch=1, now_ms=NOW_MS)
    log.append_as_leader(make_batch(2), leader_epoch=2, now_ms=NOW_MS)
    log.close()
    reopened = open_log()
    assert reopened.leader_epochs.entries() == [(1, 0), (2, 2)]
    reopened.truncate_fully_and_start_at(10)
    assert reopened.leader_epochs.entries() == []


def test_hw_stays_when_replication_drives_it(open_log: OpenLog) -> None:
    log = open_log()
    log.hw_follows_appends = False
    log.append_as_leader(make_batch(3), leader_epoch=0, now_ms=NOW_MS)
    assert (log.high_watermark, log.log_end_offset) == (0, 3)
    log.high_watermark = 2
    assert log.high_watermark == 2


def test_log_start_follows_the_leader(open_log: OpenLog) -> None:
    log = open_log()
    for _ in range(3):
        log.append_as_leader(make_batch(2), leader_epoch=0, now_ms=NOW_MS)
        log.roll(NOW_MS)
    assert log.maybe_increment_log_start_offset(3)
    assert log.log_start_offset == 3
    assert log.segments[0].base_offset == 2  # the segment holding offset 3 stays
    assert not log.maybe_increment_log_start_offset(1)
    assert log.leader_epochs.entries() == [(0, 3)]
