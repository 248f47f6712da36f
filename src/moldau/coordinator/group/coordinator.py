"""One group coordinator shard: the groups and offsets of one ``__consumer_offsets`` partition.

``GroupCoordinator`` is a sans-I/O state machine (DESIGN.md §5). Requests come in as the
version-free messages of :mod:`~moldau.coordinator.group.messages` with the current time;
each returns a :class:`~moldau.coordinator.group.results.CoordinatorResult` — records to
append to this shard's partition and the answer to send once they are durable — or, for
JoinGroup and SyncGroup, completes a :class:`~.results.Completion` when the rebalance allows.
Timeouts go through the injected :class:`~.results.Timer`.

State lives in two places, both rebuilt by :meth:`replay` when the partition is loaded:

- classic groups (``membership``): written as a ``GroupMetadata`` record at the end of every
  generation — when the leader's assignment is stored, when a generation ends up empty, when
  a static member is swapped in — and as a tombstone when the group is deleted or expires.
  While the shard runs, the in-memory group is the truth and these records are snapshots of
  it (``replay=False``), as in Kafka's coordinator: a restart brings back every group in the
  state of its last completed generation, as STABLE (or EMPTY), and sessions start afresh.
- committed offsets (``offsets``): changed only by replaying ``OffsetCommit`` records.
  Records of a transactional batch (TxnOffsetCommit) replay as offsets *pending* in the
  producer's transaction; :meth:`complete_transaction` — the transaction's COMMIT or ABORT
  marker on this partition, written or read back — commits or drops them.

Who calls it: the runtime, one operation at a time; nothing here is thread-safe or async.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable

from kio.schema.errors import ErrorCode

from moldau.coordinator.group.config import GroupCoordinatorConfig
from moldau.coordinator.group.consumer_group import CONSUMER_PROTOCOL_TYPE, ConsumerGroup
from moldau.coordinator.group.consumer_heartbeat import (
    ConsumerGroupManager,
    ConsumerHeartbeatRequest,
    ConsumerHeartbeatResult,
    DescribedConsumerGroup,
)
from moldau.coordinator.group.consumer_records import ConsumerGroupKey
from moldau.coordinator.group.group import ClassicGroup
from moldau.coordinator.group.membership import ClassicGroupManager
from moldau.coordinator.group.messages import (
    NO_PRODUCER_ID,
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
from moldau.coordinator.group.offsets import CommitAnswer, OffsetManager
from moldau.coordinator.group.records import (
    CoordinatorRecord,
    GroupMetadataKey,
    GroupMetadataValue,
    OffsetCommitKey,
    OffsetCommitValue,
    group_metadata_record,
)
from moldau.coordinator.group.results import Completion, CoordinatorResult, Timer
from moldau.coordinator.group.state import GroupState

log = logging.getLogger("moldau.coordinator.group")


class GroupCoordinator:
    """The state machine of one shard; see the module docstring."""

    def __init__(self, timer: Timer, config: GroupCoordinatorConfig) -> None:
        self.config = config
        self.timer = timer
        self.groups: dict[str, ClassicGroup] = {}
        self.membership = ClassicGroupManager(self.groups, timer, config)
        self.offsets = OffsetManager(self.groups, self.membership, config)
        self.consumer_groups: dict[str, ConsumerGroup] = {}
        self.consumer = ConsumerGroupManager(self.consumer_groups, timer, config)

    # -- membership ----------------------------------------------------------------------

    def join_group(
        self, request: JoinGroupRequest, completion: Completion[JoinGroupResult], now_ms: int
    ) -> CoordinatorResult[None]:
        if not request.group_id:
            completion.complete(JoinGroupResult(ErrorCode.invalid_group_id, request.member_id))
            return CoordinatorResult()
        if not (
            self.config.min_session_timeout_ms
            <= request.session_timeout_ms
            <= self.config.max_session_timeout_ms
        ):
            completion.complete(
                JoinGroupResult(ErrorCode.invalid_session_timeout, request.member_id)
            )
            return CoordinatorResult()
        consumer_group = self.consumer_groups.get(request.group_id)
        if consumer_group is not None and consumer_group.members:
            # A consumer (KIP-848) group with members: classic members cannot join it.
            completion.complete(
                JoinGroupResult(ErrorCode.inconsistent_group_protocol, request.member_id)
            )
            return CoordinatorResult()
        return self.membership.join_group(request, completion, now_ms)

    def sync_group(
        self, request: SyncGroupRequest, completion: Completion[SyncGroupResult], now_ms: int
    ) -> CoordinatorResult[None]:
        if not request.group_id:
            completion.complete(SyncGroupResult(ErrorCode.invalid_group_id))
            return CoordinatorResult()
        return self.membership.sync_group(request, completion, now_ms)

    def heartbeat(self, request: HeartbeatRequest, now_ms: int) -> CoordinatorResult[ErrorCode]:
        if not request.group_id:
            return CoordinatorResult(response=ErrorCode.invalid_group_id)
        return CoordinatorResult(response=self.membership.heartbeat(request, now_ms))

    def leave_group(
        self, group_id: str, members: tuple[LeavingMember, ...], now_ms: int
    ) -> CoordinatorResult[LeaveGroupResult]:
        if not group_id:
            return CoordinatorResult(response=LeaveGroupResult(ErrorCode.invalid_group_id))
        return self.membership.leave_group(group_id, members, now_ms)

    # -- consumer groups (KIP-848) -------------------------------------------------------

    def consumer_group_heartbeat(
        self, request: ConsumerHeartbeatRequest, now_ms: int
    ) -> CoordinatorResult[ConsumerHeartbeatResult]:
        classic = self.groups.get(request.group_id)
        if classic is not None and classic.state is not GroupState.EMPTY:
            return CoordinatorResult(
                response=ConsumerHeartbeatResult(
                    ErrorCode.group_id_not_found,
                    error_message=f"Group {request.group_id} is not a consumer group.",
                )
            )
        return self.consumer.heartbeat(request, now_ms)

    def consumer_group_describe(self, group_ids: Iterable[str]) -> list[DescribedConsumerGroup]:
        described = []
        for group_id in group_ids:
            answer = self.consumer.describe(group_id)
            if answer.error is ErrorCode.group_id_not_found and group_id in self.groups:
                answer = DescribedConsumerGroup(
                    group_id,
                    ErrorCode.group_id_not_found,
                    error_message=f"Group {group_id} is not a consumer group.",
                )
            described.append(answer)
        return described

    # -- offsets -------------------------------------------------------------------------

    def commit_offsets(
        self, request: OffsetCommitRequest, now_ms: int
    ) -> CoordinatorResult[CommitAnswer]:
        consumer_group = self.consumer_groups.get(request.group_id)
        if consumer_group is not None and (consumer_group.members or request.member_id):
            error = self.consumer.validate_offset_commit(consumer_group, request)
            if error is not ErrorCode.none:
                return CoordinatorResult(
                    response=tuple(((p.topic, p.partition), error) for p in request.offsets)
                )
            # Validated: store it like a commit from outside any generation.
            request = dataclasses.replace(
                request, generation_id=-1, member_id="", group_instance_id=None
            )
        return self.offsets.commit_offsets(request, now_ms)

    def commit_transactional_offsets(
        self, request: TxnOffsetCommitRequest, now_ms: int
    ) -> CoordinatorResult[CommitAnswer]:
        """TxnOffsetCommit: offsets pending in the producer's transaction once written.

        A consumer (KIP-848) group checks the member and its epoch when any of them is
        given; a stale epoch answers ILLEGAL_GENERATION, the error transactional producers
        understand (Kafka's ``validateTransactionalOffsetCommit``). Classic groups and
        groups that do not exist are the offset manager's.
        """
        if not request.group_id:
            return CoordinatorResult(
                response=tuple(
                    ((p.topic, p.partition), ErrorCode.invalid_group_id) for p in request.offsets
                )
            )
        consumer_group = self.consumer_groups.get(request.group_id)
        if consumer_group is not None and (consumer_group.members or request.member_id):
            given = (
                request.generation_id >= 0
                or request.member_id
                or request.group_instance_id is not None
            )
            admin = request.generation_id < 0 and not consumer_group.members
            if given and not admin:
                error = self.consumer.validate_offset_commit(
                    consumer_group,
                    OffsetCommitRequest(
                        request.group_id,
                        request.generation_id,
                        request.member_id,
                        request.group_instance_id,
                        request.offsets,
                    ),
                )
                if error is ErrorCode.stale_member_epoch:
                    error = ErrorCode.illegal_generation
                if error is not ErrorCode.none:
                    return CoordinatorResult(
                        response=tuple(((p.topic, p.partition), error) for p in request.offsets)
                    )
            return self.offsets.transactional_result(request, now_ms)
        return self.offsets.commit_transactional_offsets(request, now_ms)

    def complete_transaction(self, producer_id: int, commit: bool) -> None:
        """The producer's COMMIT (or ABORT) marker is on this shard's partition."""
        self.offsets.replay_end_transaction(producer_id, commit)

    def fetch_offsets(
        self,
        group_id: str,
        partitions: Iterable[TopicPartition] | None,
        *,
        require_stable: bool = False,
    ) -> OffsetFetchResult:
        return self.offsets.fetch_offsets(group_id, partitions, require_stable=require_stable)

    def delete_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition]
    ) -> CoordinatorResult[OffsetDeleteResult]:
        return self.offsets.delete_offsets(group_id, partitions)

    # -- groups --------------------------------------------------------------------------

    def describe_groups(self, group_ids: Iterable[str]) -> list[DescribedGroup]:
        described = []
        for group_id in group_ids:
            consumer_group = self.consumer_groups.get(group_id)
            if consumer_group is not None and (
                consumer_group.members or group_id not in self.groups
            ):
                # Kafka: DescribeGroups is for classic groups only.
                described.append(DescribedGroup(group_id, ErrorCode.group_id_not_found, "Dead"))
            else:
                described.append(self.membership.describe_group(group_id))
        return described

    def list_groups(self, filter_: ListGroupsFilter) -> list[ListedGroup]:
        # A consumer group's offsets live in a member-less classic "simple" group of the
        # same id: list the group once, as what it is.
        consumer_ids = set(self.consumer_groups)
        listed = [g for g in self.membership.list_groups(filter_) if g.group_id not in consumer_ids]
        if filter_.types and CONSUMER_PROTOCOL_TYPE not in filter_.types:
            return listed
        for group_id in sorted(consumer_ids):
            state = self.consumer_groups[group_id].state.value
            if filter_.states and state.lower() not in filter_.states:
                continue
            listed.append(
                ListedGroup(group_id, CONSUMER_PROTOCOL_TYPE, state, CONSUMER_PROTOCOL_TYPE)
            )
        return listed

    def delete_groups(
        self, group_ids: Iterable[str]
    ) -> CoordinatorResult[list[tuple[str, ErrorCode]]]:
        """Delete empty groups with their offsets: GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP."""
        answers: list[tuple[str, ErrorCode]] = []
        records: list[CoordinatorRecord] = []
        deleted: set[str] = set()
        for group_id in group_ids:
            consumer_group = self.consumer_groups.get(group_id)
            if consumer_group is not None:
                if consumer_group.members:
                    answers.append((group_id, ErrorCode.non_empty_group))
                    continue
                records.extend(self.consumer.delete_group(group_id))
                if group_id not in self.groups:
                    answers.append((group_id, ErrorCode.none))
                    continue
            group = self.groups.get(group_id)
            if group is None or group.state is GroupState.DEAD or group_id in deleted:
                answers.append((group_id, ErrorCode.group_id_not_found))
            elif group.state is not GroupState.EMPTY:
                answers.append((group_id, ErrorCode.non_empty_group))
            else:
                self.offsets.delete_all_offsets(group_id, records)
                records.append(group_metadata_record(group_id, None))
                deleted.add(group_id)
                answers.append((group_id, ErrorCode.none))
        return CoordinatorResult(records, response=answers)

    def cleanup_group_metadata(self, now_ms: int) -> CoordinatorResult[None]:
        """Expire old offsets; delete empty groups that have none left (periodic task)."""
        records: list[CoordinatorRecord] = []
        for group_id, consumer_group in list(self.consumer_groups.items()):
            if (
                not consumer_group.members
                and not self.offsets.has_offsets(group_id)
                and not self.offsets.pending.has_group(group_id)
            ):
                records.extend(self.consumer.delete_group(group_id))
        for group_id, group in list(self.groups.items()):
            active = self.consumer_groups.get(group_id)
            if active is not None and active.members:
                continue  # an active consumer group's offsets do not expire
            all_expired = self.offsets.cleanup_expired_offsets(group_id, now_ms, records)
            if all_expired and group.state is GroupState.EMPTY and not group.pending_join_members:
                records.append(group_metadata_record(group_id, None))
        if records:
            log.info("offset retention: writing %d tombstones", len(records))
        return CoordinatorResult(records)

    # -- replay and loading --------------------------------------------------------------

    def replay(self, record: CoordinatorRecord, producer_id: int = NO_PRODUCER_ID) -> None:
        """Apply one record of this shard's partition (just written, or read back);
        ``producer_id`` is its batch's producer when the batch is transactional."""
        key, value = record.key, record.value
        if isinstance(key, OffsetCommitKey):
            assert value is None or isinstance(value, OffsetCommitValue)
            self.offsets.replay(key, value, producer_id)
        elif isinstance(key, ConsumerGroupKey):
            assert not isinstance(value, OffsetCommitValue | GroupMetadataValue)
            self.consumer.replay(key, value)
        elif isinstance(key, GroupMetadataKey):
            if value is None:
                self.membership.remove_group(key.group)
            else:
                assert isinstance(value, GroupMetadataValue)
                self.groups[key.group] = ClassicGroup.from_record(key.group, value)

    def on_loaded(self, now_ms: int) -> CoordinatorResult[None]:
        """The partition is replayed: start the timers of loaded members."""
        log.info(
            "loaded %d classic groups, %d consumer groups, %d offsets and %d offsets of "
            "open transactions",
            len(self.groups),
            len(self.consumer_groups),
            self.offsets.num_offsets(),
            len(self.offsets.pending),
        )
        self.consumer.on_loaded()
        return self.membership.on_loaded(now_ms)
