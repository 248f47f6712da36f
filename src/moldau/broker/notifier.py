"""Wakes long-polling Fetch requests when data arrives on a partition they wait for."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


class AppendNotifier:
    """Per-partition waiter sets. ``notify`` is O(waiters of that partition), not O(all)."""

    def __init__(self) -> None:
        self._waiters: dict[tuple[str, int], set[asyncio.Future[None]]] = {}

    def notify(self, topic: str, partition: int) -> None:
        waiters = self._waiters.pop((topic, partition), None)
        if not waiters:
            return
        for future in waiters:
            if not future.done():
                future.set_result(None)

    async def wait_any(self, partitions: Iterable[tuple[str, int]], timeout_s: float) -> bool:
        """Wait until any of ``partitions`` gets an append, or the timeout; True if woken."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        keys = list(partitions)
        for key in keys:
            self._waiters.setdefault(key, set()).add(future)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, timeout_s)
            return future.done() and not future.cancelled()
        finally:
            for key in keys:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(future)
                    if not waiters:
                        del self._waiters[key]
