"""Which partition of ``__consumer_offsets`` owns a group: Kafka's exact formula.

Kafka places group ``g`` in partition ``Utils.abs(g.hashCode()) % offsets.topic.num.partitions``
(``GroupCoordinatorService.partitionFor``). Tools that read ``__consumer_offsets`` directly and
clients that reason about coordinators rely on that placement, so we reproduce Java's
``String.hashCode`` bit for bit: ``h = 31 * h + c`` over the string's UTF-16 code units in
32-bit two's-complement arithmetic. ``Utils.abs`` maps ``Integer.MIN_VALUE`` to 0 rather than
overflowing as ``Math.abs`` would.
"""

from __future__ import annotations

_INT_MIN = -(2**31)


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode()`` of ``text`` as a signed 32-bit int."""
    h = 0
    data = text.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def kafka_abs(value: int) -> int:
    """Kafka's ``Utils.abs``: absolute value, except that ``Integer.MIN_VALUE`` gives 0."""
    return 0 if value == _INT_MIN else abs(value)


def partition_for(group_id: str, num_partitions: int) -> int:
    """The ``__consumer_offsets`` partition holding ``group_id``'s records."""
    if num_partitions <= 0:
        raise ValueError(f"num_partitions must be positive, got {num_partitions}")
    return kafka_abs(java_string_hash(group_id)) % num_partitions
