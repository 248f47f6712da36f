"""Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete and retention (Kafka's
OffsetMetadataManager).

The store is ``group → topic → partition → OffsetAndMetadata`` and it changes only through
:meth:`OffsetManager.replay` of ``OffsetCommit`` records (a value commits, a tombstone
deletes), whether the record was just written or read back while loading — so what a
restarted broker serves is exactly what it had acknowledged.

Rules (Kafka's):

- A commit with generation -1 and no member id comes from a consumer that assigns its own
  partitions, or from an admin tool. It is accepted when the group is EMPTY or does not
  exist; replaying it creates a member-less "simple" group to hold the offsets.
- Otherwise the member and generation must be current (UNKNOWN_MEMBER_ID,
  FENCED_INSTANCE_ID, ILLEGAL_GENERATION), and a group in COMPLETING_REBALANCE answers
  REBALANCE_IN_PROGRESS. PREPARING_REBALANCE accepts commits: eager consumers commit before
  they rejoin. A commit also counts as a heartbeat in STABLE and PREPARING_REBALANCE.
- The request's retention time is ignored, as in Kafka 2.1+ for the expiry decision;
  offsets expire by ``offsets.retention.minutes``: for an EMPTY group counting from when it
  became empty; for a STABLE consumer group only for topics nobody subscribes to any more,
  counting from the commit; for a simple group counting from the commit.
- Metadata longer than ``offset.metadata.max.bytes`` gets OFFSET_METADATA_TOO_LARGE.
- OffsetDelete refuses a group with members unless it is a consumer group, and then only
  for topics none of them subscribes to (GROUP_SUBSCRIBED_TO_TOPIC).

Transactional offset commits (TxnOffsetCommit) follow the same store with Kafka's
differences: the member, generation and instance id are checked only when given (older
producers send none), a rebalance in progress is no obstacle, and a group that does not
exist is created (as a simple group) only for generation -1, else ILLEGAL_GENERATION. Their
records are one transactional batch of the producer and replay into
:class:`~.txn_offsets.PendingTxnOffsets`; the transaction's marker moves them here or drops
them. When both kinds of commit meet on a partition, the one written *later* in the log
wins, whatever order the transaction ended in: each replayed offset carries its position
in replay order (``record_sequence``, which follows the log order as Kafka's record offset
does), and a committing transaction replaces only older offsets. Pending offsets keep their
partition from expiring and their group from being deleted by retention; OffsetDelete and
DeleteGroups tombstone them too.

Unknown topics and partitions are refused by the broker before the coordinator sees them
(UNKNOWN_TOPIC_OR_PARTITION), as Kafka's request layer does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from kio.schema.errors import ErrorCode

from moldau.coordinator.group.config import GroupCoordinatorConfig
from moldau.coordinator.group.group import ClassicGroup
from moldau.coordinator.group.membership import ClassicGroupManager
from moldau.coordinator.group.messages import (
    NO_PRODUCER_ID,
    FetchedOffset,
    OffsetCommitRequest,
    OffsetDeleteResult,
    OffsetFetchResult,
    PartitionOffset,
    TopicPartition,
    TxnOffsetCommitRequest,
)
from moldau.coordinator.group.records import (
    CoordinatorRecord,
    OffsetCommitKey,
    OffsetCommitValue,
    offset_commit_record,
)
from moldau.coordinator.group.results import CoordinatorResult, GroupError, TxnProducer
from moldau.coordinator.group.state import GroupState
from moldau.coordinator.group.txn_offsets import PendingTxnOffsets


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp_ms: int
    expire_timestamp_ms: int = -1
    record_sequence: int = field(default=-1, compare=False)
    """Where the record stands in this shard's replay order (= log order); decides between
    a committing transaction's offset and a plain commit. Not part of the offset's value."""

    @classmethod
    def from_record(cls, value: OffsetCommitValue, record_sequence: int = -1) -> OffsetAndMetadata:
        return cls(
            value.offset,
            value.leader_epoch,
            value.metadata,
            value.commit_timestamp_ms,
            value.expire_timestamp_ms,
            record_sequence,
        )


PartitionOffsets = dict[int, OffsetAndMetadata]
TopicOffsets = dict[str, PartitionOffsets]
CommitAnswer = tuple[tuple[TopicPartition, ErrorCode], ...]


class OffsetManager:
    """Offsets of one coordinator shard; see the module docstring for the rules."""

    def __init__(
        self,
        groups: dict[str, ClassicGroup],
        membership: ClassicGroupManager,
        config: GroupCoordinatorConfig,
    ) -> None:
        self.groups = groups
        self.membership = membership
        self.config = config
        self.offsets: dict[str, TopicOffsets] = {}
        self.pending = PendingTxnOffsets()
        self._record_sequence = 0

    # -- reading -------------------------------------------------------------------------

    def committed(self, group_id: str, topic: str, partition: int) -> OffsetAndMetadata | None:
        return self.offsets.get(group_id, {}).get(topic, {}).get(partition)

    def has_offsets(self, group_id: str) -> bool:
        """True if ``group_id`` has committed offsets (pending ones do not count)."""
        return bool(self.offsets.get(group_id))

    def num_offsets(self) -> int:
        return sum(len(p) for topics in self.offsets.values() for p in topics.values())

    # -- OffsetCommit --------------------------------------------------------------------

    def commit_offsets(
        self, request: OffsetCommitRequest, now_ms: int
    ) -> CoordinatorResult[CommitAnswer]:
        group = self.groups.get(request.group_id)
        try:
            if group is None:
                if request.generation_id >= 0:
                    # Kafka answers ILLEGAL_GENERATION here up to OffsetCommit v8.
                    raise GroupError(ErrorCode.illegal_generation)
            else:
                group.validate_offset_commit(
                    request.member_id, request.group_instance_id, request.generation_id
                )
        except GroupError as exc:
            return CoordinatorResult(
                response=tuple(((p.topic, p.partition), exc.error) for p in request.offsets)
            )
        if (
            group is not None
            and group.is_in(GroupState.STABLE, GroupState.PREPARING_REBALANCE)
            and group.has_member(request.member_id)
        ):
            self.membership.reschedule_heartbeat(group, group.member(request.member_id))
        records, answers = self._commit_records(request.group_id, request.offsets, now_ms)
        return CoordinatorResult(records, response=answers)

    def _commit_records(
        self, group_id: str, offsets: Iterable[PartitionOffset], now_ms: int
    ) -> tuple[list[CoordinatorRecord], CommitAnswer]:
        """A record per offset, except OFFSET_METADATA_TOO_LARGE ones; the answers."""
        answers: list[tuple[TopicPartition, ErrorCode]] = []
        records: list[CoordinatorRecord] = []
        max_bytes = self.config.offset_metadata_max_bytes
        for p in offsets:
            metadata = p.metadata or ""
            if len(metadata) > max_bytes:
                answers.append(((p.topic, p.partition), ErrorCode.offset_metadata_too_large))
                continue
            answers.append(((p.topic, p.partition), ErrorCode.none))
            value = OffsetCommitValue(
                offset=p.offset,
                metadata=metadata,
                commit_timestamp_ms=now_ms,
                leader_epoch=p.leader_epoch,
            )
            records.append(offset_commit_record(group_id, p.topic, p.partition, value))
        return records, tuple(answers)

    # -- TxnOffsetCommit -----------------------------------------------------------------

    def commit_transactional_offsets(
        self, request: TxnOffsetCommitRequest, now_ms: int
    ) -> CoordinatorResult[CommitAnswer]:
        """Validate against a classic group (or none) and write the offsets as one
        transactional batch of the producer; see the module docstring for the rules."""
        group = self.groups.get(request.group_id)
        try:
            if group is None:
                if request.generation_id >= 0:
                    raise GroupError(ErrorCode.illegal_generation)
            else:
                _validate_txn_offset_commit(group, request)
        except GroupError as exc:
            return CoordinatorResult(
                response=tuple(((p.topic, p.partition), exc.error) for p in request.offsets)
            )
        return self.transactional_result(request, now_ms)

    def transactional_result(
        self, request: TxnOffsetCommitRequest, now_ms: int
    ) -> CoordinatorResult[CommitAnswer]:
        """The records and answers of an already validated TxnOffsetCommit."""
        records, answers = self._commit_records(request.group_id, request.offsets, now_ms)
        producer = TxnProducer(request.producer_id, request.producer_epoch)
        return CoordinatorResult(records, response=answers, producer=producer)

    # -- OffsetFetch ---------------------------------------------------------------------

    def fetch_offsets(
        self,
        group_id: str,
        partitions: Iterable[TopicPartition] | None,
        *,
        require_stable: bool = False,
    ) -> OffsetFetchResult:
        """Committed offsets of ``partitions`` (-1 where none), or all of them for None.

        A group that does not exist is not an error: every partition answers -1, and the
        all-partitions form answers nothing. Offsets of open transactions never show;
        with ``require_stable`` a partition that has some answers UNSTABLE_OFFSET_COMMIT
        instead (the consumer retries until the transaction ends), as in Kafka — in the
        all-partitions form only for partitions that also have a committed offset.
        """
        group = self.groups.get(group_id)
        known = group is not None and group.state is not GroupState.DEAD
        by_topic = self.offsets.get(group_id, {}) if known else {}
        check_pending = require_stable and known and self.pending.has_group(group_id)

        def answer(topic: str, partition: int, om: OffsetAndMetadata | None) -> FetchedOffset:
            if check_pending and self.pending.is_pending(group_id, topic, partition):
                return FetchedOffset(topic, partition, error=ErrorCode.unstable_offset_commit)
            return _fetched(topic, partition, om)

        if partitions is None:
            return OffsetFetchResult(
                ErrorCode.none,
                tuple(
                    answer(topic, partition, om)
                    for topic, by_partition in by_topic.items()
                    for partition, om in by_partition.items()
                ),
            )
        return OffsetFetchResult(
            ErrorCode.none,
            tuple(
                answer(topic, partition, by_topic.get(topic, {}).get(partition))
                for topic, partition in partitions
            ),
        )

    # -- OffsetDelete --------------------------------------------------------------------

    def delete_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition]
    ) -> CoordinatorResult[OffsetDeleteResult]:
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return CoordinatorResult(response=OffsetDeleteResult(ErrorCode.group_id_not_found))
        if (
            group.is_in(
                GroupState.STABLE, GroupState.PREPARING_REBALANCE, GroupState.COMPLETING_REBALANCE
            )
            and not group.uses_consumer_protocol
        ):
            return CoordinatorResult(response=OffsetDeleteResult(ErrorCode.non_empty_group))
        answers: list[tuple[TopicPartition, ErrorCode]] = []
        records: list[CoordinatorRecord] = []
        for topic, partition in partitions:
            if group.is_subscribed_to_topic(topic):
                answers.append(((topic, partition), ErrorCode.group_subscribed_to_topic))
                continue
            answers.append(((topic, partition), ErrorCode.none))
            if self.committed(group_id, topic, partition) is not None or self.pending.is_pending(
                group_id, topic, partition
            ):
                records.append(offset_commit_record(group_id, topic, partition, None))
        return CoordinatorResult(
            records, response=OffsetDeleteResult(ErrorCode.none, tuple(answers))
        )

    def delete_all_offsets(self, group_id: str, records: list[CoordinatorRecord]) -> int:
        """Append a tombstone for every offset of ``group_id``, committed or pending in an
        open transaction (one per partition); returns how many."""
        count = 0
        for topic, by_partition in self.offsets.get(group_id, {}).items():
            for partition in by_partition:
                records.append(offset_commit_record(group_id, topic, partition, None))
                count += 1
        for topic, partition in self.pending.partitions(group_id):
            if self.committed(group_id, topic, partition) is None:
                records.append(offset_commit_record(group_id, topic, partition, None))
                count += 1
        return count

    # -- retention -----------------------------------------------------------------------

    def cleanup_expired_offsets(
        self, group_id: str, now_ms: int, records: list[CoordinatorRecord]
    ) -> bool:
        """Tombstone ``group_id``'s expired offsets; True if it has none left afterwards.

        A partition with an offset pending in an open transaction does not expire, and a
        group with pending offsets always has some left: the transaction may still commit.
        """
        by_topic = self.offsets.get(group_id)
        if not by_topic:
            return not self.pending.has_group(group_id)
        group = self.groups.get(group_id)
        if group is None:
            return False
        base = _expiration_base(group)
        if base is None:
            return False
        retention_ms = self.config.offsets_retention_ms
        all_expired = True
        for topic, by_partition in by_topic.items():
            if group.is_subscribed_to_topic(topic):
                all_expired = False
                continue
            for partition, om in by_partition.items():
                if now_ms - base(om) >= retention_ms and not self.pending.is_pending(
                    group_id, topic, partition
                ):
                    records.append(offset_commit_record(group_id, topic, partition, None))
                else:
                    all_expired = False
        return all_expired and not self.pending.has_group(group_id)

    # -- replay --------------------------------------------------------------------------

    def replay(
        self,
        key: OffsetCommitKey,
        value: OffsetCommitValue | None,
        producer_id: int = NO_PRODUCER_ID,
    ) -> None:
        """Apply one offset record; ``producer_id`` is its batch's when the batch is
        transactional (the offset is then pending in that producer's transaction)."""
        group_id, topic, partition = key.group, key.topic, key.partition
        if value is not None:
            if group_id not in self.groups:
                self.groups[group_id] = ClassicGroup(group_id)  # a simple group
            self._record_sequence += 1
            om = OffsetAndMetadata.from_record(value, self._record_sequence)
            if producer_id != NO_PRODUCER_ID:
                self.pending.add(producer_id, group_id, topic, partition, om)
                return
            self._store(group_id, topic, partition, om)
            return
        self.pending.discard(group_id, topic, partition)
        by_topic = self.offsets.get(group_id)
        if by_topic is None:
            return
        by_partition = by_topic.get(topic)
        if by_partition is None:
            return
        by_partition.pop(partition, None)
        if not by_partition:
            del by_topic[topic]
        if not by_topic:
            del self.offsets[group_id]

    def replay_end_transaction(self, producer_id: int, commit: bool) -> None:
        """The producer's transaction ended here (its marker was written or read back):
        its pending offsets become committed — each unless a later-written commit of the
        same partition is there already — or are dropped."""
        ended = self.pending.complete(producer_id)
        if not commit:
            return
        for (group_id, topic, partition), om in ended.items():
            current = self.committed(group_id, topic, partition)
            if current is not None and current.record_sequence > om.record_sequence:
                continue
            if group_id not in self.groups:
                self.groups[group_id] = ClassicGroup(group_id)
            self._store(group_id, topic, partition, om)

    def _store(self, group_id: str, topic: str, partition: int, om: OffsetAndMetadata) -> None:
        self.offsets.setdefault(group_id, {}).setdefault(topic, {})[partition] = om


def _validate_txn_offset_commit(group: ClassicGroup, request: TxnOffsetCommitRequest) -> None:
    """Kafka's ``ClassicGroup.validateOffsetCommit`` for a transactional commit: like a plain
    commit, but without member id and generation (TxnOffsetCommit < v3) any state is fine,
    and COMPLETING_REBALANCE is no reason to refuse."""
    if group.state is GroupState.DEAD:
        raise GroupError(ErrorCode.coordinator_not_available)
    if request.generation_id < 0 and group.state is GroupState.EMPTY:
        return
    if request.generation_id >= 0 or request.member_id or request.group_instance_id is not None:
        group.validate_member(request.member_id, request.group_instance_id)
        if request.generation_id != group.generation_id:
            raise GroupError(ErrorCode.illegal_generation)


def _fetched(topic: str, partition: int, om: OffsetAndMetadata | None) -> FetchedOffset:
    if om is None:
        return FetchedOffset(topic, partition)
    return FetchedOffset(topic, partition, om.offset, om.leader_epoch, om.metadata)


def _expiration_base(group: ClassicGroup) -> Callable[[OffsetAndMetadata], int] | None:
    """From when an offset of ``group`` ages, or None if its offsets do not expire now."""
    if group.protocol_type is None:
        return lambda om: om.commit_timestamp_ms
    if group.state is GroupState.EMPTY:
        became_empty_ms = group.current_state_timestamp_ms
        if became_empty_ms is None:
            return lambda om: om.commit_timestamp_ms
        return lambda om: became_empty_ms
    if (
        group.uses_consumer_protocol
        and group.subscribed_topics is not None
        and group.state is GroupState.STABLE
    ):
        return lambda om: om.commit_timestamp_ms
    return None
