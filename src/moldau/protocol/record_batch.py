"""Zero-copy views over Kafka record batches (magic 2), as they travel on the wire and on disk.

Layout of the 61-byte batch header (big-endian)::

    0  baseOffset            int64     ┐ not covered by the CRC: the broker rewrites
    8  batchLength           int32     │ these in place (offset assignment, leader epoch)
    12 partitionLeaderEpoch  int32     ┘
    16 magic                 int8      (= 2)
    17 crc                   uint32    CRC-32C of bytes [21, end of batch)
    21 attributes            int16     bits 0-2 codec, 3 timestamp type, 4 transactional,
                                       5 control, 6 delete horizon
    23 lastOffsetDelta       int32
    27 baseTimestamp         int64
    35 maxTimestamp          int64
    43 producerId            int64
    51 producerEpoch         int16
    53 baseSequence          int32
    57 recordsCount          int32
    61 records…

The broker never decodes records on the produce or fetch path: it reads this header with one
``struct.unpack_from``, checks the CRC with the C crc32c, and patches offsets in place.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

import crc32c

HEADER_SIZE = 61
"""Bytes in a v2 batch header, records start here."""
LOG_OVERHEAD = 12
"""baseOffset + batchLength: the part of a batch not counted by batchLength."""
CRC_START = 21
"""The CRC covers the batch from the attributes field to its end."""

MAGIC_V2 = 2
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20
DELETE_HORIZON_MASK = 0x40

CODEC_NONE = 0
CODEC_GZIP = 1
CODEC_SNAPPY = 2
CODEC_LZ4 = 3
CODEC_ZSTD = 4
CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}

_HEADER = struct.Struct(">qiibIhiqqqhii")
_BASE_OFFSET = struct.Struct(">q")
_LEADER_EPOCH = struct.Struct(">i")
_ATTRIBUTES = struct.Struct(">h")
_CRC = struct.Struct(">I")
_MAX_TIMESTAMP = struct.Struct(">q")
_PRE_MAGIC = struct.Struct(">qib")  # baseOffset, batchLength, (epoch skipped), magic at 16

Buffer = bytes | bytearray | memoryview


class InvalidBatchError(ValueError):
    """A batch whose framing is broken (truncated, bad length, wrong magic)."""


class BatchHeader(NamedTuple):
    """The fixed fields of one record batch. ``size`` is the batch's total bytes."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def is_log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_MASK)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_MASK)

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id > NO_PRODUCER_ID

    @property
    def last_sequence(self) -> int:
        """Sequence of the last record, wrapping at 2**31 as Kafka does."""
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        return (self.base_sequence + self.last_offset_delta) % 2**31


def read_header(buf: Buffer, pos: int = 0) -> BatchHeader:
    """Unpack the header of the batch at ``pos``. Raises InvalidBatchError if truncated."""
    if len(buf) - pos < HEADER_SIZE:
        raise InvalidBatchError(f"batch header truncated at position {pos}")
    return BatchHeader._make(_HEADER.unpack_from(buf, pos))


def peek_size(buf: Buffer, pos: int = 0) -> int | None:
    """Total size of the batch at ``pos`` from its length field, or None if fewer than 17
    bytes remain (too few to know). Used to walk a buffer without unpacking whole headers."""
    if len(buf) - pos < 17:
        return None
    _, batch_length, magic = _PRE_MAGIC.unpack_from(buf, pos)
    del magic
    return int(batch_length) + LOG_OVERHEAD


def iter_batches(
    buf: Buffer, pos: int = 0, end: int | None = None
) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` for each whole batch in ``buf[pos:end]``.

    Raises InvalidBatchError at the first batch that is truncated, has a length shorter than a
    header or a magic other than 2. Callers that tolerate a torn tail (log recovery) catch it.
    """
    limit = len(buf) if end is None else end
    while pos < limit:
        if limit - pos < HEADER_SIZE:
            raise InvalidBatchError(
                f"trailing {limit - pos} bytes at position {pos} are not a batch"
            )
        header = read_header(buf, pos)
        if header.magic != MAGIC_V2:
            raise InvalidBatchError(f"unsupported magic {header.magic} at position {pos}")
        if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
            raise InvalidBatchError(
                f"batch length {header.batch_length} at position {pos} is too small"
            )
        if pos + header.size > limit:
            raise InvalidBatchError(f"batch at position {pos} is truncated")
        yield pos, header
        pos += header.size


def compute_crc(buf: Buffer, pos: int, size: int) -> int:
    """CRC-32C of the batch at ``pos`` of ``size`` bytes, over [attributes, end)."""
    view = memoryview(buf)[pos + CRC_START : pos + size]
    try:
        return int(crc32c.crc32c(view))
    finally:
        view.release()


def crc_is_valid(buf: Buffer, pos: int, header: BatchHeader) -> bool:
    return compute_crc(buf, pos, header.size) == header.crc


def set_base_offset(buf: bytearray | memoryview, pos: int, base_offset: int) -> None:
    """Assign the batch's offsets. baseOffset is outside the CRC: no recomputation needed."""
    _BASE_OFFSET.pack_into(buf, pos, base_offset)


def set_partition_leader_epoch(buf: bytearray | memoryview, pos: int, epoch: int) -> None:
    """Stamp the leader epoch. Outside the CRC, like the base offset."""
    _LEADER_EPOCH.pack_into(buf, pos + 12, epoch)


def set_log_append_time(
    buf: bytearray | memoryview, pos: int, header: BatchHeader, now_ms: int
) -> None:
    """Mark the batch LogAppendTime with ``now_ms`` as its max timestamp, then re-seal the CRC.

    Kafka sets the timestamp-type attribute bit and maxTimestamp only; per-record timestamps
    stay as the producer wrote them and readers substitute maxTimestamp.
    """
    _ATTRIBUTES.pack_into(buf, pos + 21, header.attributes | TIMESTAMP_TYPE_MASK)
    _MAX_TIMESTAMP.pack_into(buf, pos + 35, now_ms)
    _CRC.pack_into(buf, pos + 17, compute_crc(buf, pos, header.size))


def delete_horizon_ms(header: BatchHeader) -> int | None:
    """The batch's delete horizon (KIP-534), or None when the attribute bit is not set.

    The log cleaner stamps it on the first clean that keeps a tombstone or an empty
    transaction's marker: baseTimestamp then holds ``now + delete.retention.ms``, and a later
    clean past that time may remove them."""
    if header.attributes & DELETE_HORIZON_MASK:
        return header.base_timestamp
    return None
