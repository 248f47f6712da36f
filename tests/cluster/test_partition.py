"""Partition (leader side): high watermark over the ISR, acks=all waiters, ISR expand/shrink.

Real partition logs in a temp dir; the metadata store's compare-and-swap is a fake that
records the proposals (and can be held open to look at the "in flight" state).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode

from moldau.cluster.partition import Partition, PartitionError, ReplicationConfig
from moldau.cluster.state import PartitionState
from moldau.log.config import LogConfig
from moldau.log.log import PartitionLog
from moldau.protocol.records import NewRecord, build_batch

NOW_MS = 1_700_000_000_000
LAG_MS = 100


def batch(count: int = 1) -> bytearray:
    return bytearray(
        build_batch([NewRecord(key=None, value=b"v", timestamp_ms=NOW_MS) for _ in range(count)])
    )


class FakeAlter:
    """Records every CAS; answers ``result``, after ``gate`` is set when one is given."""

    def __init__(self, result: bool = True) -> None:
        self.calls: list[tuple[str, int, PartitionState, PartitionState]] = []
        self.result = result
        self.gate: asyncio.Event | None = None

    async def __call__(
        self, topic: str, partition: int, expected: PartitionState, new: PartitionState
    ) -> bool:
        self.calls.append((topic, partition, expected, new))
        if self.gate is not None:
            await self.gate.wait()
        return self.result


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.logs: list[PartitionLog] = []
        self.alter = FakeAlter()
        self.hw_moves: list[tuple[str, int]] = []
        self.lease = True
        self.eligible: set[int] | None = None

    def partition(
        self,
        replicas: tuple[int, ...] = (1, 2, 3),
        isr: tuple[int, ...] | None = None,
        *,
        min_isr: int = 1,
        with_alter: bool = True,
        prefill: int = 0,
        leader: bool = True,
    ) -> Partition:
        log = PartitionLog.open(
            self.tmp_path / f"t-{len(self.logs)}",
            LogConfig(min_insync_replicas=min_isr),
            recover=False,
            now_ms=NOW_MS,
        )
        self.logs.append(log)
        for _ in range(prefill):
            log.append_as_leader(batch(), leader_epoch=0, now_ms=NOW_MS)
        state = PartitionState(replicas=replicas, isr=replicas if isr is None else isr, leader=1)
        p = Partition(
            log.topic,
            log.partition,
            log,
            state,
            node_id=1,
            config=ReplicationConfig(node_id=1, replica_lag_time_max_ms=LAG_MS),
            alter_partition=self.alter if with_alter else None,
            on_high_watermark=lambda t, i: self.hw_moves.append((t, i)),
            lease_valid=lambda: self.lease,
            replica_eligible=lambda r: self.eligible is None or r in self.eligible,
        )
        if leader:
            p.make_leader(state, NOW_MS)
        return p

    def close(self) -> None:
        for log in self.logs:
            log.close()


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.close()


def append(p: Partition, n: int = 1, *, acks: int = 1) -> int:
    """Append ``n`` one-record batches; return the last offset."""
    last = -1
    for _ in range(n):
        last = p.append_as_leader(batch(), now_ms=NOW_MS, required_acks=acks).last_offset
    return last


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# --- high watermark -----------------------------------------------------------------------


def test_single_replica_high_watermark_follows_appends(h: Harness) -> None:
    p = h.partition(replicas=(1,), with_alter=False)
    append(p, 3)
    assert p.log.high_watermark == 3
    assert h.hw_moves == [(p.topic, p.partition)] * 3


def test_high_watermark_is_the_smallest_leo_over_the_isr(h: Harness) -> None:
    p = h.partition()
    append(p, 3)
    assert p.log.high_watermark == 0, "followers' LEOs are unknown: the HW must hold"
    p.on_follower_fetch(2, 2, NOW_MS)
    assert p.log.high_watermark == 0, "follower 3 has not fetched yet"
    p.on_follower_fetch(3, 1, NOW_MS)
    assert p.log.high_watermark == 1
    p.on_follower_fetch(3, 3, NOW_MS)
    assert p.log.high_watermark == 2
    p.on_follower_fetch(2, 3, NOW_MS)
    assert p.log.high_watermark == 3
    assert len(h.hw_moves) == 3


def test_high_watermark_never_moves_backwards(h: Harness) -> None:
    p = h.partition(replicas=(1, 2))
    append(p, 4)
    p.on_follower_fetch(2, 4, NOW_MS)
    assert p.log.high_watermark == 4
    p.on_follower_fetch(2, 1, NOW_MS)
    assert p.log.high_watermark == 4


def test_followers_outside_the_isr_do_not_hold_the_high_watermark(h: Harness) -> None:
    p = h.partition(replicas=(1, 2, 3), isr=(1, 2))
    append(p, 2)
    p.on_follower_fetch(2, 2, NOW_MS)
    assert p.log.high_watermark == 2


def test_new_leader_keeps_the_high_watermark_until_followers_fetch(h: Harness) -> None:
    p = h.partition(replicas=(1, 2), prefill=5, leader=False)
    p.log.high_watermark = 2
    p.make_leader(p.state, NOW_MS)
    assert p.log.high_watermark == 2
    p.on_follower_fetch(2, 4, NOW_MS)
    assert p.log.high_watermark == 4


# --- acks=all -----------------------------------------------------------------------------


async def test_waiters_complete_in_offset_order_as_the_high_watermark_moves(h: Harness) -> None:
    p = h.partition(replicas=(1, 2))
    append(p, 3)
    w2 = p.wait_for_replication(2, 60_000)
    w0 = p.wait_for_replication(0, 60_000)
    w1 = p.wait_for_replication(1, 60_000)
    p.on_follower_fetch(2, 2, NOW_MS)
    await settle()
    assert [asyncio.ensure_future(w).done() for w in (w0, w1, w2)] == [True, True, False]
    assert await w0 == ErrorCode.none
    assert await w1 == ErrorCode.none
    p.on_follower_fetch(2, 3, NOW_MS)
    assert await w2 == ErrorCode.none


async def test_wait_for_an_offset_below_the_high_watermark_is_done_at_once(h: Harness) -> None:
    p = h.partition(replicas=(1,), with_alter=False)
    last = append(p, 2, acks=-1)
    assert await p.wait_for_replication(last, 0) == ErrorCode.none


async def test_waiter_times_out(h: Harness) -> None:
    p = h.partition(replicas=(1, 2))
    last = append(p)
    assert await p.wait_for_replication(last, 1) == ErrorCode.request_timed_out
    p.on_follower_fetch(2, 1, NOW_MS)  # completing after the timeout is harmless
    assert p.log.high_watermark == 1


async def test_waiters_fail_when_leadership_is_lost(h: Harness) -> None:
    p = h.partition(replicas=(1, 2))
    last = append(p)
    waiter = p.wait_for_replication(last, 60_000)
    p.make_follower(p.state.next(leader=2, isr=(2,)))
    assert await waiter == ErrorCode.not_leader_or_follower
    assert await p.wait_for_replication(last, 60_000) == ErrorCode.not_leader_or_follower


async def test_waiters_fail_when_the_replica_stops(h: Harness) -> None:
    p = h.partition(replicas=(1, 2))
    waiter = p.wait_for_replication(append(p), 60_000)
    p.stop()
    assert await waiter == ErrorCode.not_leader_or_follower


def test_acks_all_is_refused_when_the_isr_is_below_min_insync_replicas(h: Harness) -> None:
    p = h.partition(replicas=(1, 2), isr=(1,), min_isr=2)
    with pytest.raises(PartitionError) as info:
        append(p, acks=-1)
    assert info.value.error_code == ErrorCode.not_enough_replicas
    assert p.log.log_end_offset == 0, "nothing may be appended"
    assert append(p, acks=1) == 0, "acks=1 does not care about the ISR size"


async def test_isr_shrinking_below_the_minimum_after_the_append(h: Harness) -> None:
    p = h.partition(replicas=(1, 2), min_isr=2)
    waiter = p.wait_for_replication(append(p, acks=-1), 60_000)
    p.update_state(p.state.next(isr=(1,)), NOW_MS)
    assert await waiter == ErrorCode.not_enough_replicas_after_append


async def test_lapsed_lease_refuses_writes_and_holds_the_high_watermark(h: Harness) -> None:
    p = h.partition(replicas=(1, 2))
    waiter = p.wait_for_replication(append(p), 60_000)
    h.lease = False
    with pytest.raises(PartitionError) as info:
        append(p)
    assert info.value.error_code == ErrorCode.not_leader_or_follower
    with pytest.raises(PartitionError):
        p.append_txn_marker(
            producer_id=1, producer_epoch=0, commit=True, coordinator_epoch=0, now_ms=NOW_MS
        )
    p.on_follower_fetch(2, 1, NOW_MS)
    await settle()
    assert p.log.high_watermark == 0
    assert not asyncio.ensure_future(waiter).done()
    h.lease = True
    assert p.maybe_increment_high_watermark()
    assert await waiter == ErrorCode.none


def test_followers_cannot_append(h: Harness) -> None:
    p = h.partition(replicas=(1, 2), leader=False)
    p.make_follower(p.state.next(leader=2))
    with pytest.raises(PartitionError) as info:
        append(p)
    assert info.value.error_code == ErrorCode.not_leader_or_follower


# --- ISR ----------------------------------------------------------------------------------


async def test_isr_shrinks_after_the_lag_time(h: Harness) -> None:
    p = h.partition(replicas=(1, 2, 3))
    append(p, 2)
    p.on_follower_fetch(2, 2, NOW_MS + 10)
    p.maybe_shrink_isr(NOW_MS + LAG_MS)
    await settle()
    assert h.alter.calls == [], "nobody lags longer than the limit yet"
    p.maybe_shrink_isr(NOW_MS + LAG_MS + 1)
    await settle()
    assert len(h.alter.calls) == 1
    topic, index, expected, new = h.alter.calls[0]
    assert (topic, index, expected) == (p.topic, p.partition, p.state)
    assert new == p.state.next(isr=(1, 2))
    assert p.state.isr == (1, 2, 3), "the ISR in force changes only through the image"


async def test_caught_up_follower_stays_in_the_isr_without_fetching(h: Harness) -> None:
    p = h.partition(replicas=(1, 2))
    append(p, 2)
    p.on_follower_fetch(2, 2, NOW_MS)
    p.maybe_shrink_isr(NOW_MS + 10 * LAG_MS)
    await settle()
    assert h.alter.calls == [], "a follower at the leader's LEO is in sync (Kafka's rule)"


async def test_follower_fetching_behind_a_moving_leo_is_caught_up_as_of_its_last_fetch(
    h: Harness,
) -> None:
    p = h.partition(replicas=(1, 2))
    append(p)
    p.on_follower_fetch(2, 0, NOW_MS + 50)
    append(p)
    p.on_follower_fetch(2, 1, NOW_MS + 90)  # reached the LEO of its previous fetch
    append(p)
    p.maybe_shrink_isr(NOW_MS + 50 + LAG_MS)
    await settle()
    assert h.alter.calls == []
    p.maybe_shrink_isr(NOW_MS + 51 + LAG_MS)
    await settle()
    assert [c[3].isr for c in h.alter.calls] == [(1,)]


async def test_isr_never_shrinks_to_nothing_and_keeps_the_leader(h: Harness) -> None:
    p = h.partition(replicas=(1, 2), isr=(1,))
    append(p)
    p.maybe_shrink_isr(NOW_MS + 10 * LAG_MS)
    await settle()
    assert h.alter.calls == []


async def test_pending_shrink_still_waits_for_the_leaving_follower(h: Harness) -> None:
    h.alter.gate = asyncio.Event()
    p = h.partition(replicas=(1, 2, 3))
    append(p, 2)
    p.on_follower_fetch(2, 2, NOW_MS + LAG_MS)
    p.maybe_shrink_isr(NOW_MS + LAG_MS + 1)
    await settle()
    assert p.isr_change_in_flight
    assert p.log.high_watermark == 0, "follower 3 is still in the ISR until the store says not"
    p.maybe_shrink_isr(NOW_MS + LAG_MS + 2)
    await settle()
    assert len(h.alter.calls) == 1, "one ISR change in flight at a time"
    new_state = h.alter.calls[0][3]
    p.update_state(new_state, NOW_MS + LAG_MS + 3)  # the image now shows the shrink
    h.alter.gate.set()
    await settle()
    assert not p.isr_change_in_flight
    assert p.log.high_watermark == 2


async def test_follower_joins_the_isr_once_it_reaches_the_high_watermark(h: Harness) -> None:
    p = h.partition(replicas=(1, 2, 3), isr=(1, 2))
    append(p, 3)
    p.on_follower_fetch(2, 3, NOW_MS)
    assert p.log.high_watermark == 3
    p.on_follower_fetch(3, 2, NOW_MS)
    await settle()
    assert h.alter.calls == []
    p.on_follower_fetch(3, 3, NOW_MS)
    await settle()
    assert [c[3] for c in h.alter.calls] == [p.state.next(isr=(1, 2, 3))]


async def test_expansion_is_in_replica_order(h: Harness) -> None:
    p = h.partition(replicas=(3, 1, 2), isr=(1,))
    p.on_follower_fetch(3, 0, NOW_MS)
    await settle()
    assert h.alter.calls[0][3].isr == (3, 1)


async def test_pending_expansion_counts_the_joining_follower_for_the_high_watermark(
    h: Harness,
) -> None:
    h.alter.gate = asyncio.Event()
    p = h.partition(replicas=(1, 2, 3), isr=(1, 2))
    append(p, 2)
    p.on_follower_fetch(3, 0, NOW_MS)  # LEO 0 ≥ HW 0: joins
    await settle()
    assert p.isr_change_in_flight
    p.on_follower_fetch(2, 2, NOW_MS)
    assert p.log.high_watermark == 0, "the joining follower is at 0"
    p.on_follower_fetch(3, 2, NOW_MS)
    assert p.log.high_watermark == 2
    h.alter.gate.set()
    await settle()


async def test_expansion_waits_for_the_start_of_the_leader_epoch(h: Harness) -> None:
    p = h.partition(replicas=(1, 2, 3), isr=(1, 2), prefill=3, leader=False)
    p.log.high_watermark = 1
    p.make_leader(p.state, NOW_MS)
    assert p.leader_epoch_start_offset == 3
    p.on_follower_fetch(3, 2, NOW_MS)
    await settle()
    assert h.alter.calls == [], "at the HW but before the epoch's first offset"
    p.on_follower_fetch(3, 3, NOW_MS)
    await settle()
    assert len(h.alter.calls) == 1


async def test_failed_isr_change_can_be_proposed_again(h: Harness) -> None:
    h.alter.result = False
    p = h.partition(replicas=(1, 2), isr=(1,))
    p.on_follower_fetch(2, 0, NOW_MS)
    await settle()
    assert not p.isr_change_in_flight
    assert p.state.isr == (1,)
    p.on_follower_fetch(2, 0, NOW_MS)
    await settle()
    assert len(h.alter.calls) == 2


async def test_ineligible_follower_does_not_join(h: Harness) -> None:
    h.eligible = {1}
    p = h.partition(replicas=(1, 2), isr=(1,))
    p.on_follower_fetch(2, 0, NOW_MS)
    await settle()
    assert h.alter.calls == []


async def test_single_node_never_changes_the_isr(h: Harness) -> None:
    p = h.partition(replicas=(1, 2), isr=(1,), with_alter=False)
    p.on_follower_fetch(2, 0, NOW_MS)
    p.maybe_shrink_isr(NOW_MS + 10 * LAG_MS)
    await settle()
    assert h.alter.calls == []


async def test_replica_set_changes_track_new_followers(h: Harness) -> None:
    p = h.partition(replicas=(1, 2), isr=(1,))
    p.update_state(p.state.next(replicas=(1, 2, 4), adding_replicas=(4,)), NOW_MS)
    assert p.is_replica(4)
    p.update_state(p.state.next(replicas=(1, 4)), NOW_MS)
    assert not p.is_replica(2)
