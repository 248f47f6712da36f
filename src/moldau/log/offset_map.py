"""The log cleaner's key → latest offset map (Kafka's ``SkimpyOffsetMap``), memory-bounded.

The cleaner maps every key of the dirty section to the offset of its latest record, then
keeps a record only if its offset is at least the one mapped for its key. Kafka stores a
16-byte MD5 digest and an 8-byte offset per key in a fixed byte buffer of
``log.cleaner.dedupe.buffer.size`` bytes, filled to 90 %; when it is full the clean stops at
the last batch it mapped completely and the rest waits for the next clean.

Here the map is a ``dict``: CPython's hash table is faster than any open addressing written
in Python. Keys shorter than 16 bytes are stored as they are (no hashing, no collision);
longer ones as their 16-byte BLAKE2b digest — the two kinds differ in length, so they never
collide with each other, and a digest collision is as unlikely as Kafka's MD5 one. The
memory budget is honoured by counting what a dict entry really costs in CPython (key
object, offset object, table slot), :data:`ENTRY_BYTES`, not Kafka's 24 bytes: with the same
``dedupe_buffer_bytes`` the map holds fewer keys than Kafka's, but it stays inside the
budget the operator set.
"""

from __future__ import annotations

from hashlib import blake2b

DIGEST_BYTES = 16
ENTRY_BYTES = 160
"""Estimated bytes per entry: a 16-byte ``bytes`` key (49), an int offset (32), the dict's
entry and index slots at its worst load (~56), plus allocator slack."""
LOAD_FACTOR = 0.9
"""Kafka's ``log.cleaner.io.buffer.load.factor`` default: how full the map may get."""


def map_key(key: bytes) -> bytes:
    """What the map stores for ``key``: itself when short, else its digest."""
    if len(key) < DIGEST_BYTES:
        return key
    return blake2b(key, digest_size=DIGEST_BYTES).digest()


class OffsetMap:
    """Key → offset of its latest record in the dirty section, plus ``latest_offset``: the
    last offset whose batch was mapped completely (records past it are kept unconditionally
    by the clean, since the map knows nothing of them)."""

    __slots__ = ("_offsets", "capacity", "latest_offset")

    def __init__(self, memory_bytes: int) -> None:
        self.capacity = max(int(memory_bytes / ENTRY_BYTES * LOAD_FACTOR), 1)
        self._offsets: dict[bytes, int] = {}
        self.latest_offset = -1

    def __len__(self) -> int:
        return len(self._offsets)

    @property
    def is_full(self) -> bool:
        return len(self._offsets) >= self.capacity

    def put(self, key: bytes, offset: int, *, force: bool = False) -> bool:
        """Map ``key`` to ``offset`` (offsets arrive in increasing order, so the latest
        wins). Returns False, changing nothing, when the key is new and the map is full,
        unless ``force`` (the cleaner maps at least one whole batch per clean, whatever the
        budget, so that every clean makes progress)."""
        digest = key if len(key) < DIGEST_BYTES else blake2b(key, digest_size=16).digest()
        offsets = self._offsets
        if not force and len(offsets) >= self.capacity and digest not in offsets:
            return False
        offsets[digest] = offset
        return True

    def get(self, key: bytes) -> int:
        """The offset mapped for ``key``, -1 when it is not in the map."""
        digest = key if len(key) < DIGEST_BYTES else blake2b(key, digest_size=16).digest()
        return self._offsets.get(digest, -1)

    def update_latest_offset(self, offset: int) -> None:
        if offset > self.latest_offset:
            self.latest_offset = offset

    @property
    def utilization(self) -> float:
        return len(self._offsets) / self.capacity
