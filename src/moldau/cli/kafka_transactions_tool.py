"""``kafka-transactions``: Kafka's TransactionsCommand, sub-command for sub-command.

Runbooks for hanging transactions paste these commands verbatim, so the sub-commands, flags,
headers and messages follow Kafka's ``tools/.../TransactionsCommand.java``: global options
(``--bootstrap-server``, ``--command-config``) come before the sub-command, tables are
Kafka's ``prettyPrintTable`` (every cell padded to its column's width and followed by a tab),
a missing value prints as ``None``, and a failure is one line on stderr with exit status 1.

All five sub-commands are implemented over :class:`~moldau.cli.admin_txn.TxnAdminSession`:
``list``, ``describe``, ``describe-producers``, ``find-hanging`` and ``abort`` (an ABORT
marker written through WriteTxnMarkers to the partition's leader).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from moldau.cli.admin import TopicPartitionKey
from moldau.cli.admin_txn import (
    TRANSACTIONAL_ID_NOT_FOUND,
    ProducerInfo,
    TxnAdminSession,
    txn_error_text,
)
from moldau.cli.common import DEFAULT_TIMEOUT_MS, CliError
from moldau.cli.kafka_args import ToolArgumentParser, librdkafka_config, load_properties

LIST_HEADERS = ("TransactionalId", "Coordinator", "ProducerId", "TransactionState")
DESCRIBE_HEADERS = (
    "CoordinatorId",
    "TransactionalId",
    "ProducerId",
    "ProducerEpoch",
    "TransactionState",
    "TransactionTimeoutMs",
    "CurrentTransactionStartTimeMs",
    "TransactionDurationMs",
    "TopicPartitions",
)
PRODUCERS_HEADERS = (
    "ProducerId",
    "ProducerEpoch",
    "LatestCoordinatorEpoch",
    "LastSequence",
    "LastTimestamp",
    "CurrentTransactionStartOffset",
)
HANGING_HEADERS = (
    "Topic",
    "Partition",
    "ProducerId",
    "ProducerEpoch",
    "CoordinatorEpoch",
    "StartOffset",
    "LastTimestamp",
    "Duration(min)",
)
DEBUG_HINT = "Enable debug logging for additional detail."


def build_parser() -> ToolArgumentParser:
    parser = ToolArgumentParser(
        prog="kafka-transactions",
        description="This tool is used to analyze the transactional state of producers in "
        "the cluster. It can be used to detect and recover from hanging transactions.",
    )
    parser.add_argument("-v", "--version", action="store_true")
    parser.add_argument("--command-config", metavar="FILE")
    parser.add_argument("--bootstrap-server", metavar="host:port", required=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser("list", help="list transactions")
    describe = commands.add_parser(
        "describe", help="describe the state of an active transactional-id"
    )
    describe.add_argument("--transactional-id", required=True)
    producers = commands.add_parser(
        "describe-producers", help="describe the states of active producers for a topic partition"
    )
    producers.add_argument("--broker-id", type=int)
    producers.add_argument("--topic", required=True)
    producers.add_argument("--partition", type=int, required=True)
    abort = commands.add_parser(
        "abort", help="abort a hanging transaction (requires administrative privileges)"
    )
    abort.add_argument("--topic", required=True)
    abort.add_argument("--partition", type=int, required=True)
    abort.add_argument("--start-offset", type=int)
    abort.add_argument("--producer-id", type=int)
    abort.add_argument("--producer-epoch", type=int)
    abort.add_argument("--coordinator-epoch", type=int)
    hanging = commands.add_parser("find-hanging", help="find hanging transactions")
    hanging.add_argument("--broker-id", type=int)
    hanging.add_argument("--max-transaction-timeout", type=int, default=15)
    hanging.add_argument("--topic")
    hanging.add_argument("--partition", type=int)
    return parser


def report(error: CliError) -> str:
    """CliErrors raised here are already Kafka's sentences."""
    return str(error)


def pretty_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Kafka's ``prettyPrintTable``: cells padded to the column width, each followed by a tab."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    return [
        "".join(c.ljust(w) + "\t" for c, w in zip(r, widths, strict=True)) for r in [headers, *rows]
    ]


def main(argv: Sequence[str]) -> int:
    if "-v" in argv or "--version" in argv:
        from moldau import __version__

        print(f"{__version__} (moldau)")
        return 0
    opts = build_parser().parse_args(argv)
    extra = librdkafka_config(load_properties(opts.command_config)) if opts.command_config else {}
    session = TxnAdminSession(opts.bootstrap_server, DEFAULT_TIMEOUT_MS, extra)
    if opts.command == "list":
        lines = _list(session)
    elif opts.command == "describe":
        lines = _describe(session, opts.transactional_id)
    elif opts.command == "describe-producers":
        lines = _describe_producers(session, opts.topic, opts.partition, opts.broker_id)
    elif opts.command == "find-hanging":
        lines = _find_hanging(session, opts)
    else:
        lines = _abort(session, opts)
    for line in lines:
        print(line)
    return 0


def _failed(doing: str, error: CliError | str) -> CliError:
    cause = str(error).rstrip(".")
    code = error.code if isinstance(error, CliError) else None
    return CliError(f"{doing}: {cause}. {DEBUG_HINT}", code=code)


def _list(session: TxnAdminSession) -> list[str]:
    try:
        listings = session.list_transactions()
    except CliError as exc:
        raise _failed("Failed to list transactions", exc) from None
    rows = [(t.transactional_id, str(t.coordinator), str(t.producer_id), t.state) for t in listings]
    return pretty_table(LIST_HEADERS, rows)


def _describe(session: TxnAdminSession, transactional_id: str) -> list[str]:
    doing = f"Failed to describe transaction state of transactional-id `{transactional_id}`"
    try:
        (description,) = session.describe_transactions([transactional_id])
    except CliError as exc:
        raise _failed(doing, exc) from None
    if description.error_code:
        code = description.error_code
        cause = CliError(txn_error_text(code), code=code)
        if code == TRANSACTIONAL_ID_NOT_FOUND:
            cause = CliError(f"TransactionalId {transactional_id} not found", code=code)
        raise _failed(doing, cause)
    start = description.transaction_start_time_ms
    now_ms = int(time.time() * 1000)
    row = (
        str(description.coordinator),
        transactional_id,
        str(description.producer_id),
        str(description.producer_epoch),
        description.state,
        str(description.transaction_timeout_ms),
        "None" if start is None else str(start),
        "None" if start is None else str(now_ms - start),
        ",".join(f"{t}-{p}" for t, p in description.partitions),
    )
    return pretty_table(DESCRIBE_HEADERS, [row])


def _producer_states(
    session: TxnAdminSession, topic: str, partition: int, broker_id: int | None
) -> list[ProducerInfo]:
    where = "leader" if broker_id is None else f"broker {broker_id}"
    try:
        return session.describe_producers(topic, partition, broker_id)
    except CliError as exc:
        raise _failed(
            f"Failed to describe producers for partition {topic}-{partition} on {where}", exc
        ) from None


def _describe_producers(
    session: TxnAdminSession, topic: str, partition: int, broker_id: int | None
) -> list[str]:
    rows = [
        (
            str(p.producer_id),
            str(p.producer_epoch),
            str(-1 if p.coordinator_epoch is None else p.coordinator_epoch),
            str(p.last_sequence),
            str(p.last_timestamp_ms),
            "None" if p.current_txn_start_offset is None else str(p.current_txn_start_offset),
        )
        for p in _producer_states(session, topic, partition, broker_id)
    ]
    return pretty_table(PRODUCERS_HEADERS, rows)


def _abort(session: TxnAdminSession, opts: argparse.Namespace) -> list[str]:
    """Kafka's ``abort``: name the transaction by its start offset, or by producer and epochs.

    With ``--start-offset`` the producer, its epoch and coordinator epoch come from the
    partition's producer state; a coordinator epoch still unknown (-1: no marker written yet)
    becomes 0, which no partition can refuse as stale.
    """
    topic, partition = opts.topic, opts.partition
    if opts.start_offset is None and opts.producer_id is None:
        raise CliError(
            "The transaction to abort must be identified either with --start-offset (for "
            "brokers on 3.0 or above) or with --producer-id, --producer-epoch, and "
            "--coordinator-epoch (for older brokers)"
        )
    if opts.start_offset is None:
        if opts.producer_epoch is None:
            raise CliError("Missing required argument --producer-epoch")
        if opts.coordinator_epoch is None:
            raise CliError("Missing required argument --coordinator-epoch")
        producer_id, producer_epoch = opts.producer_id, opts.producer_epoch
        coordinator_epoch = max(opts.coordinator_epoch, 0)
    else:
        try:
            producers = session.describe_producers(topic, partition)
        except CliError as exc:
            doing = f"Failed to validate producer state for partition {topic}-{partition}"
            raise _failed(doing, exc) from None
        found = next(
            (p for p in producers if p.current_txn_start_offset == opts.start_offset), None
        )
        if found is None:
            raise CliError(
                f"Could not find any open transactions starting at offset {opts.start_offset} "
                f"on partition {topic}-{partition}"
            )
        producer_id, producer_epoch = found.producer_id, found.producer_epoch
        coordinator_epoch = found.coordinator_epoch or 0
    spec = (
        f"AbortTransactionSpec(topicPartition={topic}-{partition}, producerId={producer_id}, "
        f"producerEpoch={producer_epoch}, coordinatorEpoch={coordinator_epoch})"
    )
    try:
        session.abort_transaction(topic, partition, producer_id, producer_epoch, coordinator_epoch)
    except CliError as exc:
        raise _failed(f"Failed to abort transaction {spec}", exc) from None
    return []


def _find_hanging(session: TxnAdminSession, opts: argparse.Namespace) -> list[str]:
    """Open transactions older than the max timeout that their coordinator does not know of.

    Kafka's algorithm: a producer with an open transaction on a partition whose last write is
    older than ``--max-transaction-timeout`` minutes is a candidate; it hangs if no
    transactional id has its producer id, or if that id's current transaction does not
    include the partition (the coordinator will never write its marker).
    """
    if opts.topic is None and opts.broker_id is None:
        raise CliError(
            "The `find-hanging` command requires either --topic or --broker-id to limit the "
            "scope of the search"
        )
    if opts.partition is not None and opts.topic is None:
        raise CliError("The --partition argument requires --topic to be provided")
    partitions = _partitions_to_search(session, opts.topic, opts.partition, opts.broker_id)
    max_timeout_ms = opts.max_transaction_timeout * 60_000
    now_ms = int(time.time() * 1000)
    candidates: list[tuple[TopicPartitionKey, ProducerInfo]] = []
    for topic, partition in partitions:
        for producer in _producer_states(session, topic, partition, opts.broker_id):
            if (
                producer.current_txn_start_offset is not None
                and now_ms - producer.last_timestamp_ms > max_timeout_ms
            ):
                candidates.append(((topic, partition), producer))
    hanging: list[tuple[TopicPartitionKey, ProducerInfo]] = []
    if candidates:
        producer_ids = sorted({p.producer_id for _, p in candidates})
        try:
            listings = session.list_transactions(producer_ids=producer_ids)
        except CliError as exc:
            doing = f"Failed to list transactions for {len(producer_ids)} producers"
            raise _failed(doing, exc) from None
        ids_by_producer = {t.producer_id: t.transactional_id for t in listings}
        wanted = sorted(set(ids_by_producer.values()))
        try:
            described = {d.transactional_id: d for d in session.describe_transactions(wanted)}
        except CliError as exc:
            raise _failed(f"Failed to describe {len(wanted)} transactions", exc) from None
        for tp, producer in candidates:
            transactional_id = ids_by_producer.get(producer.producer_id)
            description = described.get(transactional_id) if transactional_id else None
            if description is None or description.error_code or tp not in description.partitions:
                hanging.append((tp, producer))
    rows = [
        (
            topic,
            str(partition),
            str(p.producer_id),
            str(p.producer_epoch),
            str(-1 if p.coordinator_epoch is None else p.coordinator_epoch),
            str(p.current_txn_start_offset),
            str(p.last_timestamp_ms),
            str((now_ms - p.last_timestamp_ms) // 60_000),
        )
        for (topic, partition), p in hanging
    ]
    return pretty_table(HANGING_HEADERS, rows)


def _partitions_to_search(
    session: TxnAdminSession, topic: str | None, partition: int | None, broker_id: int | None
) -> list[TopicPartitionKey]:
    if topic is not None and partition is not None:
        return [(topic, partition)]
    topics = [topic] if topic is not None else session.topic_names()
    try:
        described = session.describe_topics(topics, with_configs=False)
    except CliError as exc:
        raise _failed(f"Failed to describe {len(topics)} topics", exc) from None
    return [
        (t.name, p.partition)
        for t in described
        for p in t.partitions
        if broker_id is None or broker_id in p.replicas
    ]
