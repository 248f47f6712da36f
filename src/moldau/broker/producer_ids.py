"""Producer id allocation for idempotent producers (InitProducerId without transactional id).

Ids must never be reused across restarts, or a restarted broker could accept a stale
producer's sequence numbers as another's. Like Kafka's ProducerIdManager we reserve ids in
blocks and persist the end of the current block *before* handing out ids from it; a crash
wastes at most one block.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

BLOCK_SIZE = 1000

log = logging.getLogger("moldau.broker")


class ProducerIdManager:
    FILE_NAME = "producer-id-block"

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / self.FILE_NAME
        self._next = 0
        self._block_end = 0
        if self._path.exists():
            text = self._path.read_text().strip()
            if text:
                self._next = self._block_end = int(text)

    def next_id(self) -> int:
        if self._next >= self._block_end:
            self._reserve(self._next + BLOCK_SIZE)
        producer_id = self._next
        self._next += 1
        return producer_id

    def _reserve(self, block_end: int) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        with open(tmp, "w") as handle:
            handle.write(f"{block_end}\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._path)
        self._block_end = block_end


class ProducerIds(Protocol):
    """What the coordinators need: a fresh, never reused producer id, synchronously."""

    def next_id(self) -> int: ...


class ProducerIdsUnavailableError(Exception):
    """No block of ids is at hand (etcd unreachable for a long while); the request fails
    with COORDINATOR_LOAD_IN_PROGRESS-like retriable errors and the client retries."""

    error_code = 15  # COORDINATOR_NOT_AVAILABLE


class ClusterProducerIdManager:
    """Producer ids for a cluster: blocks allocated cluster-wide in etcd (Kafka's
    AllocateProducerIds), so two brokers never hand out the same id.

    ``next_id`` must stay synchronous (the coordinators call it inside a state transition),
    so the next block is fetched in the background once the current one is half used, and
    the first block is fetched when the broker starts serving.
    """

    def __init__(self, allocate: Callable[[int], Awaitable[tuple[int, int]]]) -> None:
        self._allocate = allocate
        self._blocks: list[tuple[int, int]] = []
        self._next = 0
        self._end = -1
        self._fetching: asyncio.Task[None] | None = None

    def next_id(self) -> int:
        if self._next > self._end:
            if not self._blocks:
                self._maybe_prefetch()
                raise ProducerIdsUnavailableError("no producer id block allocated yet")
            self._next, self._end = self._blocks.pop(0)
        producer_id = self._next
        self._next += 1
        if not self._blocks and self._next > (self._next + self._end) // 2:
            self._maybe_prefetch()
        return producer_id

    def _maybe_prefetch(self) -> None:
        if self._fetching is not None and not self._fetching.done():
            return
        with contextlib.suppress(RuntimeError):
            self._fetching = asyncio.get_running_loop().create_task(self._fetch())

    async def prefetch(self) -> None:
        """Fetch the first block (call at start; errors are logged and retried later)."""
        await self._fetch()

    async def _fetch(self) -> None:
        try:
            self._blocks.append(await self._allocate(BLOCK_SIZE))
        except Exception as exc:
            log.warning("could not allocate producer ids: %s", exc)
