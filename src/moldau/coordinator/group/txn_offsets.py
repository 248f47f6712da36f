"""Offsets committed inside open transactions (Kafka's pending transactional offsets).

A TxnOffsetCommit writes its offsets as a transactional batch of the producer. Until the
transaction's COMMIT marker reaches this ``__consumer_offsets`` partition they are nobody's
committed offsets: OffsetFetch does not show them (and answers UNSTABLE_OFFSET_COMMIT to a
consumer that asks for stable offsets), retention does not expire the partition's older
offset, and the group is not deleted for being empty. The marker then either moves them to
the committed store (COMMIT) or drops them (ABORT).

:class:`PendingTxnOffsets` keeps two views of the same facts, as Kafka's
``OffsetMetadataManager`` does:

- by producer id: the offsets each open transaction would commit — what a marker, which
  names only the producer, acts on;
- by group and partition: which producers have an offset pending there — what OffsetFetch,
  OffsetDelete, DeleteGroups and retention ask about.

An offset tombstone for a partition (OffsetDelete, DeleteGroups) drops the pending offsets
of that partition from every producer too, so a transaction that commits after its group
was deleted does not bring the offsets back. Nothing here is persisted separately: it is
rebuilt by replaying the partition's transactional batches and markers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from moldau.coordinator.group.messages import TopicPartition

if TYPE_CHECKING:
    from moldau.coordinator.group.offsets import OffsetAndMetadata

GroupPartition = tuple[str, str, int]
"""(group id, topic, partition)."""


class PendingTxnOffsets:
    """Pending transactional offsets of one shard; see the module docstring."""

    def __init__(self) -> None:
        self._by_producer: dict[int, dict[GroupPartition, OffsetAndMetadata]] = {}
        self._open: dict[str, dict[TopicPartition, set[int]]] = {}

    # -- questions -----------------------------------------------------------------------

    def is_pending(self, group_id: str, topic: str, partition: int) -> bool:
        """True if some open transaction has an offset for this partition of the group."""
        return (topic, partition) in self._open.get(group_id, {})

    def has_group(self, group_id: str) -> bool:
        """True if some open transaction has offsets of ``group_id``."""
        return group_id in self._open

    def partitions(self, group_id: str) -> list[TopicPartition]:
        """The partitions of ``group_id`` with pending offsets."""
        return list(self._open.get(group_id, {}))

    def pending_offset(
        self, producer_id: int, group_id: str, topic: str, partition: int
    ) -> OffsetAndMetadata | None:
        return self._by_producer.get(producer_id, {}).get((group_id, topic, partition))

    def producer_ids(self) -> list[int]:
        return list(self._by_producer)

    def __len__(self) -> int:
        return sum(len(offsets) for offsets in self._by_producer.values())

    def __iter__(self) -> Iterator[tuple[int, GroupPartition, OffsetAndMetadata]]:
        for producer_id, offsets in self._by_producer.items():
            for key, om in offsets.items():
                yield producer_id, key, om

    # -- changes (replay only) -----------------------------------------------------------

    def add(
        self, producer_id: int, group_id: str, topic: str, partition: int, om: OffsetAndMetadata
    ) -> None:
        """The producer's transaction committed ``om`` (a later one replaces an earlier)."""
        self._by_producer.setdefault(producer_id, {})[(group_id, topic, partition)] = om
        self._open.setdefault(group_id, {}).setdefault((topic, partition), set()).add(producer_id)

    def discard(self, group_id: str, topic: str, partition: int) -> None:
        """An offset tombstone: forget every pending offset of this partition."""
        by_partition = self._open.get(group_id)
        if by_partition is None:
            return
        producer_ids = by_partition.pop((topic, partition), set())
        if not by_partition:
            del self._open[group_id]
        for producer_id in producer_ids:
            offsets = self._by_producer.get(producer_id)
            if offsets is None:
                continue
            offsets.pop((group_id, topic, partition), None)
            if not offsets:
                del self._by_producer[producer_id]

    def complete(self, producer_id: int) -> dict[GroupPartition, OffsetAndMetadata]:
        """The producer's transaction ended: remove and return its pending offsets."""
        offsets = self._by_producer.pop(producer_id, {})
        for group_id, topic, partition in offsets:
            by_partition = self._open.get(group_id)
            if by_partition is None:
                continue
            producer_ids = by_partition.get((topic, partition))
            if producer_ids is None:
                continue
            producer_ids.discard(producer_id)
            if not producer_ids:
                del by_partition[(topic, partition)]
                if not by_partition:
                    del self._open[group_id]
        return offsets
