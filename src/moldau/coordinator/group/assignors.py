"""Server-side partition assignors of KIP-848 consumer groups: ``uniform`` and ``range``.

In the new protocol the coordinator, not a group leader, computes the *target assignment*
whenever the group epoch moves. An assignor sees the members (what topics each subscribes
to, what it was last given) and the subscribed topics (by id, with partition counts) and
returns, for every member, the partitions it should own. It is a pure function: the
reconciliation (:mod:`.reconciliation`) takes care of moving partitions safely.

- ``uniform`` (Kafka's ``UniformAssignor``, the default): as balanced as the subscriptions
  allow, and sticky — a partition stays with its owner unless balance requires a move. This
  keeps rebalances cheap: when a member joins, only the partitions it takes change hands.
- ``range`` (Kafka's ``RangeAssignor``): per topic, the subscribers sorted by member id get
  consecutive ranges; the first ``partitions % members`` get one more. Members subscribed to
  the same co-partitioned topics get the same partition numbers of each.

Both are deterministic (ties broken by member id), so a replayed computation gives the same
answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

Assignment = dict[uuid.UUID, frozenset[int]]
"""Partitions by topic id; topics with no partitions are left out."""


@dataclass(frozen=True, slots=True)
class MemberSubscription:
    """What an assignor knows of one member."""

    subscribed_topic_ids: frozenset[uuid.UUID]
    current: Mapping[uuid.UUID, frozenset[int]] = field(default_factory=dict)


class PartitionAssignor(Protocol):
    name: str

    def assign(
        self, members: Mapping[str, MemberSubscription], topics: Mapping[uuid.UUID, int]
    ) -> dict[str, Assignment]:
        """``topics`` maps each subscribed topic id to its partition count."""
        ...


def _freeze(by_member: dict[str, dict[uuid.UUID, set[int]]]) -> dict[str, Assignment]:
    return {
        member_id: {t: frozenset(ps) for t, ps in by_topic.items() if ps}
        for member_id, by_topic in by_member.items()
    }


class UniformAssignor:
    """Balanced and sticky; see the module docstring.

    Three passes: keep every partition with its current owner if the owner still subscribes
    to its topic (first claimant wins if two members report the same partition); give each
    unowned partition to the least-loaded subscriber; then, while some member holds at least
    two partitions more than a subscriber of one of its topics, move one over. Each move
    lowers the sum of squared loads, so the last pass ends, with every pair of members that
    could trade within one partition of each other.
    """

    name = "uniform"

    def assign(
        self, members: Mapping[str, MemberSubscription], topics: Mapping[uuid.UUID, int]
    ) -> dict[str, Assignment]:
        by_member: dict[str, dict[uuid.UUID, set[int]]] = {m: {} for m in members}
        load = dict.fromkeys(members, 0)
        owned: set[tuple[uuid.UUID, int]] = set()
        for member_id in sorted(members):
            sub = members[member_id]
            for topic_id, partitions in sorted(sub.current.items()):
                if topic_id not in sub.subscribed_topic_ids or topic_id not in topics:
                    continue
                for p in sorted(partitions):
                    if p < topics[topic_id] and (topic_id, p) not in owned:
                        owned.add((topic_id, p))
                        by_member[member_id].setdefault(topic_id, set()).add(p)
                        load[member_id] += 1
        subscribers = {
            t: sorted(m for m, s in members.items() if t in s.subscribed_topic_ids) for t in topics
        }
        for topic_id in sorted(topics):
            candidates = subscribers[topic_id]
            if not candidates:
                continue
            for p in range(topics[topic_id]):
                if (topic_id, p) in owned:
                    continue
                target = min(candidates, key=lambda m: (load[m], m))
                by_member[target].setdefault(topic_id, set()).add(p)
                load[target] += 1
        self._balance(by_member, load, subscribers)
        return _freeze(by_member)

    @staticmethod
    def _balance(
        by_member: dict[str, dict[uuid.UUID, set[int]]],
        load: dict[str, int],
        subscribers: dict[uuid.UUID, list[str]],
    ) -> None:
        moved = True
        while moved:
            moved = False
            for giver in sorted(load, key=lambda m: (-load[m], m)):
                for topic_id in sorted(by_member[giver]):
                    partitions = by_member[giver][topic_id]
                    if not partitions:
                        continue
                    taker = min(subscribers[topic_id], key=lambda m: (load[m], m))
                    if load[taker] + 1 < load[giver]:
                        p = max(partitions)
                        partitions.discard(p)
                        by_member[taker].setdefault(topic_id, set()).add(p)
                        load[giver] -= 1
                        load[taker] += 1
                        moved = True
                        break
                if moved:
                    break


class RangeAssignor:
    """Consecutive ranges per topic; see the module docstring."""

    name = "range"

    def assign(
        self, members: Mapping[str, MemberSubscription], topics: Mapping[uuid.UUID, int]
    ) -> dict[str, Assignment]:
        by_member: dict[str, dict[uuid.UUID, set[int]]] = {m: {} for m in members}
        for topic_id, num_partitions in topics.items():
            subscribers = sorted(
                m for m, s in members.items() if topic_id in s.subscribed_topic_ids
            )
            if not subscribers:
                continue
            quota, extra = divmod(num_partitions, len(subscribers))
            start = 0
            for index, member_id in enumerate(subscribers):
                count = quota + (1 if index < extra else 0)
                if count:
                    by_member[member_id][topic_id] = set(range(start, start + count))
                start += count
        return _freeze(by_member)


ASSIGNORS: dict[str, PartitionAssignor] = {
    UniformAssignor.name: UniformAssignor(),
    RangeAssignor.name: RangeAssignor(),
}
"""Every server-side assignor moldau has, by name (``group.consumer.assignors`` picks)."""
