"""Runs group coordinator shards on the asyncio loop: writes, timers, loading, retention.

``GroupCoordinatorRuntime`` owns one :class:`~.coordinator.GroupCoordinator` per
``__consumer_offsets`` partition this broker coordinates and is the only thing that calls
them. For every operation it:

1. calls the shard synchronously (on the loop thread, so operations never interleave and a
   connection's requests take effect in the order they arrived);
2. appends the result's records through the injected ``append`` callable — *synchronously*:
   ``append(partition, records, producer)`` writes the batch before returning and returns an
   awaitable that resolves once the batch is durable (raising means nothing was written).
   ``producer`` is None except for TxnOffsetCommit, whose records are one transactional
   batch of that producer (a stale epoch fails the append: INVALID_PRODUCER_EPOCH);
3. replays the records into the shard right away when the result asks for it, so the next
   operation sees them (a read may thus see a commit a little before its fsync completes;
   the committer itself is answered only after it);
4. awaits durability, runs the result's ``on_written`` callback and releases the answer.

A failed append becomes :class:`CoordinatorWriteError` carrying the error code Kafka answers
with (``appendGroupMetadataErrorToResponseError``); the handler turns it into the response.

Transactions: the broker calls :meth:`~GroupCoordinatorRuntime.complete_transaction` right
after it appended a COMMIT/ABORT marker to a ``__consumer_offsets`` partition, and the shard
commits or drops that producer's pending offsets. Loading does the same from the log: records
of a transactional batch replay as pending offsets of the batch's producer, and a control
batch's marker completes them, so a restart in the middle of a transaction comes back with
the same pending offsets and a later marker still completes them.

Timers are ``loop.call_later`` handles, one table per shard, keyed as the coordinator asks;
a fired timer's operation is applied like a request. Loading replays a partition's log from
its start (reads in a worker thread, replay on the loop); requests meanwhile get
COORDINATOR_LOAD_IN_PROGRESS. A periodic task runs offset retention on every active shard
every ``offsets.retention.check.interval.ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from kio.schema.errors import ErrorCode

from moldau.coordinator.group.config import GroupCoordinatorConfig
from moldau.coordinator.group.consumer_heartbeat import (
    ConsumerHeartbeatRequest,
    ConsumerHeartbeatResult,
    DescribedConsumerGroup,
)
from moldau.coordinator.group.coordinator import GroupCoordinator
from moldau.coordinator.group.messages import (
    DescribedGroup,
    HeartbeatRequest,
    JoinGroupRequest,
    JoinGroupResult,
    LeaveGroupResult,
    LeavingMember,
    ListedGroup,
    ListGroupsFilter,
    OffsetCommitRequest,
    OffsetDeleteResult,
    OffsetFetchResult,
    SyncGroupRequest,
    SyncGroupResult,
    TopicPartition,
    TxnOffsetCommitRequest,
)
from moldau.coordinator.group.offsets import CommitAnswer
from moldau.coordinator.group.partitioner import partition_for
from moldau.coordinator.group.records import RecordFormatError, decode_record, to_new_record
from moldau.coordinator.group.results import (
    Completion,
    CoordinatorResult,
    TimerOperation,
    TxnProducer,
    WriteCallback,
)
from moldau.coordinator.replay import ShardStatus, log_batches
from moldau.log.log import PartitionLog
from moldau.protocol.record_batch import NO_PRODUCER_ID, BatchHeader
from moldau.protocol.records import (
    CONTROL_ABORT,
    CONTROL_COMMIT,
    NewRecord,
    control_record_type,
    decode_records,
)

log = logging.getLogger("moldau.coordinator.group")

T = TypeVar("T")

AppendFn = Callable[[int, Sequence[NewRecord], TxnProducer | None], Awaitable[None]]
"""``append(partition, records, producer)``: write one batch now — a transactional batch of
``producer`` when given — and await the result for durability."""

_WRITE_ERROR_MAP = {
    ErrorCode.unknown_topic_or_partition: ErrorCode.coordinator_not_available,
    ErrorCode.not_enough_replicas: ErrorCode.coordinator_not_available,
    ErrorCode.request_timed_out: ErrorCode.coordinator_not_available,
    ErrorCode.not_leader_or_follower: ErrorCode.not_coordinator,
    ErrorCode.kafka_storage_error: ErrorCode.not_coordinator,
    ErrorCode.message_too_large: ErrorCode.unknown_server_error,
    ErrorCode.record_list_too_large: ErrorCode.unknown_server_error,
    ErrorCode.invalid_fetch_size: ErrorCode.unknown_server_error,
}


class CoordinatorWriteError(Exception):
    """The records of an operation could not be written; answer with ``error``."""

    def __init__(self, error: ErrorCode, cause: BaseException | None = None) -> None:
        super().__init__(f"{error.name}: {cause}")
        self.error = error


def write_error_code(exc: BaseException) -> ErrorCode:
    code = getattr(exc, "error_code", None)
    if code is None:
        return ErrorCode.coordinator_not_available
    try:
        error = ErrorCode(code)
    except ValueError:
        return ErrorCode.unknown_server_error
    return _WRITE_ERROR_MAP.get(error, error)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class _LoopTimer:
    """The coordinator's Timer on ``loop.call_later``; fired operations go to the runtime."""

    def __init__(self, runtime: GroupCoordinatorRuntime, shard: Shard) -> None:
        self._runtime = runtime
        self._shard = shard
        self._handles: dict[str, asyncio.TimerHandle] = {}

    def schedule(self, key: str, delay_ms: int, operation: TimerOperation) -> None:
        old = self._handles.pop(key, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._handles[key] = loop.call_later(max(delay_ms, 0) / 1000, self._fire, key, operation)

    def cancel(self, key: str) -> None:
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()

    def is_scheduled(self, key: str) -> bool:
        return key in self._handles

    def cancel_all(self) -> None:
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()

    def _fire(self, key: str, operation: TimerOperation) -> None:
        self._handles.pop(key, None)
        self._runtime._run_timer(self._shard, operation)

    def __len__(self) -> int:
        return len(self._handles)


class Shard:
    """One partition's coordinator with its status and timers."""

    def __init__(
        self, runtime: GroupCoordinatorRuntime, partition: int, config: GroupCoordinatorConfig
    ) -> None:
        self.partition = partition
        self.status = ShardStatus.LOADING
        self.timer = _LoopTimer(runtime, self)
        self.coordinator = GroupCoordinator(self.timer, config)
        self.early_markers: list[tuple[int, bool]] = []
        """Markers the broker reported while the shard was loading; applied after the
        replay (which may have seen them already: completing twice is harmless)."""

    def is_loading(self) -> bool:
        return self.status is ShardStatus.LOADING


class GroupCoordinatorRuntime:
    """The group coordinator of this broker: every shard it owns, bound to the loop."""

    def __init__(
        self,
        config: GroupCoordinatorConfig,
        append: AppendFn,
        *,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.config = config
        self._append = append
        self._clock = clock
        self._shards: dict[int, Shard] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._cleanup_task: asyncio.Task[None] | None = None

    @property
    def num_partitions(self) -> int:
        return self.config.num_partitions

    def partition_for(self, group_id: str) -> int:
        return partition_for(group_id, self.config.num_partitions)

    def shard(self, partition: int) -> Shard | None:
        return self._shards.get(partition)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the periodic offset-retention task (call on the running loop)."""
        if self._cleanup_task is None:
            self._cleanup_task = asyncio.get_running_loop().create_task(self._cleanup_loop())

    async def close(self) -> None:
        if self._cleanup_task is not None:
            self._cleanup_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._cleanup_task
        for shard in self._shards.values():
            shard.status = ShardStatus.CLOSED
            shard.timer.cancel_all()
        for task in list(self._tasks):
            task.cancel()

    def activate(self, partition: int) -> None:
        """Own ``partition`` with an empty state (its log was just created)."""
        if partition not in self._shards:
            shard = Shard(self, partition, self.config)
            shard.status = ShardStatus.ACTIVE
            self._shards[partition] = shard

    def activate_all(self) -> None:
        """Own every partition not owned yet, empty (``__consumer_offsets`` was just created,
        possibly by someone else)."""
        if len(self._shards) < self.config.num_partitions:
            for partition in range(self.config.num_partitions):
                self.activate(partition)

    def unload(self, partition: int) -> None:
        """Stop coordinating ``partition`` (its leadership moved to another broker): its
        groups answer NOT_COORDINATOR from now on and its timers stop."""
        shard = self._shards.pop(partition, None)
        if shard is not None:
            shard.status = ShardStatus.CLOSED
            shard.timer.cancel_all()

    def load(self, partition: int, log_: PartitionLog) -> asyncio.Task[None]:
        """Own ``partition`` and rebuild its state by replaying ``log_`` from its start.

        The shard exists (LOADING) as soon as this returns; the replay runs as a task.
        """
        self.unload(partition)
        shard = Shard(self, partition, self.config)
        self._shards[partition] = shard
        return asyncio.get_running_loop().create_task(self._load(shard, log_))

    async def _load(self, shard: Shard, log_: PartitionLog) -> None:
        coordinator = shard.coordinator
        records = skipped = 0
        async for data, position, header in log_batches(log_, shard.is_loading):
            if header.is_control:
                _replay_marker(coordinator, log_.name, data, position, header)
                continue
            producer_id = header.producer_id if header.is_transactional else NO_PRODUCER_ID
            for record in decode_records(data, position, header, contiguous_offsets=False):
                try:
                    decoded = decode_record(record.key, record.value)
                except RecordFormatError as exc:
                    log.warning("%s: skipping an unreadable record: %s", log_.name, exc)
                    skipped += 1
                    continue
                if decoded is None:
                    skipped += 1
                    continue
                coordinator.replay(decoded, producer_id)
                records += 1
        if shard.status is not ShardStatus.LOADING:
            return
        for producer_id, commit in shard.early_markers:
            coordinator.complete_transaction(producer_id, commit)
        shard.early_markers.clear()
        shard.status = ShardStatus.ACTIVE
        log.info("%s: replayed %d records (%d skipped)", log_.name, records, skipped)
        self._track(self._apply(shard, coordinator.on_loaded(self._clock())))

    def status_error(self, group_id: str) -> ErrorCode | None:
        """NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS when ``group_id``'s shard cannot
        serve it now, else None."""
        shard = self._shards.get(self.partition_for(group_id))
        if shard is None or shard.status is ShardStatus.CLOSED:
            return ErrorCode.not_coordinator
        if shard.status is ShardStatus.LOADING:
            return ErrorCode.coordinator_load_in_progress
        return None

    # -- operations ----------------------------------------------------------------------

    def join_group(self, request: JoinGroupRequest) -> asyncio.Future[JoinGroupResult]:
        return self._with_completion(
            request.group_id,
            lambda c, completion, now: c.join_group(request, completion, now),
            lambda error: JoinGroupResult(error, request.member_id),
        )

    def sync_group(self, request: SyncGroupRequest) -> asyncio.Future[SyncGroupResult]:
        return self._with_completion(
            request.group_id,
            lambda c, completion, now: c.sync_group(request, completion, now),
            SyncGroupResult,
        )

    def heartbeat(self, request: HeartbeatRequest) -> asyncio.Future[ErrorCode]:
        error = self.status_error(request.group_id)
        if error is not None:
            return self._done(error)
        return self._run(request.group_id, lambda c, now: c.heartbeat(request, now))

    def leave_group(
        self, group_id: str, members: tuple[LeavingMember, ...]
    ) -> asyncio.Future[LeaveGroupResult]:
        error = self.status_error(group_id)
        if error is not None:
            return self._done(LeaveGroupResult(error))
        return self._run(group_id, lambda c, now: c.leave_group(group_id, members, now))

    def consumer_group_heartbeat(
        self, request: ConsumerHeartbeatRequest
    ) -> asyncio.Future[ConsumerHeartbeatResult]:
        error = self.status_error(request.group_id) if request.group_id else None
        if error is not None:
            return self._done(ConsumerHeartbeatResult(error))
        if not request.group_id:
            return self._done(
                ConsumerHeartbeatResult(
                    ErrorCode.invalid_request, error_message="GroupId can't be empty."
                )
            )
        return self._run(request.group_id, lambda c, now: c.consumer_group_heartbeat(request, now))

    def consumer_group_describe(self, group_ids: Iterable[str]) -> list[DescribedConsumerGroup]:
        described = []
        for group_id in group_ids:
            error = self.status_error(group_id)
            if error is not None:
                described.append(DescribedConsumerGroup(group_id, error))
            else:
                described.extend(self._coordinator(group_id).consumer_group_describe((group_id,)))
        return described

    def commit_offsets(self, request: OffsetCommitRequest) -> asyncio.Future[CommitAnswer]:
        error = self.status_error(request.group_id)
        if error is not None:
            return self._done(tuple(((p.topic, p.partition), error) for p in request.offsets))
        return self._run(request.group_id, lambda c, now: c.commit_offsets(request, now))

    def commit_transactional_offsets(
        self, request: TxnOffsetCommitRequest
    ) -> asyncio.Future[CommitAnswer]:
        """TxnOffsetCommit: per-partition answers once the transactional batch is durable.

        A failed write raises :class:`CoordinatorWriteError` (INVALID_PRODUCER_EPOCH for a
        fenced epoch, NOT_COORDINATOR, ...), as for plain commits.
        """
        if not request.group_id:
            return self._done(
                tuple(((p.topic, p.partition), ErrorCode.invalid_group_id) for p in request.offsets)
            )
        error = self.status_error(request.group_id)
        if error is not None:
            return self._done(tuple(((p.topic, p.partition), error) for p in request.offsets))
        return self._run(
            request.group_id, lambda c, now: c.commit_transactional_offsets(request, now)
        )

    def complete_transaction(self, partition: int, producer_id: int, commit: bool) -> None:
        """A COMMIT (``commit``) or ABORT marker of ``producer_id`` was just appended to
        ``__consumer_offsets-<partition>``: commit or drop that producer's pending offsets.

        A shard still loading notes it for after the replay (the replay may stop short of a
        marker written meanwhile); a partition this broker does not coordinate is ignored —
        whoever loads it will read the marker from the log.
        """
        shard = self._shards.get(partition)
        if shard is None or shard.status is ShardStatus.CLOSED:
            return
        if shard.status is ShardStatus.LOADING:
            shard.early_markers.append((producer_id, commit))
            return
        shard.coordinator.complete_transaction(producer_id, commit)

    def fetch_offsets(
        self,
        group_id: str,
        partitions: Iterable[TopicPartition] | None,
        *,
        require_stable: bool = False,
    ) -> OffsetFetchResult:
        """Committed offsets; with ``require_stable`` partitions with offsets pending in an
        open transaction answer UNSTABLE_OFFSET_COMMIT."""
        error = self.status_error(group_id)
        if error is not None:
            return OffsetFetchResult(error)
        return self._coordinator(group_id).fetch_offsets(
            group_id, partitions, require_stable=require_stable
        )

    def delete_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition]
    ) -> asyncio.Future[OffsetDeleteResult]:
        error = self.status_error(group_id)
        if error is not None:
            return self._done(OffsetDeleteResult(error))
        return self._run(group_id, lambda c, now: c.delete_offsets(group_id, partitions))

    def describe_groups(self, group_ids: Iterable[str]) -> list[DescribedGroup]:
        described = []
        for group_id in group_ids:
            error = self.status_error(group_id)
            if error is not None:
                described.append(DescribedGroup(group_id, error, ""))
            else:
                described.extend(self._coordinator(group_id).describe_groups((group_id,)))
        return described

    def list_groups(self, filter_: ListGroupsFilter) -> tuple[ErrorCode, list[ListedGroup]]:
        """Groups of every active shard; COORDINATOR_LOAD_IN_PROGRESS while any loads."""
        listed: list[ListedGroup] = []
        error = ErrorCode.none
        for shard in self._shards.values():
            if shard.status is ShardStatus.LOADING:
                error = ErrorCode.coordinator_load_in_progress
            elif shard.status is ShardStatus.ACTIVE:
                listed.extend(shard.coordinator.list_groups(filter_))
        return error, listed

    def delete_groups(
        self, group_ids: Iterable[str]
    ) -> asyncio.Future[list[tuple[str, ErrorCode]]]:
        """Delete groups, shard by shard; answers in request order."""
        by_partition: dict[int, list[str]] = {}
        immediate: dict[str, ErrorCode] = {}
        ordered = list(group_ids)
        for group_id in ordered:
            error = self.status_error(group_id)
            if error is not None:
                immediate[group_id] = error
            else:
                by_partition.setdefault(self.partition_for(group_id), []).append(group_id)
        futures = [self._delete_groups_of_shard(ids) for ids in by_partition.values()]

        async def gather() -> list[tuple[str, ErrorCode]]:
            answers = dict(immediate)
            for ids, future in zip(by_partition.values(), futures, strict=True):
                try:
                    answers.update(await future)
                except CoordinatorWriteError as exc:
                    answers.update((group_id, exc.error) for group_id in ids)
            return [(group_id, answers[group_id]) for group_id in ordered]

        return asyncio.ensure_future(gather())

    def _delete_groups_of_shard(
        self, group_ids: list[str]
    ) -> asyncio.Future[list[tuple[str, ErrorCode]]]:
        return self._run(group_ids[0], lambda c, _now: c.delete_groups(group_ids))

    async def run_retention(self) -> None:
        """One pass of offset retention over every active shard."""
        now = self._clock()
        for shard in list(self._shards.values()):
            if shard.status is ShardStatus.ACTIVE:
                result = shard.coordinator.cleanup_group_metadata(now)
                with contextlib.suppress(CoordinatorWriteError):
                    await self._apply(shard, result)

    # -- machinery -----------------------------------------------------------------------

    def _coordinator(self, group_id: str) -> GroupCoordinator:
        return self._shards[self.partition_for(group_id)].coordinator

    def _done(self, value: T) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        future.set_result(value)
        return future

    def _run(
        self, group_id: str, operation: Callable[[GroupCoordinator, int], CoordinatorResult[T]]
    ) -> asyncio.Future[T]:
        shard = self._shards[self.partition_for(group_id)]
        result = operation(shard.coordinator, self._clock())
        return self._apply(shard, result)  # type: ignore[return-value]

    def _with_completion(
        self,
        group_id: str,
        operation: Callable[[GroupCoordinator, Completion[T], int], CoordinatorResult[None]],
        on_error: Callable[[ErrorCode], T],
    ) -> asyncio.Future[T]:
        """Run a JoinGroup/SyncGroup-style operation whose answer comes via a Completion."""
        error = self.status_error(group_id)
        if error is not None:
            return self._done(on_error(error))
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        completion: Completion[T] = Completion()

        def deliver(value: T) -> None:
            if not answer.done():
                answer.set_result(value)

        completion.add_callback(deliver)
        shard = self._shards[self.partition_for(group_id)]
        written = self._apply(shard, operation(shard.coordinator, completion, self._clock()))
        self._track(written)
        return answer

    def _apply(self, shard: Shard, result: CoordinatorResult[T]) -> asyncio.Future[T | None]:
        loop = asyncio.get_running_loop()
        if not result.records:
            if result.on_written is not None:
                self._after_write(shard, result.on_written, None)
            future: asyncio.Future[T | None] = loop.create_future()
            future.set_result(result.response)
            return future
        try:
            durable = self._append(
                shard.partition, [to_new_record(r) for r in result.records], result.producer
            )
        except Exception as exc:
            log.warning("__consumer_offsets-%d: append failed: %s", shard.partition, exc)
            if result.on_written is not None:
                self._after_write(shard, result.on_written, exc)
            failed: asyncio.Future[T | None] = loop.create_future()
            failed.set_exception(CoordinatorWriteError(write_error_code(exc), exc))
            return failed
        if result.replay:
            producer_id = NO_PRODUCER_ID if result.producer is None else result.producer.producer_id
            for record in result.records:
                shard.coordinator.replay(record, producer_id)
        return asyncio.ensure_future(self._finish(shard, result, durable))

    async def _finish(
        self, shard: Shard, result: CoordinatorResult[Any], durable: Awaitable[None]
    ) -> Any:
        try:
            await durable
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("__consumer_offsets-%d: write not durable: %s", shard.partition, exc)
            if result.on_written is not None:
                self._after_write(shard, result.on_written, exc)
            raise CoordinatorWriteError(write_error_code(exc), exc) from exc
        if result.on_written is not None:
            self._after_write(shard, result.on_written, None)
        return result.response

    def _after_write(
        self, shard: Shard, callback: WriteCallback, error: BaseException | None
    ) -> None:
        if shard.status is not ShardStatus.ACTIVE:
            return
        follow_up = callback(error, self._clock())
        if follow_up is not None:
            self._track(self._apply(shard, follow_up))

    def _run_timer(self, shard: Shard, operation: TimerOperation) -> None:
        if shard.status is not ShardStatus.ACTIVE:
            return
        try:
            result = operation(self._clock())
        except Exception:
            log.exception("__consumer_offsets-%d: timer operation failed", shard.partition)
            return
        self._track(self._apply(shard, result))

    def _track(self, future: asyncio.Future[Any]) -> None:
        """Keep a background write referenced and log its failure."""
        if future.done():
            _log_failure(future)
            return
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)
        future.add_done_callback(_log_failure)

    async def _cleanup_loop(self) -> None:
        interval_s = max(self.config.offsets_retention_check_interval_ms, 10) / 1000
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.run_retention()
            except Exception:
                log.exception("offset retention pass failed")


def _replay_marker(
    coordinator: GroupCoordinator, name: str, data: bytes, position: int, header: BatchHeader
) -> None:
    """Complete the transaction a control batch read back from the log ends."""
    for record in decode_records(data, position, header, contiguous_offsets=False):
        kind = control_record_type(record.key)
        if kind is None:
            log.warning("%s: skipping a control record without a valid key", name)
        elif kind in (CONTROL_COMMIT, CONTROL_ABORT):
            coordinator.complete_transaction(header.producer_id, kind == CONTROL_COMMIT)


def _log_failure(future: asyncio.Future[Any]) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None and not isinstance(exc, CoordinatorWriteError):
        log.error("group coordinator background write failed", exc_info=exc)
