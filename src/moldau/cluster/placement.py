"""Replica placement for new topics and partitions: spread leaders and copies evenly.

Kafka's rule, in short: replicas of a partition land on distinct brokers; when brokers carry a
``broker.rack``, on distinct racks as far as racks allow; the first replica (the preferred
leader) rotates over the brokers so leadership is balanced. We order brokers by alternating
racks, start at a per-topic offset, and shift each following replica by a growing step so that
partitions do not all share the same follower pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

from moldau.cluster.state import BrokerRegistration


class PlacementError(ValueError):
    """Not enough brokers for the replication factor (INVALID_REPLICATION_FACTOR)."""


def rack_alternating(brokers: Sequence[BrokerRegistration]) -> list[int]:
    """Broker ids ordered so that consecutive ids sit on different racks where possible."""
    by_rack: dict[str, list[int]] = {}
    for b in sorted(brokers, key=lambda b: b.node_id):
        by_rack.setdefault(b.rack or "", []).append(b.node_id)
    racks = sorted(by_rack)
    ordered: list[int] = []
    while any(by_rack[r] for r in racks):
        for rack in racks:
            if by_rack[rack]:
                ordered.append(by_rack[rack].pop(0))
    return ordered


def assign_replicas(
    brokers: Sequence[BrokerRegistration],
    partitions: int,
    replication_factor: int,
    *,
    start_index: int = 0,
    first_partition: int = 0,
) -> list[tuple[int, ...]]:
    """Replica lists for partitions ``first_partition .. first_partition+partitions-1``."""
    if replication_factor <= 0:
        raise PlacementError("Replication factor must be larger than 0.")
    if replication_factor > len(brokers):
        raise PlacementError(
            f"Replication factor: {replication_factor} larger than available brokers: "
            f"{len(brokers)}."
        )
    ids = rack_alternating(brokers)
    racks = {b.node_id: b.rack for b in brokers}
    n = len(ids)
    result: list[tuple[int, ...]] = []
    for offset in range(partitions):
        p = first_partition + offset
        first = (start_index + p) % n
        shift = 1 + (p // n) % max(n - 1, 1)
        chosen = [ids[first]]
        step = 0
        while len(chosen) < replication_factor:
            step += 1
            candidate = ids[(first + shift * step) % n] if n > 1 else ids[0]
            if candidate in chosen:
                candidate = next(i for i in ids if i not in chosen)
            # Prefer a broker on a rack not used yet, when one is free.
            used = {racks[c] for c in chosen}
            if racks[candidate] in used and racks[candidate] is not None:
                other = next((i for i in ids if i not in chosen and racks[i] not in used), None)
                if other is not None:
                    candidate = other
            chosen.append(candidate)
        result.append(tuple(chosen))
    return result
