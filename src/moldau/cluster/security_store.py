"""Where SCRAM credentials, ACLs and client quotas persist: a local file or etcd.

``SecurityStore`` keeps the flat records of ``security_state`` and publishes a new
``SecurityImage`` after every change. Subclasses only say how a batch of record changes is
made durable: ``LocalSecurityStore`` rewrites one JSON file in the data directory (single
node, and the offline ``moldau user create --data-dir``); ``EtcdSecurityStore``
(``etcd_security_store``) writes keys under ``<prefix>/security/`` and follows them by watch,
so every broker of a cluster sees the same users, ACLs and quotas.

Admin handlers validate against ``image`` first and then hand the store exact changes; the
store itself does no Kafka-level validation.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path

from moldau.cluster.metadata import atomic_write
from moldau.cluster.security_state import (
    AclBinding,
    QuotaEntity,
    ScramCredential,
    SecurityImage,
    build_image,
    encode,
    quota_entity_key,
    scram_key,
)

log = logging.getLogger("moldau.security.store")

SecurityCallback = Callable[[SecurityImage], None]


class SecurityStore(ABC):
    """Records → image, change notification, and typed helpers over ``apply``."""

    def __init__(self) -> None:
        self._records: dict[str, bytes] = {}
        self._image = SecurityImage()
        self._callbacks: list[SecurityCallback] = []

    @property
    def image(self) -> SecurityImage:
        return self._image

    def subscribe(self, callback: SecurityCallback) -> None:
        """Call ``callback(image)`` after every change (on the event loop)."""
        self._callbacks.append(callback)

    async def start(self) -> None:
        """Load the records (and, for etcd, start following them)."""
        return None

    async def close(self) -> None:
        """Stop following changes."""
        return None

    @abstractmethod
    async def apply(self, puts: Mapping[str, bytes], deletes: Collection[str]) -> None:
        """Make one batch of record changes durable, atomically, then publish the image."""

    # -- typed helpers -----------------------------------------------------------------

    async def alter_scram(
        self,
        upserts: Sequence[tuple[str, ScramCredential]] = (),
        deletions: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Set ``(user, credential)`` pairs and remove ``(user, mechanism)`` pairs."""
        puts = {scram_key(user, c.mechanism): encode(c.to_json()) for user, c in upserts}
        await self.apply(puts, [scram_key(user, mechanism) for user, mechanism in deletions])

    async def create_acls(self, bindings: Iterable[AclBinding]) -> None:
        await self.apply({b.record_key: encode(b.to_json()) for b in bindings}, ())

    async def delete_acls(self, bindings: Iterable[AclBinding]) -> None:
        await self.apply({}, [b.record_key for b in bindings])

    async def alter_quotas(
        self, entity: QuotaEntity, set_values: Mapping[str, float], remove_keys: Collection[str]
    ) -> None:
        """Set and remove quota keys of one entity; an entity left with none is deleted."""
        values = dict(self._image.quotas.get(entity, {}))
        values.update(set_values)
        for key in remove_keys:
            values.pop(key, None)
        record = quota_entity_key(entity)
        if values:
            await self.apply({record: encode(values)}, ())
        else:
            await self.apply({}, [record])

    # -- for subclasses ------------------------------------------------------------------

    def _publish(self) -> None:
        self._image = build_image(self._records)
        for callback in list(self._callbacks):
            try:
                callback(self._image)
            except Exception:  # one bad subscriber must not stop the others
                log.exception("security image subscriber failed")


class LocalSecurityStore(SecurityStore):
    """Security records in ``<data-dir>/__security_metadata.json``, rewritten atomically
    (write, fsync, rename) on every change. The file is small: credentials, ACLs and quota
    entities number in the hundreds, not millions."""

    FILE_NAME = "__security_metadata.json"

    def __init__(self, data_dir: Path) -> None:
        super().__init__()
        self._path = data_dir / self.FILE_NAME
        self._load()

    @property
    def path(self) -> Path:
        return self._path

    def _load(self) -> None:
        if self._path.exists():
            raw = json.loads(self._path.read_text())
            self._records = {k: encode(v) for k, v in raw.get("records", {}).items()}
        self._publish()

    async def apply(self, puts: Mapping[str, bytes], deletes: Collection[str]) -> None:
        self.apply_now(puts, deletes)

    def apply_now(self, puts: Mapping[str, bytes], deletes: Collection[str]) -> None:
        """Synchronous ``apply`` (the offline CLI has no event loop to speak of)."""
        records = dict(self._records)
        for key in deletes:
            records.pop(key, None)
        records.update(puts)
        payload = {"version": 1, "records": {k: json.loads(v) for k, v in sorted(records.items())}}
        self._path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self._path, json.dumps(payload, indent=1).encode())
        self._records = records
        self._publish()
