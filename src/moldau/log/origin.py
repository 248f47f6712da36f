"""Who is appending a batch to a leader's log, which decides how it is validated.

Kafka distinguishes the origins of an append (``AppendOrigin``): a Produce request from a
client is validated in full, while batches the broker writes itself — group offset commits
into ``__consumer_offsets`` and the COMMIT/ABORT markers that end transactions — come from a
trusted component that already decided what to write. Those are allowed to be control
batches, carry base sequence -1 (the broker does not number its own writes), and skip the
idempotent-sequence checks; the producer epoch is still checked, so a coordinator acting for
a fenced producer epoch is refused like the zombie producer itself would be.

Replication (Kafka's third origin) goes through ``append_as_follower`` instead.
"""

from __future__ import annotations

import enum


class AppendOrigin(enum.Enum):
    """The writer of a batch appended through ``PartitionLog.append_as_leader``."""

    CLIENT = "client"
    """A Produce request: full validation, no control batches, sequence checks."""
    COORDINATOR = "coordinator"
    """The broker itself (group offsets, transaction markers): control batches allowed,
    sequence checks skipped, producer epoch still checked."""
