"""Writing transaction markers (COMMIT/ABORT control batches) into partition logs.

The transaction coordinator decides *that* a transaction ends; this module puts the marker
into every partition the transaction touched. Kafka does it with WriteTxnMarkers requests
to each partition leader; on one node the leader is this broker, so the coordinator's
marker writer and the WriteTxnMarkers handler both come here.

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

from kio.schema.errors import ErrorCode

from moldau.cluster.metadata import SINGLE_NODE_LEADER_EPOCH
from moldau.coordinator.group import GROUP_METADATA_TOPIC
from moldau.log.errors import LogAppendError

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
    """Append one marker to each partition; answer one error code per partition."""
    now_ms = int(time.time() * 1000)
    errors: dict[TopicPartition, ErrorCode] = {}
    waits: list[tuple[TopicPartition, Awaitable[None]]] = []
    for topic, partition in partitions:
        key = (topic, partition)
        partition_log = broker.get_log(topic, partition)
        if partition_log is None:
            errors[key] = ErrorCode.unknown_topic_or_partition
            continue
        try:
            info = partition_log.append_txn_marker(
                producer_id=producer_id,
                producer_epoch=producer_epoch,
                commit=commit,
                coordinator_epoch=coordinator_epoch,
                leader_epoch=SINGLE_NODE_LEADER_EPOCH,
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
        waits.append((key, broker.durable(partition_log, info.last_offset)))
    for key, wait in waits:
        try:
            await wait
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("marker on %s-%d not durable: %s", *key, exc)
            errors[key] = ErrorCode.kafka_storage_error
    return errors
