"""Transactional offset commits (TxnOffsetCommit): pending until the COMMIT marker, dropped by
ABORT, UNSTABLE_OFFSET_COMMIT for require_stable, Kafka's validation, log-order precedence
against plain commits, retention and deletion, the runtime, and replay from a real log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from group_helpers import Harness, ManualTimer
from kio.schema.errors import ErrorCode

from moldau.coordinator.group.config import GroupCoordinatorConfig
from moldau.coordinator.group.consumer_heartbeat import ConsumerHeartbeatRequest
from moldau.coordinator.group.coordinator import GroupCoordinator
from moldau.coordinator.group.messages import (
    LeavingMember,
    OffsetCommitRequest,
    PartitionOffset,
    TxnOffsetCommitRequest,
)
from moldau.coordinator.group.records import CoordinatorRecord
from moldau.coordinator.group.results import CoordinatorResult, TxnProducer
from moldau.coordinator.group.runtime import CoordinatorWriteError, GroupCoordinatorRuntime
from moldau.coordinator.group.state import GroupState
from moldau.log.config import LogConfig
from moldau.log.log import PartitionLog
from moldau.protocol.records import NewRecord, build_batch, end_txn_marker

T = TypeVar("T")

PID = 4000
EPOCH = 3


@dataclass
class TxnHarness(Harness):
    """The test runtime, also honouring ``CoordinatorResult.producer``: records of a
    transactional result replay as pending offsets of that producer."""

    batches: list[tuple[TxnProducer | None, list[CoordinatorRecord]]] = field(default_factory=list)

    def apply(self, result: CoordinatorResult[T]) -> T | None:
        if result.records:
            self.batches.append((result.producer, list(result.records)))
        self.written.extend(result.records)
        if result.replay:
            producer_id = -1 if result.producer is None else result.producer.producer_id
            for record in result.records:
                self.coordinator.replay(record, producer_id)
        if result.on_written is not None:
            follow = result.on_written(None, self.now)
            if follow is not None:
                self.apply(follow)
        return result.response

    def txn_commit(
        self,
        group: str,
        offsets: dict[tuple[str, int], int],
        *,
        producer_id: int = PID,
        producer_epoch: int = EPOCH,
        member_id: str = "",
        generation: int = -1,
        instance_id: str | None = None,
        metadata: str | None = "",
    ) -> dict[tuple[str, int], ErrorCode]:
        request = TxnOffsetCommitRequest(
            group_id=group,
            transactional_id=f"txn-{producer_id}",
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            generation_id=generation,
            member_id=member_id,
            group_instance_id=instance_id,
            offsets=tuple(
                PartitionOffset(topic, partition, offset, metadata=metadata)
                for (topic, partition), offset in offsets.items()
            ),
        )
        answer = self.apply(self.coordinator.commit_transactional_offsets(request, self.now))
        assert answer is not None
        return dict(answer)

    def end(self, commit: bool, producer_id: int = PID) -> None:
        self.coordinator.complete_transaction(producer_id, commit)

    def fetch(self, group: str, *tps: tuple[str, int], stable: bool = False) -> list[Any]:
        result = self.coordinator.fetch_offsets(group, list(tps), require_stable=stable)
        assert result.error is ErrorCode.none
        return [(f.offset, f.error) for f in result.partitions]


OK = ErrorCode.none


# -- pending until the marker --------------------------------------------------------------


def test_txn_offsets_are_invisible_until_the_commit_marker() -> None:
    h = TxnHarness()
    assert h.txn_commit("g", {("t", 0): 10, ("t", 1): 11}) == {("t", 0): OK, ("t", 1): OK}
    producer, records = h.batches[-1]
    assert producer == TxnProducer(PID, EPOCH)
    assert len(records) == 2  # one batch for the whole request
    assert h.fetch("g", ("t", 0), ("t", 1)) == [(-1, OK), (-1, OK)]
    assert h.coordinator.fetch_offsets("g", None).partitions == ()

    h.end(commit=True)
    assert h.fetch("g", ("t", 0), ("t", 1)) == [(10, OK), (11, OK)]
    assert len(h.coordinator.offsets.pending) == 0


def test_abort_drops_pending_offsets_and_keeps_the_committed_ones() -> None:
    h = TxnHarness()
    h.commit("g", {("t", 0): 5})
    h.txn_commit("g", {("t", 0): 50})
    h.end(commit=False)
    assert h.fetch("g", ("t", 0)) == [(5, OK)]
    h.end(commit=True)  # a second marker finds nothing left to commit
    assert h.fetch("g", ("t", 0)) == [(5, OK)]


def test_markers_complete_only_their_producer() -> None:
    h = TxnHarness()
    h.txn_commit("g", {("t", 0): 10}, producer_id=1)
    h.txn_commit("g", {("t", 1): 20}, producer_id=2)
    h.end(commit=True, producer_id=2)
    assert h.fetch("g", ("t", 0), ("t", 1)) == [(-1, OK), (20, OK)]
    assert h.fetch("g", ("t", 0), stable=True) == [(-1, ErrorCode.unstable_offset_commit)]
    h.end(commit=True, producer_id=1)
    assert h.fetch("g", ("t", 0), ("t", 1), stable=True) == [(10, OK), (20, OK)]


def test_a_later_txn_commit_in_the_same_transaction_replaces_the_earlier() -> None:
    h = TxnHarness()
    h.txn_commit("g", {("t", 0): 10})
    h.txn_commit("g", {("t", 0): 12})
    h.end(commit=True)
    assert h.fetch("g", ("t", 0)) == [(12, OK)]


# -- require_stable --------------------------------------------------------------------------


def test_require_stable_answers_unstable_offset_commit_for_pending_partitions() -> None:
    h = TxnHarness()
    h.commit("g", {("t", 0): 1, ("t", 1): 2})
    h.txn_commit("g", {("t", 0): 10})
    unstable = ErrorCode.unstable_offset_commit
    assert h.fetch("g", ("t", 0), ("t", 1), stable=True) == [(-1, unstable), (2, OK)]
    assert h.fetch("g", ("t", 0), ("t", 1)) == [(1, OK), (2, OK)]  # not asked: old value
    everything = h.coordinator.fetch_offsets("g", None, require_stable=True).partitions
    assert {(f.topic, f.partition): (f.offset, f.error) for f in everything} == {
        ("t", 0): (-1, unstable),
        ("t", 1): (2, OK),
    }
    h.end(commit=True)
    assert h.fetch("g", ("t", 0), ("t", 1), stable=True) == [(10, OK), (2, OK)]


# -- ordering against plain commits ----------------------------------------------------------


def test_a_plain_commit_written_after_the_txn_commit_wins() -> None:
    h = TxnHarness()
    h.txn_commit("g", {("t", 0): 10})
    h.commit("g", {("t", 0): 20})
    h.end(commit=True)
    assert h.fetch("g", ("t", 0)) == [(20, OK)]


def test_a_txn_commit_written_after_a_plain_commit_wins_when_committed() -> None:
    h = TxnHarness()
    h.commit("g", {("t", 0): 20})
    h.txn_commit("g", {("t", 0): 10})
    h.end(commit=True)
    assert h.fetch("g", ("t", 0)) == [(10, OK)]


# -- validation ------------------------------------------------------------------------------


def test_a_group_that_does_not_exist() -> None:
    h = TxnHarness()
    assert h.txn_commit("new", {("t", 0): 1}, generation=1, member_id="m") == {
        ("t", 0): ErrorCode.illegal_generation
    }
    assert "new" not in h.coordinator.groups
    assert h.txn_commit("new", {("t", 0): 1}) == {("t", 0): OK}
    group = h.coordinator.groups["new"]
    assert group.is_simple and group.state is GroupState.EMPTY


def test_classic_group_member_generation_and_instance_checks() -> None:
    h = TxnHarness()
    join = h.join("g", instance_id="i")  # a static member joins without MEMBER_ID_REQUIRED
    h.advance(1)
    member, generation = join.result().member_id, join.result().generation_id
    h.sync("g", member, generation, {member: b""}, instance_id="i")
    assert h.coordinator.groups["g"].state is GroupState.STABLE
    tp = ("t", 0)
    assert h.txn_commit("g", {tp: 1}, member_id="stranger", generation=generation) == {
        tp: ErrorCode.unknown_member_id
    }
    assert h.txn_commit("g", {tp: 1}, member_id=member, generation=generation + 1) == {
        tp: ErrorCode.illegal_generation
    }
    assert h.txn_commit(
        "g", {tp: 1}, member_id="old-incarnation", generation=generation, instance_id="i"
    ) == {tp: ErrorCode.fenced_instance_id}
    assert h.txn_commit("g", {tp: 1}, member_id=member, generation=generation, instance_id="i") == {
        tp: OK
    }
    assert h.txn_commit("g", {tp: 2}) == {tp: OK}  # nothing given (v0-2): not checked
    assert h.commit("g", {tp: 3}) == {tp: ErrorCode.unknown_member_id}  # unlike OffsetCommit
    assert len(h.coordinator.offsets.pending) == 1


def test_completing_rebalance_does_not_refuse_a_txn_commit() -> None:
    h = TxnHarness()
    join = h.join_new("g")
    h.advance(1)
    member, generation = join.result().member_id, join.result().generation_id
    assert h.coordinator.groups["g"].state is GroupState.COMPLETING_REBALANCE
    assert h.commit("g", {("t", 0): 1}, member_id=member, generation=generation) == {
        ("t", 0): ErrorCode.rebalance_in_progress
    }
    assert h.txn_commit("g", {("t", 0): 1}, member_id=member, generation=generation) == {
        ("t", 0): OK
    }


def test_offset_metadata_too_large_is_per_partition() -> None:
    config = GroupCoordinatorConfig(initial_rebalance_delay_ms=0, offset_metadata_max_bytes=4)
    h = TxnHarness(config=config)
    request = TxnOffsetCommitRequest(
        "g",
        "txn",
        PID,
        EPOCH,
        offsets=(PartitionOffset("t", 0, 1, metadata="long!"), PartitionOffset("t", 1, 2)),
    )
    answer = h.apply(h.coordinator.commit_transactional_offsets(request, h.now))
    assert answer == ((("t", 0), ErrorCode.offset_metadata_too_large), (("t", 1), OK))
    assert [r.key for r in h.batches[-1][1]] == [h.written[-1].key]
    h.end(commit=True)
    assert h.fetch("g", ("t", 0), ("t", 1)) == [(-1, OK), (2, OK)]


def test_empty_group_id_is_invalid() -> None:
    h = TxnHarness()
    assert h.txn_commit("", {("t", 0): 1}) == {("t", 0): ErrorCode.invalid_group_id}
    assert h.written == []


TOPIC_ID = uuid.UUID(int=7)


def consumer_heartbeat(h: TxnHarness, member_id: str, epoch: int) -> int:
    request = ConsumerHeartbeatRequest(
        group_id="cg",
        member_id=member_id,
        member_epoch=epoch,
        topics={"t": (TOPIC_ID, 2)},
        owned={},
        subscribed_topic_names=("t",),
        rebalance_timeout_ms=30_000,
    )
    result = h.apply(h.coordinator.consumer_group_heartbeat(request, h.now))
    assert result is not None and result.error is OK
    return result.member_epoch


def test_consumer_group_member_and_epoch_checks() -> None:
    h = TxnHarness()
    epoch = consumer_heartbeat(h, "m", 0)
    tp = ("t", 0)
    assert h.txn_commit("cg", {tp: 1}, member_id="x", generation=epoch) == {
        tp: ErrorCode.unknown_member_id
    }
    assert h.txn_commit("cg", {tp: 1}, member_id="m", generation=epoch + 1) == {
        tp: ErrorCode.illegal_generation  # STALE_MEMBER_EPOCH, as producers understand it
    }
    assert h.txn_commit("cg", {tp: 1}, member_id="m", generation=epoch) == {tp: OK}
    assert h.txn_commit("cg", {tp: 2}) == {tp: OK}  # nothing given: not checked
    h.end(commit=True)
    assert h.fetch("cg", tp) == [(2, OK)]


# -- deletion and retention ------------------------------------------------------------------


def test_deleting_a_group_drops_its_pending_offsets_and_a_later_txn_works() -> None:
    h = TxnHarness()
    h.commit("g", {("t", 0): 1})
    h.txn_commit("g", {("t", 0): 10, ("t", 1): 11})
    assert h.apply(h.coordinator.delete_groups(["g"])) == [("g", OK)]
    tombstones = [r.key for r in h.written[-3:]]
    assert sum(1 for k in tombstones if getattr(k, "partition", None) is not None) == 2
    assert "g" not in h.coordinator.groups
    assert len(h.coordinator.offsets.pending) == 0
    h.end(commit=True)  # the transaction commits after the deletion: nothing comes back
    assert "g" not in h.coordinator.groups
    assert h.fetch("g", ("t", 0), ("t", 1)) == [(-1, OK), (-1, OK)]
    assert h.txn_commit("g", {("t", 0): 30}, producer_id=PID + 1) == {("t", 0): OK}
    h.end(commit=True, producer_id=PID + 1)
    assert h.fetch("g", ("t", 0)) == [(30, OK)]


def test_offset_delete_tombstones_a_pending_offset() -> None:
    h = TxnHarness()
    h.txn_commit("g", {("t", 0): 10})
    result = h.apply(h.coordinator.delete_offsets("g", [("t", 0)]))
    assert result is not None and result.partitions == ((("t", 0), OK),)
    assert h.written[-1].value is None
    assert h.fetch("g", ("t", 0), stable=True) == [(-1, OK)]
    h.end(commit=True)
    assert h.fetch("g", ("t", 0)) == [(-1, OK)]


def test_retention_keeps_pending_partitions_and_their_group() -> None:
    config = GroupCoordinatorConfig(initial_rebalance_delay_ms=0, offsets_retention_ms=1000)
    h = TxnHarness(config=config)
    h.commit("g", {("t", 0): 1, ("t", 1): 2})
    h.txn_commit("g", {("t", 0): 10})
    h.txn_commit("pending-only", {("t", 0): 5})
    h.commit("mixed", {("t", 1): 2})
    h.txn_commit("mixed", {("t", 5): 9})  # another partition than the expiring one
    h.advance(5000)
    h.apply(h.coordinator.cleanup_group_metadata(h.now))
    assert h.fetch("g", ("t", 0), ("t", 1)) == [(1, OK), (-1, OK)]  # t-1 expired
    assert h.fetch("mixed", ("t", 1)) == [(-1, OK)]
    assert {"g", "pending-only", "mixed"} <= set(h.coordinator.groups)
    h.end(commit=False)
    h.apply(h.coordinator.cleanup_group_metadata(h.now))
    assert not {"g", "pending-only", "mixed"} & set(h.coordinator.groups)


# -- replay ------------------------------------------------------------------------------------


def test_replaying_the_records_with_their_producers_rebuilds_pending_state() -> None:
    h = TxnHarness()
    h.commit("g", {("t", 0): 1})
    h.txn_commit("g", {("t", 0): 10, ("t", 1): 11}, producer_id=1)
    h.txn_commit("g", {("t", 2): 12}, producer_id=2)
    h.commit("g", {("t", 1): 21})
    replayed = GroupCoordinator(ManualTimer(), h.config)
    for producer, records in h.batches:
        for record in records:
            replayed.replay(record, -1 if producer is None else producer.producer_id)
    for coordinator in (h.coordinator, replayed):
        coordinator.complete_transaction(1, True)
    assert replayed.offsets.offsets == h.coordinator.offsets.offsets
    assert list(replayed.offsets.pending) == list(h.coordinator.offsets.pending)
    assert h.fetch("g", ("t", 0), ("t", 1)) == [(10, OK), (21, OK)]


# -- the runtime -------------------------------------------------------------------------------

CONFIG = GroupCoordinatorConfig(initial_rebalance_delay_ms=0, num_partitions=1)


class LoggedAppend:
    """A fake broker append that records the producer argument and may fail like the log."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, TxnProducer | None]] = []
        self.fail_with: ErrorCode | None = None

    def __call__(
        self, partition: int, records: Sequence[NewRecord], producer: TxnProducer | None = None
    ) -> Any:
        if self.fail_with is not None:
            raise _LogError(self.fail_with)
        self.calls.append((partition, len(records), producer))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class _LogError(Exception):
    def __init__(self, error: ErrorCode) -> None:
        super().__init__(error.name)
        self.error_code = error.value


def txn_request(group: str = "g", **offsets: int) -> TxnOffsetCommitRequest:
    return TxnOffsetCommitRequest(
        group,
        "txn",
        PID,
        EPOCH,
        offsets=tuple(PartitionOffset("t", int(p[1:]), o) for p, o in offsets.items()),
    )


async def test_runtime_writes_one_transactional_batch_and_completes_it() -> None:
    append = LoggedAppend()
    runtime = GroupCoordinatorRuntime(CONFIG, append)
    runtime.activate(0)
    answer = await runtime.commit_transactional_offsets(txn_request(p0=7, p1=8))
    assert answer == ((("t", 0), OK), (("t", 1), OK))
    assert append.calls == [(0, 2, TxnProducer(PID, EPOCH))]
    stable = runtime.fetch_offsets("g", [("t", 0)], require_stable=True).partitions
    assert stable[0].error is ErrorCode.unstable_offset_commit
    runtime.complete_transaction(0, PID, commit=True)
    runtime.complete_transaction(5, PID, commit=True)  # not ours: ignored
    fetched = runtime.fetch_offsets("g", [("t", 0), ("t", 1)], require_stable=True).partitions
    assert [(f.offset, f.error) for f in fetched] == [(7, OK), (8, OK)]
    await runtime.commit_offsets(
        OffsetCommitRequest("g", -1, "", None, (PartitionOffset("t", 0, 9),))
    )
    assert append.calls[-1][2] is None  # plain commits pass no producer
    await runtime.close()


async def test_runtime_answers_a_fenced_producer_and_remembers_nothing() -> None:
    append = LoggedAppend()
    append.fail_with = ErrorCode.invalid_producer_epoch
    runtime = GroupCoordinatorRuntime(CONFIG, append)
    runtime.activate(0)
    with pytest.raises(CoordinatorWriteError) as info:
        await runtime.commit_transactional_offsets(txn_request(p0=7))
    assert info.value.error is ErrorCode.invalid_producer_epoch
    stable = runtime.fetch_offsets("g", [("t", 0)], require_stable=True).partitions
    assert (stable[0].offset, stable[0].error) == (-1, OK)
    await runtime.close()


async def test_runtime_status_errors() -> None:
    runtime = GroupCoordinatorRuntime(CONFIG, LoggedAppend())
    assert await runtime.commit_transactional_offsets(txn_request(p0=1)) == (
        (("t", 0), ErrorCode.not_coordinator),
    )
    assert await runtime.commit_transactional_offsets(txn_request("", p0=1)) == (
        (("t", 0), ErrorCode.invalid_group_id),
    )
    runtime.complete_transaction(0, PID, commit=True)  # no shard: nothing to do, no error
    await runtime.close()


# -- loading a real log -----------------------------------------------------------------------


def open_offsets_log(tmp_path: Path) -> PartitionLog:
    config = LogConfig().with_overrides({"cleanup.policy": "compact"})
    return PartitionLog.open(tmp_path / "__consumer_offsets-0", config, recover=False)


class LogWriter:
    """Writes what the broker would: coordinator batches (transactional with a producer) and
    COMMIT/ABORT control batches, with real offsets, into a real partition log."""

    def __init__(self, log: PartitionLog) -> None:
        self.log = log

    def _append(self, batch: bytes) -> None:
        self.log.append_as_follower(batch, now_ms=ManualTimer().now_ms)
        self.log.high_watermark = self.log.log_end_offset

    def __call__(
        self, partition: int, records: Sequence[NewRecord], producer: TxnProducer | None = None
    ) -> Any:
        base = self.log.log_end_offset
        if producer is None:
            self._append(build_batch(records, base_offset=base))
        else:
            self._append(
                build_batch(
                    records,
                    base_offset=base,
                    producer_id=producer.producer_id,
                    producer_epoch=producer.producer_epoch,
                    is_transactional=True,
                )
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def marker(self, producer_id: int, commit: bool) -> None:
        self._append(
            build_batch(
                [end_txn_marker(commit, coordinator_epoch=0)],
                base_offset=self.log.log_end_offset,
                producer_id=producer_id,
                producer_epoch=EPOCH,
                is_transactional=True,
                is_control=True,
            )
        )


async def load(log: PartitionLog) -> GroupCoordinatorRuntime:
    runtime = GroupCoordinatorRuntime(CONFIG, LogWriter(log))
    await runtime.load(0, log)
    assert runtime.status_error("g") is None
    return runtime


def state(runtime: GroupCoordinatorRuntime) -> tuple[Any, list[Any]]:
    shard = runtime.shard(0)
    assert shard is not None
    offsets = shard.coordinator.offsets
    return offsets.offsets, list(offsets.pending)


async def test_loading_restores_committed_aborted_and_pending_transactions(
    tmp_path: Path,
) -> None:
    log = open_offsets_log(tmp_path)
    writer = LogWriter(log)
    live = GroupCoordinatorRuntime(CONFIG, writer)
    live.activate(0)
    await live.commit_offsets(
        OffsetCommitRequest(
            "g", -1, "", None, (PartitionOffset("t", 0, 1), PartitionOffset("t", 3, 3))
        )
    )
    committed = TxnOffsetCommitRequest("g", "a", 1, EPOCH, offsets=(PartitionOffset("t", 0, 10),))
    aborted = TxnOffsetCommitRequest("g", "b", 2, EPOCH, offsets=(PartitionOffset("t", 1, 20),))
    pending = TxnOffsetCommitRequest("g", "c", 3, EPOCH, offsets=(PartitionOffset("t", 2, 30),))
    older = TxnOffsetCommitRequest("g", "d", 4, EPOCH, offsets=(PartitionOffset("t", 3, 40),))
    for request in (committed, aborted, pending, older):
        assert await live.commit_transactional_offsets(request) == (
            ((request.offsets[0].topic, request.offsets[0].partition), OK),
        )
    await live.commit_offsets(  # written after producer 4's offset: wins over it
        OffsetCommitRequest("g", -1, "", None, (PartitionOffset("t", 3, 50),))
    )
    for producer_id, commit in ((1, True), (2, False), (4, True)):
        writer.marker(producer_id, commit)
        live.complete_transaction(0, producer_id, commit)
    expected = state(live)
    fetched = live.fetch_offsets("g", [("t", i) for i in range(4)]).partitions
    assert [f.offset for f in fetched] == [10, -1, -1, 50]
    await live.close()

    restarted = await load(log)
    assert state(restarted) == expected
    _committed, pending_after = state(restarted)
    assert [(pid, key, om.offset) for pid, key, om in pending_after] == [(3, ("g", "t", 2), 30)]
    stable = restarted.fetch_offsets("g", [("t", 2)], require_stable=True).partitions
    assert stable[0].error is ErrorCode.unstable_offset_commit
    # The transaction left open by the "crash" ends after the restart.
    writer.marker(3, True)
    restarted.complete_transaction(0, 3, commit=True)
    stable_all = restarted.fetch_offsets("g", [("t", i) for i in range(4)], require_stable=True)
    assert [(f.offset, f.error) for f in stable_all.partitions] == [
        (10, OK),
        (-1, OK),
        (30, OK),
        (50, OK),
    ]
    await restarted.close()

    again = await load(log)  # and the marker written after the restart replays too
    assert state(again) == state(restarted)
    await again.close()
    log.close()


async def test_a_marker_reported_while_loading_is_applied_after_the_replay(
    tmp_path: Path,
) -> None:
    log = open_offsets_log(tmp_path)
    writer = LogWriter(log)
    live = GroupCoordinatorRuntime(CONFIG, writer)
    live.activate(0)
    await live.commit_transactional_offsets(txn_request(p0=7))
    await live.close()

    runtime = GroupCoordinatorRuntime(CONFIG, writer)
    task = runtime.load(0, log)
    runtime.complete_transaction(0, PID, commit=True)  # the broker wrote it meanwhile
    await task
    assert [f.offset for f in runtime.fetch_offsets("g", [("t", 0)]).partitions] == [7]
    await runtime.close()
    log.close()


def test_leaving_members_do_not_affect_pending_offsets() -> None:
    h = TxnHarness()
    (a,), generation = h.stable_group("g", 1)
    h.txn_commit("g", {("t", 0): 10}, member_id=a, generation=generation)
    h.leave("g", LeavingMember(a))
    assert h.coordinator.groups["g"].state is GroupState.EMPTY
    h.end(commit=True)
    assert h.fetch("g", ("t", 0)) == [(10, OK)]
