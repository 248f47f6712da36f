"""Runs transaction coordinator shards on the asyncio loop: writes, markers, timers, loading.

``TransactionCoordinatorRuntime`` owns one :class:`~.coordinator.TransactionCoordinator` per
``__transaction_state`` partition this broker coordinates and is the only thing that calls
them. An operation goes:

1. the shard computes, synchronously on the loop thread, the answer and at most one
   transition (a record for one transactional id);
2. in the same step the runtime marks the id pending and appends the record through the
   injected ``append`` — which writes before returning and returns an awaitable that
   resolves once the record is durable (raising means nothing was written). Nothing can
   run between the decision and the pending mark, so operations on one id never
   interleave; others on the same id answer CONCURRENT_TRANSACTIONS meanwhile;
3. once durable, the record is replayed into the shard (the only way its state changes)
   and the client is answered; a failed write clears the pending mark, changes nothing and
   answers Kafka's mapped error (``TransactionStateManager.appendTransactionToLog``);
4. for PrepareCommit/PrepareAbort a *marker round* starts in the background: the markers
   go to every partition through ``write_markers``; partitions that answer a retriable
   error are retried after a doubling pause, the others (done, deleted topic, stale epoch)
   are never sent again; then CompleteCommit/CompleteAbort is written (retried likewise).
   While the round runs the id stays in Prepare*, so clients get CONCURRENT_TRANSACTIONS.

Two periodic tasks (:meth:`start`) abort timed-out transactions (fencing their producer
with an epoch bump) and expire idle transactional ids (tombstones). Loading replays a
partition from its start (reads in a worker thread), then resends the markers of every
PrepareCommit/PrepareAbort id; Ongoing ones are left to the timeout. Meanwhile requests
get COORDINATOR_LOAD_IN_PROGRESS; ids of partitions not owned get NOT_COORDINATOR.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from kio.schema.errors import ErrorCode

from moldau.coordinator.group.partitioner import partition_for
from moldau.coordinator.replay import ShardStatus, log_batches
from moldau.coordinator.txn.config import TRANSACTION_STATE_TOPIC, TxnCoordinatorConfig
from moldau.coordinator.txn.coordinator import TransactionCoordinator, TxnResult, TxnTransition
from moldau.coordinator.txn.messages import (
    DescribedTransaction,
    InitProducerIdResult,
    ListedTransaction,
    TopicPartition,
    TxnMarkerRequest,
)
from moldau.coordinator.txn.records import RecordFormatError, decode_record, to_new_record
from moldau.log.log import PartitionLog
from moldau.protocol.records import NewRecord, decode_records

log = logging.getLogger("moldau.coordinator.txn")

T = TypeVar("T")

AppendFn = Callable[[int, Sequence[NewRecord]], Awaitable[None]]
"""``append(partition, records)``: write to ``__transaction_state-<partition>`` now (raising
= nothing written; the exception may carry ``.error_code``); await the result for
durability."""

WriteMarkersFn = Callable[[TxnMarkerRequest], Awaitable[Mapping[TopicPartition, ErrorCode]]]
"""Write the marker to every partition of the request; one error per partition."""

# Partitions answering these are finished for this transaction: written, or never to be
# written (topic deleted, or a newer producer epoch / coordinator already took over).
_MARKER_FINAL = frozenset(
    {
        ErrorCode.none,
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.invalid_producer_epoch,
        ErrorCode.transaction_coordinator_fenced,
    }
)

_WRITE_ERROR_MAP = {
    ErrorCode.unknown_topic_or_partition: ErrorCode.coordinator_not_available,
    ErrorCode.not_enough_replicas: ErrorCode.coordinator_not_available,
    ErrorCode.not_enough_replicas_after_append: ErrorCode.coordinator_not_available,
    ErrorCode.request_timed_out: ErrorCode.coordinator_not_available,
    ErrorCode.not_leader_or_follower: ErrorCode.not_coordinator,
    ErrorCode.kafka_storage_error: ErrorCode.not_coordinator,
    ErrorCode.message_too_large: ErrorCode.unknown_server_error,
    ErrorCode.record_list_too_large: ErrorCode.unknown_server_error,
}


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def write_error_code(exc: BaseException) -> ErrorCode:
    """The error a client gets when writing its transition failed with ``exc``."""
    code = getattr(exc, "error_code", None)
    if code is None:
        return ErrorCode.coordinator_not_available
    try:
        error = ErrorCode(code)
    except ValueError:
        return ErrorCode.unknown_server_error
    return _WRITE_ERROR_MAP.get(error, error)


class Shard:
    """One partition's coordinator with its status (a reload makes a new Shard)."""

    def __init__(self, partition: int, coordinator: TransactionCoordinator) -> None:
        self.partition = partition
        self.coordinator = coordinator
        self.status = ShardStatus.LOADING

    def is_loading(self) -> bool:
        return self.status is ShardStatus.LOADING


class TransactionCoordinatorRuntime:
    """The transaction coordinator of this broker: every shard it owns, bound to the loop."""

    def __init__(
        self,
        config: TxnCoordinatorConfig,
        append: AppendFn,
        write_markers: WriteMarkersFn,
        allocate_producer_id: Callable[[], int],
        *,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.config = config
        self._append = append
        self._write_markers = write_markers
        self._allocate_producer_id = allocate_producer_id
        self._clock = clock
        self._shards: dict[int, Shard] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._periodic: list[asyncio.Task[None]] = []

    @property
    def num_partitions(self) -> int:
        return self.config.num_partitions

    def partition_for(self, transactional_id: str) -> int:
        """Kafka's placement: ``abs(javaHash(id)) % transaction.state.log.num.partitions``."""
        return partition_for(transactional_id, self.config.num_partitions)

    def shard(self, partition: int) -> Shard | None:
        return self._shards.get(partition)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the periodic timeout-abort and id-expiry tasks (on the running loop)."""
        if self._periodic:
            return
        loop = asyncio.get_running_loop()
        self._periodic = [
            loop.create_task(
                self._every(self.config.abort_timed_out_interval_ms, self.abort_timed_out)
            ),
            loop.create_task(
                self._every(
                    self.config.remove_expired_interval_ms, self.remove_expired_transactional_ids
                )
            ),
        ]

    async def close(self) -> None:
        for task in self._periodic:
            task.cancel()
        for task in self._periodic:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._periodic = []
        for shard in self._shards.values():
            shard.status = ShardStatus.CLOSED
        tasks = list(self._tasks)
        for future in tasks:
            future.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Wait until no marker round or background write is running (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def activate(self, partition: int, coordinator_epoch: int = 0) -> None:
        """Own ``partition`` with an empty state (its log was just created)."""
        if partition not in self._shards:
            shard = Shard(partition, TransactionCoordinator(self.config, coordinator_epoch))
            shard.status = ShardStatus.ACTIVE
            self._shards[partition] = shard

    def activate_all(self, coordinator_epoch: int = 0) -> None:
        """Own every partition not owned yet, empty (``__transaction_state`` was just
        created). Cheap when every partition is owned: it runs on each transactional
        request."""
        if len(self._shards) >= self.config.num_partitions:
            return
        for partition in range(self.config.num_partitions):
            self.activate(partition, coordinator_epoch)

    def unload(self, partition: int) -> None:
        """Stop coordinating ``partition`` (leadership moved): its marker rounds stop."""
        shard = self._shards.pop(partition, None)
        if shard is not None:
            shard.status = ShardStatus.CLOSED

    def load(
        self, partition: int, log_: PartitionLog, coordinator_epoch: int = 0
    ) -> asyncio.Task[None]:
        """Own ``partition`` and rebuild its state by replaying ``log_`` from its start;
        then resend the markers of its PrepareCommit/PrepareAbort transactions.

        The shard exists (LOADING) as soon as this returns; the replay runs as a task.
        """
        old = self._shards.get(partition)
        if old is not None:
            old.status = ShardStatus.CLOSED
        shard = Shard(partition, TransactionCoordinator(self.config, coordinator_epoch))
        self._shards[partition] = shard
        return asyncio.get_running_loop().create_task(self._load(shard, log_))

    async def _load(self, shard: Shard, log_: PartitionLog) -> None:
        coordinator = shard.coordinator
        records = skipped = 0
        async for data, position, header in log_batches(log_, shard.is_loading):
            if header.is_control:
                continue
            for record in decode_records(data, position, header, contiguous_offsets=False):
                try:
                    decoded = decode_record(record.key, record.value)
                except RecordFormatError as exc:
                    log.warning("%s: skipping an unreadable record: %s", log_.name, exc)
                    skipped += 1
                    continue
                coordinator.replay(decoded)
                records += 1
        if shard.status is not ShardStatus.LOADING:
            return
        shard.status = ShardStatus.ACTIVE
        prepared = coordinator.prepared_transactions()
        log.info(
            "%s: replayed %d records (%d skipped), %d transactional ids, %d awaiting markers",
            log_.name,
            records,
            skipped,
            len(coordinator.transactions),
            len(prepared),
        )
        for transactional_id in prepared:
            request = coordinator.marker_request(transactional_id)
            if request is not None:
                self._start_marker_round(shard, transactional_id, request)

    def status_error(self, transactional_id: str) -> ErrorCode | None:
        """NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS when ``transactional_id``'s shard
        cannot serve it now, else None."""
        shard = self._shards.get(self.partition_for(transactional_id))
        if shard is None or shard.status is ShardStatus.CLOSED:
            return ErrorCode.not_coordinator
        if shard.status is ShardStatus.LOADING:
            return ErrorCode.coordinator_load_in_progress
        return None

    # -- operations ----------------------------------------------------------------------

    async def init_producer_id(
        self,
        transactional_id: str,
        transaction_timeout_ms: int,
        expected_producer_id: int = -1,
        expected_producer_epoch: int = -1,
    ) -> InitProducerIdResult:
        if not transactional_id:
            return InitProducerIdResult(ErrorCode.invalid_request)
        if not 0 < transaction_timeout_ms <= self.config.max_timeout_ms:
            return InitProducerIdResult(ErrorCode.invalid_transaction_timeout)
        error = self.status_error(transactional_id)
        if error is not None:
            return InitProducerIdResult(error)
        shard = self._shard_of(transactional_id)
        try:
            result = shard.coordinator.init_producer_id(
                transactional_id,
                transaction_timeout_ms,
                self._clock(),
                self._allocate_producer_id,
                expected_producer_id,
                expected_producer_epoch,
            )
        except Exception as exc:
            if getattr(exc, "error_code", None) is not None:
                # e.g. no producer id block at hand yet: a retriable code from the exception.
                log.warning("InitProducerId for %r failed: %s", transactional_id, exc)
                return InitProducerIdResult(write_error_code(exc))
            log.exception("InitProducerId for %r failed", transactional_id)
            return InitProducerIdResult(ErrorCode.unknown_server_error)
        return await self._run(shard, result, InitProducerIdResult)

    async def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Sequence[TopicPartition],
    ) -> ErrorCode:
        """AddPartitionsToTxn, and AddOffsetsToTxn as ``("__consumer_offsets", p)``."""
        if not transactional_id:
            return ErrorCode.invalid_request
        error = self.status_error(transactional_id)
        if error is not None:
            return error
        shard = self._shard_of(transactional_id)
        result = shard.coordinator.add_partitions(
            transactional_id, producer_id, producer_epoch, partitions, self._clock()
        )
        return await self._run(shard, result, _identity)

    async def end_transaction(
        self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool
    ) -> ErrorCode:
        """EndTxn: answered once PrepareCommit/PrepareAbort is durable; markers follow."""
        if not transactional_id:
            return ErrorCode.invalid_request
        error = self.status_error(transactional_id)
        if error is not None:
            return error
        shard = self._shard_of(transactional_id)
        result = shard.coordinator.end_transaction(
            transactional_id, producer_id, producer_epoch, commit, self._clock()
        )
        return await self._run(shard, result, _identity)

    def describe_transactions(self, transactional_ids: Sequence[str]) -> list[DescribedTransaction]:
        described = []
        for transactional_id in transactional_ids:
            if not transactional_id:
                described.append(DescribedTransaction(transactional_id, ErrorCode.invalid_request))
                continue
            error = self.status_error(transactional_id)
            if error is not None:
                described.append(DescribedTransaction(transactional_id, error))
            else:
                described.append(
                    self._shard_of(transactional_id).coordinator.describe(transactional_id)
                )
        return described

    def list_transactions(
        self,
        state_filters: Sequence[str],
        producer_id_filters: Sequence[int],
        duration_filter_ms: int = -1,
    ) -> tuple[ErrorCode, list[ListedTransaction]]:
        """Transactions of every shard; COORDINATOR_LOAD_IN_PROGRESS (and nothing) while
        any loads, as Kafka answers."""
        if any(s.status is ShardStatus.LOADING for s in self._shards.values()):
            return ErrorCode.coordinator_load_in_progress, []
        now_ms = self._clock()
        listed: list[ListedTransaction] = []
        for partition in sorted(self._shards):
            shard = self._shards[partition]
            if shard.status is ShardStatus.ACTIVE:
                listed.extend(
                    shard.coordinator.list_transactions(
                        state_filters, producer_id_filters, duration_filter_ms, now_ms
                    )
                )
        return ErrorCode.none, listed

    # -- periodic work -------------------------------------------------------------------

    async def abort_timed_out(self) -> None:
        """One pass: abort (with a fencing epoch bump) every Ongoing transaction older than
        its timeout. Returns once the PrepareAbort records are durable; markers follow."""
        now_ms = self._clock()
        writes = []
        for shard in list(self._shards.values()):
            if shard.status is ShardStatus.ACTIVE:
                for transition in shard.coordinator.timed_out_transactions(now_ms):
                    log.info(
                        "aborting transaction of %r: older than its timeout",
                        transition.transactional_id,
                    )
                    writes.append(self._submit(shard, [transition]))
        for error in await asyncio.gather(*writes):
            if error is not ErrorCode.none:
                log.warning("aborting a timed-out transaction failed: %s", error.name)

    async def remove_expired_transactional_ids(self) -> None:
        """One pass: tombstone idle ids past ``transactional.id.expiration.ms``."""
        now_ms = self._clock()
        writes = []
        for shard in list(self._shards.values()):
            if shard.status is ShardStatus.ACTIVE:
                transitions = shard.coordinator.expired_transactional_ids(now_ms)
                if transitions:
                    log.info(
                        "%s-%d: expiring %d transactional ids",
                        TRANSACTION_STATE_TOPIC,
                        shard.partition,
                        len(transitions),
                    )
                    writes.append(self._submit(shard, transitions))
        for error in await asyncio.gather(*writes):
            if error is not ErrorCode.none:
                log.warning("expiring transactional ids failed: %s", error.name)

    async def _every(self, interval_ms: int, operation: Callable[[], Awaitable[None]]) -> None:
        interval_s = max(interval_ms, 1) / 1000
        while True:
            await asyncio.sleep(interval_s)
            try:
                await operation()
            except Exception:
                log.exception("periodic transaction coordinator task failed")

    # -- machinery -----------------------------------------------------------------------

    def _shard_of(self, transactional_id: str) -> Shard:
        return self._shards[self.partition_for(transactional_id)]

    def _owns(self, shard: Shard) -> bool:
        return shard.status is ShardStatus.ACTIVE and self._shards.get(shard.partition) is shard

    async def _run(
        self, shard: Shard, result: TxnResult[T], on_error: Callable[[ErrorCode], T]
    ) -> T:
        if result.transition is None:
            return result.response
        error = await self._submit(shard, [result.transition])
        return result.response if error is ErrorCode.none else on_error(error)

    def _submit(
        self, shard: Shard, transitions: Sequence[TxnTransition]
    ) -> asyncio.Future[ErrorCode]:
        """Mark the ids pending and append their records — synchronously, so that nothing
        runs between the shard's decision and this — and return the outcome's future."""
        coordinator = shard.coordinator
        for transition in transitions:
            coordinator.begin(transition)
        try:
            durable = self._append(shard.partition, [to_new_record(t.record) for t in transitions])
        except Exception as exc:
            log.warning("%s-%d: append failed: %s", TRANSACTION_STATE_TOPIC, shard.partition, exc)
            for transition in transitions:
                coordinator.abort_pending(transition.transactional_id)
            failed: asyncio.Future[ErrorCode] = asyncio.get_running_loop().create_future()
            failed.set_result(write_error_code(exc))
            return failed
        return asyncio.ensure_future(self._complete(shard, transitions, durable))

    def _apply_on_append(self, shard: Shard, transition: TxnTransition) -> ErrorCode:
        """Write a CompleteCommit/CompleteAbort record and apply it at once, without waiting
        for its fsync, so the producer's next transaction need not wait for one more disk
        flush. Safe because losing it is harmless: after a crash the coordinator replays
        PrepareCommit/PrepareAbort and writes the markers again, which the partitions accept
        (a marker for a producer with no open transaction is a no-op for readers), exactly
        as after a Kafka coordinator failover. And any later record of this id goes to the
        same log after it, so a later record that survives a crash implies this one did."""
        coordinator = shard.coordinator
        coordinator.begin(transition)
        try:
            durable = self._append(shard.partition, [to_new_record(transition.record)])
        except Exception as exc:
            log.warning("%s-%d: append failed: %s", TRANSACTION_STATE_TOPIC, shard.partition, exc)
            coordinator.abort_pending(transition.transactional_id)
            return write_error_code(exc)
        coordinator.replay(transition.record)
        flushed = asyncio.ensure_future(durable)
        self._tasks.add(flushed)
        flushed.add_done_callback(self._tasks.discard)
        flushed.add_done_callback(_log_failure)
        return ErrorCode.none

    async def _complete(
        self, shard: Shard, transitions: Sequence[TxnTransition], durable: Awaitable[None]
    ) -> ErrorCode:
        coordinator = shard.coordinator
        try:
            await durable
        except asyncio.CancelledError:
            for transition in transitions:
                coordinator.abort_pending(transition.transactional_id)
            raise
        except Exception as exc:
            for transition in transitions:
                coordinator.abort_pending(transition.transactional_id)
            log.error("%s-%d: write not durable: %s", TRANSACTION_STATE_TOPIC, shard.partition, exc)
            return write_error_code(exc)
        if not self._owns(shard):
            return ErrorCode.not_coordinator
        for transition in transitions:
            coordinator.replay(transition.record)
        for transition in transitions:
            if transition.markers is not None:
                self._start_marker_round(shard, transition.transactional_id, transition.markers)
        return ErrorCode.none

    def _start_marker_round(
        self, shard: Shard, transactional_id: str, request: TxnMarkerRequest
    ) -> None:
        task = asyncio.get_running_loop().create_task(
            self._marker_round(shard, transactional_id, request)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    async def _marker_round(
        self, shard: Shard, transactional_id: str, request: TxnMarkerRequest
    ) -> None:
        """Write the markers until every partition is final, then complete the txn."""
        remaining = request.partitions
        backoff_ms = self.config.marker_retry_backoff_ms
        while remaining:
            if not self._owns(shard):
                return
            try:
                answers: Mapping[TopicPartition, ErrorCode] = await self._write_markers(
                    dataclasses.replace(request, partitions=remaining)
                )
            except Exception as exc:
                log.warning("%r: writing markers failed, will retry: %s", transactional_id, exc)
                answers = {}
            retry = tuple(tp for tp in remaining if answers.get(tp) not in _MARKER_FINAL)
            for tp in remaining:
                error = answers.get(tp)
                if error is not None and error is not ErrorCode.none and tp not in retry:
                    log.info(
                        "%r: dropping marker for %s-%d: %s",
                        transactional_id,
                        tp[0],
                        tp[1],
                        error.name,
                    )
            remaining = retry
            if remaining:
                await asyncio.sleep(backoff_ms / 1000)
                backoff_ms = min(backoff_ms * 2, self.config.marker_retry_backoff_max_ms)
        backoff_ms = self.config.marker_retry_backoff_ms
        while self._owns(shard):
            transition = shard.coordinator.complete_transaction(
                transactional_id, request.producer_id, request.producer_epoch, self._clock()
            )
            if transition is None:
                return
            error = self._apply_on_append(shard, transition)
            if error in (ErrorCode.none, ErrorCode.not_coordinator):
                return
            log.warning("%r: completing the transaction failed: %s", transactional_id, error.name)
            await asyncio.sleep(backoff_ms / 1000)
            backoff_ms = min(backoff_ms * 2, self.config.marker_retry_backoff_max_ms)


def _identity(error: ErrorCode) -> ErrorCode:
    return error


def _log_failure(future: asyncio.Future[Any]) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        log.error("transaction coordinator background task failed", exc_info=exc)
