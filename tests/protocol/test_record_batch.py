"""The zero-copy batch header view: unpacking, walking a buffer of batches, CRC checks and the
in-place rewrites the broker does (offsets, leader epoch, LogAppendTime).

Batches come from kafka-python's builder, an implementation independent of ours."""

from __future__ import annotations

import struct
import warnings

import pytest

from moldau.protocol.record_batch import (
    CODEC_GZIP,
    CODEC_NONE,
    HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    InvalidBatchError,
    compute_crc,
    crc_is_valid,
    iter_batches,
    peek_size,
    read_header,
    set_base_offset,
    set_log_append_time,
    set_partition_leader_epoch,
)

with warnings.catch_warnings():
    # kafka-python 3 loads its JSON schemas through a deprecated importlib API at import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder


def kafka_python_batch(
    count: int = 3,
    *,
    codec: int = CODEC_NONE,
    producer: tuple[int, int, int] = (-1, -1, -1),
    transactional: bool = False,
    first_timestamp: int = 1_000,
) -> bytes:
    builder = DefaultRecordBatchBuilder(2, codec, transactional, *producer, 1 << 20)
    for i in range(count):
        builder.append(i, first_timestamp + 10 * i, b"k%d" % i, b"value " * 20, [])
    return bytes(builder.build())


def offsets_and_timestamps(batch: bytes | bytearray) -> list[tuple[int, int]]:
    theirs = DefaultRecordBatch(bytearray(batch))
    assert theirs.validate_crc()
    return [(r.offset, r.timestamp) for r in theirs]


# --- header ----------------------------------------------------------------------------


def test_read_header_fields() -> None:
    batch = kafka_python_batch(
        4, codec=CODEC_GZIP, producer=(1234, 5, 2**31 - 2), transactional=True
    )
    h = read_header(batch)
    assert h.base_offset == 0
    assert h.size == len(batch)
    assert h.batch_length == len(batch) - LOG_OVERHEAD
    assert h.magic == 2
    assert h.compression == CODEC_GZIP
    assert h.is_transactional
    assert not h.is_control
    assert not h.is_log_append_time
    assert h.last_offset_delta == 3
    assert (h.last_offset, h.next_offset) == (3, 4)
    assert (h.base_timestamp, h.max_timestamp) == (1_000, 1_030)
    assert (h.producer_id, h.producer_epoch, h.base_sequence) == (1234, 5, 2**31 - 2)
    assert h.has_producer_id
    assert h.last_sequence == 1  # 2**31 - 2 + 3 wraps past 2**31 - 1
    assert h.records_count == 4
    assert h.crc == DefaultRecordBatch(bytearray(batch)).crc


def test_header_without_producer() -> None:
    h = read_header(kafka_python_batch(1))
    assert not h.has_producer_id
    assert h.last_sequence == -1
    assert h.compression == CODEC_NONE


def test_read_header_at_position_and_truncated() -> None:
    batch = kafka_python_batch()
    assert read_header(b"\x00" * 5 + batch, 5) == read_header(batch)
    with pytest.raises(InvalidBatchError, match="truncated"):
        read_header(batch[: HEADER_SIZE - 1])
    with pytest.raises(InvalidBatchError):
        read_header(batch, len(batch) - HEADER_SIZE + 1)


def test_peek_size() -> None:
    batch = kafka_python_batch()
    assert peek_size(batch) == len(batch)
    assert peek_size(batch[:17]) == len(batch)
    assert peek_size(batch[:16]) is None
    assert peek_size(b"xx" + batch, 2) == len(batch)


# --- iter_batches ----------------------------------------------------------------------


def test_iter_batches_walks_every_batch() -> None:
    batches = [kafka_python_batch(n) for n in (1, 5, 2)]
    buf = b"".join(batches)
    walked = list(iter_batches(buf))
    positions = [0, len(batches[0]), len(batches[0]) + len(batches[1])]
    assert [pos for pos, _ in walked] == positions
    assert [h.records_count for _, h in walked] == [1, 5, 2]
    assert list(iter_batches(buf, positions[1], positions[2])) == [walked[1]]
    assert list(iter_batches(b"")) == []


@pytest.mark.parametrize("cut", [1, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 5])
def test_iter_batches_truncated_tail(cut: int) -> None:
    first, second = kafka_python_batch(2), kafka_python_batch(3)
    buf = first + second[:cut]
    walk = iter_batches(buf)
    assert next(walk)[0] == 0  # the whole batch before the torn one is still yielded
    with pytest.raises(InvalidBatchError):
        next(walk)


def test_iter_batches_rejects_bad_magic_and_length() -> None:
    batch = bytearray(kafka_python_batch())
    bad_magic = bytearray(batch)
    bad_magic[16] = 1
    with pytest.raises(InvalidBatchError, match="magic"):
        list(iter_batches(bad_magic))
    short = bytearray(batch)
    struct.pack_into(">i", short, 8, HEADER_SIZE - LOG_OVERHEAD - 1)
    with pytest.raises(InvalidBatchError, match="too small"):
        list(iter_batches(short))
    long = bytearray(batch)
    struct.pack_into(">i", long, 8, len(batch))
    with pytest.raises(InvalidBatchError, match="truncated"):
        list(iter_batches(long))


# --- CRC -------------------------------------------------------------------------------


def test_crc_valid_and_detects_corruption() -> None:
    batch = bytearray(kafka_python_batch(codec=CODEC_GZIP))
    h = read_header(batch)
    assert crc_is_valid(batch, 0, h)
    assert compute_crc(batch, 0, h.size) == h.crc
    for position in (21, 40, HEADER_SIZE, len(batch) - 1):  # inside the CRC's range
        corrupt = bytearray(batch)
        corrupt[position] ^= 0x01
        assert not crc_is_valid(corrupt, 0, read_header(corrupt))
    for position in (0, 7, 11, 12, 15):  # baseOffset, batchLength, leader epoch: outside
        shifted = bytearray(batch)
        shifted[position] ^= 0x01
        assert compute_crc(shifted, 0, h.size) == h.crc


def test_crc_at_position_in_larger_buffer() -> None:
    first, second = kafka_python_batch(1), kafka_python_batch(4)
    buf = memoryview(bytearray(first + second))
    h = read_header(buf, len(first))
    assert crc_is_valid(buf, len(first), h)


# --- in-place rewrites -----------------------------------------------------------------


def test_set_base_offset_keeps_crc() -> None:
    batch = bytearray(kafka_python_batch(3))
    before = read_header(batch)
    set_base_offset(batch, 0, 1_000_000_000_000)
    after = read_header(batch)
    assert after == before._replace(base_offset=1_000_000_000_000)
    assert crc_is_valid(batch, 0, after)
    assert [o for o, _ in offsets_and_timestamps(batch)] == [
        1_000_000_000_000 + i for i in range(3)
    ]


def test_set_partition_leader_epoch_keeps_crc() -> None:
    first, second = kafka_python_batch(1), kafka_python_batch(2)
    buf = bytearray(first + second)
    view = memoryview(buf)
    set_partition_leader_epoch(view, len(first), 17)
    h = read_header(buf, len(first))
    assert h.partition_leader_epoch == 17
    assert read_header(buf).partition_leader_epoch == read_header(first).partition_leader_epoch
    assert crc_is_valid(buf, len(first), h)


def test_set_log_append_time_reseals_crc() -> None:
    batch = bytearray(kafka_python_batch(3, codec=CODEC_GZIP))
    before = read_header(batch)
    set_log_append_time(batch, 0, before, 99_999)
    after = read_header(batch)
    assert after.is_log_append_time
    assert after.compression == CODEC_GZIP
    assert after.max_timestamp == 99_999
    assert after.base_timestamp == before.base_timestamp
    assert after.crc != before.crc
    assert crc_is_valid(batch, 0, after)
    # Consumers see the append time on every record.
    assert [t for _, t in offsets_and_timestamps(batch)] == [99_999] * 3


def test_batch_header_is_a_plain_tuple() -> None:
    h = read_header(kafka_python_batch())
    assert isinstance(h, BatchHeader)
    assert BatchHeader._make(tuple(h)) == h
