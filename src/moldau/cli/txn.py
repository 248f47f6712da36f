"""``moldau txn list|describe`` and ``moldau producers TOPIC:PARTITION``: transactions at a glance.

Two questions come up when a consumer in ``read_committed`` stops moving: *which transaction
is open, and since when?* (``txn list``/``txn describe``, answered by the transaction
coordinators) and *which producer holds this partition's last stable offset back?*
(``producers``, answered by the partition's leader from its producer state). The data comes
from :class:`~moldau.cli.admin_txn.TxnAdminSession`; ``kafka-transactions`` (in
``kafka_transactions_tool.py``) prints the same data in Kafka's layout.

Times are printed as Kafka sends them — epoch milliseconds — plus, for people, the
transaction's age; ``-`` stands for "none" (no open transaction, no coordinator epoch yet).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Annotated

import typer

from moldau.cli.admin import TopicPartitionKey
from moldau.cli.admin_txn import (
    ProducerInfo,
    TransactionDescription,
    TransactionListing,
    TxnAdminSession,
)
from moldau.cli.common import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_TIMEOUT_MS,
    BootstrapOption,
    CliError,
    FormatOption,
    OutputFormat,
    TimeoutOption,
    print_json,
)
from moldau.cli.group import MISSING, columns

TRANSACTION_STATES = (
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
)
"""Kafka's transaction state names (``TransactionState`` in the admin client)."""
_STATES_BY_LOWER = {s.lower(): s for s in TRANSACTION_STATES}

LIST_HEADER = ("TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE")
PRODUCERS_HEADER = (
    "PRODUCER-ID",
    "EPOCH",
    "COORDINATOR-EPOCH",
    "LAST-SEQUENCE",
    "LAST-TIMESTAMP",
    "TXN-START-OFFSET",
)


def parse_txn_state(name: str) -> str:
    """Kafka's spelling of a state given in any case, or a usage CliError listing them."""
    state = _STATES_BY_LOWER.get(name.strip().lower())
    if state is None:
        raise CliError(
            f"invalid transaction state '{name.strip()}'. Valid states are: "
            + ", ".join(TRANSACTION_STATES),
            2,
        )
    return state


def parse_topic_partition(text: str) -> TopicPartitionKey:
    """``TOPIC:PARTITION`` (e.g. ``orders:0``) as a key; a usage CliError otherwise.

    Topic names cannot contain ``:``, so the last ``:`` is the separator.
    """
    topic, sep, partition = text.strip().rpartition(":")
    if not sep or not topic or not partition.isdigit():
        raise CliError(f"invalid partition '{text}': expected TOPIC:PARTITION, e.g. orders:0", 2)
    return topic, int(partition)


def partition_names(partitions: Iterable[TopicPartitionKey]) -> str:
    """Kafka's ``topic-partition`` names, comma separated (``-`` when there are none)."""
    names = ",".join(f"{t}-{p}" for t, p in partitions)
    return names or MISSING


def duration_ms(description: TransactionDescription, now_ms: int) -> int | None:
    """How long the open transaction has run, None when none is open."""
    start = description.transaction_start_time_ms
    return None if start is None else max(now_ms - start, 0)


def transaction_document(description: TransactionDescription, now_ms: int) -> dict[str, object]:
    """The JSON shape of ``txn describe``."""
    return {
        "transactional_id": description.transactional_id,
        "coordinator": description.coordinator,
        "state": description.state,
        "producer_id": description.producer_id,
        "producer_epoch": description.producer_epoch,
        "transaction_timeout_ms": description.transaction_timeout_ms,
        "transaction_start_time_ms": description.transaction_start_time_ms,
        "transaction_duration_ms": duration_ms(description, now_ms),
        "partitions": [{"topic": t, "partition": p} for t, p in description.partitions],
    }


def producer_document(producer: ProducerInfo) -> dict[str, object]:
    return {
        "producer_id": producer.producer_id,
        "producer_epoch": producer.producer_epoch,
        "coordinator_epoch": producer.coordinator_epoch,
        "last_sequence": producer.last_sequence,
        "last_timestamp_ms": producer.last_timestamp_ms,
        "current_txn_start_offset": producer.current_txn_start_offset,
    }


def _summary(description: TransactionDescription, now_ms: int) -> list[str]:
    start = description.transaction_start_time_ms
    pairs = [
        ("TRANSACTIONAL-ID", description.transactional_id),
        ("STATE", description.state),
        ("COORDINATOR", str(description.coordinator)),
        ("PRODUCER-ID", str(description.producer_id)),
        ("PRODUCER-EPOCH", str(description.producer_epoch)),
        ("TIMEOUT-MS", str(description.transaction_timeout_ms)),
        ("START-TIME-MS", MISSING if start is None else str(start)),
        ("DURATION-MS", _text(duration_ms(description, now_ms))),
        ("PARTITIONS", partition_names(description.partitions)),
    ]
    width = max(len(k) for k, _ in pairs)
    return [f"{k.ljust(width)}  {v}" for k, v in pairs]


def _text(value: int | None) -> str:
    return MISSING if value is None else str(value)


def _print(lines: Iterable[str]) -> None:
    for line in lines:
        print(line)


def _listing_cells(t: TransactionListing) -> tuple[object, ...]:
    return (t.transactional_id, t.coordinator, t.producer_id, t.state)


def _producer_cells(p: ProducerInfo) -> tuple[object, ...]:
    return (
        p.producer_id,
        p.producer_epoch,
        p.coordinator_epoch,
        p.last_sequence,
        p.last_timestamp_ms,
        p.current_txn_start_offset,
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


# -- typer commands ----------------------------------------------------------------------

app = typer.Typer(
    help="List and describe transactions (transactional ids and their state).",
    no_args_is_help=True,
)


@app.command("list")
def list_(
    state: Annotated[
        list[str] | None,
        typer.Option("--state", "-s", help="Only transactions in this state, e.g. Ongoing."),
    ] = None,
    producer_id: Annotated[
        list[int] | None,
        typer.Option("--producer-id", help="Only this producer id (repeatable)."),
    ] = None,
    min_duration_ms: Annotated[
        int | None,
        typer.Option("--min-duration-ms", min=0, help="Only transactions open at least this long."),
    ] = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """List transactional ids with their coordinator, producer id and state."""
    states = [parse_txn_state(s) for item in state or [] for s in item.split(",") if s.strip()]
    listings = TxnAdminSession(bootstrap, timeout_ms).list_transactions(
        states, producer_id or [], -1 if min_duration_ms is None else min_duration_ms
    )
    if output is OutputFormat.json:
        print_json(
            [
                {
                    "transactional_id": t.transactional_id,
                    "coordinator": t.coordinator,
                    "producer_id": t.producer_id,
                    "state": t.state,
                }
                for t in listings
            ]
        )
    elif listings:
        _print(columns(LIST_HEADER, (_listing_cells(t) for t in listings)))


@app.command("describe")
def describe(
    transactional_id: Annotated[
        str, typer.Argument(help="The producer's transactional.id.", show_default=False)
    ],
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """State, producer id and epoch, timeout, age and partitions of one transactional id."""
    description = TxnAdminSession(bootstrap, timeout_ms).describe_transaction(transactional_id)
    now_ms = _now_ms()
    if output is OutputFormat.json:
        print_json(transaction_document(description, now_ms))
    else:
        _print(_summary(description, now_ms))


def producers(
    partition: Annotated[
        str, typer.Argument(help="TOPIC:PARTITION, e.g. orders:0.", show_default=False)
    ],
    broker_id: Annotated[
        int | None,
        typer.Option("--broker-id", help="Ask this replica instead of the partition's leader."),
    ] = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Active producers of a partition: epoch, last sequence, open transaction's start offset.

    A producer with a TXN-START-OFFSET holds the partition's last stable offset at that
    offset until its transaction ends.
    """
    topic, number = parse_topic_partition(partition)
    found: Sequence[ProducerInfo] = TxnAdminSession(bootstrap, timeout_ms).describe_producers(
        topic, number, broker_id
    )
    if output is OutputFormat.json:
        print_json(
            {
                "topic": topic,
                "partition": number,
                "producers": [producer_document(p) for p in found],
            }
        )
    elif found:
        _print(columns(PRODUCERS_HEADER, (_producer_cells(p) for p in found)))
