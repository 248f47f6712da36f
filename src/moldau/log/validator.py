"""Validation of a Produce request's records before the leader appends them.

Kafka splits this between ``UnifiedLog.analyzeAndValidateRecords`` (framing, size, CRC) and
``LogValidator`` (offsets, control batches, timestamps, compaction keys, compression). We
apply the same rules, in Kafka's order, with the error code Kafka answers:

====================================================  =================================
rule                                                  error
====================================================  =================================
exactly one batch per partition (none, or trailing    INVALID_RECORD
bytes after the first)
magic 2 only                                          UNSUPPORTED_FOR_MESSAGE_FORMAT
framing: truncated header or batch, impossible        CORRUPT_MESSAGE
length
baseOffset 0 (the broker assigns offsets)             INVALID_RECORD
size > ``max.message.bytes``                          MESSAGE_TOO_LARGE
CRC-32C                                               CORRUPT_MESSAGE
control batch from a client                           INVALID_RECORD
producer id without a base sequence (client)          INVALID_RECORD
``lastOffsetDelta != recordsCount - 1``, count ≤ 0    INVALID_RECORD
CreateTime outside ``message.timestamp.before/after`` INVALID_TIMESTAMP
compacted topic, record without a key                 INVALID_RECORD
====================================================  =================================

Batches the broker writes itself (``AppendOrigin.COORDINATOR``: transaction markers, group
offsets) may be control batches and carry base sequence -1, as in Kafka; control batches are
never recompressed (a marker is one tiny record).

Then the rewrites: a LogAppendTime topic stamps the batch with the broker's time (and
re-seals the CRC); a CreateTime topic clears a LogAppendTime flag a client set; a topic whose
``compression.type`` is neither ``producer`` nor the batch's codec re-encodes the batch.

Cost: the common path is one header unpack and one crc32c over the batch, nothing per
record. Records are only walked for compacted topics (keys) and recompression. Timestamp
bounds are checked on the header — baseTimestamp (the first record's) against
``before.max.ms``, maxTimestamp against ``after.max.ms`` — rather than per record as Kafka
does; a record whose negative timestamp delta puts it before the base timestamp escapes the
lower bound.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kio.schema.errors import ErrorCode

from moldau.log.config import LONG_MAX, LogConfig
from moldau.log.errors import LogAppendError
from moldau.log.origin import AppendOrigin
from moldau.protocol.compression import CompressionError
from moldau.protocol.record_batch import (
    CODEC_GZIP,
    CODEC_LZ4,
    CODEC_NONE,
    CODEC_SNAPPY,
    CODEC_ZSTD,
    COMPRESSION_MASK,
    CONTROL_MASK,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC_V2,
    TIMESTAMP_TYPE_MASK,
    BatchHeader,
    compute_crc,
    read_header,
    set_log_append_time,
)
from moldau.protocol.records import InvalidRecordError, decode_records, recompress_batch

TOPIC_CODECS: dict[str, int] = {
    "uncompressed": CODEC_NONE,
    "gzip": CODEC_GZIP,
    "snappy": CODEC_SNAPPY,
    "lz4": CODEC_LZ4,
    "zstd": CODEC_ZSTD,
}
"""``compression.type`` values naming a codec (``producer`` keeps the producer's)."""

MAX_DECOMPRESSED_BYTES = 256 * 1024 * 1024
"""Bound on a batch's decompressed records when the validator must read them: a guard
against decompression bombs on compacted topics and recompression."""

_CLIENT = AppendOrigin.CLIENT
_ATTRIBUTES = struct.Struct(">h")
_CRC = struct.Struct(">I")


@dataclass(slots=True)
class ValidatedBatch:
    """A batch ready for offset assignment: the bytes to write (the request's own buffer,
    patched in place, or a re-encoded copy) and their header. Treat as immutable."""

    buffer: bytearray | memoryview
    header: BatchHeader
    log_append_time_ms: int
    """The time stamped on the batch for LogAppendTime topics, else -1."""


def _fail(code: ErrorCode, message: str) -> LogAppendError:
    return LogAppendError(int(code), message)


class LogValidator:
    """Validates and rewrites one partition's incoming batches under a topic config.

    Immutable: the log builds a new one when its config changes.
    """

    __slots__ = (
        "_after_max_ms",
        "_before_max_ms",
        "_compact",
        "_log_append_time",
        "_max_message_bytes",
        "_target_codec",
        "config",
    )

    def __init__(self, config: LogConfig) -> None:
        self.config = config
        self._target_codec = TOPIC_CODECS.get(config.compression_type)
        # the config's derived properties parse strings: read them once, not per batch
        self._compact = config.compact
        self._log_append_time = config.log_append_time
        self._max_message_bytes = config.max_message_bytes
        self._before_max_ms = config.message_timestamp_before_max_ms
        self._after_max_ms = config.message_timestamp_after_max_ms

    def validate(
        self,
        records: bytes | bytearray | memoryview,
        *,
        now_ms: int,
        origin: AppendOrigin = AppendOrigin.CLIENT,
    ) -> ValidatedBatch:
        """Check ``records`` (one Produce partition's bytes) and apply the rewrites above.

        ``records`` is patched in place when it is writable. Raises LogAppendError.
        """
        buf = _writable(records)
        header = self._check_framing(buf)
        (
            base_offset,
            batch_length,
            _,
            _,
            crc,
            attributes,
            last_offset_delta,
            base_timestamp,
            max_timestamp,
            producer_id,
            _,
            base_sequence,
            records_count,
        ) = header
        size = batch_length + LOG_OVERHEAD
        if base_offset != 0:
            raise _fail(ErrorCode.invalid_record, "batch base offset must be 0 from a producer")
        if size > self._max_message_bytes:
            raise _fail(
                ErrorCode.message_too_large,
                f"batch of {size} bytes exceeds max.message.bytes {self._max_message_bytes}",
            )
        if compute_crc(buf, 0, size) != crc:
            raise _fail(ErrorCode.corrupt_message, "batch CRC mismatch")
        if origin is _CLIENT:
            if attributes & CONTROL_MASK:
                raise _fail(ErrorCode.invalid_record, "clients may not write control records")
            if producer_id >= 0 and base_sequence < 0:
                raise _fail(
                    ErrorCode.invalid_record,
                    f"batch from producer {producer_id} has no base sequence",
                )
        if records_count <= 0 or last_offset_delta != records_count - 1:
            raise _fail(
                ErrorCode.invalid_record,
                f"lastOffsetDelta {last_offset_delta} does not match {records_count} records",
            )
        log_append_time = self._log_append_time
        if not log_append_time:
            self._check_timestamps(base_timestamp, max_timestamp, now_ms)
        if self._compact:
            self._check_keys(buf, header)
        target = self._target_codec
        if (
            target is not None
            and target != attributes & COMPRESSION_MASK
            and not attributes & CONTROL_MASK
        ):
            buf, header = self._recompress(buf, header, target)
        if log_append_time:
            set_log_append_time(buf, 0, header, now_ms)
            return ValidatedBatch(buf, read_header(buf), now_ms)
        if header.is_log_append_time:
            _clear_log_append_time(buf, header)
            header = read_header(buf)
        return ValidatedBatch(buf, header, -1)

    @staticmethod
    def _check_framing(buf: bytearray | memoryview) -> BatchHeader:
        size = len(buf)
        if size == 0:
            raise _fail(ErrorCode.invalid_record, "a produce partition must carry one batch")
        if size > 16 and buf[16] != MAGIC_V2:
            raise _fail(
                ErrorCode.unsupported_for_message_format,
                f"record batch magic {buf[16]} is not supported, only magic 2",
            )
        if size < HEADER_SIZE:
            raise _fail(ErrorCode.corrupt_message, f"record batch truncated at {size} bytes")
        header = read_header(buf)
        if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
            raise _fail(ErrorCode.corrupt_message, f"batch length {header.batch_length} too small")
        if header.size > size:
            raise _fail(
                ErrorCode.corrupt_message,
                f"batch declares {header.size} bytes but {size} were sent",
            )
        if header.size < size:
            raise _fail(
                ErrorCode.invalid_record,
                "a produce partition must carry exactly one record batch",
            )
        return header

    def _check_timestamps(self, base_timestamp: int, max_timestamp: int, now_ms: int) -> None:
        before = self._before_max_ms
        after = self._after_max_ms
        if before < LONG_MAX and 0 <= base_timestamp < now_ms - before:
            raise _fail(
                ErrorCode.invalid_timestamp,
                f"timestamp {base_timestamp} is more than message.timestamp.before.max.ms "
                f"{before} before the broker's time {now_ms}",
            )
        if after < LONG_MAX and max_timestamp > now_ms + after:
            raise _fail(
                ErrorCode.invalid_timestamp,
                f"timestamp {max_timestamp} is more than message.timestamp.after.max.ms "
                f"{after} after the broker's time {now_ms}",
            )

    @staticmethod
    def _check_keys(buf: bytearray | memoryview, header: BatchHeader) -> None:
        try:
            records = decode_records(buf, 0, header, MAX_DECOMPRESSED_BYTES)
        except (InvalidRecordError, CompressionError) as exc:
            raise _fail(ErrorCode.invalid_record, f"invalid records: {exc}") from None
        for record in records:
            if record.key is None:
                raise _fail(
                    ErrorCode.invalid_record,
                    f"compacted topic cannot accept a record without a key (offset delta "
                    f"{record.offset_delta})",
                )

    def _recompress(
        self, buf: bytearray | memoryview, header: BatchHeader, target: int
    ) -> tuple[bytearray, BatchHeader]:
        try:
            encoded = recompress_batch(buf, 0, header, target, MAX_DECOMPRESSED_BYTES)
        except (InvalidRecordError, CompressionError) as exc:
            raise _fail(ErrorCode.invalid_record, f"cannot recompress batch: {exc}") from None
        out = bytearray(encoded)
        new_header = read_header(out)
        if new_header.size > self._max_message_bytes:
            raise _fail(
                ErrorCode.message_too_large,
                f"batch of {new_header.size} bytes after recompression exceeds "
                f"max.message.bytes {self.config.max_message_bytes}",
            )
        return out, new_header


def _writable(records: bytes | bytearray | memoryview) -> bytearray | memoryview:
    if isinstance(records, bytearray):
        return records
    if isinstance(records, memoryview) and not records.readonly:
        return records
    return bytearray(records)


def _clear_log_append_time(buf: bytearray | memoryview, header: BatchHeader) -> None:
    """A client may not pick LogAppendTime on a CreateTime topic: clear the flag, re-seal."""
    _ATTRIBUTES.pack_into(buf, 21, header.attributes & ~TIMESTAMP_TYPE_MASK)
    _CRC.pack_into(buf, 17, compute_crc(buf, 0, header.size))
