"""``kafka-console-producer`` and ``kafka-console-consumer``, over moldau's produce/consume.

The producer reads stdin with Kafka's ``LineMessageReader`` rules (``parse.key``,
``key.separator``, ``parse.headers``, ``null.marker``, ``ignore.error``), shows Kafka's
``>`` prompt only when stdin and stdout are a terminal, and waits for every delivery: a
failed one prints Kafka's "Error when sending message to topic …" line and exits 1.

The consumer prints with Kafka's ``DefaultMessageFormatter`` (``print.key``,
``key.separator``, ``print.timestamp``…) and ends with "Processed a total of N messages" on
stderr, like Kafka. Consumer groups come in a later issue, so partitions are assigned
directly; ``--group`` is accepted with a one-line notice.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from moldau.cli.common import CliError
from moldau.cli.consume import FROM_BEGINNING, FROM_END, PartitionReader, StartPosition
from moldau.cli.kafka_args import (
    ToolArgumentParser,
    UsageProblem,
    librdkafka_config,
    load_properties,
    parse_properties,
)
from moldau.cli.produce import (
    DEFAULT_DELIVERY_TIMEOUT_MS,
    Delivery,
    LineFormat,
    LineProducer,
    parse_line,
    read_lines,
)
from moldau.cli.record_format import KafkaFormatWriter

_DEFAULT_FORMATTERS = frozenset(
    {
        "kafka.tools.DefaultMessageFormatter",
        "org.apache.kafka.tools.consumer.DefaultMessageFormatter",
    }
)


# -- producer ------------------------------------------------------------------------------


def build_producer_parser() -> ToolArgumentParser:
    parser = ToolArgumentParser(
        prog="kafka-console-producer",
        description="Read data from standard input and publish it to Kafka.",
    )
    parser.add_argument("--bootstrap-server")
    parser.add_argument("--broker-list", help=argparse.SUPPRESS)  # Kafka < 4, deprecated
    parser.add_argument("--topic")
    parser.add_argument("--property", action="append", metavar="<String: prop>")
    parser.add_argument("--reader-property", action="append", help=argparse.SUPPRESS)
    parser.add_argument("--producer-property", action="append", metavar="<String: prop>")
    parser.add_argument("--command-property", action="append", help=argparse.SUPPRESS)
    parser.add_argument("--producer.config", dest="producer_config")
    parser.add_argument("--command-config", help=argparse.SUPPRESS)
    parser.add_argument("--compression-codec", nargs="?", const="gzip")
    parser.add_argument("--sync", action="store_true")
    parser.add_argument("--request-required-acks", default="-1")
    parser.add_argument("--request-timeout-ms", type=int)
    parser.add_argument("--message-send-max-retries", type=int)
    parser.add_argument("--retry-backoff-ms", type=int)
    parser.add_argument("--timeout", type=int, default=1000, help="linger.ms")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--max-block-ms", type=int)
    parser.add_argument("--max-memory-bytes", type=int)
    parser.add_argument("--max-partition-memory-bytes", type=int)
    parser.add_argument("--metadata-expiry-ms", type=int)
    parser.add_argument("--socket-buffer-size", type=int)
    parser.add_argument("--line-reader", "--reader")
    parser.add_argument("--reader-config", help=argparse.SUPPRESS)
    return parser


def producer_main(argv: Sequence[str]) -> int:
    opts = build_producer_parser().parse_args(argv)
    bootstrap = opts.bootstrap_server or opts.broker_list
    if not bootstrap:
        raise UsageProblem('Missing required argument "[bootstrap-server]"')
    if not opts.topic:
        raise UsageProblem('Missing required argument "[topic]"')
    if opts.line_reader and not opts.line_reader.endswith("LineMessageReader"):
        raise UsageProblem(f"--line-reader {opts.line_reader} is not supported by moldau")
    reader_props = parse_properties(opts.property, "--property")
    reader_props.update(parse_properties(opts.reader_property, "--reader-property"))
    if opts.reader_config:
        reader_props.update(load_properties(opts.reader_config))
    fmt = line_format(reader_props)
    fmt.validate()
    config = _producer_config(opts)
    producer = LineProducer(
        bootstrap,
        opts.topic,
        config=config,
        delivery_timeout_ms=int(config.get("message.timeout.ms", DEFAULT_DELIVERY_TIMEOUT_MS)),
    )
    prompt = sys.stdin.isatty() and sys.stdout.isatty()
    parse_error: CliError | None = None
    lines = read_lines(sys.stdin)
    number = 0
    while True:
        if prompt:
            sys.stdout.write(">")
            sys.stdout.flush()
        line = next(lines, None)
        if line is None:
            break
        number += 1
        try:
            record = parse_line(line, number, fmt)
        except CliError as exc:
            parse_error = exc
            break
        producer.send(record)
        if opts.sync:
            producer.finish()
    report = producer.finish()
    if report.failures:
        raise CliError(sending_error(report.failures[0]))
    if parse_error is not None:
        raise parse_error
    return 0


def line_format(properties: dict[str, str]) -> LineFormat:
    """Kafka's LineMessageReader properties as a :class:`LineFormat`."""

    def flag(name: str) -> bool:
        return properties.get(name, "false").strip().lower() == "true"

    def text(name: str, default: str) -> bytes:
        return properties.get(name, default).encode("utf-8")

    marker = properties.get("null.marker")
    return LineFormat(
        parse_key=flag("parse.key"),
        key_separator=text("key.separator", "\t"),
        parse_headers=flag("parse.headers"),
        headers_delimiter=text("headers.delimiter", "\t"),
        headers_separator=text("headers.separator", ","),
        headers_key_separator=text("headers.key.separator", ":"),
        null_marker=marker.encode("utf-8") if marker is not None else None,
        ignore_error=flag("ignore.error"),
    )


def sending_error(failure: Delivery) -> str:
    """Kafka's ErrorLoggingCallback line for a record that was not delivered."""
    key = "null" if failure.key is None else f"{len(failure.key)} bytes"
    return (
        f"Error when sending message to topic {failure.topic} with key: {key}, "
        f"value: {failure.value_size} bytes with error: {failure.error}"
    )


def _producer_config(opts: argparse.Namespace) -> dict[str, Any]:
    """Defaults < --producer.config < --producer-property < explicit flags (as Kafka)."""
    java: dict[str, str] = {}
    for path in (opts.producer_config, opts.command_config):
        if path:
            java.update(load_properties(path))
    java.update(parse_properties(opts.producer_property, "--producer-property"))
    java.update(parse_properties(opts.command_property, "--command-property"))
    config: dict[str, Any] = {"linger.ms": opts.timeout}
    config.update(librdkafka_config(java))
    acks = opts.request_required_acks
    config["acks"] = "all" if acks in ("-1", "all") else acks
    if opts.compression_codec:
        config["compression.type"] = opts.compression_codec
    explicit = {
        "request.timeout.ms": opts.request_timeout_ms,
        "retries": opts.message_send_max_retries,
        "retry.backoff.ms": opts.retry_backoff_ms,
        "batch.size": opts.batch_size,
        "topic.metadata.refresh.interval.ms": opts.metadata_expiry_ms,
        "socket.send.buffer.bytes": opts.socket_buffer_size,
    }
    config.update({k: v for k, v in explicit.items() if v is not None})
    if "delivery.timeout.ms" in config:
        config["message.timeout.ms"] = config.pop("delivery.timeout.ms")
    return config


# -- consumer ------------------------------------------------------------------------------


def build_consumer_parser() -> ToolArgumentParser:
    parser = ToolArgumentParser(
        prog="kafka-console-consumer",
        description="Consume messages from Kafka and write them to standard output.",
    )
    parser.add_argument("--bootstrap-server")
    parser.add_argument("--topic")
    parser.add_argument("--include", "--whitelist", dest="include")
    parser.add_argument("--partition", type=int)
    parser.add_argument("--offset")
    parser.add_argument("--from-beginning", action="store_true")
    parser.add_argument("--max-messages", type=int)
    parser.add_argument("--timeout-ms", type=int)
    parser.add_argument("--skip-message-on-error", action="store_true")
    parser.add_argument("--formatter")
    parser.add_argument("--formatter-config")
    parser.add_argument("--property", action="append", metavar="<String: prop>")
    parser.add_argument("--consumer-property", action="append", metavar="<String: prop>")
    parser.add_argument("--command-property", action="append", help=argparse.SUPPRESS)
    parser.add_argument("--consumer.config", dest="consumer_config")
    parser.add_argument("--command-config", help=argparse.SUPPRESS)
    parser.add_argument("--group")
    parser.add_argument("--isolation-level")
    parser.add_argument("--key-deserializer")
    parser.add_argument("--value-deserializer")
    parser.add_argument("--enable-systest-events", action="store_true")
    return parser


def consumer_main(argv: Sequence[str]) -> int:
    opts = build_consumer_parser().parse_args(argv)
    if not opts.bootstrap_server:
        raise UsageProblem('Missing required argument "[bootstrap-server]"')
    if bool(opts.topic) == bool(opts.include):
        raise UsageProblem("Exactly one of include/topic is required.")
    if opts.include:
        raise UsageProblem("--include needs consumer groups, which moldau does not support yet")
    if opts.formatter and opts.formatter not in _DEFAULT_FORMATTERS:
        raise UsageProblem(f"--formatter {opts.formatter} is not supported by moldau")
    start = _start_position(opts)
    properties: dict[str, str] = {}
    if opts.formatter_config:
        properties.update(load_properties(opts.formatter_config))
    properties.update(parse_properties(opts.property, "--property"))
    writer = KafkaFormatWriter(properties)
    if opts.group:
        print(
            f"WARNING: consumer groups are not supported by moldau yet; ignoring --group "
            f"{opts.group}: reading partitions directly and committing no offsets.",
            file=sys.stderr,
        )
    reader = PartitionReader(
        opts.bootstrap_server,
        opts.topic,
        partitions=None if opts.partition is None else [opts.partition],
        start=start,
        config=_consumer_config(opts),
    )
    count = 0
    try:
        for record in reader.records(
            max_messages=opts.max_messages if opts.max_messages is not None else None,
            idle_timeout_ms=opts.timeout_ms if opts.timeout_ms and opts.timeout_ms >= 0 else None,
        ):
            writer.write(record)
            count += 1
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
        print(f"Processed a total of {count} messages", file=sys.stderr)
    return 0


def _start_position(opts: argparse.Namespace) -> StartPosition:
    """Kafka's rules: ``--offset`` needs ``--partition`` and excludes ``--from-beginning``."""
    if opts.offset is not None:
        if opts.partition is None:
            raise UsageProblem("The partition is required when offset is specified.")
        if opts.from_beginning:
            raise UsageProblem("Options from-beginning and offset cannot be specified together.")
        text = opts.offset.strip().lower()
        if text == "earliest":
            return FROM_BEGINNING
        if text == "latest":
            return FROM_END
        if text.isdigit():
            return StartPosition.at(int(text))
        raise UsageProblem(
            "The provided offset value is incorrect. Valid values are 'earliest', 'latest', "
            "or a non-negative long."
        )
    return FROM_BEGINNING if opts.from_beginning else FROM_END


def _consumer_config(opts: argparse.Namespace) -> dict[str, Any]:
    java: dict[str, str] = {}
    for path in (opts.consumer_config, opts.command_config):
        if path:
            java.update(load_properties(path))
    java.update(parse_properties(opts.consumer_property, "--consumer-property"))
    java.update(parse_properties(opts.command_property, "--command-property"))
    for ignored in ("group.id", "auto.offset.reset", "enable.auto.commit"):
        java.pop(ignored, None)  # decided by the flags: no group, explicit start offsets
    config: dict[str, Any] = dict(librdkafka_config(java))
    if opts.isolation_level:
        config["isolation.level"] = opts.isolation_level
    return config
