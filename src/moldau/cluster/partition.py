"""One partition this broker replicates: leader-side ISR and high-watermark bookkeeping.

As leader, a ``Partition`` is where Kafka's replication rules live:

* **Follower state.** Each follower's log end offset (LEO) is the fetch offset of its latest
  Fetch; its *last caught-up time* moves when a fetch reached the leader's LEO at that time,
  or reached the LEO the leader had at the follower's previous fetch (then the follower was
  caught up as of that previous fetch) — Kafka's ``Replica.updateFetchState``.
* **High watermark** = the smallest LEO over the ISR, the leader's own included. It never
  moves backwards, and a follower whose LEO is unknown (nothing fetched since we became
  leader) holds it where it is. While an ISR change is being written, the HW counts the
  *maximal* ISR, current plus proposed (KIP-497): an expansion already waits for the joining
  follower, a shrink still waits for the leaving one until the store has the new ISR.
* **ISR changes** go through the metadata store by compare-and-swap (``AlterPartition``),
  one at a time per partition. Expand: a follower outside the ISR whose LEO reached the HW
  and the start of the current leader epoch. Shrink (``maybe_shrink_isr``, run by the replica
  manager's timer): followers not caught up for ``replica.lag.time.max.ms``; the leader always
  stays, so the ISR is never empty. The ISR in force changes only when the store's image says
  so (``update_state``); a failed CAS means the image moved and its next version settles it.
* **acks=all waiters** (``wait_for_replication``) sit in a heap by offset and are completed,
  in offset order, when the HW passes them: O(completed) per HW move. They fail with
  NOT_LEADER_OR_FOLLOWER when leadership goes, and time out with REQUEST_TIMED_OUT.
* **Lease.** While the broker's metadata-store lease has lapsed it may already have been
  replaced as leader: appends are refused and the HW stands still (so no waiter completes).

Everything runs on the event loop; nothing here blocks except the log append itself.
Single node (no ``alter_partition``): the ISR is this broker alone, so HW = LEO after every
append, exactly as before replication existed.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kio.schema.errors import ErrorCode

from moldau.cluster.state import PartitionState
from moldau.log.log import AppendInfo, PartitionLog
from moldau.log.origin import AppendOrigin

log = logging.getLogger("moldau.replication")

AlterPartition = Callable[[str, int, PartitionState, PartitionState], Awaitable[bool]]
"""``(topic, partition, expected, new) -> applied``: compare-and-swap a partition's state."""

_WAITER_COMPACT_MIN = 64


@dataclass(frozen=True, slots=True)
class ReplicationConfig:
    """The broker's replication settings (Kafka's ``replica.*`` keys)."""

    node_id: int
    replica_lag_time_max_ms: int = 30000
    replica_fetch_wait_max_ms: int = 500
    replica_fetch_min_bytes: int = 1
    replica_fetch_max_bytes: int = 1048576
    replica_fetch_response_max_bytes: int = 10485760
    replica_fetch_backoff_ms: int = 1000
    isr_check_interval_ms: int | None = None
    """How often leaders look for lagging followers; default half the lag limit."""

    @property
    def isr_check_interval(self) -> int:
        if self.isr_check_interval_ms is not None:
            return self.isr_check_interval_ms
        return max(self.replica_lag_time_max_ms // 2, 1)


class PartitionError(Exception):
    """A request for a partition this broker cannot serve; ``error_code`` goes on the wire."""

    def __init__(self, error_code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


@dataclass(slots=True)
class FollowerState:
    """What the leader knows of one follower (reset whenever we become leader)."""

    replica_id: int
    log_end_offset: int = -1
    """-1: unknown (no fetch since we became leader)."""
    last_caught_up_time_ms: int = 0
    last_fetch_leader_log_end_offset: int = -1
    last_fetch_time_ms: int = 0

    def on_fetch(self, fetch_offset: int, leader_log_end_offset: int, now_ms: int) -> None:
        if fetch_offset >= leader_log_end_offset:
            self.last_caught_up_time_ms = max(self.last_caught_up_time_ms, now_ms)
        elif fetch_offset >= self.last_fetch_leader_log_end_offset:
            self.last_caught_up_time_ms = max(self.last_caught_up_time_ms, self.last_fetch_time_ms)
        self.log_end_offset = fetch_offset
        self.last_fetch_leader_log_end_offset = leader_log_end_offset
        self.last_fetch_time_ms = now_ms

    def is_caught_up(self, leader_log_end_offset: int, now_ms: int, lag_max_ms: int) -> bool:
        return (
            self.log_end_offset == leader_log_end_offset
            or now_ms - self.last_caught_up_time_ms <= lag_max_ms
        )


@dataclass(slots=True)
class _Waiter:
    last_offset: int
    future: asyncio.Future[ErrorCode]
    timer: asyncio.TimerHandle | None = field(default=None)


class Partition:
    """One local replica of ``topic``-``partition``; see the module docstring.

    The replica manager creates it and drives its role from the metadata image
    (``make_leader``, ``make_follower``, ``update_state``, ``stop``); request handlers call
    ``append_as_leader``, ``wait_for_replication`` and ``on_follower_fetch`` on leaders only
    (the manager's ``leader_partition`` checks that).
    """

    def __init__(
        self,
        topic: str,
        partition: int,
        log: PartitionLog,
        state: PartitionState,
        *,
        node_id: int,
        config: ReplicationConfig,
        alter_partition: AlterPartition | None,
        on_high_watermark: Callable[[str, int], None],
        lease_valid: Callable[[], bool],
        replica_eligible: Callable[[int], bool] = lambda _: True,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.log = log
        self.state = state
        self.is_leader = False
        self.leader_epoch = -1
        """The epoch of the leader we follow or are; -1 until a role is set."""
        self.leader_epoch_start_offset = 0
        self._node_id = node_id
        self._config = config
        self._alter_partition = alter_partition
        self._on_high_watermark = on_high_watermark
        self._lease_valid = lease_valid
        self._replica_eligible = replica_eligible
        self._followers: dict[int, FollowerState] = {}
        self._maximal_isr: tuple[int, ...] = ()
        """Followers (not us) whose LEO bounds the HW: the ISR and the ISR being proposed."""
        self._pending_isr: tuple[int, ...] | None = None
        self._alter_in_flight: object | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiters: list[tuple[int, int, _Waiter]] = []
        self._waiter_seq = itertools.count()
        self._dead_waiters = 0

    def __repr__(self) -> str:
        role = "leader" if self.is_leader else "follower"
        return f"Partition({self.topic}-{self.partition}, {role}, epoch={self.leader_epoch})"

    @property
    def min_insync_replicas(self) -> int:
        return self.log.config.min_insync_replicas

    @property
    def isr_change_in_flight(self) -> bool:
        return self._alter_in_flight is not None

    def is_replica(self, replica_id: int) -> bool:
        """Whether ``replica_id`` is one of our followers (leader only)."""
        return replica_id in self._followers

    def follower_state(self, replica_id: int) -> FollowerState | None:
        return self._followers.get(replica_id)

    # --- role changes (from the replica manager) -----------------------------------------

    def make_leader(self, state: PartitionState, now_ms: int) -> None:
        """Become leader at ``state.leader_epoch``: the epoch starts at our LEO, every
        follower's LEO becomes unknown, and ISR members get a full lag period to fetch."""
        self.state = state
        self.is_leader = True
        self.leader_epoch = state.leader_epoch
        log_ = self.log
        log_.hw_follows_appends = False
        log_.assign_leader_epoch(state.leader_epoch)
        self.leader_epoch_start_offset = log_.log_end_offset
        self._followers = {
            r: FollowerState(r, last_caught_up_time_ms=now_ms if r in state.isr else 0)
            for r in state.replicas
            if r != self._node_id
        }
        self._pending_isr = None
        self._alter_in_flight = None
        self._update_maximal_isr()
        self.maybe_increment_high_watermark()

    def make_follower(self, state: PartitionState) -> None:
        """Follow ``state.leader`` (the fetchers do the work); pending acks=all writes fail."""
        self.state = state
        self.is_leader = False
        self.leader_epoch = state.leader_epoch
        self.log.hw_follows_appends = False
        self._followers = {}
        self._pending_isr = None
        self._alter_in_flight = None
        self._maximal_isr = ()
        self._fail_waiters(ErrorCode.not_leader_or_follower)

    def update_state(self, state: PartitionState, now_ms: int) -> None:
        """Same leader and epoch, new ISR or replica set: adopt it (a shrink may let the HW
        move), and track followers that were added to or removed from the replicas."""
        self.state = state
        if not self.is_leader:
            return
        followers = self._followers
        for r in state.replicas:
            if r != self._node_id and r not in followers:
                followers[r] = FollowerState(r)
        for r in [r for r in followers if r not in state.replicas]:
            del followers[r]
        self._update_maximal_isr()
        self.maybe_increment_high_watermark()

    def stop(self) -> None:
        """The replica is gone from here (deleted, reassigned away, broker closing)."""
        self.is_leader = False
        self._followers = {}
        self._maximal_isr = ()
        self._fail_waiters(ErrorCode.not_leader_or_follower)
        for task in list(self._tasks):
            task.cancel()

    # --- writes ---------------------------------------------------------------------------

    def _check_writable(self) -> None:
        if not self.is_leader:
            raise PartitionError(
                ErrorCode.not_leader_or_follower,
                f"This broker is not the leader of {self.topic}-{self.partition}",
            )
        if not self._lease_valid():
            raise PartitionError(
                ErrorCode.not_leader_or_follower,
                f"This broker lost its metadata session and may no longer lead "
                f"{self.topic}-{self.partition}",
            )

    def append_as_leader(
        self,
        records: bytearray | memoryview,
        *,
        now_ms: int,
        origin: AppendOrigin = AppendOrigin.CLIENT,
        required_acks: int = 1,
    ) -> AppendInfo:
        """Append a batch at our leader epoch; raises PartitionError (not leader, lease
        lapsed, acks=all with the ISR below ``min.insync.replicas``) or LogAppendError."""
        self._check_writable()
        if required_acks == -1:
            isr_size = len(self.state.isr)
            min_isr = self.min_insync_replicas
            if isr_size < min_isr:
                raise PartitionError(
                    ErrorCode.not_enough_replicas,
                    f"The size of the current ISR {self.state.isr} is insufficient to satisfy "
                    f"the min.isr requirement of {min_isr} for partition "
                    f"{self.topic}-{self.partition}",
                )
        info = self.log.append_as_leader(
            records, leader_epoch=self.leader_epoch, now_ms=now_ms, origin=origin
        )
        self.maybe_increment_high_watermark()
        return info

    def append_txn_marker(
        self,
        *,
        producer_id: int,
        producer_epoch: int,
        commit: bool,
        coordinator_epoch: int,
        now_ms: int,
    ) -> AppendInfo:
        """Write a COMMIT/ABORT marker as leader (see ``PartitionLog.append_txn_marker``)."""
        self._check_writable()
        info = self.log.append_txn_marker(
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            commit=commit,
            coordinator_epoch=coordinator_epoch,
            leader_epoch=self.leader_epoch,
            now_ms=now_ms,
        )
        self.maybe_increment_high_watermark()
        return info

    # --- acks=all -------------------------------------------------------------------------

    def wait_for_replication(self, last_offset: int, timeout_ms: int) -> Awaitable[ErrorCode]:
        """Completes with NONE once the HW passes ``last_offset`` (or
        NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR is then below ``min.insync.replicas``),
        REQUEST_TIMED_OUT after ``timeout_ms``, NOT_LEADER_OR_FOLLOWER if leadership goes
        first. Call on the event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ErrorCode] = loop.create_future()
        if not self.is_leader:
            future.set_result(ErrorCode.not_leader_or_follower)
            return future
        if self.log.high_watermark > last_offset:
            future.set_result(self._acks_all_result())
            return future
        waiter = _Waiter(last_offset, future)
        waiter.timer = loop.call_later(max(timeout_ms, 0) / 1000, self._expire, waiter)
        heapq.heappush(self._waiters, (last_offset, next(self._waiter_seq), waiter))
        return future

    def _acks_all_result(self) -> ErrorCode:
        if len(self.state.isr) < self.min_insync_replicas:
            return ErrorCode.not_enough_replicas_after_append
        return ErrorCode.none

    def _expire(self, waiter: _Waiter) -> None:
        waiter.timer = None
        if waiter.future.done():
            return
        waiter.future.set_result(ErrorCode.request_timed_out)
        self._dead_waiters += 1
        waiters = self._waiters
        if self._dead_waiters > _WAITER_COMPACT_MIN and 2 * self._dead_waiters > len(waiters):
            self._waiters = [w for w in waiters if not w[2].future.done()]
            heapq.heapify(self._waiters)
            self._dead_waiters = 0

    def _complete_waiters(self) -> None:
        waiters = self._waiters
        if not waiters:
            return
        high_watermark = self.log.high_watermark
        if waiters[0][0] >= high_watermark:
            return
        result = self._acks_all_result()
        while waiters and waiters[0][0] < high_watermark:
            waiter = heapq.heappop(waiters)[2]
            if waiter.timer is not None:
                waiter.timer.cancel()
            if waiter.future.done():
                self._dead_waiters = max(self._dead_waiters - 1, 0)
            else:
                waiter.future.set_result(result)

    def _fail_waiters(self, error: ErrorCode) -> None:
        waiters, self._waiters = self._waiters, []
        self._dead_waiters = 0
        for _, _, waiter in waiters:
            if waiter.timer is not None:
                waiter.timer.cancel()
            if not waiter.future.done():
                waiter.future.set_result(error)

    # --- followers, HW and ISR ------------------------------------------------------------

    def on_follower_fetch(self, replica_id: int, fetch_offset: int, now_ms: int) -> None:
        """A follower fetched from ``fetch_offset`` (so its LEO is that): update its state,
        maybe add it to the ISR, maybe move the HW."""
        follower = self._followers.get(replica_id) if self.is_leader else None
        if follower is None:
            return
        follower.on_fetch(fetch_offset, self.log.log_end_offset, now_ms)
        if replica_id not in self.state.isr:
            self._maybe_expand_isr(follower)
        self.maybe_increment_high_watermark()

    def maybe_increment_high_watermark(self) -> bool:
        """Move the HW up to the smallest LEO over the maximal ISR; notify and complete
        waiters when it moves. Returns whether it moved."""
        if not self.is_leader or not self._lease_valid():
            return False
        log_ = self.log
        candidate = log_.log_end_offset
        followers = self._followers
        for replica_id in self._maximal_isr:
            follower = followers.get(replica_id)
            offset = follower.log_end_offset if follower is not None else -1
            if offset < candidate:
                candidate = offset
        if candidate <= log_.high_watermark:
            return False
        log_.high_watermark = candidate
        self._on_high_watermark(self.topic, self.partition)
        self._complete_waiters()
        return True

    def _update_maximal_isr(self) -> None:
        members = set(self.state.isr)
        if self._pending_isr is not None:
            members.update(self._pending_isr)
        members.discard(self._node_id)
        self._maximal_isr = tuple(sorted(members))

    def _can_change_isr(self) -> bool:
        return (
            self.is_leader
            and self._alter_partition is not None
            and self._alter_in_flight is None
            and self._lease_valid()
        )

    def _maybe_expand_isr(self, follower: FollowerState) -> None:
        if not self._can_change_isr():
            return
        offset = follower.log_end_offset
        if offset < self.log.high_watermark or offset < self.leader_epoch_start_offset:
            return
        if not self._replica_eligible(follower.replica_id):
            return
        members = {*self.state.isr, follower.replica_id}
        self._propose_isr(tuple(r for r in self.state.replicas if r in members))

    def maybe_shrink_isr(self, now_ms: int) -> None:
        """Drop from the ISR the followers that have not caught up for
        ``replica.lag.time.max.ms`` (never the leader, so never to empty)."""
        if not self._can_change_isr():
            return
        leader_end = self.log.log_end_offset
        lag_max_ms = self._config.replica_lag_time_max_ms
        isr = self.state.isr
        lagging = set()
        for replica_id in isr:
            if replica_id == self._node_id:
                continue
            follower = self._followers.get(replica_id)
            if follower is None or not follower.is_caught_up(leader_end, now_ms, lag_max_ms):
                lagging.add(replica_id)
        if not lagging:
            return
        keep = [r for r in isr if r not in lagging]
        if self._node_id not in keep:
            return
        log.info(
            "%s-%d: shrinking ISR %s, out of sync: %s",
            self.topic,
            self.partition,
            list(isr),
            sorted(lagging),
        )
        self._propose_isr(tuple(r for r in self.state.replicas if r in keep))

    def _propose_isr(self, new_isr: tuple[int, ...]) -> None:
        alter = self._alter_partition
        if alter is None or new_isr == self.state.isr:
            return
        expected = self.state
        proposed = expected.next(isr=new_isr)
        token = object()
        self._alter_in_flight = token
        self._pending_isr = new_isr
        self._update_maximal_isr()
        task = asyncio.get_running_loop().create_task(self._alter(alter, expected, proposed, token))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _alter(
        self,
        alter: AlterPartition,
        expected: PartitionState,
        proposed: PartitionState,
        token: object,
    ) -> None:
        try:
            applied = await alter(self.topic, self.partition, expected, proposed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "%s-%d: ISR change to %s failed: %s",
                self.topic,
                self.partition,
                list(proposed.isr),
                exc,
            )
            applied = False
        if not applied:
            log.debug(
                "%s-%d: ISR change to %s not applied (state moved)",
                self.topic,
                self.partition,
                list(proposed.isr),
            )
        if self._alter_in_flight is token:
            self._alter_in_flight = None
            self._pending_isr = None
            if self.is_leader:
                self._update_maximal_isr()
                self.maybe_increment_high_watermark()
