"""``__transaction_state`` record codecs: Kafka's byte layout, round trips, bad input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from moldau.coordinator.txn.records import (
    RecordFormatError,
    TransactionLogKey,
    TransactionLogValue,
    TxnRecord,
    decode_key,
    decode_record,
    decode_value,
    encode_key,
    encode_value,
    to_new_record,
)
from moldau.coordinator.txn.state import TransactionState as S


def test_key_layout() -> None:
    assert encode_key(TransactionLogKey("tx")) == b"\x00\x00" + b"\x00\x02tx"
    assert decode_key(b"\x00\x00\x00\x02tx") == TransactionLogKey("tx")


def test_value_layout_matches_kafka_v0() -> None:
    value = TransactionLogValue(
        producer_id=5,
        producer_epoch=2,
        transaction_timeout_ms=60_000,
        state=S.ONGOING,
        partitions=(("a", 0), ("a", 3), ("b", 1)),
        last_update_timestamp_ms=1234,
        start_timestamp_ms=1000,
    )
    expected = (
        struct.pack(">hqhib", 0, 5, 2, 60_000, 1)
        + struct.pack(">i", 2)
        + struct.pack(">h", 1)
        + b"a"
        + struct.pack(">iii", 2, 0, 3)
        + struct.pack(">h", 1)
        + b"b"
        + struct.pack(">ii", 1, 1)
        + struct.pack(">qq", 1234, 1000)
    )
    assert encode_value(value) == expected
    assert decode_value(expected) == value


def test_empty_state_writes_null_partitions() -> None:
    value = TransactionLogValue(1, 0, 100, S.EMPTY, (), 9, -1)
    data = encode_value(value)
    assert data is not None
    assert data[2 + 8 + 2 + 4 + 1 :][:4] == struct.pack(">i", -1)
    assert decode_value(data) == value


def test_complete_state_writes_empty_partition_array() -> None:
    data = encode_value(TransactionLogValue(1, 0, 100, S.COMPLETE_COMMIT, (), 9, 8))
    assert data is not None
    assert data[17:21] == struct.pack(">i", 0)


def test_tombstone() -> None:
    record = TxnRecord(TransactionLogKey("gone"), None)
    new = to_new_record(record)
    assert new.value is None
    assert decode_record(new.key, new.value) == record


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def test_decodes_flexible_v1_skipping_tagged_fields() -> None:
    data = (
        struct.pack(">hqhib", 1, 7, 3, 5000, 2)
        + _uvarint(2)  # one topic
        + _uvarint(2)
        + b"t"
        + _uvarint(3)
        + struct.pack(">ii", 0, 4)
        + _uvarint(0)  # topic's tagged fields
        + struct.pack(">qq", 20, 10)
        + _uvarint(1)  # one tagged field: PreviousProducerId
        + _uvarint(0)
        + _uvarint(8)
        + struct.pack(">q", 6)
    )
    assert decode_value(data) == TransactionLogValue(
        7, 3, 5000, S.PREPARE_COMMIT, (("t", 0), ("t", 4)), 20, 10
    )


@pytest.mark.parametrize(
    "data",
    [
        b"\x00",
        struct.pack(">h", 9) + b"\x00" * 40,  # unknown version
        struct.pack(">hqhib", 0, 1, 0, 1, 12) + struct.pack(">iqq", -1, 0, 0),  # bad status
        struct.pack(">hqhib", 0, 1, 0, 1, 0) + struct.pack(">i", -1),  # truncated
        struct.pack(">hqhib", 0, 1, 0, 1, 0) + struct.pack(">iqq", -1, 0, 0) + b"x",  # trailing
    ],
)
def test_bad_values_raise(data: bytes) -> None:
    with pytest.raises(RecordFormatError):
        decode_value(data)


def test_bad_keys_raise() -> None:
    with pytest.raises(RecordFormatError):
        decode_key(b"\x00\x01\x00\x01x")  # version 1
    with pytest.raises(RecordFormatError):
        decode_key(b"\x00\x00\x00\x05ab")  # truncated
    with pytest.raises(RecordFormatError):
        decode_key(b"\x00\x00\x00\x01\xff")  # bad UTF-8
    with pytest.raises(RecordFormatError):
        decode_record(None, b"")


_int64 = st.integers(-(2**63), 2**63 - 1)
_values = st.builds(
    TransactionLogValue,
    producer_id=_int64,
    producer_epoch=st.integers(-(2**15), 2**15 - 1),
    transaction_timeout_ms=st.integers(-(2**31), 2**31 - 1),
    state=st.sampled_from([s for s in S if s is not S.EMPTY]),
    partitions=st.lists(
        st.tuples(st.text(max_size=20), st.integers(-(2**31), 2**31 - 1)), max_size=8
    ).map(lambda ps: tuple(sorted(set(ps)))),
    last_update_timestamp_ms=_int64,
    start_timestamp_ms=_int64,
)


@given(st.text(max_size=50), st.one_of(st.none(), _values))
def test_round_trip(transactional_id: str, value: TransactionLogValue | None) -> None:
    record = TxnRecord(TransactionLogKey(transactional_id), value)
    new = to_new_record(record)
    assert decode_record(new.key, new.value) == record
