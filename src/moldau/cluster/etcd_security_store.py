"""Security records in etcd, so every broker of a cluster shares users, ACLs and quotas.

Records live under ``<prefix>/security/``. A change is one etcd transaction of puts and
deletes; every broker (the writer too) applies changes from its watch, and the writer waits
until its own watch has seen the write, so a DescribeAcls right after a CreateAcls on the same
broker sees the new binding.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping

from moldau.cluster.errors import EtcdError, WatchCompacted
from moldau.cluster.etcd_client import EtcdClient, WatchEvent, op_delete, op_put
from moldau.cluster.security_store import SecurityStore

log = logging.getLogger("moldau.security.etcd")


class EtcdSecurityStore(SecurityStore):
    """``SecurityStore`` over etcd keys ``<prefix>/security/<record key>``."""

    def __init__(self, client: EtcdClient, prefix: str) -> None:
        super().__init__()
        self._client = client
        self._root = prefix.rstrip("/") + "/security/"
        self._applied_revision = 0
        self._applied = asyncio.Condition()
        self._watch_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._reload()
        self._watch_task = asyncio.get_running_loop().create_task(self._watch_loop())

    async def close(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
            self._watch_task = None

    async def apply(self, puts: Mapping[str, bytes], deletes: Collection[str]) -> None:
        ops = [op_put(self._root + key, value) for key, value in puts.items()]
        ops += [op_delete(self._root + key) for key in deletes if key not in puts]
        if not ops:
            return
        result = await self._client.txn([], ops)
        await self._wait_applied(result.revision)

    async def _wait_applied(self, revision: int, timeout_s: float = 10.0) -> None:
        async with self._applied:
            try:
                await asyncio.wait_for(
                    self._applied.wait_for(lambda: self._applied_revision >= revision), timeout_s
                )
            except TimeoutError:
                log.warning("security change at revision %d not yet seen by the watch", revision)

    async def _reload(self) -> None:
        kvs, revision = await self._client.range_prefix(self._root)
        self._records = {kv.key[len(self._root) :]: kv.value for kv in kvs}
        await self._advance(revision)

    async def _advance(self, revision: int) -> None:
        self._applied_revision = max(self._applied_revision, revision)
        self._publish()
        async with self._applied:
            self._applied.notify_all()

    def _apply_events(self, events: list[WatchEvent]) -> None:
        for event in events:
            key = event.kv.key[len(self._root) :]
            if event.type == "DELETE":
                self._records.pop(key, None)
            else:
                self._records[key] = event.kv.value

    async def _watch_loop(self) -> None:
        while True:
            try:
                async for events in self._client.watch(self._root, self._applied_revision + 1):
                    self._apply_events(events)
                    await self._advance(max(e.kv.mod_revision for e in events))
            except WatchCompacted as exc:
                log.warning("etcd %s; reloading the security records", exc)
                with contextlib.suppress(EtcdError):
                    await self._reload()
            except EtcdError as exc:  # pragma: no cover - the watch retries by itself
                log.warning("etcd security watch failed: %s", exc)
                await asyncio.sleep(1.0)
