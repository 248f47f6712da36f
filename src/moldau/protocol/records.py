"""The records inside a v2 batch: decode, encode, build whole batches, recompress.

The broker's hot paths never come here: produce and fetch move batches as opaque bytes
through ``record_batch``'s header view. This module is for the slow paths that need the
records themselves — recompression when a topic's ``compression.type`` differs from the
producer's codec, strict validation, control batches (transaction markers) and tests.

Record layout (every integer a zigzag varint, ``varlong`` for the timestamp delta)::

    length          varint   bytes in the rest of the record
    attributes      int8     unused, 0
    timestampDelta  varlong  from the batch's baseTimestamp
    offsetDelta     varint   from the batch's baseOffset
    keyLength       varint   -1 for a null key
    key             bytes
    valueLength     varint   -1 for a null value
    value           bytes
    headerCount     varint
      headerKeyLength varint, headerKey utf-8, headerValueLength varint (-1 null), value

Header keys are Java Strings. We decode them with ``surrogateescape`` so a key that is not
valid UTF-8 still round-trips byte for byte through recompression.

Validation follows Kafka's ``LogValidator`` and ``DefaultRecord.readFrom``: the declared
``recordsCount`` must match the records present, each record's fields must fill exactly its
declared length, nothing may trail the last record, and (for client data) offset deltas run
0, 1, 2, … with ``lastOffsetDelta = recordsCount - 1``. Compacted batches on disk keep their
original offset deltas with gaps, so readers of the log pass ``contiguous_offsets=False``.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import crc32c

from moldau.protocol.compression import (
    CompressionError,
    DecompressionLimitError,
    compress,
    decompress,
)
from moldau.protocol.record_batch import (
    COMPRESSION_MASK,
    CONTROL_MASK,
    DELETE_HORIZON_MASK,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC_V2,
    NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_MASK,
    BatchHeader,
    Buffer,
)

Headers = tuple[tuple[str, bytes | None], ...]

CONTROL_ABORT = 0
CONTROL_COMMIT = 1
"""Control record types, the ``type`` in a control record's key."""

_PREFIX = struct.Struct(">qiibI")  # baseOffset, batchLength, partitionLeaderEpoch, magic, crc
_CRC_COVERED = struct.Struct(">hiqqqhii")  # attributes … recordsCount: bytes [21, 61)
_CONTROL_KEY = struct.Struct(">hh")  # version, type
_END_TXN_VALUE = struct.Struct(">hi")  # version, coordinatorEpoch

_VARINT_1 = [bytes([i]) for i in range(128)]
"""Single-byte encodings of the unsigned (already zigzagged) values 0..127."""
_NULL_LENGTH = b"\x01"
"""The varint -1 (zigzag 1): a null key, value or header value."""
_MAX_VARINT_SHIFT = 63
"""A varlong is at most 10 bytes: 7 bits each, the last starting at bit 63."""
_MIN_RECORD_BYTES = 6
"""attributes, timestamp delta, offset delta, key and value lengths, header count."""


class InvalidRecordError(ValueError):
    """Records that do not parse or break a batch invariant (Kafka's INVALID_RECORD /
    CORRUPT_MESSAGE territory; the broker picks the error code)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One record as stored in a batch: offset and timestamp are deltas from the batch
    header, so the same record reads right wherever the broker places the batch.
    ``attributes`` is the record-level byte Kafka reserves and leaves 0; it is kept so a
    re-encoded record is byte-identical."""

    offset_delta: int
    timestamp_delta: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    attributes: int = 0

    def offset(self, header: BatchHeader) -> int:
        return header.base_offset + self.offset_delta

    def timestamp(self, header: BatchHeader) -> int:
        """The record's timestamp as consumers see it: with LogAppendTime every record
        carries the batch's maxTimestamp, whatever the producer wrote."""
        if header.is_log_append_time:
            return header.max_timestamp
        return header.base_timestamp + self.timestamp_delta


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record to put in a new batch; ``timestamp_ms=None`` means the batch's default."""

    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()
    timestamp_ms: int | None = None


def end_txn_marker(commit: bool, coordinator_epoch: int) -> NewRecord:
    """The control record that ends a transaction (goes in a control, transactional batch)."""
    kind = CONTROL_COMMIT if commit else CONTROL_ABORT
    return NewRecord(
        key=_CONTROL_KEY.pack(0, kind), value=_END_TXN_VALUE.pack(0, coordinator_epoch)
    )


# --- varints ---------------------------------------------------------------------------


def _read_varint(buf: Buffer, pos: int) -> tuple[int, int]:
    """Decode the zigzag varint at ``pos``; returns (value, next position).

    Overrunning ``buf`` raises IndexError, which the callers turn into InvalidRecordError.
    """
    b = buf[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    result = b & 0x7F
    shift = 7
    pos += 1
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > _MAX_VARINT_SHIFT:
            raise InvalidRecordError(f"varint longer than 10 bytes at position {pos}")


def _varint(value: int) -> bytes:
    """Encode ``value`` (an int64) as a zigzag varint."""
    v = value << 1 if value >= 0 else ((-value) << 1) - 1
    if v < 0x80:
        return _VARINT_1[v]
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


# --- decoding --------------------------------------------------------------------------


def _records_section(buf: Buffer, pos: int, header: BatchHeader, max_bytes: int | None) -> bytes:
    """The batch's records, decompressed. Raises InvalidRecordError for a batch whose
    length cannot hold its header or whose compressed records do not decode."""
    if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
        raise InvalidRecordError(f"batch length {header.batch_length} is shorter than a header")
    end = pos + header.size
    if end > len(buf):
        raise InvalidRecordError(f"batch of {header.size} bytes at {pos} is truncated")
    view = memoryview(buf)[pos + HEADER_SIZE : end]
    try:
        codec = header.attributes & COMPRESSION_MASK
        if codec == 0:
            return bytes(view)
        try:
            return decompress(codec, view, max_bytes)
        except DecompressionLimitError:
            raise
        except CompressionError as e:
            raise InvalidRecordError(str(e)) from e
    finally:
        view.release()


def _check_count(header: BatchHeader, contiguous_offsets: bool) -> int:
    count = header.records_count
    if count < 0:
        raise InvalidRecordError(f"negative record count {count}")
    if contiguous_offsets and count and header.last_offset_delta != count - 1:
        raise InvalidRecordError(
            f"lastOffsetDelta {header.last_offset_delta} does not match {count} records"
        )
    return count


def _check_offset_delta(
    offset_delta: int, index: int, previous: int, header: BatchHeader, contiguous: bool
) -> None:
    if contiguous:
        if offset_delta != index:
            raise InvalidRecordError(f"record {index} has offset delta {offset_delta}")
    elif offset_delta <= previous or offset_delta > header.last_offset_delta:
        raise InvalidRecordError(
            f"record {index} has offset delta {offset_delta} after {previous} "
            f"(lastOffsetDelta {header.last_offset_delta})"
        )


def decode_records(
    buf: Buffer,
    pos: int,
    header: BatchHeader,
    max_bytes: int | None = None,
    *,
    contiguous_offsets: bool = True,
) -> list[Record]:
    """Decode every record of the batch at ``pos`` (whose header is ``header``).

    ``max_bytes`` bounds the decompressed size: past it ``DecompressionLimitError`` (from
    ``compression``) propagates, since a bomb is not malformed data. Anything malformed,
    including a corrupt compressed payload, raises InvalidRecordError.
    """
    count = _check_count(header, contiguous_offsets)
    data = _records_section(buf, pos, header, max_bytes)
    limit = len(data)
    read = _read_varint
    records: list[Record] = []
    append = records.append
    p = 0
    previous = -1
    # Every varint gets an inline 1-byte fast path (values -64..63): a function call costs
    # more than the rest of the field's decoding.
    try:
        for index in range(count):
            if p >= limit:
                raise InvalidRecordError(f"only {index} of {count} declared records present")
            b = data[p]
            if b < 0x80:
                length, p = (b >> 1) ^ -(b & 1), p + 1
            else:
                length, p = read(data, p)
            end = p + length
            if length < 0 or end > limit:
                raise InvalidRecordError(f"record {index} has length {length}, past the batch")
            attributes = data[p]
            b = data[p + 1]
            if b < 0x80:
                timestamp_delta, p = (b >> 1) ^ -(b & 1), p + 2
            else:
                timestamp_delta, p = read(data, p + 1)
            b = data[p]
            if b < 0x80:
                offset_delta, p = (b >> 1) ^ -(b & 1), p + 1
            else:
                offset_delta, p = read(data, p)
            if offset_delta != index or not contiguous_offsets:
                _check_offset_delta(offset_delta, index, previous, header, contiguous_offsets)
            previous = offset_delta
            b = data[p]
            if b < 0x80:
                size, p = (b >> 1) ^ -(b & 1), p + 1
            else:
                size, p = read(data, p)
            if size >= 0:
                key: bytes | None = data[p : p + size]
                p += size
            elif size == -1:
                key = None
            else:
                raise InvalidRecordError(f"record {index} has key length {size}")
            b = data[p]
            if b < 0x80:
                size, p = (b >> 1) ^ -(b & 1), p + 1
            else:
                size, p = read(data, p)
            if size >= 0:
                value: bytes | None = data[p : p + size]
                p += size
            elif size == -1:
                value = None
            else:
                raise InvalidRecordError(f"record {index} has value length {size}")
            if data[p] == 0:  # no headers, the common case
                headers: Headers = ()
                p += 1
            else:
                header_count, p = read(data, p)
                headers, p = _read_headers(data, p, end, header_count, index)
            if p != end:
                raise InvalidRecordError(
                    f"record {index} declares {length} bytes but its fields take {length + p - end}"
                )
            append(Record(offset_delta, timestamp_delta, key, value, headers, attributes))
    except IndexError:
        raise InvalidRecordError(f"records truncated: {count} declared") from None
    if p != limit:
        raise InvalidRecordError(f"{limit - p} bytes trail the {count} declared records")
    return records


def _read_headers(
    data: bytes, p: int, end: int, header_count: int, index: int
) -> tuple[Headers, int]:
    if header_count < 0:
        raise InvalidRecordError(f"record {index} has {header_count} headers")
    if header_count > end - p:  # each header takes at least two bytes
        raise InvalidRecordError(f"record {index} claims {header_count} headers")
    read = _read_varint
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(header_count):
        size, p = read(data, p)
        if size < 0:
            raise InvalidRecordError(f"record {index} has a header key of length {size}")
        name = data[p : p + size].decode("utf-8", "surrogateescape")
        p += size
        size, p = read(data, p)
        if size >= 0:
            value: bytes | None = data[p : p + size]
            p += size
        elif size == -1:
            value = None
        else:
            raise InvalidRecordError(f"record {index} has a header value of length {size}")
        headers.append((name, value))
    return tuple(headers), p


def count_and_check_records(
    buf: Buffer,
    pos: int,
    header: BatchHeader,
    max_bytes: int | None = None,
    *,
    contiguous_offsets: bool = True,
) -> None:
    """Walk the batch's records cheaply: the declared count is present, each record's length
    stays inside the batch, offset deltas are in order and nothing trails the last record.

    The walk reads four fields per record (length, attributes, timestamp and offset deltas)
    and jumps over key, value and headers; ``decode_records`` checks those too. Uncompressed
    records are walked in place, without a copy. Compressed batches are decompressed first
    (bounded by ``max_bytes``). Raises InvalidRecordError.
    """
    count = _check_count(header, contiguous_offsets)
    data, p, limit = _records_span(buf, pos, header, max_bytes)
    _walk(data, p, limit, count, header, contiguous_offsets)


def _records_span(
    buf: Buffer, pos: int, header: BatchHeader, max_bytes: int | None
) -> tuple[Buffer, int, int]:
    """``(data, start, end)`` of the batch's records: in place when uncompressed (no copy),
    else the decompressed section. The record walks below share it."""
    if header.attributes & COMPRESSION_MASK:
        data = _records_section(buf, pos, header, max_bytes)
        return data, 0, len(data)
    if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
        raise InvalidRecordError(f"batch length {header.batch_length} is too short")
    limit = pos + header.size
    if limit > len(buf):
        raise InvalidRecordError(f"batch of {header.size} bytes at {pos} is truncated")
    return buf, pos + HEADER_SIZE, limit


def _walk(
    data: Buffer, p: int, limit: int, count: int, header: BatchHeader, contiguous: bool
) -> None:
    read = _read_varint
    previous = -1
    try:
        for index in range(count):
            if p >= limit:
                raise InvalidRecordError(f"only {index} of {count} declared records present")
            # Inline fast paths: 1-byte lengths below 64 bytes, 2-byte ones below 8 KiB.
            b = data[p]
            if b < 0x80:
                length, p = (b >> 1) ^ -(b & 1), p + 1
            elif data[p + 1] < 0x80:
                v = (b & 0x7F) | (data[p + 1] << 7)
                length, p = (v >> 1) ^ -(v & 1), p + 2
            else:
                length, p = read(data, p)
            end = p + length
            if length < _MIN_RECORD_BYTES or end > limit:
                raise InvalidRecordError(f"record {index} has length {length}")
            p += 1  # attributes; then skip the timestamp delta
            if data[p] < 0x80:
                p += 1
            elif data[p + 1] < 0x80:
                p += 2
            else:
                p = read(data, p)[1]
            b = data[p]
            if b < 0x80:
                offset_delta, p = (b >> 1) ^ -(b & 1), p + 1
            elif data[p + 1] < 0x80:
                v = (b & 0x7F) | (data[p + 1] << 7)
                offset_delta, p = (v >> 1) ^ -(v & 1), p + 2
            else:
                offset_delta, p = read(data, p)
            if p > end:
                raise InvalidRecordError(f"record {index} overruns its length {length}")
            if offset_delta != index or not contiguous:
                _check_offset_delta(offset_delta, index, previous, header, contiguous)
            previous = offset_delta
            p = end
    except IndexError:
        raise InvalidRecordError(f"records truncated: {count} declared") from None
    if p != limit:
        raise InvalidRecordError(f"{limit - p} bytes trail the {count} declared records")


# --- encoding --------------------------------------------------------------------------


def _encode_record(
    out: bytearray,
    offset_delta: int,
    timestamp_delta: int,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes | None]],
    attributes: int = 0,
) -> None:
    body = bytearray()
    body.append(attributes & 0xFF)
    body += _varint(timestamp_delta)
    body += _varint(offset_delta)
    if key is None:
        body += _NULL_LENGTH
    else:
        body += _varint(len(key))
        body += key
    if value is None:
        body += _NULL_LENGTH
    else:
        body += _varint(len(value))
        body += value
    header_list = tuple(headers)
    body += _varint(len(header_list))
    for name, header_value in header_list:
        encoded = name.encode("utf-8", "surrogateescape")
        body += _varint(len(encoded))
        body += encoded
        if header_value is None:
            body += _NULL_LENGTH
        else:
            body += _varint(len(header_value))
            body += header_value
    out += _varint(len(body))
    out += body


def encode_records(records: Iterable[Record]) -> bytes:
    """The uncompressed records section for ``records``, in the given order."""
    out = bytearray()
    for r in records:
        _encode_record(
            out, r.offset_delta, r.timestamp_delta, r.key, r.value, r.headers, r.attributes
        )
    return bytes(out)


def _assemble(
    records: bytes,
    *,
    base_offset: int,
    partition_leader_epoch: int,
    attributes: int,
    last_offset_delta: int,
    base_timestamp: int,
    max_timestamp: int,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
    records_count: int,
) -> bytes:
    """Seal a batch: header fields + records section (already compressed), new CRC-32C."""
    covered = _CRC_COVERED.pack(
        attributes,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        records_count,
    )
    crc = crc32c.crc32c(records, crc32c.crc32c(covered))
    batch_length = HEADER_SIZE - LOG_OVERHEAD + len(records)
    prefix = _PREFIX.pack(base_offset, batch_length, partition_leader_epoch, MAGIC_V2, crc)
    return b"".join((prefix, covered, records))


def build_batch(
    records: Sequence[NewRecord],
    *,
    compression: int = 0,
    base_offset: int = 0,
    base_timestamp: int | None = None,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    is_transactional: bool = False,
    is_control: bool = False,
    log_append_time: bool = False,
    compression_level: int | None = None,
) -> bytes:
    """Build one complete v2 batch, CRC included, as a producer (or the broker) would.

    Records get offset deltas 0..n-1. A record without ``timestamp_ms`` takes
    ``base_timestamp``, or the wall clock if that is None too. The batch's baseTimestamp is
    ``base_timestamp`` if given, else the first record's timestamp (Java's choice; later
    deltas may be negative). With ``log_append_time`` every record is stamped with the
    batch's time, as the broker does when it owns the timestamps. Kafka never writes a batch
    without records, so an empty ``records`` is a ValueError.
    """
    if not records:
        raise ValueError("a batch needs at least one record")
    default_ms = base_timestamp if base_timestamp is not None else time.time_ns() // 1_000_000
    if log_append_time:
        timestamps = [default_ms] * len(records)
    else:
        timestamps = [default_ms if r.timestamp_ms is None else r.timestamp_ms for r in records]
    base = base_timestamp if base_timestamp is not None else timestamps[0]
    out = bytearray()
    for offset_delta, (r, ts) in enumerate(zip(records, timestamps, strict=True)):
        _encode_record(out, offset_delta, ts - base, r.key, r.value, r.headers)
    attributes = compression & COMPRESSION_MASK
    if log_append_time:
        attributes |= TIMESTAMP_TYPE_MASK
    if is_transactional:
        attributes |= TRANSACTIONAL_MASK
    if is_control:
        attributes |= CONTROL_MASK
    return _assemble(
        compress(compression, out, level=compression_level),
        base_offset=base_offset,
        partition_leader_epoch=partition_leader_epoch,
        attributes=attributes,
        last_offset_delta=len(records) - 1,
        base_timestamp=base,
        max_timestamp=max(timestamps),
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        records_count=len(records),
    )


def recompress_batch(
    buf: Buffer,
    pos: int,
    header: BatchHeader,
    target_codec: int,
    max_bytes: int | None = None,
    *,
    compression_level: int | None = None,
) -> bytes:
    """Re-encode the batch at ``pos`` with ``target_codec`` (0 decompresses it).

    Used when a topic's ``compression.type`` differs from the producer's codec. The records
    section is carried over byte for byte — every record field survives — after a
    ``count_and_check_records``-style walk (Kafka validates while it recompresses). The
    header keeps base offset, leader epoch, timestamps, producer id/epoch/sequence, count
    and every attribute bit but the codec; the CRC is recomputed. Raises
    InvalidRecordError for bad records and for a decompressed size beyond ``max_bytes``.
    """
    count = _check_count(header, contiguous_offsets=True)
    data = _records_section(buf, pos, header, max_bytes)
    _walk(data, 0, len(data), count, header, True)
    return _assemble(
        compress(target_codec, data, level=compression_level),
        base_offset=header.base_offset,
        partition_leader_epoch=header.partition_leader_epoch,
        attributes=(header.attributes & ~COMPRESSION_MASK) | (target_codec & COMPRESSION_MASK),
        last_offset_delta=header.last_offset_delta,
        base_timestamp=header.base_timestamp,
        max_timestamp=header.max_timestamp,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        records_count=count,
    )


# --- log cleaner helpers ---------------------------------------------------------------


def record_keys(
    buf: Buffer, pos: int, header: BatchHeader, max_bytes: int | None = None
) -> list[tuple[int, bytes | None, bool]]:
    """``(offset_delta, key, has_value)`` of every record of the batch at ``pos``.

    What the log cleaner needs to decide a record's fate, without building ``Record``
    objects: the batch is decompressed once, values and headers are skipped over. Offsets
    may have gaps (a compacted batch). Raises InvalidRecordError for records that do not fit
    the batch; the value, headers and attributes are only bounds-checked, since the cleaner
    copies a batch it keeps whole byte for byte and decodes it fully when it rewrites it.
    """
    count = _check_count(header, contiguous_offsets=False)
    data, p, limit = _records_span(buf, pos, header, max_bytes)
    read = _read_varint
    out: list[tuple[int, bytes | None, bool]] = []
    append = out.append
    previous = -1
    last_delta = header.last_offset_delta
    try:
        for index in range(count):
            if p >= limit:
                raise InvalidRecordError(f"only {index} of {count} declared records present")
            # The record header walk repeats ``_walk``'s on purpose: a shared per-record
            # helper would add a call per record to the produce path's walk.
            b = data[p]
            if b < 0x80:
                length, p = (b >> 1) ^ -(b & 1), p + 1
            elif data[p + 1] < 0x80:
                v = (b & 0x7F) | (data[p + 1] << 7)
                length, p = (v >> 1) ^ -(v & 1), p + 2
            else:
                length, p = read(data, p)
            end = p + length
            if length < _MIN_RECORD_BYTES or end > limit:
                raise InvalidRecordError(f"record {index} has length {length}")
            p += 1  # attributes; then skip the timestamp delta
            if data[p] < 0x80:
                p += 1
            elif data[p + 1] < 0x80:
                p += 2
            else:
                p = read(data, p)[1]
            b = data[p]
            if b < 0x80:
                offset_delta, p = (b >> 1) ^ -(b & 1), p + 1
            else:
                offset_delta, p = read(data, p)
            if offset_delta <= previous or offset_delta > last_delta:
                raise InvalidRecordError(
                    f"record {index} has offset delta {offset_delta} after {previous}"
                )
            previous = offset_delta
            b = data[p]
            if b < 0x80:
                size, p = (b >> 1) ^ -(b & 1), p + 1
            else:
                size, p = read(data, p)
            key: bytes | None
            if size >= 0:
                if p + size > end:
                    raise InvalidRecordError(f"record {index} has a key past its end")
                key = bytes(data[p : p + size])
                p += size
            elif size == -1:
                key = None
            else:
                raise InvalidRecordError(f"record {index} has key length {size}")
            b = data[p]
            if b < 0x80:
                size, p = (b >> 1) ^ -(b & 1), p + 1
            else:
                size, p = read(data, p)
            if size < -1 or (size > 0 and p + size > end):
                raise InvalidRecordError(f"record {index} has value length {size}")
            append((offset_delta, key, size >= 0))
            p = end
    except IndexError:
        raise InvalidRecordError(f"records truncated: {count} declared") from None
    if p != limit:
        raise InvalidRecordError(f"{limit - p} bytes trail the {count} declared records")
    return out


def build_retained_batch(
    header: BatchHeader,
    records: Sequence[Record],
    *,
    delete_horizon_ms: int | None,
    compression_level: int | None = None,
) -> bytes:
    """Rebuild a batch from some of its records, as Kafka's cleaner does
    (``MemoryRecords.buildRetainedRecordsInto``).

    Kept from ``header``: base offset, lastOffsetDelta (the producer's last sequence must
    survive), leader epoch, producer id/epoch, base sequence, codec, timestamp type,
    transactional and control bits. Each record keeps its offset delta, key, value, headers
    and its timestamp as consumers saw it. With ``delete_horizon_ms`` the batch carries the
    delete horizon (KIP-534): the attribute bit is set and baseTimestamp holds the horizon,
    record timestamps become deltas from it; otherwise baseTimestamp is the first record's
    timestamp. maxTimestamp stays the batch's for LogAppendTime, else the max of the
    records kept. ``records`` must not be empty (see :func:`build_empty_batch`).
    """
    if not records:
        raise ValueError("a retained batch needs at least one record")
    timestamps = [r.timestamp(header) for r in records]
    base_timestamp = timestamps[0] if delete_horizon_ms is None else delete_horizon_ms
    out = bytearray()
    for r, ts in zip(records, timestamps, strict=True):
        _encode_record(
            out, r.offset_delta, ts - base_timestamp, r.key, r.value, r.headers, r.attributes
        )
    attributes = header.attributes & ~DELETE_HORIZON_MASK
    if delete_horizon_ms is not None:
        attributes |= DELETE_HORIZON_MASK
    codec = header.attributes & COMPRESSION_MASK
    max_timestamp = header.max_timestamp if header.is_log_append_time else max(timestamps)
    return _assemble(
        compress(codec, out, level=compression_level),
        base_offset=header.base_offset,
        partition_leader_epoch=header.partition_leader_epoch,
        attributes=attributes,
        last_offset_delta=header.last_offset_delta,
        base_timestamp=base_timestamp,
        max_timestamp=max_timestamp,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        records_count=len(records),
    )


def build_empty_batch(header: BatchHeader) -> bytes:
    """A batch without records standing for ``header``'s batch (Kafka's
    ``DefaultRecordBatch.writeEmptyHeader``): the cleaner keeps it when every record is gone
    but the batch is a producer's last, whose sequence and epoch the broker's producer
    state needs. Same offsets, leader epoch, producer id/epoch, base sequence, timestamp
    type, transactional and control bits and maxTimestamp; no codec, no delete horizon,
    baseTimestamp -1."""
    attributes = header.attributes & (TIMESTAMP_TYPE_MASK | TRANSACTIONAL_MASK | CONTROL_MASK)
    return _assemble(
        b"",
        base_offset=header.base_offset,
        partition_leader_epoch=header.partition_leader_epoch,
        attributes=attributes,
        last_offset_delta=header.last_offset_delta,
        base_timestamp=-1,
        max_timestamp=header.max_timestamp,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        records_count=0,
    )


def control_record_type(key: bytes | None) -> int | None:
    """The type (CONTROL_ABORT, CONTROL_COMMIT, …) in a control record's key, or None if the
    key is too short to hold one."""
    if key is None or len(key) < _CONTROL_KEY.size:
        return None
    return int(_CONTROL_KEY.unpack_from(key)[1])
