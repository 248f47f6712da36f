"""Fetch: whole batches from the log, long polling with min_bytes/max_wait_ms.

Sizes follow Kafka (KIP-74): ``partition_max_bytes`` caps each partition and ``max_bytes``
the response, except that the first batch of the first partition with data is returned
whole even when larger, so a consumer can always make progress. Fetch sessions (KIP-227)
are not kept: we always answer session id 0, which makes clients send full fetches.

Isolation (v4+): read_uncommitted reads up to the high watermark; read_committed only up to
the last stable offset, and answers the aborted transactions overlapping the returned
batches so the consumer can drop their records (an empty list when there are none, None for
read_uncommitted, as Kafka does). Every response carries the LSO. A read_committed long poll
is woken by the partition's notification when a marker is appended, which is when the LSO
moves.

Replication: only the leader serves a partition (else NOT_LEADER_OR_FOLLOWER; a
``current_leader_epoch`` older or newer than ours: FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH).
A request with ``replica_id`` ≥ 0 is a follower's: it must be a replica of the partition, it
reads up to the log end offset (not the high watermark), and its fetch offset is the
follower's log end offset, which the partition records (ISR, high watermark) before the
read, so the answered high watermark is already the one that fetch allowed. A fetch naming
``last_fetched_epoch`` (v12+) whose epoch ends before its fetch offset in our log is answered
with ``diverging_epoch`` and no records (KIP-595), so the fetcher truncates. Followers
long-poll on the same notifier as consumers: appends and high-watermark moves wake them.
"""

from __future__ import annotations

import time
from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import Deferred, RequestContext
from moldau.broker.handlers import handles
from moldau.cluster.replica_manager import PartitionError
from moldau.log import OffsetOutOfRangeError
from moldau.protocol.acl import AclOperation, ResourceType
from moldau.protocol.api import ApiKey
from moldau.protocol.messages import make, millis

READ_COMMITTED = 1


def _read_all(ctx: RequestContext, request: Any, *, first: bool) -> tuple[Any, int]:
    """Build the response from what the logs hold now; return it with its record bytes.

    ``first``: this is the request's first read, the one that records a follower's fetch
    (a long poll's later reads must not count as fetches of their own)."""
    broker = ctx.broker
    replicas = broker.replicas
    m = ctx.m
    remaining = max(int(request.max_bytes), 0)  # every served version (v4+) has max_bytes
    replica_id = int(getattr(request, "replica_id", -1))
    follower = replica_id >= 0
    read_committed = not follower and int(getattr(request, "isolation_level", 0)) == READ_COMMITTED
    now_ms = replicas.now_ms()
    total = 0
    first_data = True
    topics: list[Any] = []
    # Followers need CLUSTER_ACTION on the cluster; consumers READ on each topic.
    cluster_denied = follower and not ctx.authorize_cluster(AclOperation.CLUSTER_ACTION)
    for fetch_topic in request.topics:
        name = fetch_topic.topic
        partitions: list[Any] = []
        denied = (
            ErrorCode.cluster_authorization_failed
            if cluster_denied
            else None
            if follower or ctx.authorize(AclOperation.READ, ResourceType.TOPIC, name)
            else ErrorCode.topic_authorization_failed
        )
        for fp in fetch_topic.partitions:
            index = fp.partition
            fields: dict[str, Any] = {
                "partition_index": index,
                "high_watermark": -1,
                "last_stable_offset": -1,
                "log_start_offset": -1,
                "aborted_transactions": None,
                "preferred_read_replica": -1,
                "records": b"",
            }
            partitions.append(fields)
            if denied is not None:
                fields["error_code"] = denied
                continue
            try:
                partition = replicas.leader_partition(
                    name, index, int(getattr(fp, "current_leader_epoch", -1))
                )
            except PartitionError as exc:
                fields["error_code"] = exc.error_code
                continue
            if follower and not partition.is_replica(replica_id):
                fields["error_code"] = ErrorCode.not_leader_or_follower
                continue
            log = partition.log
            high_watermark = log.high_watermark
            last_stable_offset = log.last_stable_offset
            fields["high_watermark"] = high_watermark
            fields["last_stable_offset"] = last_stable_offset
            fields["log_start_offset"] = log.log_start_offset
            fetch_offset = int(fp.fetch_offset)
            if not log.log_start_offset <= fetch_offset <= log.log_end_offset:
                fields["error_code"] = ErrorCode.offset_out_of_range
                continue
            fields["error_code"] = ErrorCode.none
            last_fetched_epoch = int(getattr(fp, "last_fetched_epoch", -1))
            if last_fetched_epoch >= 0:
                # KIP-595 truncation detection: the fetcher's last epoch must end at or past
                # its fetch offset in our log, else it diverged (answered without records)
                epoch, end_offset = log.end_offset_for_epoch(last_fetched_epoch)
                if epoch < last_fetched_epoch or end_offset < fetch_offset:
                    fields["diverging_epoch"] = make(
                        m.EpochEndOffset, epoch=epoch, end_offset=end_offset
                    )
                    continue
            if follower and first:
                partition.on_follower_fetch(replica_id, fetch_offset, now_ms)
                fields["high_watermark"] = high_watermark = log.high_watermark
                fields["last_stable_offset"] = last_stable_offset = log.last_stable_offset
            if follower:
                max_offset: int | None = None
            else:
                max_offset = last_stable_offset if read_committed else high_watermark
            limit = min(int(fp.partition_max_bytes), remaining)
            aborted: list[Any] = []
            try:
                if limit > 0 or first_data:
                    data = log.read(
                        fetch_offset,
                        max(limit, 0),
                        max_offset=max_offset,
                        min_one_message=first_data,
                    )
                    records = data.read_bytes() if data.size else b""
                    if read_committed and data.size:
                        aborted = [
                            make(
                                m.AbortedTransaction,
                                producer_id=txn.producer_id,
                                first_offset=txn.first_offset,
                            )
                            for txn in log.fetch_aborted_transactions(fetch_offset, data)
                        ]
                else:
                    records = b""
            except OffsetOutOfRangeError:
                fields["error_code"] = ErrorCode.offset_out_of_range
                continue
            fields["records"] = records
            if read_committed:
                fields["aborted_transactions"] = tuple(aborted)
            if records:
                first_data = False
                total += len(records)
                remaining -= len(records)
        topics.append(
            make(
                m.FetchableTopicResponse,
                topic=name,
                partitions=tuple(make(m.PartitionData, **f) for f in partitions),
            )
        )
    response = ctx.response(
        throttle_time=0, error_code=ErrorCode.none, session_id=0, responses=tuple(topics)
    )
    return response, total


@handles(ApiKey.FETCH)
async def handle_fetch(ctx: RequestContext, request: Any) -> Any:
    response, total = _read_all(ctx, request, first=True)
    max_wait_ms = millis(request.max_wait)
    if total >= request.min_bytes or max_wait_ms <= 0:
        return response
    partitions = [(t.topic, p.partition) for t in request.topics for p in t.partitions]
    deadline = time.monotonic() + max_wait_ms / 1000

    async def long_poll() -> Any:
        nonlocal response, total
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return response
            woken = await ctx.broker.notifier.wait_any(partitions, left)
            response, total = _read_all(ctx, request, first=False)
            if total >= request.min_bytes or not woken:
                return response

    return Deferred(long_poll())
