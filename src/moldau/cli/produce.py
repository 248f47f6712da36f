"""``moldau produce``: lines from stdin become records, and we wait until each is delivered.

Two pieces, shared with ``kafka-console-producer``:

* :class:`LineFormat` / :func:`parse_line` turn one input line into a record. They follow
  Kafka's ``LineMessageReader``: optional headers, then an optional key, then the value,
  each cut at a separator; a line missing a separator it must have is an error (or, with
  ``ignore_error``, the whole line becomes the value). Lines are bytes end to end, so any
  payload that contains no newline survives unchanged.
* :class:`LineProducer` sends records with librdkafka and counts delivery reports. A command
  succeeds only if every record was acknowledged; otherwise :meth:`LineProducer.finish`
  reports the first failure, which the front end prints as one line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import combinations
from typing import Annotated, Any

import typer
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from moldau.cli.common import (
    DEFAULT_BOOTSTRAP,
    BootstrapOption,
    CliError,
    FormatOption,
    OutputFormat,
    client_config,
    ensure_reachable,
    kafka_error_text,
    parse_key_value,
    print_json,
    unescape,
)

DEFAULT_DELIVERY_TIMEOUT_MS = 30_000

Header = tuple[str, bytes | None]


@dataclass(frozen=True)
class LineFormat:
    """How one input line splits into headers, key and value (Kafka's reader properties)."""

    parse_key: bool = False
    key_separator: bytes = b"\t"
    parse_headers: bool = False
    headers_delimiter: bytes = b"\t"
    headers_separator: bytes = b","
    headers_key_separator: bytes = b":"
    null_marker: bytes | None = None
    ignore_error: bool = False

    def validate(self) -> None:
        """Reject separators that would make a line ambiguous (Kafka refuses the same)."""
        headers = {
            "headers.delimiter": self.headers_delimiter,
            "headers.separator": self.headers_separator,
            "headers.key.separator": self.headers_key_separator,
        }
        pairs = list(combinations(headers.items(), 2))
        if self.null_marker is not None:
            others = {"key.separator": self.key_separator, **headers}
            pairs += [(("null.marker", self.null_marker), item) for item in others.items()]
        for (name_a, a), (name_b, b) in pairs:
            if a == b:
                raise CliError(f"{name_a} and {name_b} may not be equal", 2)
        if self.parse_key and not self.key_separator:
            raise CliError("key.separator may not be empty", 2)


@dataclass(frozen=True)
class OutgoingRecord:
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()


def parse_line(line: bytes, line_number: int, fmt: LineFormat) -> OutgoingRecord:
    """One line (without its newline) into a record, as Kafka's LineMessageReader does."""
    headers_text = _cut(
        line, 0, fmt.parse_headers, fmt.headers_delimiter, "headers delimiter", line_number, fmt
    )
    offset = 0 if headers_text is None else len(headers_text) + len(fmt.headers_delimiter)
    key = _cut(line, offset, fmt.parse_key, fmt.key_separator, "key separator", line_number, fmt)
    if key is not None:
        offset += len(key) + len(fmt.key_separator)
    value: bytes | None = line[offset:]
    headers: tuple[Header, ...] = ()
    if headers_text is not None and headers_text != fmt.null_marker:
        headers = tuple(_split_headers(headers_text, line_number, fmt))
    if key is not None and key == fmt.null_marker:
        key = None
    if value == fmt.null_marker:
        value = None
    return OutgoingRecord(key, value, headers)


def _cut(
    line: bytes,
    start: int,
    enabled: bool,
    separator: bytes,
    what: str,
    line_number: int,
    fmt: LineFormat,
) -> bytes | None:
    if not enabled:
        return None
    index = line.find(separator, start)
    if index == -1:
        if fmt.ignore_error:
            return None
        shown = line.decode("utf-8", errors="backslashreplace")
        raise CliError(f"No {what} found on line number {line_number}: '{shown}'")
    return line[start:index]


def _split_headers(text: bytes, line_number: int, fmt: LineFormat) -> Iterator[Header]:
    for pair in text.split(fmt.headers_separator):
        index = pair.find(fmt.headers_key_separator)
        if index == -1:
            if fmt.ignore_error:
                yield pair.decode("utf-8", errors="replace"), None
                continue
            shown = pair.decode("utf-8", errors="backslashreplace")
            raise CliError(
                f"No header key separator found in pair '{shown}' on line number {line_number}"
            )
        name = pair[:index]
        if name == fmt.null_marker:
            raise CliError(
                f"Header keys should not be equal to the null marker '{shown_marker(fmt)}'"
            )
        value = pair[index + len(fmt.headers_key_separator) :]
        yield name.decode("utf-8", errors="replace"), None if value == fmt.null_marker else value


def shown_marker(fmt: LineFormat) -> str:
    return (fmt.null_marker or b"").decode("utf-8", errors="backslashreplace")


def read_lines(stream: Any) -> Iterator[bytes]:
    """Lines of ``stream`` as bytes without their line ending (``\\n``, ``\\r\\n``)."""
    binary = getattr(stream, "buffer", None)
    source: Iterable[bytes | str] = binary if binary is not None else stream
    for raw in source:
        line = raw.encode("utf-8") if isinstance(raw, str) else raw
        if line.endswith(b"\n"):
            line = line[:-1]
            if line.endswith(b"\r"):
                line = line[:-1]
        yield line


@dataclass(frozen=True)
class Delivery:
    """One delivery report: where the record landed, or why it did not."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value_size: int
    error: str | None = None


@dataclass
class ProduceReport:
    sent: int = 0
    delivered: int = 0
    failures: list[Delivery] = field(default_factory=list)

    @property
    def undelivered(self) -> int:
        return self.sent - self.delivered - len(self.failures)


class LineProducer:
    """A librdkafka producer for one topic that knows whether everything it sent arrived.

    ``partition`` pins every record to one partition (else the key, or librdkafka's sticky
    partitioner, decides). ``on_delivery`` sees each successful :class:`Delivery` as it is
    acknowledged, e.g. to print offsets. Construction checks the topic's metadata, so an
    unknown topic (with auto-creation off) or a partition out of range fails before any
    line is read.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        partition: int | None = None,
        config: Mapping[str, Any] | None = None,
        delivery_timeout_ms: int = DEFAULT_DELIVERY_TIMEOUT_MS,
        on_delivery: Callable[[Delivery], None] | None = None,
    ) -> None:
        ensure_reachable(bootstrap, delivery_timeout_ms)
        self.topic = topic
        self.partition = partition
        self.delivery_timeout_ms = delivery_timeout_ms
        self.report = ProduceReport()
        self._on_delivery = on_delivery
        settings = {"message.timeout.ms": delivery_timeout_ms, **(config or {})}
        try:
            self._producer = Producer(client_config(bootstrap, settings))
        except KafkaException as exc:
            raise CliError(f"invalid producer configuration: {kafka_error_text(exc)}", 2) from None
        self._check_topic(min(delivery_timeout_ms, 10_000))

    def _check_topic(self, timeout_ms: int) -> None:
        try:
            metadata = self._producer.list_topics(self.topic, timeout=timeout_ms / 1000)
        except KafkaException as exc:
            text = kafka_error_text(exc)
            raise CliError(f"reading metadata of topic '{self.topic}' failed: {text}") from None
        topic = metadata.topics.get(self.topic)
        error = topic.error if topic is not None else None
        if topic is None or (error is not None and error.code() in _UNKNOWN_TOPIC):
            raise CliError(
                f"topic '{self.topic}' does not exist", code=KafkaError.UNKNOWN_TOPIC_OR_PART
            )
        known = error is None and bool(topic.partitions)
        if self.partition is not None and known and self.partition not in topic.partitions:
            raise CliError(
                f"partition {self.partition} does not exist in topic '{self.topic}' "
                f"(it has {len(topic.partitions)} partitions)",
                code=KafkaError._UNKNOWN_PARTITION,
            )

    def send(self, record: OutgoingRecord) -> None:
        """Queue one record; waits (serving delivery reports) while the local queue is full."""
        kwargs: dict[str, Any] = {"on_delivery": self._delivered}
        if self.partition is not None:
            kwargs["partition"] = self.partition
        if record.headers:
            kwargs["headers"] = list(record.headers)
        self.report.sent += 1
        while True:
            try:
                self._producer.produce(self.topic, record.value, record.key, **kwargs)
                break
            except BufferError:
                self._producer.poll(0.1)
            except KafkaException as exc:
                self._fail(record.key, record.value, kafka_error_text(exc))
                break
        self._producer.poll(0)

    def finish(self) -> ProduceReport:
        """Wait for every outstanding delivery report (bounded by the delivery timeout)."""
        remaining = self._producer.flush(self.delivery_timeout_ms / 1000 + 5)
        if remaining:
            self.report.failures.append(
                Delivery(
                    self.topic,
                    -1,
                    -1,
                    None,
                    None,
                    0,
                    f"{remaining} record(s) not acknowledged within {self.delivery_timeout_ms} ms",
                )
            )
        return self.report

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._fail(msg.key(), msg.value(), err.str() or err.name())
            return
        self.report.delivered += 1
        if self._on_delivery is not None:
            ts_type, ts = msg.timestamp()
            value = msg.value()
            self._on_delivery(
                Delivery(
                    topic=msg.topic() or self.topic,
                    partition=msg.partition() or 0,
                    offset=_or_minus_one(msg.offset()),
                    timestamp_ms=ts if ts_type else None,
                    key=msg.key(),
                    value_size=len(value) if value else 0,
                )
            )

    def _fail(self, key: bytes | None, value: bytes | None, error: str) -> None:
        size = len(value) if value else 0
        self.report.failures.append(Delivery(self.topic, -1, -1, None, key, size, error))


_UNKNOWN_TOPIC = frozenset({KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC})


class Acks(StrEnum):
    none = "0"
    leader = "1"
    all = "all"
    minus_one = "-1"


class Compression(StrEnum):
    none = "none"
    gzip = "gzip"
    snappy = "snappy"
    lz4 = "lz4"
    zstd = "zstd"


def produce(
    topic: Annotated[str, typer.Argument(help="Topic to write to.", show_default=False)],
    key_separator: Annotated[
        str | None,
        typer.Option(
            "--key-separator",
            "-K",
            help="Split each line at the first SEP into key and value (\\t escapes allowed).",
        ),
    ] = None,
    partition: Annotated[
        int | None, typer.Option("--partition", "-p", min=0, help="Write every record here.")
    ] = None,
    acks: Annotated[Acks, typer.Option("--acks", help="Acknowledgements to wait for.")] = Acks.all,
    compression: Annotated[
        Compression, typer.Option("--compression", "-z", help="Batch compression codec.")
    ] = Compression.none,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", "-H", help="Header KEY=VALUE added to every record."),
    ] = None,
    timeout_ms: Annotated[
        int, typer.Option("--timeout-ms", min=1, help="Delivery timeout per record, in ms.")
    ] = DEFAULT_DELIVERY_TIMEOUT_MS,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Produce lines from stdin, one record per line; exits non-zero unless all arrive."""
    headers = tuple(
        (k, v.encode()) for k, v in (parse_key_value(h, "header") for h in header or [])
    )
    fmt = LineFormat(
        parse_key=key_separator is not None,
        key_separator=unescape(key_separator or "\t").encode("utf-8"),
    )
    fmt.validate()
    on_delivery = _print_delivery if output is OutputFormat.json else None
    producer = LineProducer(
        bootstrap,
        topic,
        partition=partition,
        config={
            "acks": "all" if acks is Acks.minus_one else acks.value,
            "compression.type": compression.value,
        },
        delivery_timeout_ms=timeout_ms,
        on_delivery=on_delivery,
    )
    if sys.stdin.isatty():
        print("Type one record per line; end with Ctrl-D.", file=sys.stderr)
    parse_error: CliError | None = None
    for number, line in enumerate(read_lines(sys.stdin), start=1):
        try:
            record = parse_line(line, number, fmt)
        except CliError as exc:
            parse_error = exc
            break
        producer.send(OutgoingRecord(record.key, record.value, record.headers + headers))
    report = producer.finish()
    raise_on_failure(report, topic)
    if parse_error is not None:
        raise parse_error
    if output is OutputFormat.text:
        noun = "record" if report.delivered == 1 else "records"
        print(f"Produced {report.delivered} {noun} to topic {topic}.")


def raise_on_failure(report: ProduceReport, topic: str) -> None:
    """The one-line error for a produce run in which anything was not delivered."""
    if not report.failures:
        return
    first = report.failures[0].error
    failed = len(report.failures)
    if failed == 1:
        raise CliError(f"delivery to topic '{topic}' failed: {first}")
    raise CliError(f"delivery to topic '{topic}' failed for {failed} records; first: {first}")


def _print_delivery(delivery: Delivery) -> None:
    print_json(
        {
            "topic": delivery.topic,
            "partition": delivery.partition,
            "offset": delivery.offset,
            "timestamp": delivery.timestamp_ms,
        }
    )


def _or_minus_one(value: int | None) -> int:
    return -1 if value is None else value
