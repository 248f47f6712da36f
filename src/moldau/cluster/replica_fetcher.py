"""The follower side of replication: fetch from each partition's leader into the local log.

:class:`ReplicaFetcherManager` keeps one fetcher per leader broker (Kafka's
``ReplicaFetcherManager``/``ReplicaFetcherThread``, here an asyncio task each), and each
fetcher one :class:`~moldau.cluster.kafka_client.BrokerClient` to its leader. Fetching many
partitions from one leader in one Fetch request is what keeps the per-request cost (DESIGN
§7) off the replication path.

A partition goes through two phases (Kafka's ``Truncating`` and ``Fetching`` states):

**Truncation** (KIP-101, KIP-279), whenever it is (re)added with a new leader or epoch. Our
log may hold records the new leader never had (we led before, or followed a deposed leader).
We ask the leader, with OffsetForLeaderEpoch, where our latest epoch ends in its log, and
cut our log there (:func:`decide_truncation`). When the leader answers with an epoch we do
not have, we cut at the end of our largest epoch below it and ask again — each round drops
at least one of our epochs, so it ends. A log without any epoch (never written under an
epoch) is cut to its high watermark, which was committed, so the leader has it.

**Fetching**: Fetch v12 from our log end offset, naming our latest epoch as
``last_fetched_epoch`` so that the leader can tell us at once if we diverged
(``diverging_epoch``, KIP-320/595: truncated as above). Batches are appended as they came
(``append_as_follower``: no decoding beyond the batch headers), the high watermark becomes
``min(leader's, our LEO)`` and the log start offset follows the leader's.
OFFSET_OUT_OF_RANGE is Kafka's ``fetchOffsetAndTruncate``: when the leader's end is below
ours (an unclean election left it shorter) we cut to it; when its log start is above our end
(we were away while retention ran) we empty the log and restart it there. A partition whose
leader says NOT_LEADER_OR_FOLLOWER / FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH /
UNKNOWN_TOPIC_OR_PARTITION (metadata not yet agreed) is delayed by
``replica.fetch.backoff.ms`` while the others go on; a new image re-adds it if the leader
moved.

Ownership: ``add_partitions``/``remove_partitions`` are synchronous and run on the loop, as
does every touch of a log. A fetcher re-checks after each network round trip that the
partition is still its own *in the same state object* before it writes: ``remove_partitions``
has thereby stopped fetching when it returns, and the caller may delete the log at once. A
connection failure (or the leader's address changing or vanishing with its registration)
drops the client; the fetcher reconnects after the backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kio.schema.errors import ErrorCode
from kio.schema.fetch.v12 import request as fetch_req
from kio.schema.list_offsets.v4 import request as list_req
from kio.schema.offset_for_leader_epoch.v4 import request as epoch_req
from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import i8, i32, i32Timedelta, i64

from moldau.cluster.kafka_client import (
    PLAINTEXT,
    BrokerClient,
    BrokerConnectionError,
    ClientSecurity,
)
from moldau.cluster.replica_manager import ReplicationConfig
from moldau.log.errors import LogAppendError
from moldau.log.log import PartitionLog
from moldau.protocol.api import ApiKey
from moldau.protocol.record_batch import HEADER_SIZE, read_header

__all__ = [
    "FollowerTarget",
    "ReplicaFetcherManager",
    "TruncationDecision",
    "below_first_epoch_rule",
    "decide_truncation",
]

log = logging.getLogger("moldau.replication.fetcher")

TopicPartition = tuple[str, int]

UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1
EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
FETCH_VERSION = 12
OFFSET_FOR_LEADER_EPOCH_VERSION = 4
LIST_OFFSETS_VERSION = 4
REQUEST_TIMEOUT_S = 30.0
"""Kafka's ``replica.socket.timeout.ms`` default; well above ``replica.fetch.wait.max.ms``."""

_DELAY_ERRORS = frozenset(
    {
        ErrorCode.not_leader_or_follower,
        ErrorCode.fenced_leader_epoch,
        ErrorCode.unknown_leader_epoch,
        ErrorCode.unknown_topic_or_partition,
    }
)


@dataclass
class FollowerTarget:
    """A local log to keep in step with its leader, and the leader epoch we follow it at."""

    log: PartitionLog
    leader_epoch: int


# --- the truncation decision (pure) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TruncationDecision:
    """Where to cut the follower's log; ``completed`` False: ask the leader again with our
    (then smaller) latest epoch."""

    offset: int
    completed: bool


def decide_truncation(
    leader_epoch: int,
    leader_end_offset: int,
    *,
    log_end_offset: int,
    local_end_offset_for: Callable[[int], tuple[int, int]],
) -> TruncationDecision:
    """KIP-279: where the follower's log must end, given the leader's answer for our latest
    epoch (OffsetForLeaderEpoch, or a Fetch's ``diverging_epoch``).

    ``leader_epoch``/``leader_end_offset``: the largest epoch the leader has at or below the
    one we asked for, and where it ends in the leader's log. ``local_end_offset_for(epoch)``
    is our own log's answer to the same question (``(-1, -1)`` when we know no epoch that
    old). The result never exceeds our log end offset (cutting there removes nothing):

    * the leader knows no end (``leader_end_offset`` -1): keep our log (Kafka keeps the
      fetch offset; a real divergence then shows up as OFFSET_OUT_OF_RANGE);
    * no epoch in the answer (an old leader): cut at the leader's end offset;
    * we have that epoch too: cut where the first of the two logs ends it — everything
      before agrees (same epoch, same leader), everything after may not;
    * we do not have that epoch: cut at the end of our largest epoch below it and ask
      again (not completed);
    * we have no epoch that old: cut at the leader's end offset.
    """
    if leader_end_offset == UNDEFINED_OFFSET:
        return TruncationDecision(log_end_offset, completed=True)
    if leader_epoch == UNDEFINED_EPOCH:
        return TruncationDecision(min(leader_end_offset, log_end_offset), completed=True)
    local_epoch, local_end_offset = local_end_offset_for(leader_epoch)
    if local_epoch == UNDEFINED_EPOCH or local_end_offset == UNDEFINED_OFFSET:
        return TruncationDecision(min(leader_end_offset, log_end_offset), completed=True)
    if local_epoch != leader_epoch:
        return TruncationDecision(min(local_end_offset, log_end_offset), completed=False)
    return TruncationDecision(
        min(local_end_offset, leader_end_offset, log_end_offset), completed=True
    )


def below_first_epoch_rule(
    end_offset_for: Callable[[int], tuple[int, int]], first_entry: tuple[int, int] | None
) -> Callable[[int], tuple[int, int]]:
    """``end_offset_for`` with Kafka's answer for an epoch older than every entry we have:
    that epoch and the start of our first entry (``LeaderEpochFileCache.endOffsetFor``),
    where the log's own lookup answers ``(-1, -1)``.

    It matters: we became leader of an empty log at epoch 2 and wrote, while epoch 1 had
    written the same offsets elsewhere; the leader answers epoch 1 for our epoch 2, and
    everything from our first entry on must go — ``(-1, -1)`` would keep it.
    """
    if first_entry is None:
        return end_offset_for
    first_epoch, first_start = first_entry

    def lookup(epoch: int) -> tuple[int, int]:
        if 0 <= epoch < first_epoch:
            return epoch, first_start
        return end_offset_for(epoch)

    return lookup


def _local_end_offset_for(partition_log: PartitionLog) -> Callable[[int], tuple[int, int]]:
    entries = partition_log.leader_epochs.entries()
    first = (int(entries[0][0]), int(entries[0][1])) if entries else None
    return below_first_epoch_rule(partition_log.end_offset_for_epoch, first)


# --- per-partition state --------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _PartitionFetchState:
    """One followed partition inside its fetcher; replaced (never reused) on re-add, so an
    answer to a request sent for an older state is recognised and dropped."""

    topic: str
    partition: int
    target: FollowerTarget
    truncating: bool = True
    delayed_until: float = 0.0
    """loop.time() before which the partition is not fetched (errors back off)."""

    @property
    def log(self) -> PartitionLog:
        return self.target.log


def _latest_epoch(partition_log: PartitionLog) -> int | None:
    return partition_log.leader_epochs.latest_epoch()


# --- one leader ------------------------------------------------------------------------------


@dataclass(eq=False)
class _LeaderFetcher:
    """The partitions followed from one leader, and the task fetching them."""

    leader_id: int
    config: ReplicationConfig
    broker_address: Callable[[int], tuple[str, int] | None]
    on_append: Callable[[str, int], None] | None
    security: ClientSecurity = PLAINTEXT
    partitions: dict[TopicPartition, _PartitionFetchState] = field(default_factory=dict)
    client: BrokerClient | None = None
    task: asyncio.Task[None] | None = None
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _failures: int = 0

    @property
    def backoff_s(self) -> float:
        return self.config.replica_fetch_backoff_ms / 1000

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._run(), name=f"replica-fetcher-{self.leader_id}"
        )

    def stop(self) -> asyncio.Task[None] | None:
        """Stop at once (the task is cancelled; it touches no log after this)."""
        self.partitions.clear()
        if self.client is not None:
            self.client.close_now()
            self.client = None
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
        return task

    def add(self, tp: TopicPartition, target: FollowerTarget) -> None:
        current = self.partitions.get(tp)
        if (
            current is not None
            and current.log is target.log
            and current.target.leader_epoch == target.leader_epoch
        ):
            return  # same leader, same epoch: keep the state (Kafka does the same)
        self.partitions[tp] = _PartitionFetchState(tp[0], tp[1], target)
        self._wakeup.set()

    def remove(self, tp: TopicPartition) -> None:
        self.partitions.pop(tp, None)

    def _owns(self, state: _PartitionFetchState) -> bool:
        return self.partitions.get((state.topic, state.partition)) is state

    def _delay(self, state: _PartitionFetchState) -> None:
        state.delayed_until = asyncio.get_running_loop().time() + self.backoff_s

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake early when partitions were added since the round began."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), max(seconds, 0.0))

    # --- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while self.partitions:
                try:
                    client = self._current_client()
                    if client is None:
                        self._wakeup.clear()  # new partitions cannot help: no leader address
                        await self._sleep(self.backoff_s)
                        continue
                    await self._run_once(client)
                    self._failures = 0
                except BrokerConnectionError as exc:
                    self._drop_client()
                    self._failures += 1
                    level = logging.WARNING if self._failures == 1 else logging.DEBUG
                    log.log(level, "replica fetcher for broker %d: %s", self.leader_id, exc)
                    self._wakeup.clear()
                    await self._sleep(self.backoff_s)
                except Exception:
                    self._drop_client()
                    log.exception("replica fetcher for broker %d failed", self.leader_id)
                    await asyncio.sleep(self.backoff_s)
        finally:
            self._drop_client()

    def _current_client(self) -> BrokerClient | None:
        """The client to the leader's current address (None while it has none)."""
        address = self.broker_address(self.leader_id)
        client = self.client
        if client is not None and (client.closed or (client.host, client.port) != address):
            self._drop_client()
            client = None
        if client is None and address is not None:
            host, port = address
            client = self.client = BrokerClient(
                host,
                port,
                client_id=f"broker-{self.config.node_id}-fetcher-{self.leader_id}",
                timeout_s=max(REQUEST_TIMEOUT_S, 2 * self.config.replica_fetch_wait_max_ms / 1000),
                security=self.security,
            )
        return client

    def _drop_client(self) -> None:
        if self.client is not None:
            self.client.close_now()
            self.client = None

    async def _run_once(self, client: BrokerClient) -> None:
        self._wakeup.clear()  # partitions added from here on cut the idle sleep short
        now = asyncio.get_running_loop().time()
        ready = [s for s in self.partitions.values() if s.delayed_until <= now]
        truncating = [s for s in ready if s.truncating]
        if truncating:
            await self._truncate(client, truncating)
        fetching = [s for s in ready if not s.truncating and self._owns(s)]
        if fetching:
            await self._fetch(client, fetching)
            return
        if any(s.truncating and s.delayed_until <= now for s in self.partitions.values()):
            return  # another truncation round is due at once
        delays = [s.delayed_until for s in self.partitions.values()]
        if delays:
            await self._sleep(min(delays) - asyncio.get_running_loop().time())

    # --- truncation -----------------------------------------------------------------------

    async def _truncate(self, client: BrokerClient, states: list[_PartitionFetchState]) -> None:
        asked: dict[TopicPartition, tuple[_PartitionFetchState, int]] = {}
        for state in states:
            latest = _latest_epoch(state.log)
            if latest is None:
                self._truncate_log(state, state.log.high_watermark, "it has no leader epochs")
                state.truncating = False
            else:
                asked[(state.topic, state.partition)] = (state, latest)
        if not asked:
            return
        by_topic: dict[str, list[epoch_req.OffsetForLeaderPartition]] = {}
        for (topic, partition), (state, latest) in asked.items():
            by_topic.setdefault(topic, []).append(
                epoch_req.OffsetForLeaderPartition(
                    partition=i32(partition),
                    current_leader_epoch=i32(state.target.leader_epoch),
                    leader_epoch=i32(latest),
                )
            )
        request = epoch_req.OffsetForLeaderEpochRequest(
            replica_id=BrokerId(self.config.node_id),
            topics=tuple(
                epoch_req.OffsetForLeaderTopic(topic=TopicName(t), partitions=tuple(ps))
                for t, ps in by_topic.items()
            ),
        )
        response = await client.request(
            ApiKey.OFFSET_FOR_LEADER_EPOCH, OFFSET_FOR_LEADER_EPOCH_VERSION, request
        )
        for topic_result in response.topics:
            for result in topic_result.partitions:
                found = asked.pop((str(topic_result.topic), int(result.partition)), None)
                if found is None or not self._owns(found[0]):
                    continue
                state, latest = found
                if result.error_code != ErrorCode.none:
                    self._on_partition_error(state, result.error_code, "OffsetForLeaderEpoch")
                    continue
                self._apply_truncation(
                    state, int(result.leader_epoch), int(result.end_offset), latest
                )
        for state, _latest in asked.values():
            if self._owns(state):  # the leader left it out of its answer
                self._delay(state)

    def _apply_truncation(
        self,
        state: _PartitionFetchState,
        leader_epoch: int,
        leader_end_offset: int,
        asked_epoch: int,
    ) -> None:
        partition_log = state.log
        decision = decide_truncation(
            leader_epoch,
            leader_end_offset,
            log_end_offset=partition_log.log_end_offset,
            local_end_offset_for=_local_end_offset_for(partition_log),
        )
        self._truncate_log(
            state,
            decision.offset,
            f"the leader has epoch {leader_epoch} ending at {leader_end_offset}",
        )
        if decision.completed:
            state.truncating = False
            return
        latest = _latest_epoch(partition_log)
        if latest is not None and latest >= asked_epoch:
            # the cut removed no epoch (the cache and the log disagree): stop here rather
            # than ask the same question forever; a real divergence shows up when fetching
            log.warning(
                "%s: truncation at epoch %d made no progress; fetching from %d",
                partition_log.name,
                asked_epoch,
                partition_log.log_end_offset,
            )
            state.truncating = False
        else:
            state.truncating = True

    def _truncate_log(self, state: _PartitionFetchState, offset: int, why: str) -> None:
        partition_log = state.log
        if offset >= partition_log.log_end_offset:
            # Nothing to cut, but an epoch we started as leader without writing a record
            # (its entry starts at our LEO) must go, as in Kafka's ``truncateTo``: the new
            # leader never had it, and keeping it would stall the next KIP-279 round.
            partition_log.leader_epochs.truncate_from_end(partition_log.log_end_offset)
            return
        level = logging.WARNING if offset < partition_log.high_watermark else logging.INFO
        log.log(
            level,
            "%s: truncating from %d to %d (high watermark %d): %s",
            partition_log.name,
            partition_log.log_end_offset,
            offset,
            partition_log.high_watermark,
            why,
        )
        partition_log.truncate_to(offset)

    # --- fetching -------------------------------------------------------------------------

    def _fetch_request(
        self, states: list[_PartitionFetchState]
    ) -> tuple[fetch_req.FetchRequest, dict[TopicPartition, tuple[_PartitionFetchState, int]]]:
        config = self.config
        sent: dict[TopicPartition, tuple[_PartitionFetchState, int]] = {}
        by_topic: dict[str, list[fetch_req.FetchPartition]] = {}
        for state in states:
            partition_log = state.log
            fetch_offset = partition_log.log_end_offset
            latest = _latest_epoch(partition_log)
            sent[(state.topic, state.partition)] = (state, fetch_offset)
            by_topic.setdefault(state.topic, []).append(
                fetch_req.FetchPartition(
                    partition=i32(state.partition),
                    current_leader_epoch=i32(state.target.leader_epoch),
                    fetch_offset=i64(fetch_offset),
                    last_fetched_epoch=i32(UNDEFINED_EPOCH if latest is None else latest),
                    log_start_offset=i64(partition_log.log_start_offset),
                    partition_max_bytes=i32(config.replica_fetch_max_bytes),
                )
            )
        request = fetch_req.FetchRequest(
            replica_id=BrokerId(config.node_id),
            max_wait=i32Timedelta.parse(
                datetime.timedelta(milliseconds=config.replica_fetch_wait_max_ms)
            ),
            min_bytes=i32(config.replica_fetch_min_bytes),
            max_bytes=i32(config.replica_fetch_response_max_bytes),
            isolation_level=i8(0),
            session_id=i32(0),
            session_epoch=i32(-1),
            topics=tuple(
                fetch_req.FetchTopic(topic=TopicName(t), partitions=tuple(ps))
                for t, ps in by_topic.items()
            ),
            forgotten_topics_data=(),
            rack_id="",
        )
        return request, sent

    async def _fetch(self, client: BrokerClient, states: list[_PartitionFetchState]) -> None:
        request, sent = self._fetch_request(states)
        response = await client.request(ApiKey.FETCH, FETCH_VERSION, request)
        if response.error_code != ErrorCode.none:
            for state, _offset in sent.values():
                if self._owns(state):
                    self._on_partition_error(state, response.error_code, "Fetch")
            return
        out_of_range: list[_PartitionFetchState] = []
        for topic_response in response.responses:
            topic = str(topic_response.topic)
            for data in topic_response.partitions:
                found = sent.get((topic, int(data.partition_index)))
                if found is None or not self._owns(found[0]):
                    continue  # removed or re-added while the request was out
                state, fetch_offset = found
                if state.log.log_end_offset != fetch_offset:
                    continue  # the log moved under us (cannot happen while we own it)
                error = data.error_code
                if error == ErrorCode.none:
                    if self._on_partition_data(state, data):
                        out_of_range.append(state)
                elif error == ErrorCode.offset_out_of_range:
                    out_of_range.append(state)
                else:
                    self._on_partition_error(state, error, "Fetch")
        for state in out_of_range:
            if self._owns(state):
                await self._on_out_of_range(client, state)

    def _on_partition_data(self, state: _PartitionFetchState, data: Any) -> bool:
        """Apply one partition's answer; True when it must be handled as out of range."""
        partition_log = state.log
        diverging = data.diverging_epoch
        if diverging is not None and (diverging.epoch >= 0 or diverging.end_offset >= 0):
            if diverging.epoch < 0 or diverging.end_offset < 0:
                return True  # the leader cannot place our epoch at all
            latest = _latest_epoch(partition_log)
            self._apply_truncation(
                state,
                int(diverging.epoch),
                int(diverging.end_offset),
                UNDEFINED_EPOCH if latest is None else latest,
            )
            return False
        changed = False
        records = data.records
        if records:
            self._maybe_start_at_first_batch(partition_log, records)
            try:
                partition_log.append_as_follower(records)
            except LogAppendError as exc:
                log.warning(
                    "%s: cannot append %d fetched bytes at %d: %s",
                    partition_log.name,
                    len(records),
                    partition_log.log_end_offset,
                    exc,
                )
                self._delay(state)
                return False
            changed = True
        high_watermark = min(int(data.high_watermark), partition_log.log_end_offset)
        if high_watermark >= 0 and high_watermark != partition_log.high_watermark:
            partition_log.high_watermark = high_watermark
            changed = True
        leader_log_start = int(data.log_start_offset)
        if leader_log_start > partition_log.log_start_offset:
            partition_log.maybe_increment_log_start_offset(leader_log_start)
            changed = True
        if changed and self.on_append is not None:
            self.on_append(state.topic, state.partition)
        return False

    @staticmethod
    def _maybe_start_at_first_batch(partition_log: PartitionLog, records: bytes) -> None:
        """An empty log whose start falls inside the leader's first batch (the leader's log
        start is mid-batch after DeleteRecords, and we started there) restarts at the
        batch's base offset so that the whole batch fits, as Kafka's follower does."""
        log_end = partition_log.log_end_offset
        if log_end != partition_log.log_start_offset or len(records) < HEADER_SIZE:
            return
        header = read_header(records)
        if header.base_offset < log_end <= header.last_offset:
            partition_log.truncate_fully_and_start_at(header.base_offset)

    async def _on_out_of_range(self, client: BrokerClient, state: _PartitionFetchState) -> None:
        """Kafka's ``fetchOffsetAndTruncate``: place our log end against the leader's log."""
        partition_log = state.log
        leader_end = await self._list_offset(client, state, LATEST_TIMESTAMP)
        if leader_end is None or not self._owns(state):
            return
        log_end = partition_log.log_end_offset
        if leader_end < log_end:
            # an unclean election left the leader shorter than us
            self._truncate_log(state, leader_end, f"the leader's log ends at {leader_end}")
            return
        leader_start = await self._list_offset(client, state, EARLIEST_TIMESTAMP)
        if leader_start is None or not self._owns(state):
            return
        if leader_start > partition_log.log_end_offset:
            log.warning(
                "%s: the leader's log starts at %d, past our end %d: starting over there",
                partition_log.name,
                leader_start,
                partition_log.log_end_offset,
            )
            partition_log.truncate_fully_and_start_at(leader_start)
            if self.on_append is not None:
                self.on_append(state.topic, state.partition)
            return
        # our end is inside the leader's log after all: retry after the backoff
        self._delay(state)

    async def _list_offset(
        self, client: BrokerClient, state: _PartitionFetchState, timestamp: int
    ) -> int | None:
        request = list_req.ListOffsetsRequest(
            replica_id=BrokerId(self.config.node_id),
            isolation_level=i8(0),
            topics=(
                list_req.ListOffsetsTopic(
                    name=TopicName(state.topic),
                    partitions=(
                        list_req.ListOffsetsPartition(
                            partition_index=i32(state.partition),
                            current_leader_epoch=i32(state.target.leader_epoch),
                            timestamp=i64(timestamp),
                        ),
                    ),
                ),
            ),
        )
        response = await client.request(ApiKey.LIST_OFFSETS, LIST_OFFSETS_VERSION, request)
        for topic in response.topics:
            for result in topic.partitions:
                if str(topic.name) != state.topic or int(result.partition_index) != state.partition:
                    continue
                if result.error_code != ErrorCode.none:
                    if self._owns(state):
                        self._on_partition_error(state, result.error_code, "ListOffsets")
                    return None
                return int(result.offset)
        if self._owns(state):
            self._delay(state)
        return None

    def _on_partition_error(self, state: _PartitionFetchState, error: ErrorCode, api: str) -> None:
        level = logging.DEBUG if error in _DELAY_ERRORS else logging.WARNING
        log.log(
            level,
            "%s: %s from broker %d answered %s; retrying after %d ms",
            state.log.name,
            api,
            self.leader_id,
            error.name,
            self.config.replica_fetch_backoff_ms,
        )
        self._delay(state)


# --- the manager -----------------------------------------------------------------------------


class ReplicaFetcherManager:
    """Which leader each followed partition is fetched from; one fetcher task per leader.

    Called by the replica manager on the event loop as metadata images arrive:
    ``add_partitions`` (re)starts following (truncation first), ``remove_partitions`` stops
    before returning. ``on_append(topic, partition)`` is called after a fetch changed a log
    (records, high watermark or log start offset), e.g. to wake long polls. ``broker_address``
    gives a leader's endpoint on the inter-broker listener, ``security`` how to connect to it.
    """

    def __init__(
        self,
        config: ReplicationConfig,
        broker_address: Callable[[int], tuple[str, int] | None],
        on_append: Callable[[str, int], None] | None = None,
        security: ClientSecurity = PLAINTEXT,
    ) -> None:
        self.config = config
        self._broker_address = broker_address
        self._security = security
        self._on_append = on_append
        self._fetchers: dict[int, _LeaderFetcher] = {}
        self._leader_of: dict[TopicPartition, int] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._closed = False

    def leader_of(self, topic: str, partition: int) -> int | None:
        """The leader we fetch this partition from, if we follow it."""
        return self._leader_of.get((topic, partition))

    def is_truncating(self, topic: str, partition: int) -> bool:
        """Whether the partition still has to agree with its leader before fetching."""
        leader = self._leader_of.get((topic, partition))
        fetcher = self._fetchers.get(leader) if leader is not None else None
        state = fetcher.partitions.get((topic, partition)) if fetcher is not None else None
        return state is not None and state.truncating

    def add_partitions(
        self, leader_id: int, targets: Mapping[TopicPartition, FollowerTarget]
    ) -> None:
        """Follow ``targets`` from ``leader_id`` (moving them off any other leader)."""
        if self._closed or not targets:
            return
        for tp in targets:
            previous = self._leader_of.get(tp)
            if previous is not None and previous != leader_id:
                self._remove_one(tp)
        fetcher = self._fetchers.get(leader_id)
        if fetcher is None:
            fetcher = self._fetchers[leader_id] = _LeaderFetcher(
                leader_id, self.config, self._broker_address, self._on_append, self._security
            )
            fetcher.start()
        for tp, target in targets.items():
            fetcher.add(tp, target)
            self._leader_of[tp] = leader_id

    def remove_partitions(self, tps: Iterable[TopicPartition]) -> None:
        """Stop following ``tps``; no fetcher touches their logs after this returns."""
        for tp in tps:
            self._remove_one(tp)

    def _remove_one(self, tp: TopicPartition) -> None:
        leader_id = self._leader_of.pop(tp, None)
        if leader_id is None:
            return
        fetcher = self._fetchers.get(leader_id)
        if fetcher is None:
            return
        fetcher.remove(tp)
        if not fetcher.partitions:
            del self._fetchers[leader_id]
            self._track(fetcher.stop())

    def _track(self, task: asyncio.Task[None] | None) -> None:
        if task is not None and not task.done():
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        """Stop every fetcher and wait for their tasks to end."""
        self._closed = True
        for fetcher in list(self._fetchers.values()):
            self._track(fetcher.stop())
        self._fetchers.clear()
        self._leader_of.clear()
        tasks = list(self._stopping)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
