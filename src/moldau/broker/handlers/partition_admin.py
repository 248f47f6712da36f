"""AlterPartitionReassignments, ListPartitionReassignments, ElectLeaders: moving replicas and
leadership by hand, as kafka-reassign-partitions.sh and kafka-leader-election.sh do.

Any broker may take these requests: each change is a compare-and-swap of a partition's state
in etcd (retried a few times on a lost race), and the controller does the rest. A reassignment
only records the target (KIP-455: replicas = target plus the current ones, with the adding and
removing sets); the new replicas start fetching as soon as the image names them, and the
controller switches to the target once all of them are in the ISR. A cancelled reassignment
goes back to the original replicas.

Single node: this broker is the only replica there can be, so a reassignment to itself is a
no-op, to any other broker INVALID_REPLICA_ASSIGNMENT, and no election is ever needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import RequestContext
from moldau.broker.handlers import handles
from moldau.cluster.elections import (
    cancel_reassignment,
    preferred_elections,
    reassignment_state,
    unclean_elections,
)
from moldau.cluster.state import PartitionState
from moldau.protocol.api import ApiKey

CAS_ATTEMPTS = 5
PREFERRED, UNCLEAN = 0, 1

Outcome = tuple[ErrorCode, str | None]


async def _change_partition(
    ctx: RequestContext,
    topic: str,
    partition: int,
    change: Callable[[PartitionState], PartitionState | Outcome],
) -> Outcome:
    """Apply ``change`` to the partition's current state by compare-and-swap, re-reading the
    image after a lost race; ``change`` may answer an error instead of a new state."""
    store = ctx.broker.cluster_store
    assert store is not None
    for _ in range(CAS_ATTEMPTS):
        state = store.image.partition(topic, partition)
        if state is None:
            return ErrorCode.unknown_topic_or_partition, None
        new = change(state)
        if isinstance(new, tuple):
            return new
        if await store.compare_and_set_partition(topic, partition, state, new):
            return ErrorCode.none, None
    return ErrorCode.request_timed_out, "the partition kept changing; try again"


def _check_target(ctx: RequestContext, replicas: tuple[int, ...]) -> Outcome | None:
    if not replicas:
        return ErrorCode.invalid_replica_assignment, "The replica list is empty."
    if len(set(replicas)) != len(replicas):
        return ErrorCode.invalid_replica_assignment, f"Duplicate replicas in {list(replicas)}."
    live = set(ctx.broker.live_broker_ids())
    missing = [r for r in replicas if r not in live]
    if missing:
        return (
            ErrorCode.invalid_replica_assignment,
            f"The replicas {missing} are not registered brokers.",
        )
    return None


async def _reassign(
    ctx: RequestContext, topic: str, partition: int, replicas: tuple[int, ...] | None
) -> Outcome:
    image = ctx.broker.metadata.image
    if image.partition(topic, partition) is None:
        return ErrorCode.unknown_topic_or_partition, None
    if replicas is not None:
        problem = _check_target(ctx, replicas)
        if problem is not None:
            return problem
    if ctx.broker.cluster_store is None:
        if replicas is None:
            return ErrorCode.no_reassignment_in_progress, None
        return ErrorCode.none, None  # the only valid target is this broker: nothing to do

    def change(state: PartitionState) -> PartitionState | Outcome:
        if replicas is None:
            if not state.is_reassigning:
                return ErrorCode.no_reassignment_in_progress, None
            return cancel_reassignment(state)
        if tuple(replicas) == state.target_replicas and not state.is_reassigning:
            return ErrorCode.none, None
        return reassignment_state(state, tuple(replicas))

    return await _change_partition(ctx, topic, partition, change)


@handles(ApiKey.ALTER_PARTITION_REASSIGNMENTS)
async def handle_alter_partition_reassignments(ctx: RequestContext, request: Any) -> Any:
    topics = []
    for topic in request.topics:
        partitions = []
        for p in topic.partitions:
            replicas = None if p.replicas is None else tuple(int(r) for r in p.replicas)
            code, message = await _reassign(ctx, topic.name, int(p.partition_index), replicas)
            partitions.append(
                ctx.make(
                    "ReassignablePartitionResponse",
                    partition_index=p.partition_index,
                    error_code=code,
                    error_message=message,
                )
            )
        topics.append(
            ctx.make("ReassignableTopicResponse", name=topic.name, partitions=tuple(partitions))
        )
    return ctx.response(
        throttle_time=0, error_code=ErrorCode.none, error_message=None, responses=tuple(topics)
    )


@handles(ApiKey.LIST_PARTITION_REASSIGNMENTS)
async def handle_list_partition_reassignments(ctx: RequestContext, request: Any) -> Any:
    image = ctx.broker.metadata.image
    wanted: list[tuple[str, list[int]]]
    if request.topics is None:
        wanted = [
            (name, list(range(len(states)))) for name, states in sorted(image.partitions.items())
        ]
    else:
        wanted = [(t.name, [int(p) for p in t.partition_indexes]) for t in request.topics]
    topics = []
    for name, indexes in wanted:
        ongoing = []
        for index in indexes:
            state = image.partition(name, index)
            if state is None or not state.is_reassigning:
                continue
            ongoing.append(
                ctx.make(
                    "OngoingPartitionReassignment",
                    partition_index=index,
                    replicas=state.replicas,
                    adding_replicas=state.adding_replicas,
                    removing_replicas=state.removing_replicas,
                )
            )
        if ongoing:
            topics.append(
                ctx.make("OngoingTopicReassignment", name=name, partitions=tuple(ongoing))
            )
    return ctx.response(
        throttle_time=0, error_code=ErrorCode.none, error_message=None, topics=tuple(topics)
    )


async def _elect(ctx: RequestContext, topic: str, partition: int, election_type: int) -> Outcome:
    image = ctx.broker.metadata.image
    state = image.partition(topic, partition)
    if state is None:
        return ErrorCode.unknown_topic_or_partition, None
    if ctx.broker.cluster_store is None:
        return ErrorCode.election_not_needed, None
    if election_type == UNCLEAN:
        if state.has_leader:
            return ErrorCode.election_not_needed, None
    elif state.leader == state.preferred_leader:
        return ErrorCode.election_not_needed, None

    def change(current: PartitionState) -> PartitionState | Outcome:
        view = ctx.broker.metadata.image
        plan = (
            unclean_elections(view, [(topic, partition)])
            if election_type == UNCLEAN
            else preferred_elections(view, [(topic, partition)])
        )
        planned = plan.get((topic, partition))
        if planned is None or planned[0] != current:
            if election_type == UNCLEAN:
                return ErrorCode.eligible_leaders_not_available, "No live replica can lead."
            return (
                ErrorCode.preferred_leader_not_available,
                f"Broker {current.preferred_leader} is not alive or not in the ISR.",
            )
        return planned[1]

    return await _change_partition(ctx, topic, partition, change)


@handles(ApiKey.ELECT_LEADERS)
async def handle_elect_leaders(ctx: RequestContext, request: Any) -> Any:
    election_type = int(getattr(request, "election_type", PREFERRED))
    image = ctx.broker.metadata.image
    if request.topic_partitions is None:
        wanted = [
            (name, list(range(len(states)))) for name, states in sorted(image.partitions.items())
        ]
    else:
        wanted = [(t.topic, [int(p) for p in t.partitions]) for t in request.topic_partitions]
    results = []
    for topic, partitions in wanted:
        answers = []
        for partition in partitions:
            code, message = await _elect(ctx, topic, partition, election_type)
            answers.append(
                ctx.make(
                    "PartitionResult",
                    partition_id=partition,
                    error_code=code,
                    error_message=message,
                )
            )
        results.append(
            ctx.make("ReplicaElectionResult", topic=topic, partition_result=tuple(answers))
        )
    return ctx.response(
        throttle_time=0, error_code=ErrorCode.none, replica_election_results=tuple(results)
    )
