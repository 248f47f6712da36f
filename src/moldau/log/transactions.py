"""Transaction markers as the log sees them: parsing the control record that ends a txn.

A transaction on a partition starts with the producer's first transactional data batch and
ends with a *control batch* the transaction coordinator has the broker write: one control
record whose key is ``version int16, type int16`` (0 = ABORT, 1 = COMMIT) and whose value is
``version int16, coordinator_epoch int32`` (Kafka's ``EndTransactionMarker``). The log needs
the type and the coordinator epoch when the marker is appended, when a follower copies it,
and when producer state is replayed from the log after a restart; the batch header alone
does not say which, so this module decodes the single record. Markers are rare (one per
transaction per partition), so the cost of decoding does not matter.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from moldau.protocol.compression import CompressionError
from moldau.protocol.record_batch import BatchHeader, Buffer
from moldau.protocol.records import (
    CONTROL_ABORT,
    CONTROL_COMMIT,
    InvalidRecordError,
    decode_records,
)

_CONTROL_KEY = struct.Struct(">hh")
_MARKER_VALUE = struct.Struct(">hi")
_MAX_MARKER_BYTES = 1024 * 1024


class InvalidMarkerError(ValueError):
    """A control batch that is not a well-formed COMMIT/ABORT marker."""


@dataclass(frozen=True, slots=True)
class TxnMarker:
    """The content of an end-transaction marker."""

    commit: bool
    coordinator_epoch: int


@dataclass(frozen=True, slots=True)
class CompletedTxn:
    """A transaction that had data on this partition, ended by the marker at
    ``last_offset`` (Kafka's ``CompletedTxn``)."""

    producer_id: int
    first_offset: int
    last_offset: int
    aborted: bool


def parse_marker(buf: Buffer, pos: int, header: BatchHeader) -> TxnMarker:
    """Decode the marker in the control batch at ``pos``; InvalidMarkerError if it is not
    one (another control type, several records, a short key or value)."""
    try:
        records = decode_records(buf, pos, header, _MAX_MARKER_BYTES)
    except (InvalidRecordError, CompressionError) as exc:
        raise InvalidMarkerError(f"control batch does not decode: {exc}") from None
    if len(records) != 1:
        raise InvalidMarkerError(f"a marker batch holds one record, not {len(records)}")
    record = records[0]
    key, value = record.key, record.value
    if key is None or len(key) < _CONTROL_KEY.size:
        raise InvalidMarkerError("control record without a valid key")
    version, kind = _CONTROL_KEY.unpack_from(key)
    if version < 0 or kind not in (CONTROL_ABORT, CONTROL_COMMIT):
        raise InvalidMarkerError(f"control record type {kind} is not a transaction marker")
    if value is None or len(value) < _MARKER_VALUE.size:
        raise InvalidMarkerError("transaction marker without a valid value")
    value_version, coordinator_epoch = _MARKER_VALUE.unpack_from(value)
    if value_version < 0:
        raise InvalidMarkerError(f"transaction marker version {value_version}")
    return TxnMarker(kind == CONTROL_COMMIT, coordinator_epoch)
