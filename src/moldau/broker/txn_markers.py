"""Writing transaction markers (COMMIT/ABORT control batches) into partition logs.

The transaction coordinator decides *that* a transaction ends; this module puts the marker
into every partition the transaction touched. As in Kafka, partitions led by another broker
get a WriteTxnMarkers request (``write_markers`` groups them by leader and sends one request
per leader); partitions this broker leads are written here directly, which is also what the
WriteTxnMarkers handler does for requests from other coordinators (``write_local_markers``,
which never forwards, so a stale view can't bounce a request between brokers).

For each partition: append the control batch (the log checks the producer epoch and the
coordinator epoch), wake long-polling fetchers (the last stable offset moved), tell the group
coordinator when the partition is one of ``__consumer_offsets`` (pending transactional
offsets become committed or are dropped), then wait until the marker is durable — the
coordinator only records the transaction as complete once every marker is safely written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING

import kio.schema.write_txn_markers.v1.request as req
from kio.schema.errors import ErrorCode
from kio.schema.types import ProducerId, TopicName
from kio.static.primitive import i16, i32

from moldau.cluster.replica_manager import PartitionError
from moldau.coordinator.group import GROUP_METADATA_TOPIC
from moldau.log.errors import LogAppendError
from moldau.protocol.api import ApiKey

if TYPE_CHECKING:
    from moldau.broker.server import Broker

log = logging.getLogger("moldau.broker.txn")

TopicPartition = tuple[str, int]


async def write_markers(
    broker: Broker,
    *,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    commit: bool,
    partitions: Iterable[TopicPartition],
) -> dict[TopicPartition, ErrorCode]:
    """The coordinator's marker writer: local partitions here, the rest by request to
    their leaders. Partitions without a leader answer NOT_LEADER_OR_FOLLOWER (retried)."""
    image = broker.metadata.image
    local: list[TopicPartition] = []
    remote: dict[int, list[TopicPartition]] = {}
    errors: dict[TopicPartition, ErrorCode] = {}
    for tp in partitions:
        state = image.partition(*tp)
        if state is None:
            errors[tp] = ErrorCode.unknown_topic_or_partition
        elif state.leader == broker.node_id:
            local.append(tp)
        elif not state.has_leader:
            errors[tp] = ErrorCode.not_leader_or_follower
        else:
            remote.setdefault(state.leader, []).append(tp)
    jobs = [
        _send_markers(
            broker,
            leader,
            tps,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            coordinator_epoch=coordinator_epoch,
            commit=commit,
        )
        for leader, tps in remote.items()
    ]
    if local:
        jobs.append(
            write_local_markers(
                broker,
                producer_id=producer_id,
                producer_epoch=producer_epoch,
                coordinator_epoch=coordinator_epoch,
                commit=commit,
                partitions=local,
            )
        )
    for answer in await asyncio.gather(*jobs):
        errors.update(answer)
    return errors


async def _send_markers(
    broker: Broker,
    leader: int,
    partitions: list[TopicPartition],
    *,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    commit: bool,
) -> dict[TopicPartition, ErrorCode]:
    """One WriteTxnMarkers v1 request to ``leader``; any failure → retriable errors."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    marker = req.WritableTxnMarker(
        producer_id=ProducerId(producer_id),
        producer_epoch=i16(producer_epoch),
        transaction_result=commit,
        topics=tuple(
            req.WritableTxnMarkerTopic(
                name=TopicName(topic), partition_indexes=tuple(i32(p) for p in indexes)
            )
            for topic, indexes in by_topic.items()
        ),
        coordinator_epoch=i32(coordinator_epoch),
    )
    try:
        client = await broker.peers.client(leader)
        response = await client.request(
            ApiKey.WRITE_TXN_MARKERS, 1, req.WriteTxnMarkersRequest(markers=(marker,))
        )
    except Exception as exc:
        log.info("markers to broker %d failed, will retry: %s", leader, exc)
        return dict.fromkeys(partitions, ErrorCode.not_leader_or_follower)
    errors: dict[TopicPartition, ErrorCode] = {}
    for result in response.markers:
        for topic_result in result.topics:
            for p in topic_result.partitions:
                errors[(str(topic_result.name), int(p.partition_index))] = ErrorCode(p.error_code)
    for tp in partitions:
        errors.setdefault(tp, ErrorCode.not_leader_or_follower)
    return errors


async def write_local_markers(
    broker: Broker,
    *,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    commit: bool,
    partitions: Iterable[TopicPartition],
) -> dict[TopicPartition, ErrorCode]:
    """Append one marker to each partition this broker leads; one error code each."""
    now_ms = int(time.time() * 1000)
    errors: dict[TopicPartition, ErrorCode] = {}
    waits: list[tuple[TopicPartition, Awaitable[None]]] = []
    for topic, partition in partitions:
        key = (topic, partition)
        try:
            replica = broker.leader_partition(topic, partition)
        except PartitionError as exc:
            errors[key] = exc.error_code
            continue
        try:
            info = replica.append_txn_marker(
                producer_id=producer_id,
                producer_epoch=producer_epoch,
                commit=commit,
                coordinator_epoch=coordinator_epoch,
                now_ms=now_ms,
            )
        except LogAppendError as exc:
            log.info("marker for producer %d refused by %s-%d: %s", producer_id, *key, exc)
            errors[key] = ErrorCode(exc.error_code)
            continue
        except OSError as exc:
            log.error("marker for producer %d failed on %s-%d: %s", producer_id, *key, exc)
            errors[key] = ErrorCode.kafka_storage_error
            continue
        broker.notifier.notify(topic, partition)
        if topic == GROUP_METADATA_TOPIC:
            broker.group_coordinator.complete_transaction(partition, producer_id, commit)
        errors[key] = ErrorCode.none
        waits.append((key, broker.acks_all(replica, info.last_offset)))
    for key, wait in waits:
        try:
            await wait
        except asyncio.CancelledError:
            raise
        except LogAppendError as exc:
            log.info("marker on %s-%d not replicated: %s", *key, exc)
            errors[key] = ErrorCode(exc.error_code)
        except Exception as exc:
            log.error("marker on %s-%d not durable: %s", *key, exc)
            errors[key] = ErrorCode.kafka_storage_error
    return errors
