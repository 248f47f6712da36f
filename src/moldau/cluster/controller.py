"""The cluster controller: one broker at a time turns failures into leader elections.

Election of the controller itself is etcd's job: the first broker to create the controller
key on its own lease holds the role until its lease ends (crash, pause, lost connection to
etcd); the others keep trying. Every broker runs a ``Controller``; only the elected one acts.

Acting means reconciling: on every metadata change (debounced, one pass at a time) and on a
timer, compute a plan with :mod:`moldau.cluster.elections` and apply it entry by entry with
compare-and-swap. A lost race (the partition changed meanwhile, e.g. its leader shrank the
ISR) is not an error: the change arrives by watch and the next pass plans from it. Because
every write is conditional, even two brokers that both believe they are controller (a paused
one waking up) can never put two leaders at one leader epoch.

Restarted brokers are recognised by a new ``incarnation`` in their registration and handled
as a failure followed by a return, so their partitions get a fresh leader epoch (and a
restarted leader is replaced by a live ISR member while it catches up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from moldau.cluster.elections import Plan, preferred_elections, reconcile
from moldau.cluster.metadata import MetadataImage
from moldau.cluster.state import PartitionState

log = logging.getLogger("moldau.controller")

CAMPAIGN_INTERVAL_S = 1.0
CLOSE_TIMEOUT_S = 3.0
DEBOUNCE_S = 0.05


class ControllerStore(Protocol):
    """The part of the metadata store the controller needs (ClusterMetadataStore)."""

    @property
    def image(self) -> MetadataImage: ...

    def subscribe(self, callback: Callable[[MetadataImage], None]) -> None: ...

    def lease_valid(self) -> bool: ...

    async def try_become_controller(self) -> bool: ...

    async def resign_controller(self) -> None: ...

    async def compare_and_set_partition(
        self, topic: str, partition: int, expected: PartitionState, new: PartitionState
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    unclean_leader_election_enable: bool = False
    auto_leader_rebalance_enable: bool = True
    leader_imbalance_check_interval_seconds: int = 300


class Controller:
    """Campaigns for the controller role and, while holding it, reconciles the cluster."""

    def __init__(self, node_id: int, store: ControllerStore, config: ControllerConfig) -> None:
        self.node_id = node_id
        self._store = store
        self._config = config
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._known: dict[int, str] = {}
        """Incarnation of each broker as of the last completed pass."""
        self._next_rebalance = 0.0
        self._closing = False

    @property
    def is_active(self) -> bool:
        return self._store.image.controller_id == self.node_id and self._store.lease_valid()

    def start(self) -> None:
        self._store.subscribe(self._on_image)
        self._next_rebalance = (
            time.monotonic() + self._config.leader_imbalance_check_interval_seconds
        )
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        self._closing = True
        self._changed.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # Not ``await task`` under suppress(CancelledError): that would also swallow a
            # cancellation of close() itself.
            await asyncio.wait({task}, timeout=CLOSE_TIMEOUT_S)
        if self._store.image.controller_id == self.node_id:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._store.resign_controller(), CLOSE_TIMEOUT_S)

    def _on_image(self, _image: MetadataImage) -> None:
        self._changed.set()

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("controller pass failed")
                await asyncio.sleep(CAMPAIGN_INTERVAL_S)

    async def _step(self) -> None:
        store = self._store
        if not store.lease_valid():
            self._changed.clear()
            await self._wait(CAMPAIGN_INTERVAL_S)
            return
        if store.image.controller_id != self.node_id:
            self._changed.clear()
            if store.image.controller_id < 0 and await store.try_become_controller():
                log.info("broker %d is now the controller", self.node_id)
                self._known = {}
                return
            await self._wait(CAMPAIGN_INTERVAL_S)
            return
        await asyncio.sleep(DEBOUNCE_S)  # let a burst of watch events settle into one image
        self._changed.clear()
        await self.reconcile_once()
        await self._wait(self._until_rebalance())

    def _until_rebalance(self) -> float:
        if not self._config.auto_leader_rebalance_enable:
            return CAMPAIGN_INTERVAL_S * 5
        return max(0.0, min(self._next_rebalance - time.monotonic(), CAMPAIGN_INTERVAL_S * 5))

    async def _wait(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)

    async def reconcile_once(self) -> bool:
        """One pass: failures, returns, shutdowns, reassignments, and (when due) preferred
        leaders. Returns whether every planned change was applied."""
        image = self._store.image
        gone = {
            node
            for node, incarnation in self._known.items()
            if node in image.brokers and image.brokers[node].incarnation != incarnation
        }
        plan = reconcile(
            image, gone=gone, unclean_default=self._config.unclean_leader_election_enable
        )
        if (
            not plan
            and self._config.auto_leader_rebalance_enable
            and time.monotonic() >= self._next_rebalance
        ):
            self._next_rebalance = (
                time.monotonic() + self._config.leader_imbalance_check_interval_seconds
            )
            plan = preferred_elections(image)
            if plan:
                log.info("moving %d leaderships back to preferred replicas", len(plan))
        applied = await self.apply(plan)
        if applied:
            # Restarted brokers were handled once; from now on their new incarnation counts.
            self._known = {n: b.incarnation for n, b in image.brokers.items()}
        else:
            self._changed.set()  # try again from the newer image
        return applied

    async def apply(self, plan: Plan) -> bool:
        """Apply a plan by compare-and-swap, all entries concurrently."""
        if not plan:
            return True
        for (topic, p), (old, new) in plan.items():
            if old.leader != new.leader or old.isr != new.isr:
                log.info(
                    "%s-%d: leader %d→%d (epoch %d), isr %s→%s",
                    topic,
                    p,
                    old.leader,
                    new.leader,
                    new.leader_epoch,
                    list(old.isr),
                    list(new.isr),
                )
        results = await asyncio.gather(
            *(
                self._store.compare_and_set_partition(topic, p, old, new)
                for (topic, p), (old, new) in plan.items()
            ),
            return_exceptions=True,
        )
        ok = True
        for result in results:
            if isinstance(result, BaseException):
                log.warning("controller write failed: %s", result)
                ok = False
            elif not result:
                ok = False
        return ok
