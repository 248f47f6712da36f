"""The transaction coordinator runtime on a real asyncio loop with fake append/markers
callables (and a real PartitionLog for loading)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from kio.schema.errors import ErrorCode

from moldau.coordinator.txn import (
    InitProducerIdResult,
    TopicPartition,
    TransactionCoordinatorRuntime,
    TxnCoordinatorConfig,
    TxnMarkerRequest,
)
from moldau.coordinator.txn.records import decode_record
from moldau.coordinator.txn.state import TransactionState as S
from moldau.log.config import LogConfig
from moldau.log.log import PartitionLog
from moldau.protocol.records import NewRecord, build_batch

NOW_MS = 1_700_000_000_000
TP0: TopicPartition = ("out", 0)
TP1: TopicPartition = ("out", 1)
TP2: TopicPartition = ("gone", 0)


class AppendError(Exception):
    def __init__(self, error_code: int) -> None:
        super().__init__(error_code)
        self.error_code = error_code


class Broker:
    """The fakes: an append that keeps (and optionally logs) records, and a marker writer
    answering from a script (default NONE) and recording every call."""

    def __init__(self, log: PartitionLog | None = None) -> None:
        self.now_ms = NOW_MS
        self.records: list[tuple[int, NewRecord]] = []
        self.log = log
        self.append_error: int | None = None
        self.hold: asyncio.Future[None] | None = None
        self.marker_calls: list[TxnMarkerRequest] = []
        self.marker_script: list[Mapping[TopicPartition, ErrorCode] | Exception] = []
        self.marker_gate: asyncio.Event | None = None
        self._pids = itertools.count(4000)

    def allocate(self) -> int:
        return next(self._pids)

    def clock(self) -> int:
        return self.now_ms

    def append(self, partition: int, records: Sequence[NewRecord]) -> asyncio.Future[None]:
        if self.append_error is not None:
            raise AppendError(self.append_error)
        self.records.extend((partition, r) for r in records)
        if self.log is not None:
            batch = bytearray(build_batch(list(records), base_timestamp=self.now_ms))
            self.log.append_as_leader(batch, leader_epoch=0, now_ms=self.now_ms)
            self.log.high_watermark = self.log.log_end_offset
        if self.hold is not None:
            return self.hold
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def write_markers(self, request: TxnMarkerRequest) -> Mapping[TopicPartition, ErrorCode]:
        self.marker_calls.append(request)
        if self.marker_gate is not None:
            await self.marker_gate.wait()
        if self.marker_script:
            answer = self.marker_script.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return {tp: answer.get(tp, ErrorCode.none) for tp in request.partitions}
        return dict.fromkeys(request.partitions, ErrorCode.none)

    def states(self) -> list[tuple[str, S | None]]:
        out = []
        for _, record in self.records:
            decoded = decode_record(record.key, record.value)
            out.append(
                (decoded.transactional_id, None if decoded.value is None else decoded.value.state)
            )
        return out


CONFIG = TxnCoordinatorConfig(
    num_partitions=4, marker_retry_backoff_ms=1, marker_retry_backoff_max_ms=2
)


def make_runtime(
    broker: Broker, config: TxnCoordinatorConfig = CONFIG
) -> TransactionCoordinatorRuntime:
    return TransactionCoordinatorRuntime(
        config, broker.append, broker.write_markers, broker.allocate, clock=broker.clock
    )


async def begin(
    rt: TransactionCoordinatorRuntime, tid: str, *partitions: TopicPartition
) -> tuple[int, int]:
    r = await rt.init_producer_id(tid, 60_000)
    assert r.error is ErrorCode.none
    assert await rt.add_partitions(tid, r.producer_id, r.producer_epoch, partitions) is (
        ErrorCode.none
    )
    return r.producer_id, r.producer_epoch


def state_of(rt: TransactionCoordinatorRuntime, tid: str) -> str:
    (described,) = rt.describe_transactions([tid])
    return described.state


async def test_commit_writes_markers_once_then_completes() -> None:
    broker = Broker()
    rt = make_runtime(broker)
    rt.activate_all(coordinator_epoch=2)
    pid, epoch = await begin(rt, "t", TP0, TP1)
    assert await rt.end_transaction("t", pid, epoch, commit=True) is ErrorCode.none
    await rt.wait_idle()
    assert broker.marker_calls == [TxnMarkerRequest(pid, epoch, 2, True, (TP0, TP1))]
    assert state_of(rt, "t") == "CompleteCommit"
    assert [s for _, s in broker.states()] == [
        S.EMPTY,
        S.ONGOING,
        S.PREPARE_COMMIT,
        S.COMPLETE_COMMIT,
    ]
    assert {p for p, _ in broker.records} == {rt.partition_for("t")}
    await rt.close()


async def test_end_answers_before_markers_and_blocks_the_id_meanwhile() -> None:
    broker = Broker()
    broker.marker_gate = asyncio.Event()
    rt = make_runtime(broker)
    rt.activate_all()
    pid, epoch = await begin(rt, "t", TP0)
    assert await rt.end_transaction("t", pid, epoch, commit=False) is ErrorCode.none
    assert state_of(rt, "t") == "PrepareAbort"
    assert await rt.end_transaction("t", pid, epoch, commit=False) is (
        ErrorCode.concurrent_transactions
    )
    assert await rt.add_partitions("t", pid, epoch, [TP1]) is ErrorCode.concurrent_transactions
    assert (await rt.init_producer_id("t", 60_000)).error is ErrorCode.concurrent_transactions
    broker.marker_gate.set()
    await rt.wait_idle()
    assert state_of(rt, "t") == "CompleteAbort"
    assert await rt.end_transaction("t", pid, epoch, commit=False) is ErrorCode.none
    assert len(broker.marker_calls) == 1
    await rt.close()


async def test_markers_retried_only_for_partitions_with_retriable_errors() -> None:
    broker = Broker()
    broker.marker_script = [
        {TP1: ErrorCode.not_leader_or_follower},
        RuntimeError("connection lost"),
        {TP1: ErrorCode.kafka_storage_error},
    ]
    rt = make_runtime(broker)
    rt.activate_all()
    pid, epoch = await begin(rt, "t", TP0, TP1)
    await rt.end_transaction("t", pid, epoch, commit=True)
    await rt.wait_idle()
    assert [c.partitions for c in broker.marker_calls] == [(TP0, TP1), (TP1,), (TP1,), (TP1,)]
    assert state_of(rt, "t") == "CompleteCommit"
    await rt.close()


@pytest.mark.parametrize(
    "error",
    [
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.invalid_producer_epoch,
        ErrorCode.transaction_coordinator_fenced,
    ],
)
async def test_markers_dropped_for_final_errors(error: ErrorCode) -> None:
    broker = Broker()
    broker.marker_script = [{TP2: error}]
    rt = make_runtime(broker)
    rt.activate_all()
    pid, epoch = await begin(rt, "t", TP0, TP2)
    await rt.end_transaction("t", pid, epoch, commit=True)
    await rt.wait_idle()
    assert len(broker.marker_calls) == 1
    assert state_of(rt, "t") == "CompleteCommit"
    await rt.close()


async def test_init_on_ongoing_fences_and_the_retry_succeeds() -> None:
    broker = Broker()
    rt = make_runtime(broker)
    rt.activate_all()
    pid, epoch = await begin(rt, "t", TP0)
    assert await rt.init_producer_id("t", 60_000) == InitProducerIdResult(
        ErrorCode.concurrent_transactions
    )
    await rt.wait_idle()
    assert broker.marker_calls == [TxnMarkerRequest(pid, epoch + 1, 0, False, (TP0,))]
    assert await rt.init_producer_id("t", 60_000) == InitProducerIdResult(
        ErrorCode.none, pid, epoch + 2
    )
    assert await rt.end_transaction("t", pid, epoch, commit=True) is ErrorCode.producer_fenced
    await rt.close()


async def test_timed_out_transaction_is_aborted_and_its_producer_fenced() -> None:
    broker = Broker()
    rt = make_runtime(broker)
    rt.activate_all()
    pid, epoch = await begin(rt, "slow", TP0)
    broker.now_ms += 30_000
    await begin(rt, "fresh", TP1)
    await rt.abort_timed_out()
    assert broker.marker_calls == []
    broker.now_ms += 30_001
    await rt.abort_timed_out()
    await rt.wait_idle()
    assert broker.marker_calls == [TxnMarkerRequest(pid, epoch + 1, 0, False, (TP0,))]
    assert state_of(rt, "slow") == "CompleteAbort"
    assert await rt.add_partitions("slow", pid, epoch, [TP0]) is ErrorCode.producer_fenced
    assert await rt.end_transaction("slow", pid, epoch, commit=True) is (ErrorCode.producer_fenced)
    await rt.close()


async def test_periodic_abort_runs_after_start() -> None:
    broker = Broker()
    config = TxnCoordinatorConfig(num_partitions=1, abort_timed_out_interval_ms=1)
    rt = make_runtime(broker, config)
    rt.activate_all()
    rt.start()
    await begin(rt, "t", TP0)
    broker.now_ms += 10**6
    while not broker.marker_calls:
        await asyncio.sleep(0.001)
    await rt.wait_idle()
    assert state_of(rt, "t") == "CompleteAbort"
    await rt.close()


async def test_expired_ids_are_removed() -> None:
    broker = Broker()
    config = TxnCoordinatorConfig(num_partitions=2, transactional_id_expiration_ms=1000)
    rt = make_runtime(broker, config)
    rt.activate_all()
    await rt.init_producer_id("old", 60_000)
    broker.now_ms += 1000
    await rt.init_producer_id("new", 60_000)
    await rt.remove_expired_transactional_ids()
    assert broker.states()[-1] == ("old", None)
    assert [d.error for d in rt.describe_transactions(["old", "new"])] == [
        ErrorCode.transactional_id_not_found,
        ErrorCode.none,
    ]
    await rt.close()


async def test_append_failure_maps_error_and_changes_nothing() -> None:
    broker = Broker()
    rt = make_runtime(broker)
    rt.activate_all()
    pid, epoch = await begin(rt, "t", TP0)
    broker.append_error = ErrorCode.not_leader_or_follower.value
    assert await rt.end_transaction("t", pid, epoch, True) is ErrorCode.not_coordinator
    broker.append_error = ErrorCode.not_enough_replicas.value
    assert (await rt.init_producer_id("u", 1000)).error is ErrorCode.coordinator_not_available
    broker.append_error = None
    assert state_of(rt, "t") == "Ongoing"
    assert await rt.end_transaction("t", pid, epoch, True) is ErrorCode.none
    await rt.close()


async def test_durability_failure_maps_error_and_clears_pending() -> None:
    broker = Broker()
    rt = make_runtime(broker)
    rt.activate_all()
    pid, epoch = await begin(rt, "t", TP0)
    broker.hold = asyncio.get_running_loop().create_future()
    ending = asyncio.ensure_future(rt.end_transaction("t", pid, epoch, True))
    await asyncio.sleep(0)
    # One operation at a time per id: the others wait for the first to be durable.
    assert await rt.add_partitions("t", pid, epoch, [TP1]) is ErrorCode.concurrent_transactions
    broker.hold.set_exception(AppendError(ErrorCode.request_timed_out.value))
    assert await ending is ErrorCode.coordinator_not_available
    broker.hold = None
    assert state_of(rt, "t") == "Ongoing"
    assert await rt.add_partitions("t", pid, epoch, [TP1]) is ErrorCode.none
    await rt.close()


async def test_not_coordinator_for_partitions_not_owned() -> None:
    broker = Broker()
    rt = make_runtime(broker)
    assert rt.status_error("t") is ErrorCode.not_coordinator
    assert (await rt.init_producer_id("t", 1000)).error is ErrorCode.not_coordinator
    assert await rt.add_partitions("t", 1, 0, [TP0]) is ErrorCode.not_coordinator
    assert await rt.end_transaction("t", 1, 0, True) is ErrorCode.not_coordinator
    assert rt.describe_transactions(["t"])[0].error is ErrorCode.not_coordinator
    rt.activate(rt.partition_for("t"))
    assert rt.status_error("t") is None
    rt.unload(rt.partition_for("t"))
    assert rt.status_error("t") is ErrorCode.not_coordinator


async def test_request_validation_before_ownership() -> None:
    rt = make_runtime(Broker())
    assert (await rt.init_producer_id("", 1000)).error is ErrorCode.invalid_request
    assert (await rt.init_producer_id("t", 0)).error is ErrorCode.invalid_transaction_timeout
    assert await rt.end_transaction("", 1, 0, True) is ErrorCode.invalid_request


def test_partition_for_is_kafkas() -> None:
    rt = make_runtime(Broker(), TxnCoordinatorConfig())
    # Java: "hello".hashCode() == 99162322
    assert rt.partition_for("hello") == 99162322 % 50
    assert rt.num_partitions == 50


async def test_load_replays_and_resends_markers_of_prepared_transactions(
    tmp_path: Path,
) -> None:
    config = TxnCoordinatorConfig(num_partitions=1, marker_retry_backoff_ms=1)
    log = PartitionLog.open(
        tmp_path / "__transaction_state-0", LogConfig(), recover=False, now_ms=NOW_MS
    )
    try:
        broker = Broker(log)
        broker.marker_gate = asyncio.Event()  # the first incarnation never gets markers out
        first = make_runtime(broker, config)
        first.activate_all()
        pid, epoch = await begin(first, "commit", TP0, TP1)
        await first.end_transaction("commit", pid, epoch, commit=True)
        open_pid, _ = await begin(first, "open", TP2)
        await first.init_producer_id("idle", 60_000)
        await first.close()  # "crash" with markers pending
        assert len(broker.marker_calls) == 1

        broker.marker_gate = None
        broker.marker_calls.clear()
        broker.marker_script = [{TP1: ErrorCode.not_leader_or_follower}]
        second = make_runtime(broker, config)
        task = second.load(0, log, coordinator_epoch=5)
        assert second.status_error("commit") is ErrorCode.coordinator_load_in_progress
        assert (await second.init_producer_id("x", 1000)).error is (
            ErrorCode.coordinator_load_in_progress
        )
        assert second.list_transactions([], []) == (ErrorCode.coordinator_load_in_progress, [])
        await task
        await second.wait_idle()
        assert broker.marker_calls == [
            TxnMarkerRequest(pid, epoch, 5, True, (TP0, TP1)),
            TxnMarkerRequest(pid, epoch, 5, True, (TP1,)),
        ]
        error, listed = second.list_transactions([], [])
        assert error is ErrorCode.none
        assert [(t.transactional_id, t.state) for t in listed] == [
            ("commit", "CompleteCommit"),
            ("idle", "Empty"),
            ("open", "Ongoing"),
        ]
        (described,) = second.describe_transactions(["open"])
        assert (described.producer_id, described.partitions) == (open_pid, (TP2,))
        # Ongoing transactions are left to the timeout, which now aborts them.
        broker.now_ms += 60_001
        await second.abort_timed_out()
        await second.wait_idle()
        assert state_of(second, "open") == "CompleteAbort"
        await second.close()
    finally:
        log.close()
