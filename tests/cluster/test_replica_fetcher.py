"""The follower side of replication: the KIP-279 truncation decision (pure, and against a
model of leader elections), and ReplicaFetcherManager against a real broker as leader."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import datetime
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.schema.errors import ErrorCode
from kio.schema.fetch.v12 import request as fetch_req

from moldau.cluster.kafka_client import BrokerClient
from moldau.cluster.replica_fetcher import (
    FollowerTarget,
    ReplicaFetcherManager,
    TruncationDecision,
    below_first_epoch_rule,
    decide_truncation,
)
from moldau.cluster.replica_manager import ReplicationConfig
from moldau.log.config import LogConfig
from moldau.log.log import PartitionLog
from moldau.protocol.api import ApiKey
from moldau.protocol.record_batch import iter_batches
from moldau.protocol.records import NewRecord, build_batch
from moldau.testing import BrokerProcess

# --- decide_truncation, case by case ----------------------------------------------------


def cache_lookup(
    entries: list[tuple[int, int]], log_end_offset: int
) -> Callable[[int], tuple[int, int]]:
    """``end_offset_for`` over ``(epoch, start_offset)`` entries, as the contract says:
    the largest epoch ≤ the one asked, ending where the next starts (the LEO for the last);
    ``(-1, -1)`` below every entry."""

    def lookup(epoch: int) -> tuple[int, int]:
        epochs = [e for e, _ in entries]
        index = bisect.bisect_right(epochs, epoch) - 1
        if index < 0:
            return -1, -1
        if index == len(entries) - 1:
            return entries[index][0], log_end_offset
        return entries[index][0], entries[index + 1][1]

    return lookup


def test_leader_without_an_answer_keeps_our_log() -> None:
    decision = decide_truncation(
        -1, -1, log_end_offset=40, local_end_offset_for=cache_lookup([(3, 0)], 40)
    )
    assert decision == TruncationDecision(40, completed=True)


def test_leader_without_epoch_cuts_at_its_end_offset() -> None:
    lookup = cache_lookup([(3, 0)], 40)
    assert decide_truncation(-1, 25, log_end_offset=40, local_end_offset_for=lookup) == (
        TruncationDecision(25, completed=True)
    )
    assert decide_truncation(-1, 55, log_end_offset=40, local_end_offset_for=lookup) == (
        TruncationDecision(40, completed=True)
    )


@pytest.mark.parametrize(
    ("ours_end", "leader_end", "log_end", "expected"),
    [
        (30, 50, 45, 30),  # our epoch 3 ended first (we then wrote under a later epoch)
        (60, 50, 70, 50),  # the leader's epoch 3 ended first: our tail diverges
        (45, 50, 45, 45),  # epoch 3 is our latest and the leader has all of it and more
        (45, 45, 45, 45),  # identical: nothing to cut
    ],
)
def test_same_epoch_cuts_where_the_first_log_ends_it(
    ours_end: int, leader_end: int, log_end: int, expected: int
) -> None:
    entries = [(1, 0), (3, 10)] + ([(4, ours_end)] if ours_end < log_end else [])
    decision = decide_truncation(
        3, leader_end, log_end_offset=log_end, local_end_offset_for=cache_lookup(entries, log_end)
    )
    assert decision == TruncationDecision(expected, completed=True)


def test_unknown_leader_epoch_cuts_at_our_end_of_the_epoch_below_and_asks_again() -> None:
    # we have epochs 1 (from 0) and 3 (from 20); the leader answers epoch 2, which we lack
    lookup = cache_lookup([(1, 0), (3, 20)], 35)
    decision = decide_truncation(2, 28, log_end_offset=35, local_end_offset_for=lookup)
    assert decision == TruncationDecision(20, completed=False)


def test_no_epoch_as_old_as_the_leaders_cuts_at_the_leaders_end() -> None:
    lookup = cache_lookup([(5, 10)], 30)
    assert decide_truncation(2, 12, log_end_offset=30, local_end_offset_for=lookup) == (
        TruncationDecision(12, completed=True)
    )


def test_never_cuts_past_our_log_end() -> None:
    lookup = cache_lookup([(1, 0), (3, 20)], 35)
    for leader_epoch, leader_end in [(-1, 99), (1, 99), (2, 99), (3, 99), (0, 99)]:
        decision = decide_truncation(
            leader_epoch, leader_end, log_end_offset=35, local_end_offset_for=lookup
        )
        assert decision.offset <= 35


# --- a model of elections: truncation ends exactly where two replicas' logs diverge ---------


@dataclasses.dataclass
class ModelReplica:
    """A replica's log as the epoch of each offset, plus its leader-epoch cache, following
    Kafka's rules (``assign`` drops entries it supersedes; truncation drops entries that
    start at or past the new end, including an empty epoch at the end)."""

    offsets: list[int] = dataclasses.field(default_factory=list)
    cache: list[tuple[int, int]] = dataclasses.field(default_factory=list)

    @property
    def log_end_offset(self) -> int:
        return len(self.offsets)

    def assign(self, epoch: int, start: int) -> None:
        if self.cache and self.cache[-1][0] >= epoch:
            return
        self.cache = [(e, s) for e, s in self.cache if s < start]
        self.cache.append((epoch, start))

    def append(self, epochs: list[int]) -> None:
        for epoch in epochs:
            self.assign(epoch, len(self.offsets))
            self.offsets.append(epoch)

    def truncate_to(self, offset: int) -> None:
        offset = min(offset, len(self.offsets))
        del self.offsets[offset:]
        self.cache = [(e, s) for e, s in self.cache if s < offset]

    def latest_epoch(self) -> int | None:
        return self.cache[-1][0] if self.cache else None

    def end_offset_for(self, epoch: int) -> tuple[int, int]:
        """Kafka's ``LeaderEpochFileCache.endOffsetFor``; below every entry: the requested
        epoch and the start of the first (data before it is gone or never had an epoch)."""
        if self.cache and epoch < self.cache[0][0]:
            return epoch, self.cache[0][1]
        if self.cache and epoch > self.cache[-1][0]:
            return -1, -1
        return cache_lookup(self.cache, self.log_end_offset)(epoch)

    def contract_end_offset_for(self, epoch: int) -> tuple[int, int]:
        """The log's own lookup as the issue's contract words it (``(-1, -1)`` below every
        entry), which the fetcher adapts with ``below_first_epoch_rule``."""
        return cache_lookup(self.cache, self.log_end_offset)(epoch)


def follow(follower: ModelReplica, leader: ModelReplica) -> int:
    """The fetcher's truncation phase against ``leader``; returns how many rounds it took."""
    rounds = 0
    while True:
        latest = follower.latest_epoch()
        if latest is None:
            follower.truncate_to(0)  # "to the high watermark": 0 in this model
            return rounds
        rounds += 1
        assert rounds <= 100, "truncation does not converge"
        leader_epoch, leader_end = leader.end_offset_for(latest)
        decision = decide_truncation(
            leader_epoch,
            leader_end,
            log_end_offset=follower.log_end_offset,
            local_end_offset_for=below_first_epoch_rule(
                follower.contract_end_offset_for, follower.cache[0] if follower.cache else None
            ),
        )
        follower.truncate_to(decision.offset)
        if decision.completed:
            return rounds


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


events = st.lists(
    st.tuples(
        st.sampled_from(["elect", "append", "replicate"]), st.integers(0, 2), st.integers(0, 6)
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(events, st.integers(0, 2), st.integers(0, 2))
def test_truncation_matches_the_divergence_point(
    history: list[tuple[str, int, int]], a: int, b: int
) -> None:
    """Three replicas live through elections (clean or not), appends and partial
    replication; whenever one follows the current leader its log must end up a prefix of
    the leader's, cut exactly where the two diverged."""
    replicas = [ModelReplica() for _ in range(3)]
    epoch, leader = 0, 0
    replicas[0].assign(0, 0)
    for kind, who, n in history:
        if kind == "elect":
            epoch += 1
            leader = who
            replicas[leader].assign(epoch, replicas[leader].log_end_offset)
        elif kind == "append":
            replicas[leader].append([epoch] * n)
        elif who != leader:
            follower, source = replicas[who], replicas[leader]
            expected = common_prefix(follower.offsets, source.offsets)
            follow(follower, source)
            assert follower.log_end_offset == expected
            copy_to = min(source.log_end_offset, follower.log_end_offset + n)
            follower.append(source.offsets[follower.log_end_offset : copy_to])
    if a != leader:
        follower, source = replicas[a], replicas[leader]
        expected = common_prefix(follower.offsets, source.offsets)
        follow(follower, source)
        assert follower.offsets == source.offsets[:expected]
    del b


# --- against a real broker as leader -----------------------------------------------------


CONFIG = ReplicationConfig(
    # -1: the single-node leader has no follower 2, so fetch as a consumer would (it reads
    # to the high watermark, which single-node is the log end)
    node_id=-1,
    replica_fetch_wait_max_ms=100,
    replica_fetch_backoff_ms=50,
)


def produce(broker: BrokerProcess, topic: str, count: int, *, start: int = 0) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    errors: list[object] = []
    for i in range(start, start + count):
        producer.produce(
            topic, value=b"v%d" % i, key=b"k%d" % i, on_delivery=lambda e, _m: errors.append(e)
        )
        producer.poll(0)
        if i % 5 == 4:
            producer.flush(30)  # several batches, not one
    assert producer.flush(30) == 0
    assert errors and all(e is None for e in errors), errors


async def leader_bytes(
    broker: BrokerProcess, topic: str, fetch_offset: int = 0
) -> tuple[bytes, int]:
    """The record batches of partition 0 from ``fetch_offset`` as the leader serves them,
    and its high watermark."""
    async with BrokerClient(broker.host, broker.port, client_id="check") as client:
        request = fetch_req.FetchRequest(
            replica_id=-1,
            max_wait=datetime.timedelta(0),
            min_bytes=0,
            max_bytes=1 << 24,
            isolation_level=0,
            session_id=0,
            session_epoch=-1,
            topics=(
                fetch_req.FetchTopic(
                    topic=topic,
                    partitions=(
                        fetch_req.FetchPartition(
                            partition=0, fetch_offset=fetch_offset, partition_max_bytes=1 << 24
                        ),
                    ),
                ),
            ),
            forgotten_topics_data=(),
            rack_id="",
        )
        response = await client.request(ApiKey.FETCH, 12, request)
    data = response.responses[0].partitions[0]
    assert data.error_code == ErrorCode.none
    return bytes(data.records or b""), int(data.high_watermark)


def follower_bytes(partition_log: PartitionLog) -> bytes:
    if partition_log.log_end_offset == partition_log.log_start_offset:
        return b""
    return partition_log.read(partition_log.log_start_offset, 1 << 24).read_bytes()


@pytest.fixture
def follower_log(tmp_path: Path) -> Iterator[Callable[[str], PartitionLog]]:
    opened: list[PartitionLog] = []

    def opener(topic: str) -> PartitionLog:
        partition_log = PartitionLog.open(tmp_path / f"{topic}-0", LogConfig(), recover=False)
        partition_log.hw_follows_appends = False
        opened.append(partition_log)
        return partition_log

    yield opener
    for partition_log in opened:
        if not partition_log.closed:
            partition_log.close()


@contextlib.asynccontextmanager
async def fetcher_manager(
    address: Callable[[int], tuple[str, int] | None],
) -> AsyncIterator[tuple[ReplicaFetcherManager, list[tuple[str, int]]]]:
    appended: list[tuple[str, int]] = []
    manager = ReplicaFetcherManager(CONFIG, address, on_append=lambda t, p: appended.append((t, p)))
    try:
        yield manager, appended
    finally:
        await manager.close()


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting until {what}") from None


async def caught_up(
    broker: BrokerProcess, topic: str, partition_log: PartitionLog, fetch_offset: int = 0
) -> bytes:
    expected, high_watermark = await leader_bytes(broker, topic, fetch_offset)
    await wait_until(
        lambda: (
            partition_log.log_end_offset == high_watermark
            and partition_log.high_watermark == high_watermark
        ),
        f"the follower reaches {high_watermark}",
    )
    return expected


async def test_follower_copies_the_leaders_batches(
    broker: BrokerProcess, follower_log: Callable[[str], PartitionLog]
) -> None:
    topic = "fetcher-copy"
    produce(broker, topic, 23)
    partition_log = follower_log(topic)
    address = (broker.host, broker.port)
    async with fetcher_manager(lambda node: address if node == 1 else None) as (manager, appended):
        manager.add_partitions(1, {(topic, 0): FollowerTarget(partition_log, leader_epoch=0)})
        expected = await caught_up(broker, topic, partition_log)
        assert follower_bytes(partition_log) == expected
        assert len(list(iter_batches(expected))) > 1
        assert (topic, 0) in appended
        # more records arrive through the long poll
        produce(broker, topic, 7, start=23)
        expected = await caught_up(broker, topic, partition_log)
        assert follower_bytes(partition_log) == expected
        assert manager.leader_of(topic, 0) == 1
        manager.remove_partitions([(topic, 0)])
        assert manager.leader_of(topic, 0) is None


async def test_diverged_follower_truncates_to_the_leader(
    broker: BrokerProcess, follower_log: Callable[[str], PartitionLog]
) -> None:
    topic = "fetcher-diverge"
    produce(broker, topic, 10)
    partition_log = follower_log(topic)
    address = (broker.host, broker.port)
    async with fetcher_manager(lambda node: address if node == 1 else None) as (manager, _):
        manager.add_partitions(1, {(topic, 0): FollowerTarget(partition_log, leader_epoch=0)})
        await caught_up(broker, topic, partition_log)
        manager.remove_partitions([(topic, 0)])
    common_end = partition_log.log_end_offset
    # A tail the leader never acknowledged (it came from an earlier leader of the same
    # epoch, say): the follower holds more than the leader does.
    for i in range(3):
        batch = build_batch(
            [NewRecord(key=None, value=b"stray %d" % i, timestamp_ms=0)] * 2,
            base_offset=partition_log.log_end_offset,
            partition_leader_epoch=0,
        )
        partition_log.append_as_follower(batch)
    assert partition_log.log_end_offset == common_end + 6
    async with fetcher_manager(lambda node: address if node == 1 else None) as (manager, _):
        manager.add_partitions(1, {(topic, 0): FollowerTarget(partition_log, leader_epoch=0)})
        expected = await caught_up(broker, topic, partition_log)
        assert follower_bytes(partition_log) == expected
    assert partition_log.log_end_offset == common_end
    assert partition_log.leader_epochs.latest_epoch() == 0


async def test_fetcher_waits_for_the_leaders_address(
    broker: BrokerProcess, follower_log: Callable[[str], PartitionLog]
) -> None:
    topic = "fetcher-address"
    produce(broker, topic, 5)
    partition_log = follower_log(topic)
    known: dict[int, tuple[str, int]] = {}
    async with fetcher_manager(known.get) as (manager, _):
        manager.add_partitions(1, {(topic, 0): FollowerTarget(partition_log, leader_epoch=0)})
        await asyncio.sleep(0.1)
        assert partition_log.log_end_offset == 0  # nowhere to fetch from yet
        known[1] = (broker.host, broker.port)
        expected = await caught_up(broker, topic, partition_log)
        assert follower_bytes(partition_log) == expected


async def test_fetcher_reconnects_after_the_leader_restarts(
    fresh_broker: BrokerProcess, follower_log: Callable[[str], PartitionLog]
) -> None:
    broker = fresh_broker.start()
    topic = "fetcher-restart"
    produce(broker, topic, 6)
    partition_log = follower_log(topic)
    address = (broker.host, broker.port)
    async with fetcher_manager(lambda node: address if node == 1 else None) as (manager, _):
        manager.add_partitions(1, {(topic, 0): FollowerTarget(partition_log, leader_epoch=0)})
        await caught_up(broker, topic, partition_log)
        broker.stop()
        broker.start()
        produce(broker, topic, 6, start=6)
        expected = await caught_up(broker, topic, partition_log)
        assert follower_bytes(partition_log) == expected


async def test_a_refused_partition_does_not_hold_up_the_others(
    broker: BrokerProcess, follower_log: Callable[[str], PartitionLog]
) -> None:
    topic = "fetcher-refused"
    produce(broker, topic, 8)
    partition_log = follower_log(topic)
    ghost_log = follower_log("fetcher-no-such-topic")
    address = (broker.host, broker.port)
    async with fetcher_manager(lambda node: address if node == 1 else None) as (manager, _):
        manager.add_partitions(
            1,
            {
                ("fetcher-no-such-topic", 0): FollowerTarget(ghost_log, leader_epoch=0),
                (topic, 0): FollowerTarget(partition_log, leader_epoch=0),
            },
        )
        expected = await caught_up(broker, topic, partition_log)
        assert follower_bytes(partition_log) == expected
        assert ghost_log.log_end_offset == 0
        assert manager.leader_of("fetcher-no-such-topic", 0) == 1  # still tried


async def test_follower_behind_the_leaders_log_start_starts_over_there(
    broker: BrokerProcess, follower_log: Callable[[str], PartitionLog]
) -> None:
    topic = "fetcher-log-start"
    produce(broker, topic, 12)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.delete_records([TopicPartition(topic, 0, 7)])
    for future in futures.values():
        assert future.result(30).low_watermark == 7
    partition_log = follower_log(topic)
    address = (broker.host, broker.port)
    async with fetcher_manager(lambda node: address if node == 1 else None) as (manager, _):
        manager.add_partitions(1, {(topic, 0): FollowerTarget(partition_log, leader_epoch=0)})
        expected = await caught_up(broker, topic, partition_log, fetch_offset=7)
        assert partition_log.log_start_offset == 7
        assert follower_bytes(partition_log) == expected


def test_below_first_epoch_rule() -> None:
    lookup = below_first_epoch_rule(cache_lookup([(2, 10), (4, 30)], 50), (2, 10))
    assert lookup(1) == (1, 10)  # older than everything we have: our first entry's start
    assert lookup(2) == (2, 30)
    assert lookup(3) == (2, 30)
    assert lookup(4) == (4, 50)
    assert lookup(-1) == (-1, -1)
    plain = cache_lookup([], 0)
    assert below_first_epoch_rule(plain, None) is plain
