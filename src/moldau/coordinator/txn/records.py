"""The records of ``__transaction_state``, byte-compatible with Kafka's.

Key (``TransactionLogKey`` v0): int16 version 0, then the transactional id as an int16-length
string. Value (``TransactionLogValue``), the id's whole metadata after a transition; a null
value is a tombstone (the id expired). Layout of value version 0, which is what Kafka writes
for transaction version 1 and what we write::

    int16  version (0)
    int64  producer_id
    int16  producer_epoch
    int32  transaction_timeout_ms
    int8   transaction_status         TransactionState id
    array  transaction_partitions     int32 count, -1 = null (Kafka writes null when Empty)
             string topic, array of int32 partition ids
    int64  transaction_last_update_timestamp_ms
    int64  transaction_start_timestamp_ms

Version 1 (flexible: compact lengths, tagged fields; written by Kafka 4 for transaction
version 2) decodes too, its tagged fields (previous/next producer id, client transaction
version) are skipped. Reference: apache/kafka ``transaction-coordinator/src/main/resources/
common/message/TransactionLogKey.json`` and ``TransactionLogValue.json``; kio does not carry
these schemas, so they are hand-encoded here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from moldau.coordinator.txn.messages import TopicPartition
from moldau.coordinator.txn.state import TransactionState
from moldau.protocol.records import NewRecord

KEY_VERSION = 0
VALUE_VERSION = 0

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class RecordFormatError(ValueError):
    """Bytes that are not a ``__transaction_state`` record we know."""


@dataclass(frozen=True, slots=True)
class TransactionLogKey:
    transactional_id: str


@dataclass(frozen=True, slots=True)
class TransactionLogValue:
    """A transactional id's persisted metadata. ``partitions`` is sorted and deduplicated;
    ``transaction_start_timestamp_ms`` is -1 when no transaction is open."""

    producer_id: int
    producer_epoch: int
    transaction_timeout_ms: int
    state: TransactionState
    partitions: tuple[TopicPartition, ...]
    last_update_timestamp_ms: int
    start_timestamp_ms: int


@dataclass(frozen=True, slots=True)
class TxnRecord:
    """A key and its value (None = tombstone).

    ``last_producer_id``/``last_producer_epoch`` are what KIP-360 needs to recognise a retried
    InitProducerId. Value version 0 has no room for them, so Kafka keeps them in memory only
    and a coordinator that loads the log starts with -1; we do the same: they travel with a
    record on the live path and are neither encoded nor compared.
    """

    key: TransactionLogKey
    value: TransactionLogValue | None
    last_producer_id: int = field(default=-1, compare=False)
    last_producer_epoch: int = field(default=-1, compare=False)

    @property
    def transactional_id(self) -> str:
        return self.key.transactional_id


# -- encoding --------------------------------------------------------------------------------


def _string(out: bytearray, value: str) -> None:
    data = value.encode()
    out += _I16.pack(len(data))
    out += data


def encode_key(key: TransactionLogKey) -> bytes:
    out = bytearray(_I16.pack(KEY_VERSION))
    _string(out, key.transactional_id)
    return bytes(out)


def encode_value(value: TransactionLogValue | None) -> bytes | None:
    if value is None:
        return None
    out = bytearray(_I16.pack(VALUE_VERSION))
    out += _I64.pack(value.producer_id)
    out += _I16.pack(value.producer_epoch)
    out += _I32.pack(value.transaction_timeout_ms)
    out += _I8.pack(value.state.value)
    if value.state is TransactionState.EMPTY and not value.partitions:
        out += _I32.pack(-1)
    else:
        by_topic: dict[str, list[int]] = {}
        for topic, partition in value.partitions:
            by_topic.setdefault(topic, []).append(partition)
        out += _I32.pack(len(by_topic))
        for topic, partitions in by_topic.items():
            _string(out, topic)
            out += _I32.pack(len(partitions))
            for partition in partitions:
                out += _I32.pack(partition)
    out += _I64.pack(value.last_update_timestamp_ms)
    out += _I64.pack(value.start_timestamp_ms)
    return bytes(out)


def to_new_record(record: TxnRecord) -> NewRecord:
    """The record as the log stores it."""
    return NewRecord(key=encode_key(record.key), value=encode_value(record.value))


# -- decoding --------------------------------------------------------------------------------


class _Reader:
    __slots__ = ("_buf", "_pos", "flexible")

    def __init__(self, buf: bytes, *, flexible: bool = False) -> None:
        self._buf = buf
        self._pos = 0
        self.flexible = flexible

    def _take(self, size: int) -> bytes:
        end = self._pos + size
        if size < 0 or end > len(self._buf):
            raise RecordFormatError("truncated record")
        data = self._buf[self._pos : end]
        self._pos = end
        return data

    def _unpack(self, fmt: struct.Struct) -> int:
        value: int = fmt.unpack(self._take(fmt.size))[0]
        return value

    def i8(self) -> int:
        return self._unpack(_I8)

    def i16(self) -> int:
        return self._unpack(_I16)

    def i32(self) -> int:
        return self._unpack(_I32)

    def i64(self) -> int:
        return self._unpack(_I64)

    def uvarint(self) -> int:
        value = shift = 0
        while True:
            byte = self._take(1)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise RecordFormatError("varint too long")

    def length(self) -> int:
        """An array or string length; -1 = null."""
        return self.uvarint() - 1 if self.flexible else self.i32()

    def string(self) -> str:
        size = self.uvarint() - 1 if self.flexible else self.i16()
        if size < 0:
            raise RecordFormatError("null string")
        try:
            return self._take(size).decode()
        except UnicodeDecodeError as exc:
            raise RecordFormatError(f"bad UTF-8: {exc}") from exc

    def skip_tagged_fields(self) -> None:
        if self.flexible:
            for _ in range(self.uvarint()):
                self.uvarint()
                self._take(self.uvarint())

    def at_end(self) -> bool:
        return self._pos == len(self._buf)


def decode_key(data: bytes) -> TransactionLogKey:
    reader = _Reader(data)
    version = reader.i16()
    if version != KEY_VERSION:
        raise RecordFormatError(f"unknown TransactionLogKey version {version}")
    return TransactionLogKey(reader.string())


def decode_value(data: bytes | None) -> TransactionLogValue | None:
    if data is None:
        return None
    reader = _Reader(data)
    version = reader.i16()
    if version not in (0, 1):
        raise RecordFormatError(f"unknown TransactionLogValue version {version}")
    reader.flexible = version >= 1
    producer_id = reader.i64()
    producer_epoch = reader.i16()
    timeout_ms = reader.i32()
    status = reader.i8()
    try:
        state = TransactionState(status)
    except ValueError:
        raise RecordFormatError(f"unknown transaction status {status}") from None
    partitions: list[TopicPartition] = []
    for _ in range(max(reader.length(), 0)):
        topic = reader.string()
        for _ in range(max(reader.length(), 0)):
            partitions.append((topic, reader.i32()))
        reader.skip_tagged_fields()
    last_update_ms = reader.i64()
    start_ms = reader.i64()
    reader.skip_tagged_fields()
    if not reader.at_end():
        raise RecordFormatError("trailing bytes after TransactionLogValue")
    return TransactionLogValue(
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        tuple(sorted(set(partitions))),
        last_update_ms,
        start_ms,
    )


def decode_record(key: bytes | None, value: bytes | None) -> TxnRecord:
    if key is None:
        raise RecordFormatError("record without a key")
    return TxnRecord(decode_key(key), decode_value(value))
