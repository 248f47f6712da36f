"""Producer id allocation for idempotent producers (InitProducerId without transactional id).

Ids must never be reused across restarts, or a restarted broker could accept a stale
producer's sequence numbers as another's. Like Kafka's ProducerIdManager we reserve ids in
blocks and persist the end of the current block *before* handing out ids from it; a crash
wastes at most one block.
"""

from __future__ import annotations

import os
from pathlib import Path

BLOCK_SIZE = 1000


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
