"""A manual clock and a fake runtime for driving the sans-I/O group coordinator in tests.

``Harness`` plays the runtime's role: it calls coordinator operations with the manual
clock's time, "appends" their records to an in-memory list (replaying them when the result
asks), runs ``on_written`` callbacks and fires timers when the test advances the clock.
"""

from __future__ import annotations

import heapq
import itertools
import struct
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kio.schema.errors import ErrorCode

from moldau.coordinator.group.config import GroupCoordinatorConfig
from moldau.coordinator.group.coordinator import GroupCoordinator
from moldau.coordinator.group.messages import (
    HeartbeatRequest,
    JoinGroupRequest,
    JoinGroupResult,
    LeavingMember,
    OffsetCommitRequest,
    PartitionOffset,
    SyncGroupRequest,
    SyncGroupResult,
)
from moldau.coordinator.group.records import CoordinatorRecord
from moldau.coordinator.group.results import Completion, CoordinatorResult, TimerOperation

T = TypeVar("T")

SESSION_MS = 10_000
REBALANCE_MS = 30_000


def subscription(*topics: str, version: int = 1) -> bytes:
    """A ConsumerProtocolSubscription as a Java consumer sends it (user data null)."""
    out = bytearray(struct.pack(">hi", version, len(topics)))
    for topic in topics:
        data = topic.encode()
        out += struct.pack(">h", len(data)) + data
    out += struct.pack(">i", -1)  # user data: null
    if version >= 1:
        out += struct.pack(">i", -1)  # owned partitions: null array
    return bytes(out)


class ManualTimer:
    """Keyed timers on a clock that only moves when the test says so."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = start_ms
        self._seq = itertools.count()
        self._due: dict[str, tuple[int, int, TimerOperation]] = {}

    def schedule(self, key: str, delay_ms: int, operation: TimerOperation) -> None:
        self._due[key] = (self.now_ms + max(delay_ms, 0), next(self._seq), operation)

    def cancel(self, key: str) -> None:
        self._due.pop(key, None)

    def is_scheduled(self, key: str) -> bool:
        return key in self._due

    def deadline(self, key: str) -> int | None:
        entry = self._due.get(key)
        return None if entry is None else entry[0]

    def pop_due(self, until_ms: int) -> tuple[str, int, TimerOperation] | None:
        """The earliest timer due at or before ``until_ms``, removed; None if none."""
        ready = [(at, seq, key) for key, (at, seq, _) in self._due.items() if at <= until_ms]
        if not ready:
            return None
        at, _seq, key = heapq.nsmallest(1, ready)[0]
        _, _, operation = self._due.pop(key)
        return key, at, operation


@dataclass
class Harness:
    config: GroupCoordinatorConfig = field(
        default_factory=lambda: GroupCoordinatorConfig(initial_rebalance_delay_ms=0)
    )
    timer: ManualTimer = field(default_factory=ManualTimer)
    written: list[CoordinatorRecord] = field(default_factory=list)
    fail_writes: bool = False

    def __post_init__(self) -> None:
        self.coordinator = GroupCoordinator(self.timer, self.config)

    @property
    def now(self) -> int:
        return self.timer.now_ms

    def apply(self, result: CoordinatorResult[T]) -> T | None:
        if self.fail_writes and result.records:
            if result.on_written is not None:
                follow = result.on_written(OSError("disk gone"), self.now)
                if follow is not None:
                    self.apply(follow)
            return None
        self.written.extend(result.records)
        if result.replay:
            for record in result.records:
                self.coordinator.replay(record)
        if result.on_written is not None:
            follow = result.on_written(None, self.now)
            if follow is not None:
                self.apply(follow)
        return result.response

    def advance(self, ms: int) -> None:
        """Move the clock, firing due timers in order."""
        target = self.timer.now_ms + ms
        while (due := self.timer.pop_due(target)) is not None:
            _key, at, operation = due
            self.timer.now_ms = max(self.timer.now_ms, at)
            self.apply(operation(self.timer.now_ms))
        self.timer.now_ms = target

    # -- requests --------------------------------------------------------------------------

    def join(
        self,
        group: str,
        member_id: str = "",
        *,
        instance_id: str | None = None,
        protocols: tuple[tuple[str, bytes], ...] = (("range", subscription("t")),),
        protocol_type: str = "consumer",
        session_ms: int = SESSION_MS,
        rebalance_ms: int = REBALANCE_MS,
        require_known_member_id: bool = True,
        supports_skip_assignment: bool = False,
        client_id: str = "client",
    ) -> Completion[JoinGroupResult]:
        completion: Completion[JoinGroupResult] = Completion()
        request = JoinGroupRequest(
            group_id=group,
            member_id=member_id,
            protocol_type=protocol_type,
            protocols=protocols,
            session_timeout_ms=session_ms,
            rebalance_timeout_ms=rebalance_ms,
            group_instance_id=instance_id,
            client_id=client_id,
            client_host="/127.0.0.1",
            require_known_member_id=require_known_member_id,
            supports_skip_assignment=supports_skip_assignment,
        )
        self.apply(self.coordinator.join_group(request, completion, self.now))
        return completion

    def join_new(self, group: str, **kwargs: Any) -> Completion[JoinGroupResult]:
        """A new dynamic member: the MEMBER_ID_REQUIRED round trip, then the real join."""
        first = self.join(group, **kwargs)
        assert first.result().error is ErrorCode.member_id_required, first.result()
        return self.join(group, first.result().member_id, **kwargs)

    def sync(
        self,
        group: str,
        member_id: str,
        generation: int,
        assignments: dict[str, bytes] | None = None,
        *,
        instance_id: str | None = None,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
    ) -> Completion[SyncGroupResult]:
        completion: Completion[SyncGroupResult] = Completion()
        request = SyncGroupRequest(
            group_id=group,
            generation_id=generation,
            member_id=member_id,
            group_instance_id=instance_id,
            protocol_type=protocol_type,
            protocol_name=protocol_name,
            assignments=tuple((assignments or {}).items()),
        )
        self.apply(self.coordinator.sync_group(request, completion, self.now))
        return completion

    def heartbeat(
        self, group: str, member_id: str, generation: int, instance_id: str | None = None
    ) -> ErrorCode:
        request = HeartbeatRequest(group, generation, member_id, instance_id)
        error = self.apply(self.coordinator.heartbeat(request, self.now))
        assert error is not None
        return error

    def leave(self, group: str, *members: LeavingMember) -> Any:
        return self.apply(self.coordinator.leave_group(group, tuple(members), self.now))

    def commit(
        self,
        group: str,
        offsets: dict[tuple[str, int], int],
        *,
        member_id: str = "",
        generation: int = -1,
        instance_id: str | None = None,
        metadata: str | None = "",
    ) -> dict[tuple[str, int], ErrorCode]:
        request = OffsetCommitRequest(
            group_id=group,
            generation_id=generation,
            member_id=member_id,
            group_instance_id=instance_id,
            offsets=tuple(
                PartitionOffset(topic, partition, offset, metadata=metadata)
                for (topic, partition), offset in offsets.items()
            ),
        )
        answer = self.apply(self.coordinator.commit_offsets(request, self.now))
        assert answer is not None
        return dict(answer)

    def stable_group(self, group: str, members: int, **join_kwargs: Any) -> tuple[list[str], int]:
        """Form a STABLE group of ``members`` dynamic members; returns (member ids, generation).

        Joins everyone, lets the (zero) initial delay pass, has the leader assign each
        member its own id as the assignment bytes and everyone sync.
        """
        joins = [self.join_new(group, **join_kwargs) for _ in range(members)]
        self.advance(1)
        results = [j.result() for j in joins]
        generation = results[0].generation_id
        member_ids = [r.member_id for r in results]
        leader = results[0].leader
        assignments = {m: m.encode() for m in member_ids}
        syncs = [
            self.sync(group, m, generation, assignments if m == leader else None)
            for m in member_ids
        ]
        assert all(s.result().error is ErrorCode.none for s in syncs), [s.result() for s in syncs]
        return member_ids, generation
