"""``moldau consume``: read a topic's partitions directly and print each record.

:class:`PartitionReader` is the engine, shared with ``kafka-console-consumer``. It does not
join a consumer group (groups come later): it *assigns* the partitions it was asked for, each
starting at a :class:`StartPosition`, and never commits. That is also what kcat does without
``-G``, and it means reading never changes any group's offsets.

A read stops at the first of: ``max_messages`` records; every assigned partition at its end
(``exit_at_end``, from librdkafka's partition-EOF events); no record for ``idle_timeout_ms``.
Without any of them it follows the topic until interrupted, like Kafka's console consumer.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import typer
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from moldau.cli.common import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_TIMEOUT_MS,
    BootstrapOption,
    CliError,
    client_config,
    ensure_reachable,
    kafka_error_text,
)
from moldau.cli.record_format import ConsumedRecord, RecordWriter, writer_for

# librdkafka's "N before the end" offsets: RD_KAFKA_OFFSET_TAIL(n) = -2000 - n.
_OFFSET_TAIL_BASE = -2000
# A group id librdkafka insists on; never used, since we assign and never commit.
_UNUSED_GROUP_ID = "moldau-cli-assign"

_FATAL_CODES = frozenset(
    {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError._AUTHENTICATION,
        KafkaError._SSL,
    }
)
_TIMESTAMP_TYPES = {1: "CreateTime", 2: "LogAppendTime"}


class StartKind(StrEnum):
    beginning = "beginning"
    end = "end"
    offset = "offset"
    tail = "tail"


@dataclass(frozen=True)
class StartPosition:
    """Where each assigned partition starts: its beginning, its end, an offset, or N before end."""

    kind: StartKind
    value: int = 0

    @classmethod
    def at(cls, offset: int) -> StartPosition:
        """``offset >= 0`` is absolute; ``-N`` means N records before the end (kcat's ``-o -N``)."""
        if offset >= 0:
            return cls(StartKind.offset, offset)
        return cls(StartKind.tail, -offset)

    def librdkafka_offset(self) -> int:
        if self.kind is StartKind.beginning:
            return OFFSET_BEGINNING
        if self.kind is StartKind.end:
            return OFFSET_END
        if self.kind is StartKind.tail:
            return _OFFSET_TAIL_BASE - self.value
        return self.value


FROM_BEGINNING = StartPosition(StartKind.beginning)
FROM_END = StartPosition(StartKind.end)


class StopReason(StrEnum):
    max_messages = "max-messages"
    end = "end"
    idle_timeout = "idle-timeout"


class PartitionReader:
    """Reads one topic's partitions by direct assignment; iterate :meth:`records`.

    ``partitions=None`` means all of them. Construction checks that the broker answers and
    that the topic and partitions exist, so those mistakes fail before anything is printed.
    ``stop_reason`` tells, after iteration, why reading ended.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        partitions: Sequence[int] | None = None,
        start: StartPosition = FROM_END,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        ensure_reachable(bootstrap, timeout_ms)
        self.topic = topic
        self.stop_reason: StopReason | None = None
        settings: dict[str, Any] = {
            "group.id": _UNUSED_GROUP_ID,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest" if start.kind is StartKind.beginning else "latest",
        }
        settings.update(config or {})
        try:
            self._consumer = Consumer(client_config(bootstrap, settings))
        except (KafkaException, ValueError) as exc:
            raise CliError(f"invalid consumer configuration: {kafka_error_text(exc)}", 2) from None
        try:
            self.partitions = self._resolve_partitions(partitions, timeout_ms)
            self._consumer.assign(
                [TopicPartition(topic, p, start.librdkafka_offset()) for p in self.partitions]
            )
        except BaseException:
            self.close()
            raise

    def _resolve_partitions(self, wanted: Sequence[int] | None, timeout_ms: int) -> list[int]:
        try:
            metadata = self._consumer.list_topics(self.topic, timeout=timeout_ms / 1000)
        except KafkaException as exc:
            text = kafka_error_text(exc)
            raise CliError(f"reading metadata of topic '{self.topic}' failed: {text}") from None
        topic = metadata.topics.get(self.topic)
        error = topic.error if topic is not None else None
        if topic is None or (error is not None and error.code() in _FATAL_CODES):
            raise CliError(
                f"topic '{self.topic}' does not exist", code=KafkaError.UNKNOWN_TOPIC_OR_PART
            )
        available = sorted(topic.partitions)
        if not available:
            detail = f": {error.str()}" if error is not None else ""
            raise CliError(f"topic '{self.topic}' has no partitions available{detail}")
        if wanted is None:
            return available
        missing = [p for p in wanted if p not in topic.partitions]
        if missing:
            raise CliError(
                f"partition {missing[0]} does not exist in topic '{self.topic}' "
                f"(it has {len(available)} partitions)",
                code=KafkaError._UNKNOWN_PARTITION,
            )
        return list(dict.fromkeys(wanted))

    def records(
        self,
        *,
        max_messages: int | None = None,
        exit_at_end: bool = False,
        idle_timeout_ms: int | None = None,
    ) -> Iterator[ConsumedRecord]:
        """Yield records in each partition's offset order until a stop condition holds."""
        count = 0
        at_end: set[int] = set()
        last_activity = time.monotonic()
        if max_messages is not None and max_messages <= 0:
            self.stop_reason = StopReason.max_messages
            return
        while True:
            msg = self._consumer.poll(0.2)
            now = time.monotonic()
            if msg is None:
                if idle_timeout_ms is not None and (now - last_activity) * 1000 >= idle_timeout_ms:
                    self.stop_reason = StopReason.idle_timeout
                    return
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition() or 0)
                    if exit_at_end and at_end.issuperset(self.partitions):
                        self.stop_reason = StopReason.end
                        return
                elif error.fatal() or error.code() in _FATAL_CODES:
                    raise CliError(f"reading topic '{self.topic}' failed: {error.str()}")
                continue  # transient (e.g. a broker reconnect): librdkafka retries
            last_activity = now
            at_end.discard(msg.partition() or 0)
            yield _record(msg)
            count += 1
            if max_messages is not None and count >= max_messages:
                self.stop_reason = StopReason.max_messages
                return

    def close(self) -> None:
        consumer = getattr(self, "_consumer", None)
        if consumer is not None:
            consumer.close()
            self._consumer = None  # type: ignore[assignment]


def _record(msg: Message) -> ConsumedRecord:
    ts_type, ts = msg.timestamp()
    return ConsumedRecord(
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        timestamp_ms=ts if ts_type in _TIMESTAMP_TYPES else None,
        timestamp_type=_TIMESTAMP_TYPES.get(ts_type),
        key=msg.key(),
        value=msg.value(),
        headers=_headers(msg),
    )


def consume(
    topic: Annotated[str, typer.Argument(help="Topic to read.", show_default=False)],
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at each partition's first record.")
    ] = False,
    offset: Annotated[
        int | None,
        typer.Option("--offset", "-o", help="Start offset; -N means N records before the end."),
    ] = None,
    partition: Annotated[
        list[int] | None,
        typer.Option("--partition", "-p", min=0, help="Read only this partition (repeatable)."),
    ] = None,
    max_messages: Annotated[
        int | None, typer.Option("--max-messages", "-n", min=0, help="Stop after N records.")
    ] = None,
    exit_at_end: Annotated[
        bool, typer.Option("--exit", "-e", help="Stop when every partition is at its end.")
    ] = False,
    timeout_ms: Annotated[
        int | None,
        typer.Option("--timeout-ms", min=1, help="Stop when no record arrives for this long."),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="text (values), json (one object per record) or a template: "
            "%t topic, %p partition, %o offset, %k key, %v/%s value, %T timestamp, "
            "%h headers, %K/%S key/value size; \\t \\n escapes.",
        ),
    ] = "text",
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
) -> None:
    """Print a topic's records; follows the topic unless -e, -n or --timeout-ms."""
    if from_beginning and offset is not None:
        raise CliError("--from-beginning and --offset cannot be used together", 2)
    writer = writer_for(output)
    if from_beginning:
        start = FROM_BEGINNING
    elif offset is not None:
        start = StartPosition.at(offset)
    else:
        start = FROM_END
    reader = PartitionReader(bootstrap, topic, partitions=partition or None, start=start)
    count = 0
    try:
        for record in reader.records(
            max_messages=max_messages, exit_at_end=exit_at_end, idle_timeout_ms=timeout_ms
        ):
            writer.write(record)
            count += 1
    finally:
        reader.close()
    if reader.stop_reason is StopReason.end and sys.stderr.isatty():
        print(f"Reached the end of topic {topic} ({count} records).", file=sys.stderr)


__all__ = [
    "FROM_BEGINNING",
    "FROM_END",
    "ConsumedRecord",
    "PartitionReader",
    "RecordWriter",
    "StartKind",
    "StartPosition",
    "StopReason",
    "consume",
]


def _headers(msg: Message) -> tuple[tuple[str, bytes | None], ...]:
    """librdkafka gives header values as bytes (or None); names are str."""
    raw = msg.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return tuple((k, v.encode() if isinstance(v, str) else v) for k, v in pairs)
