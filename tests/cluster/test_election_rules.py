"""The controller's election rules (cluster/elections.py), on hand-built images."""

from __future__ import annotations

import logging
import uuid
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moldau.cluster.elections import (
    cancel_reassignment,
    preferred_elections,
    reassignment_state,
    reconcile,
    reconcile_partition,
)
from moldau.cluster.metadata import MetadataImage, TopicImage
from moldau.cluster.state import NO_LEADER, BrokerRegistration, PartitionState


def image(
    states: list[PartitionState],
    live: set[int],
    *,
    leaving: set[int] = frozenset(),  # type: ignore[assignment]
    configs: dict[str, str] | None = None,
) -> MetadataImage:
    topic = TopicImage("t", uuid.uuid4(), len(states), MappingProxyType(configs or {}), 3)
    brokers = {
        n: BrokerRegistration(n, "h", 9000 + n, shutting_down=n in leaving) for n in sorted(live)
    }
    return MetadataImage(
        cluster_id="c",
        topics=MappingProxyType({"t": topic}),
        brokers=MappingProxyType(brokers),
        partitions=MappingProxyType({"t": tuple(states)}),
    )


STATE = PartitionState(replicas=(1, 2, 3), isr=(1, 2, 3), leader=1, leader_epoch=4)


def test_a_dead_leader_is_replaced_from_the_isr_with_a_new_epoch() -> None:
    ((old, new),) = reconcile(image([STATE], {2, 3})).values()
    assert old == STATE
    assert (new.leader, new.isr, new.leader_epoch) == (2, (2, 3), 5)
    assert new.partition_epoch == STATE.partition_epoch + 1


def test_the_last_isr_member_stays_and_the_partition_goes_offline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = PartitionState(replicas=(1, 2, 3), isr=(1,), leader=1, leader_epoch=2)
    new = reconcile_partition(state, live={2, 3})
    assert new is not None
    assert (new.leader, new.isr, new.leader_epoch) == (NO_LEADER, (1,), 3)
    # ...and comes back with that member, never with an out-of-sync replica
    back = reconcile_partition(new, live={1, 2, 3})
    assert back is not None and back.leader == 1 and back.leader_epoch == 4


def test_unclean_election_takes_a_live_replica_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    state = PartitionState(replicas=(1, 2, 3), isr=(1,), leader=NO_LEADER, leader_epoch=3)
    assert reconcile(image([state], {2, 3})) == {}
    with caplog.at_level(logging.WARNING, logger="moldau.controller"):
        plan = reconcile(image([state], {2, 3}, configs={"unclean.leader.election.enable": "true"}))
    ((_, new),) = plan.values()
    assert (new.leader, new.isr) == (2, (2,))
    assert "possible data loss" in caplog.text


def test_controlled_shutdown_moves_leadership_and_leaves_the_isr() -> None:
    ((_, new),) = reconcile(image([STATE], {1, 2, 3}, leaving={1})).values()
    assert (new.leader, new.isr) == (2, (2, 3))
    alone = PartitionState(replicas=(1, 2, 3), isr=(1,), leader=1)
    assert reconcile(image([alone], {1, 2, 3}, leaving={1})) == {}


def test_a_restarted_broker_is_handled_as_failed_once() -> None:
    ((_, new),) = reconcile(image([STATE], {1, 2, 3}), gone={1}).values()
    assert new.leader == 2 and 1 not in new.isr


def test_preferred_leader_comes_back_when_in_sync() -> None:
    moved = PartitionState(replicas=(1, 2, 3), isr=(2, 3, 1), leader=2, leader_epoch=5)
    ((_, new),) = preferred_elections(image([moved], {1, 2, 3})).values()
    assert (new.leader, new.leader_epoch) == (1, 6)
    out_of_sync = PartitionState(replicas=(1, 2, 3), isr=(2, 3), leader=2)
    assert preferred_elections(image([out_of_sync], {1, 2, 3})) == {}


def test_a_reassignment_finishes_once_the_new_replicas_are_in_sync() -> None:
    moving = reassignment_state(STATE, (2, 3, 4))
    assert moving.replicas == (2, 3, 4, 1)
    assert (moving.adding_replicas, moving.removing_replicas) == ((4,), (1,))
    assert reconcile_partition(moving, live={1, 2, 3, 4}) is None  # 4 not in sync yet
    caught_up = moving.next(isr=(1, 2, 3, 4))
    done = reconcile_partition(caught_up, live={1, 2, 3, 4})
    assert done is not None
    assert (done.replicas, done.isr, done.leader) == ((2, 3, 4), (2, 3, 4), 2)
    assert not done.is_reassigning
    back = cancel_reassignment(moving)
    # Kafka's originReplicas: the merged list without the added ones (order as merged)
    assert (back.replicas, back.adding_replicas, back.removing_replicas) == ((2, 3, 1), (), ())


@given(
    isr=st.lists(st.sampled_from([1, 2, 3]), min_size=1, max_size=3, unique=True),
    leader=st.sampled_from([1, 2, 3, NO_LEADER]),
    live=st.sets(st.sampled_from([1, 2, 3])),
    leaving=st.sets(st.sampled_from([1, 2, 3])),
    unclean=st.booleans(),
)
def test_invariants_hold_for_any_state(
    isr: list[int], leader: int, live: set[int], leaving: set[int], unclean: bool
) -> None:
    if leader != NO_LEADER and leader not in isr:
        leader = isr[0]
    state = PartitionState(replicas=(1, 2, 3), isr=tuple(isr), leader=leader, leader_epoch=7)
    new = reconcile_partition(state, live, leaving, unclean=unclean) or state
    assert new.isr and set(new.isr) <= set(new.replicas)
    assert new.leader == NO_LEADER or new.leader in new.isr
    if new.leader != state.leader:
        assert new.leader_epoch > state.leader_epoch
    if not unclean and new.leader != NO_LEADER:
        assert new.leader in state.isr
    if new.leader != NO_LEADER and new.leader != state.leader:
        assert new.leader in live
