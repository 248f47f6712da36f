"""``moldau txn …``, ``moldau producers`` and ``kafka-transactions`` against a real broker.

The transactions are real: a confluent-kafka transactional producer writes to a topic and is
left open (state Ongoing, the partition's producer holding a transaction start offset) or
committed (CompleteCommit, no open transaction). Markers are written after EndTxn answers, so
the move from PrepareCommit to CompleteCommit is waited for, bounded and never measured.
The first tests need no broker: parsing, the hand-written DescribeTransactions decoder and
Kafka's table layout.
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cli_helpers import Runner, make_runner
from confluent_kafka import KafkaException, Producer
from kio.schema.errors import ErrorCode
from kio.serial import entity_writer

from moldau.cli import kafka_tools
from moldau.cli.admin_txn import TransactionDescription, decode_describe_transactions
from moldau.cli.common import CliError
from moldau.cli.kafka_transactions_tool import pretty_table
from moldau.cli.txn import parse_topic_partition, parse_txn_state
from moldau.protocol.api import schema_for
from moldau.testing import BrokerProcess

WAIT_S = 30.0
TXN_TIMEOUT_MS = 60_000
START_MS = 1_700_000_000_123


@pytest.fixture
def kafka_transactions(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Runner:
    return make_runner(kafka_tools.kafka_transactions, capsys, monkeypatch)


@pytest.fixture
def txn_id(topic_name: str) -> str:
    return f"tx-{topic_name}"


# -- no broker needed ----------------------------------------------------------------------


def test_parse_topic_partition() -> None:
    assert parse_topic_partition("orders:0") == ("orders", 0)
    assert parse_topic_partition("a.b_c-d:12") == ("a.b_c-d", 12)
    for bad in ("orders", "orders:", ":0", "orders:x", "orders:-1", "orders:0,1"):
        with pytest.raises(CliError, match="expected TOPIC:PARTITION") as info:
            parse_topic_partition(bad)
        assert info.value.exit_code == 2


def test_parse_txn_state_accepts_any_case_and_lists_valid_states() -> None:
    assert parse_txn_state("ongoing") == "Ongoing"
    assert parse_txn_state("COMPLETECOMMIT") == "CompleteCommit"
    with pytest.raises(CliError, match="Valid states are: Empty, Ongoing") as info:
        parse_txn_state("Open")
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["producers", "orders"],
        ["producers", "orders:zero"],
        ["producers", ":3"],
    ],
)
def test_bad_topic_partition_is_one_usage_line(moldau: Runner, argv: list[str]) -> None:
    # no broker listens at this address: the syntax is checked before connecting
    result = moldau(*argv, "-b", "127.0.0.1:1")
    assert result.code == 2
    assert len(result.err_lines) == 1
    assert result.err_lines[0].startswith(f"error: invalid partition '{argv[1]}'")
    assert "TOPIC:PARTITION" in result.err_lines[0]


def test_bad_state_filter_is_one_usage_line(moldau: Runner) -> None:
    result = moldau("txn", "list", "--state", "running", "-b", "127.0.0.1:1")
    assert result.code == 2
    assert result.err_lines == [
        "error: invalid transaction state 'running'. Valid states are: Empty, Ongoing, "
        "PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort, Dead, PrepareEpochFence"
    ]


def _describe_transactions_frame(start: datetime) -> bytes:
    """A DescribeTransactions v0 response frame as a broker sends it (kio-encoded)."""
    schema = schema_for(65, 0)
    module = schema.response_module

    def state(
        transactional_id: str, error: ErrorCode, name: str, topics: tuple[object, ...]
    ) -> object:
        known = error == ErrorCode.none
        return module.TransactionState(
            error_code=error,
            transactional_id=transactional_id,
            transaction_state=name,
            transaction_timeout=timedelta(milliseconds=TXN_TIMEOUT_MS if known else 0),
            transaction_start_time=start,
            producer_id=7 if known else -1,
            producer_epoch=3 if known else -1,
            topics=topics,
        )

    response = schema.response_type(
        throttle_time=timedelta(0),
        transaction_states=(
            state(
                "tx-1",
                ErrorCode.none,
                "Ongoing",
                (
                    module.TopicData(topic="b", partitions=(1, 0)),
                    module.TopicData(topic="a", partitions=(2,)),
                ),
            ),
            state("tx-2", ErrorCode.transactional_id_not_found, "", ()),
        ),
    )
    buffer = io.BytesIO()
    entity_writer(schema.response_type)(buffer, response)
    # correlation id, then the empty tagged fields of response header v1
    return struct.pack(">i", 42) + b"\x00" + buffer.getvalue()


def test_decode_describe_transactions_reads_kafka_encoding() -> None:
    start = datetime.fromtimestamp(START_MS / 1000, tz=UTC)
    described = decode_describe_transactions(_describe_transactions_frame(start), coordinator=5)
    assert described == [
        TransactionDescription(
            transactional_id="tx-1",
            coordinator=5,
            error_code=0,
            state="Ongoing",
            producer_id=7,
            producer_epoch=3,
            transaction_timeout_ms=TXN_TIMEOUT_MS,
            transaction_start_time_ms=START_MS,
            partitions=(("a", 2), ("b", 0), ("b", 1)),
        ),
        TransactionDescription(
            transactional_id="tx-2",
            coordinator=5,
            error_code=105,
            state="",
            producer_id=-1,
            producer_epoch=-1,
            transaction_timeout_ms=0,
            transaction_start_time_ms=START_MS,
            partitions=(),
        ),
    ]


def test_decode_describe_transactions_accepts_minus_one_start_time() -> None:
    """Kafka sends -1 when no transaction is open; kio's own reader refuses it."""
    start = datetime.fromtimestamp(START_MS / 1000, tz=UTC)
    frame = _describe_transactions_frame(start)
    assert frame.count(struct.pack(">q", START_MS)) == 2
    frame = frame.replace(struct.pack(">q", START_MS), struct.pack(">q", -1))
    described = decode_describe_transactions(frame, coordinator=0)
    assert [d.transaction_start_time_ms for d in described] == [None, None]
    assert described[0].partitions == (("a", 2), ("b", 0), ("b", 1))


def test_decode_describe_transactions_reports_a_truncated_frame() -> None:
    start = datetime.fromtimestamp(START_MS / 1000, tz=UTC)
    frame = _describe_transactions_frame(start)
    with pytest.raises(CliError, match="malformed response"):
        decode_describe_transactions(frame[:-12], coordinator=0)


def test_pretty_table_is_kafkas_layout() -> None:
    lines = pretty_table(("Id", "State"), [("tx-long-id", "Ongoing"), ("t", "Empty")])
    assert lines == [
        "Id        \tState  \t",
        "tx-long-id\tOngoing\t",
        "t         \tEmpty  \t",
    ]


def test_kafka_transactions_usage_errors_are_one_line(kafka_transactions: Runner) -> None:
    no_command = kafka_transactions("--bootstrap-server", "127.0.0.1:1")
    assert no_command.code == 1
    assert len(no_command.err_lines) == 1
    missing = kafka_transactions("--bootstrap-server", "127.0.0.1:1", "describe")
    assert missing.code == 1
    assert missing.err_lines == ["the following arguments are required: --transactional-id"]


# -- helpers for the broker tests ----------------------------------------------------------


def create_topic(moldau: Runner, broker: BrokerProcess, topic: str, partitions: int = 1) -> None:
    result = moldau("topic", "create", topic, "-p", str(partitions), "-b", broker.bootstrap)
    assert result.code == 0, result.err


def transactional_producer(broker: BrokerProcess, transactional_id: str) -> Producer:
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "transactional.id": transactional_id,
            "transaction.timeout.ms": TXN_TIMEOUT_MS,
            "log_level": 0,
        }
    )
    producer.init_transactions(WAIT_S)
    return producer


@pytest.fixture
def open_txn(
    moldau: Runner, broker: BrokerProcess, topic_name: str, txn_id: str
) -> Iterator[Producer]:
    """A transaction left open: 3 records in partition 0 and 2 in partition 1 of the topic.

    Partition 0 gets 2 plain records first, so its transaction starts at offset 2.
    """
    create_topic(moldau, broker, topic_name, partitions=2)
    plain = Producer({"bootstrap.servers": broker.bootstrap, "log_level": 0})
    for i in range(2):
        plain.produce(topic_name, value=f"plain{i}".encode(), partition=0)
    assert plain.flush(WAIT_S) == 0
    producer = transactional_producer(broker, txn_id)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic_name, value=f"t{i}".encode(), partition=0)
    for i in range(2):
        producer.produce(topic_name, value=f"u{i}".encode(), partition=1)
    assert producer.flush(WAIT_S) == 0
    yield producer
    with contextlib.suppress(KafkaException):  # no transaction open: the test committed it
        producer.abort_transaction(WAIT_S)


def describe_json(moldau: Runner, broker: BrokerProcess, txn_id: str) -> dict[str, object]:
    result = moldau("txn", "describe", txn_id, "-f", "json", "-b", broker.bootstrap)
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert isinstance(document, dict)
    return document


def producers_json(moldau: Runner, broker: BrokerProcess, tp: str) -> list[dict[str, object]]:
    result = moldau("producers", tp, "-f", "json", "-b", broker.bootstrap)
    assert result.code == 0, result.err
    producers = json.loads(result.out)["producers"]
    assert isinstance(producers, list)
    return producers


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting until {what}")


def summary(text: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in text.splitlines() if line.strip())


def kafka_table(text: str) -> list[list[str]]:
    return [line.rstrip("\t").split("\t") for line in text.splitlines()]


# -- a producer without a transaction ----------------------------------------------------------


def test_describe_initialised_producer_without_transaction(
    moldau: Runner, kafka_transactions: Runner, broker: BrokerProcess, txn_id: str
) -> None:
    """After InitProducerId alone the id is Empty and Kafka sends start time -1."""
    transactional_producer(broker, txn_id)
    document = describe_json(moldau, broker, txn_id)
    assert document["state"] == "Empty"
    assert document["producer_epoch"] == 0
    assert document["partitions"] == []
    assert document["transaction_start_time_ms"] is None
    assert document["transaction_duration_ms"] is None

    text = moldau("txn", "describe", txn_id, "-b", broker.bootstrap)
    assert text.code == 0, text.err
    fields = summary(text.out)
    assert (fields["STATE"], fields["START-TIME-MS"], fields["PARTITIONS"]) == ("Empty", "-", "-")

    kafka = kafka_transactions(
        "--bootstrap-server", broker.bootstrap, "describe", "--transactional-id", txn_id
    )
    assert kafka.code == 0, kafka.err
    header, row = kafka_table(kafka.out)
    cells = dict(zip((h.strip() for h in header), (c.strip() for c in row), strict=True))
    assert cells["TransactionState"] == "Empty"
    assert cells["CurrentTransactionStartTimeMs"] == "None"
    assert cells["TransactionDurationMs"] == "None"
    assert cells["TopicPartitions"] == ""


# -- an open transaction ---------------------------------------------------------------------


def test_describe_open_transaction(
    moldau: Runner, broker: BrokerProcess, topic_name: str, txn_id: str, open_txn: Producer
) -> None:
    document = describe_json(moldau, broker, txn_id)
    assert document["transactional_id"] == txn_id
    assert document["state"] == "Ongoing"
    assert document["partitions"] == [
        {"topic": topic_name, "partition": 0},
        {"topic": topic_name, "partition": 1},
    ]
    assert isinstance(document["producer_id"], int) and document["producer_id"] >= 0
    assert document["producer_epoch"] == 0
    assert document["transaction_timeout_ms"] == TXN_TIMEOUT_MS
    assert isinstance(document["transaction_start_time_ms"], int)
    assert document["transaction_start_time_ms"] > 0
    assert isinstance(document["transaction_duration_ms"], int)

    text = moldau("txn", "describe", txn_id, "-b", broker.bootstrap)
    assert text.code == 0, text.err
    fields = summary(text.out)
    assert fields["TRANSACTIONAL-ID"] == txn_id
    assert fields["STATE"] == "Ongoing"
    assert fields["PRODUCER-ID"] == str(document["producer_id"])
    assert fields["PARTITIONS"] == f"{topic_name}-0,{topic_name}-1"


def test_list_shows_open_transaction_and_filters_by_state(
    moldau: Runner, broker: BrokerProcess, txn_id: str, open_txn: Producer
) -> None:
    described = describe_json(moldau, broker, txn_id)
    producer_id = described["producer_id"]
    listed = moldau("txn", "list", "-f", "json", "-b", broker.bootstrap)
    assert listed.code == 0, listed.err
    mine = [t for t in json.loads(listed.out) if t["transactional_id"] == txn_id]
    assert mine == [
        {
            "transactional_id": txn_id,
            "coordinator": described["coordinator"],
            "producer_id": producer_id,
            "state": "Ongoing",
        }
    ]

    ongoing = moldau("txn", "list", "--state", "ongoing", "-b", broker.bootstrap)
    assert ongoing.code == 0, ongoing.err
    rows = [line.split() for line in ongoing.out.splitlines()]
    assert rows[0] == ["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"]
    assert [txn_id, str(described["coordinator"]), str(producer_id), "Ongoing"] in rows[1:]
    assert all(row[3] == "Ongoing" for row in rows[1:])

    committed = moldau("txn", "list", "-s", "CompleteCommit", "-f", "json", "-b", broker.bootstrap)
    assert committed.code == 0, committed.err
    assert txn_id not in [t["transactional_id"] for t in json.loads(committed.out)]

    by_producer = moldau(
        "txn", "list", "--producer-id", str(producer_id), "-f", "json", "-b", broker.bootstrap
    )
    assert by_producer.code == 0, by_producer.err
    assert [t["transactional_id"] for t in json.loads(by_producer.out)] == [txn_id]


def test_producers_of_a_partition_with_an_open_transaction(
    moldau: Runner, broker: BrokerProcess, topic_name: str, txn_id: str, open_txn: Producer
) -> None:
    described = describe_json(moldau, broker, txn_id)
    producers = producers_json(moldau, broker, f"{topic_name}:0")
    mine = [p for p in producers if p["producer_id"] == described["producer_id"]]
    assert len(mine) == 1
    assert mine[0]["producer_epoch"] == described["producer_epoch"]
    assert mine[0]["current_txn_start_offset"] == 2  # after the 2 plain records
    assert mine[0]["last_sequence"] == 2  # 3 records: sequences 0..2
    # the plain producer is not idempotent (librdkafka's default): it has no producer state
    assert producers == mine

    in_partition_1 = producers_json(moldau, broker, f"{topic_name}:1")
    assert [p["current_txn_start_offset"] for p in in_partition_1] == [0]

    text = moldau("producers", f"{topic_name}:0", "-b", broker.bootstrap)
    assert text.code == 0, text.err
    header, *rows = [line.split() for line in text.out.splitlines()]
    assert header == [
        "PRODUCER-ID",
        "EPOCH",
        "COORDINATOR-EPOCH",
        "LAST-SEQUENCE",
        "LAST-TIMESTAMP",
        "TXN-START-OFFSET",
    ]
    row = next(r for r in rows if r[0] == str(described["producer_id"]))
    assert row[1] == str(described["producer_epoch"])
    assert row[5] == "2"


def test_kafka_transactions_describe_and_describe_producers(
    kafka_transactions: Runner,
    broker: BrokerProcess,
    topic_name: str,
    txn_id: str,
    open_txn: Producer,
) -> None:
    bs = ("--bootstrap-server", broker.bootstrap)
    described = kafka_transactions(*bs, "describe", "--transactional-id", txn_id)
    assert described.code == 0, described.err
    header, row = kafka_table(described.out)
    assert [h.strip() for h in header] == [
        "CoordinatorId",
        "TransactionalId",
        "ProducerId",
        "ProducerEpoch",
        "TransactionState",
        "TransactionTimeoutMs",
        "CurrentTransactionStartTimeMs",
        "TransactionDurationMs",
        "TopicPartitions",
    ]
    cells = dict(zip((h.strip() for h in header), (c.strip() for c in row), strict=True))
    assert cells["TransactionalId"] == txn_id
    assert cells["TransactionState"] == "Ongoing"
    assert cells["ProducerEpoch"] == "0"
    assert cells["TransactionTimeoutMs"] == str(TXN_TIMEOUT_MS)
    assert cells["CurrentTransactionStartTimeMs"].isdigit()
    assert cells["TopicPartitions"] == f"{topic_name}-0,{topic_name}-1"

    producers = kafka_transactions(
        *bs, "describe-producers", "--topic", topic_name, "--partition", "0"
    )
    assert producers.code == 0, producers.err
    header, *rows = kafka_table(producers.out)
    assert [h.strip() for h in header] == [
        "ProducerId",
        "ProducerEpoch",
        "LatestCoordinatorEpoch",
        "LastSequence",
        "LastTimestamp",
        "CurrentTransactionStartOffset",
    ]
    by_id = {r[0].strip(): [c.strip() for c in r] for r in rows}
    assert by_id[cells["ProducerId"]][5] == "2"
    assert all(r[5] == "None" for pid, r in by_id.items() if pid != cells["ProducerId"])

    listed = kafka_transactions(*bs, "list")
    assert listed.code == 0, listed.err
    header, *rows = kafka_table(listed.out)
    assert [h.strip() for h in header] == [
        "TransactionalId",
        "Coordinator",
        "ProducerId",
        "TransactionState",
    ]
    assert [txn_id, cells["CoordinatorId"], cells["ProducerId"], "Ongoing"] in [
        [c.strip() for c in r] for r in rows
    ]

    # nothing has run past --max-transaction-timeout (15 minutes): nothing is hanging
    hanging = kafka_transactions(*bs, "find-hanging", "--topic", topic_name)
    assert hanging.code == 0, hanging.err
    assert len(hanging.out.splitlines()) == 1
    assert hanging.out.startswith("Topic")


def test_kafka_transactions_abort_by_start_offset(
    moldau: Runner,
    kafka_transactions: Runner,
    broker: BrokerProcess,
    topic_name: str,
    txn_id: str,
    open_txn: Producer,
) -> None:
    bs = ("--bootstrap-server", broker.bootstrap)
    where = ("--topic", topic_name, "--partition", "0")
    producer_id = describe_json(moldau, broker, txn_id)["producer_id"]

    wrong = kafka_transactions(*bs, "abort", *where, "--start-offset", "99")
    assert wrong.code == 1
    assert wrong.err_lines == [
        f"Could not find any open transactions starting at offset 99 on partition {topic_name}-0"
    ]
    unnamed = kafka_transactions(*bs, "abort", *where)
    assert unnamed.code == 1
    assert len(unnamed.err_lines) == 1
    assert unnamed.err_lines[0].startswith("The transaction to abort must be identified")

    aborted = kafka_transactions(*bs, "abort", *where, "--start-offset", "2")
    assert aborted.code == 0, aborted.err
    assert aborted.out == ""
    mine = [
        p
        for p in producers_json(moldau, broker, f"{topic_name}:0")
        if p["producer_id"] == producer_id
    ]
    assert len(mine) == 1
    assert mine[0]["current_txn_start_offset"] is None
    # only partition 0 was aborted: partition 1 still has the transaction open
    assert [
        p["current_txn_start_offset"] for p in producers_json(moldau, broker, f"{topic_name}:1")
    ] == [0]


# -- after commit ----------------------------------------------------------------------------


def test_commit_completes_and_closes_the_partitions_transaction(
    moldau: Runner, broker: BrokerProcess, topic_name: str, txn_id: str, open_txn: Producer
) -> None:
    producer_id = describe_json(moldau, broker, txn_id)["producer_id"]
    open_txn.commit_transaction(WAIT_S)

    wait_until(
        lambda: describe_json(moldau, broker, txn_id)["state"] == "CompleteCommit",
        "the transaction is CompleteCommit",
    )
    document = describe_json(moldau, broker, txn_id)
    assert document["producer_id"] == producer_id
    assert document["partitions"] == []

    mine = [
        p
        for p in producers_json(moldau, broker, f"{topic_name}:0")
        if p["producer_id"] == producer_id
    ]
    assert len(mine) == 1
    assert mine[0]["current_txn_start_offset"] is None
    # the COMMIT marker was written by the coordinator: its epoch is now known
    assert mine[0]["coordinator_epoch"] is not None

    listed = moldau("txn", "list", "-s", "CompleteCommit", "-f", "json", "-b", broker.bootstrap)
    assert listed.code == 0, listed.err
    assert txn_id in [t["transactional_id"] for t in json.loads(listed.out)]


def test_a_new_transaction_after_commit_starts_at_the_log_end(
    moldau: Runner, broker: BrokerProcess, topic_name: str, txn_id: str, open_txn: Producer
) -> None:
    open_txn.commit_transaction(WAIT_S)
    open_txn.begin_transaction()
    open_txn.produce(topic_name, value=b"next", partition=0)
    assert open_txn.flush(WAIT_S) == 0
    producer_id = describe_json(moldau, broker, txn_id)["producer_id"]
    mine = [
        p
        for p in producers_json(moldau, broker, f"{topic_name}:0")
        if p["producer_id"] == producer_id
    ]
    # 2 plain records, 3 transactional records and the COMMIT marker at offset 5
    assert mine[0]["current_txn_start_offset"] == 6
    assert describe_json(moldau, broker, txn_id)["partitions"] == [
        {"topic": topic_name, "partition": 0}
    ]


# -- errors ----------------------------------------------------------------------------------


def test_unknown_transactional_id_is_one_clear_line(
    moldau: Runner, kafka_transactions: Runner, broker: BrokerProcess
) -> None:
    unknown = f"no-such-txn-{uuid.uuid4().hex[:8]}"
    result = moldau("txn", "describe", unknown, "-b", broker.bootstrap)
    assert result.code == 1
    assert result.err_lines == [f"error: transactional id '{unknown}' does not exist"]
    assert result.out == ""

    kafka = kafka_transactions(
        "--bootstrap-server", broker.bootstrap, "describe", "--transactional-id", unknown
    )
    assert kafka.code == 1
    assert kafka.err_lines == [
        f"Failed to describe transaction state of transactional-id `{unknown}`: "
        f"TransactionalId {unknown} not found. Enable debug logging for additional detail."
    ]
    assert kafka.out == ""


def test_producers_of_missing_topic_or_partition(
    moldau: Runner, broker: BrokerProcess, topic_name: str
) -> None:
    missing_topic = moldau("producers", f"{topic_name}:0", "-b", broker.bootstrap)
    assert missing_topic.code == 1
    assert missing_topic.err_lines == [f"error: topic '{topic_name}' does not exist"]

    create_topic(moldau, broker, topic_name, partitions=1)
    missing_partition = moldau("producers", f"{topic_name}:3", "-b", broker.bootstrap)
    assert missing_partition.code == 1
    assert missing_partition.err_lines == [
        f"error: partition 3 of topic '{topic_name}' does not exist"
    ]

    empty = moldau("producers", f"{topic_name}:0", "-f", "json", "-b", broker.bootstrap)
    assert empty.code == 0, empty.err
    assert json.loads(empty.out) == {"topic": topic_name, "partition": 0, "producers": []}


def test_txn_commands_with_broker_down(moldau: Runner) -> None:
    for argv in (["txn", "list"], ["txn", "describe", "x"], ["producers", "t:0"]):
        result = moldau(*argv, "-b", "127.0.0.1:1")
        assert result.code == 1
        assert len(result.err_lines) == 1
        assert result.err_lines[0].startswith("error: cannot connect to broker at 127.0.0.1:1")
