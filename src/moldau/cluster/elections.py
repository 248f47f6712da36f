"""The controller's decisions, as pure functions: metadata image in, planned changes out.

A plan maps ``(topic, partition)`` to ``(expected, new)`` partition states; the controller
applies each entry with a compare-and-swap, so a plan made from a stale image simply fails and
is made again from the next one. Keeping the rules free of I/O makes every case testable with
hand-built images.

The rules (Kafka's KRaft controller, in short):

* **Dead brokers** (no registration, or a new incarnation of a restarted process) leave every
  ISR, except that the last ISR member stays: it holds the only complete copy, and the
  partition must wait for it. A partition whose leader is dead gets a new leader from the live
  ISR members, in replica order; with none, it goes offline (``NO_LEADER``).
* **Returning brokers**: an offline partition whose ISR has a live member elects it.
* **Unclean election** (topic or broker ``unclean.leader.election.enable``): an offline
  partition with no live ISR member but a live replica elects that replica, which becomes the
  whole ISR; acknowledged writes it lacks are lost, so it is logged as a warning.
* **Controlled shutdown**: a broker whose registration says ``shutting_down`` hands its
  leaderships to another live ISR member and leaves the ISR, when someone else remains.
* **Reassignment** (KIP-455): once every target replica is in the ISR, the replica set becomes
  the target, the ISR keeps only target replicas, and a leader outside the target is replaced.
* **Preferred leaders** (on request, or periodically with ``auto.leader.rebalance.enable``):
  the first replica takes leadership back when it is alive and in the ISR.

Every leader change bumps the leader epoch (``PartitionState.next``), which fences the old
leader; every change bumps the partition epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping

from moldau.cluster.metadata import MetadataImage
from moldau.cluster.state import NO_LEADER, PartitionState

log = logging.getLogger("moldau.controller")

TopicPartition = tuple[str, int]
Plan = dict[TopicPartition, tuple[PartitionState, PartitionState]]


def unclean_allowed(configs: Mapping[str, str], default: bool) -> bool:
    raw = configs.get("unclean.leader.election.enable")
    if raw is None:
        return default
    return raw.strip().lower() == "true"


def reconcile(
    image: MetadataImage, *, gone: Collection[int] = (), unclean_default: bool = False
) -> Plan:
    """Changes every partition needs after broker failures, returns, shutdowns and
    reassignment progress. ``gone`` lists brokers to treat as dead although registered
    (restarted processes, seen with a new incarnation)."""
    live = {n for n in image.brokers if n not in gone}
    leaving = {n for n, b in image.brokers.items() if b.shutting_down}
    plan: Plan = {}
    for name, states in image.partitions.items():
        topic = image.topics.get(name)
        unclean = unclean_allowed(topic.configs if topic else {}, unclean_default)
        for index, state in enumerate(states):
            new = reconcile_partition(state, live, leaving, unclean=unclean, name=f"{name}-{index}")
            if new is not None:
                plan[(name, index)] = (state, new)
    return plan


def reconcile_partition(
    state: PartitionState,
    live: Collection[int],
    leaving: Collection[int] = (),
    *,
    unclean: bool = False,
    name: str = "",
) -> PartitionState | None:
    """The state ``state`` should move to, or None when it is fine as it is."""
    replicas, adding, removing = state.replicas, state.adding_replicas, state.removing_replicas
    isr = list(state.isr)
    if state.is_reassigning:
        target = state.target_replicas
        if all(r in isr for r in target):
            replicas, adding, removing = target, (), ()
            isr = [r for r in target if r in isr]
    # Dead members leave the ISR, but never the last one.
    alive = [r for r in isr if r in live]
    if alive:
        isr = alive
    # Leaving members leave it too when a live, staying member remains.
    staying = [r for r in isr if r in live and r not in leaving]
    if staying:
        isr = staying
    leader = state.leader
    eligible = [r for r in replicas if r in isr and r in live and r not in leaving]
    if leader not in eligible:
        if eligible:
            leader = eligible[0]
        elif leader in isr and leader in live and leader in replicas:
            pass  # leaving, but nobody can take over: keep leading until it stops
        else:
            candidates = [r for r in replicas if r in live and r not in leaving] or [
                r for r in replicas if r in live
            ]
            if unclean and candidates:
                leader = candidates[0]
                isr = [leader]
                log.warning(
                    "unclean leader election for %s: broker %d becomes leader without being "
                    "in the ISR %s; acknowledged records it lacks are lost (possible data loss)",
                    name,
                    leader,
                    list(state.isr),
                )
            else:
                leader = NO_LEADER
    isr_tuple = tuple(r for r in replicas if r in isr)
    if set(isr_tuple) == set(state.isr):
        isr_tuple = state.isr  # same members: an order change alone is no change
    if (
        leader == state.leader
        and isr_tuple == state.isr
        and replicas == state.replicas
        and adding == state.adding_replicas
        and removing == state.removing_replicas
    ):
        return None
    if leader == NO_LEADER and state.leader != NO_LEADER:
        log.warning("%s is offline: no live in-sync replica among %s", name, list(state.isr))
    return state.next(
        leader=leader,
        isr=isr_tuple,
        replicas=replicas,
        adding_replicas=adding,
        removing_replicas=removing,
    )


def preferred_elections(
    image: MetadataImage, partitions: Iterable[TopicPartition] | None = None
) -> Plan:
    """Move leadership to each partition's preferred (first) replica where it is alive, in
    the ISR, staying, and not the leader already."""
    live = {n for n, b in image.brokers.items() if not b.shutting_down}
    wanted = (
        [(name, p) for name, states in image.partitions.items() for p in range(len(states))]
        if partitions is None
        else list(partitions)
    )
    plan: Plan = {}
    for name, p in wanted:
        state = image.partition(name, p)
        if state is None:
            continue
        preferred = state.preferred_leader
        if preferred != state.leader and preferred in state.isr and preferred in live:
            plan[(name, p)] = (state, state.next(leader=preferred))
    return plan


def unclean_elections(
    image: MetadataImage, partitions: Iterable[TopicPartition] | None = None
) -> Plan:
    """ElectLeaders with the unclean type: offline partitions take any live replica."""
    live = set(image.brokers)
    wanted = (
        [(name, p) for name, states in image.partitions.items() for p in range(len(states))]
        if partitions is None
        else list(partitions)
    )
    plan: Plan = {}
    for name, p in wanted:
        state = image.partition(name, p)
        if state is None or state.has_leader:
            continue
        new = reconcile_partition(state, live, unclean=True, name=f"{name}-{p}")
        if new is not None and new.has_leader:
            plan[(name, p)] = (state, new)
    return plan


def reassignment_state(state: PartitionState, target: tuple[int, ...]) -> PartitionState:
    """Start moving ``state`` to the replica set ``target`` (KIP-455): the replicas become the
    target followed by the current replicas not in it; the controller finishes the move once
    every target replica is in the ISR."""
    current = state.target_replicas
    replicas = tuple(target) + tuple(r for r in current if r not in target)
    adding = tuple(r for r in target if r not in current)
    removing = tuple(r for r in current if r not in target)
    return state.next(replicas=replicas, adding_replicas=adding, removing_replicas=removing)


def cancel_reassignment(state: PartitionState) -> PartitionState:
    """Go back to the replicas before the reassignment (drop the ones being added)."""
    original = tuple(r for r in state.replicas if r not in state.adding_replicas)
    return state.next(
        replicas=original,
        isr=tuple(r for r in state.isr if r in original) or state.isr,
        adding_replicas=(),
        removing_replicas=(),
    )
