"""``moldau group …`` and ``kafka-consumer-groups`` against a real broker and real consumers.

Each test makes its own topic and group on the module's broker. Offsets are committed by a
confluent-kafka group consumer that reads a known number of records and closes; "active"
groups keep a consumer polling in a thread. Waits are bounded and never measured.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from cli_helpers import Runner, make_runner
from confluent_kafka import Consumer, Producer

from moldau.cli import kafka_tools
from moldau.cli.common import CliError
from moldau.cli.group import parse_duration, parse_topic_arg
from moldau.testing import BrokerProcess, free_port

SESSION_TIMEOUT_MS = 6000
WAIT_S = 30.0

OFFSET_HEADER = [
    "GROUP",
    "TOPIC",
    "PARTITION",
    "CURRENT-OFFSET",
    "LOG-END-OFFSET",
    "LAG",
    "CONSUMER-ID",
    "HOST",
    "CLIENT-ID",
]


@pytest.fixture
def kafka_consumer_groups(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Runner:
    return make_runner(kafka_tools.kafka_consumer_groups, capsys, monkeypatch)


@pytest.fixture
def group_name(topic_name: str) -> str:
    return f"g-{topic_name}"


# -- helpers -----------------------------------------------------------------------------


def create_topic(moldau: Runner, broker: BrokerProcess, topic: str, partitions: int = 1) -> None:
    result = moldau("topic", "create", topic, "-p", str(partitions), "-b", broker.bootstrap)
    assert result.code == 0, result.err


def produce(broker: BrokerProcess, topic: str, count: int, partition: int = 0) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "log_level": 0})
    for i in range(count):
        producer.produce(topic, value=f"v{i}".encode(), partition=partition)
    assert producer.flush(WAIT_S) == 0


def group_consumer(broker: BrokerProcess, group: str, **extra: object) -> Consumer:
    config: dict[str, object] = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "log_level": 0,
    }
    config.update(extra)
    return Consumer(config)


def consume_and_commit(broker: BrokerProcess, group: str, topic: str, count: int) -> list[int]:
    """Read ``count`` records as a member of ``group``, commit, leave; returns their offsets."""
    consumer = group_consumer(broker, group)
    consumer.subscribe([topic])
    offsets: list[int] = []
    deadline = time.monotonic() + WAIT_S
    try:
        while len(offsets) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            offsets.append(message.offset())
            if len(offsets) == count:
                consumer.commit(asynchronous=False)
        assert len(offsets) == count, f"consumed {len(offsets)} of {count} records"
    finally:
        consumer.close()
    return offsets


def first_offset_read(broker: BrokerProcess, group: str, topic: str) -> int:
    """The offset a resuming member of ``group`` starts at (it commits nothing)."""
    consumer = group_consumer(broker, group)
    consumer.subscribe([topic])
    deadline = time.monotonic() + WAIT_S
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return int(message.offset())
    finally:
        consumer.close()
    raise AssertionError("the group consumer read nothing")


@contextmanager
def active_member(broker: BrokerProcess, group: str, topic: str) -> Iterator[Consumer]:
    """A member that keeps polling in a thread until the block ends."""
    consumer = group_consumer(broker, group)
    consumer.subscribe([topic])
    stop = threading.Event()
    lock = threading.Lock()

    def poll_loop() -> None:
        while not stop.is_set():
            with lock:
                consumer.poll(0.2)

    thread = threading.Thread(target=poll_loop, daemon=True)
    thread.start()
    try:
        yield consumer
    finally:
        stop.set()
        thread.join(WAIT_S)
        consumer.close()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting until {what}")


def describe_json(moldau: Runner, broker: BrokerProcess, group: str) -> dict[str, object]:
    result = moldau("group", "describe", group, "-f", "json", "-b", broker.bootstrap)
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert isinstance(document, dict)
    return document


def group_state(moldau: Runner, broker: BrokerProcess, group: str) -> str | None:
    """The group's state, or None while the coordinator does not know the group yet."""
    result = moldau("group", "describe", group, "-f", "json", "-b", broker.bootstrap)
    return str(json.loads(result.out)["state"]) if result.code == 0 else None


def offsets_by_partition(document: dict[str, object]) -> dict[tuple[str, int], dict[str, object]]:
    rows = document["offsets"]
    assert isinstance(rows, list)
    return {(r["topic"], r["partition"]): r for r in rows}


def table(text: str, header_first: str = "GROUP") -> list[list[str]]:
    """Whitespace-split rows of the table whose header starts with ``header_first``."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    start = next(i for i, cells in enumerate(lines) if cells[:1] == [header_first])
    return lines[start:]


# -- moldau group: describe, lag -----------------------------------------------------------


def test_describe_shows_committed_offset_log_end_and_lag(
    moldau: Runner, broker: BrokerProcess, topic_name: str, group_name: str
) -> None:
    create_topic(moldau, broker, topic_name)
    produce(broker, topic_name, 10)
    assert consume_and_commit(broker, group_name, topic_name, 4) == [0, 1, 2, 3]

    described = moldau("group", "describe", group_name, "-b", broker.bootstrap)
    assert described.code == 0, described.err
    summary = dict(line.split(None, 1) for line in described.out.split("\n\n")[0].splitlines())
    assert summary["GROUP"] == group_name
    assert summary["STATE"] == "Empty"
    assert summary["MEMBERS"] == "0"
    assert summary["TOTAL-LAG"] == "6"
    header, *rows = table(described.out.split("\n\n", 1)[1])
    assert header == OFFSET_HEADER
    assert rows == [[group_name, topic_name, "0", "4", "10", "6", "-", "-", "-"]]

    # consuming more moves the committed offset; producing more moves the log end
    assert consume_and_commit(broker, group_name, topic_name, 3) == [4, 5, 6]
    produce(broker, topic_name, 5)
    row = offsets_by_partition(describe_json(moldau, broker, group_name))[(topic_name, 0)]
    assert (row["current_offset"], row["log_end_offset"], row["lag"]) == (7, 15, 8)


def test_describe_json_over_partitions(
    moldau: Runner, broker: BrokerProcess, topic_name: str, group_name: str
) -> None:
    create_topic(moldau, broker, topic_name, partitions=2)
    produce(broker, topic_name, 5, partition=0)
    produce(broker, topic_name, 3, partition=1)
    consume_and_commit(broker, group_name, topic_name, 8)
    document = describe_json(moldau, broker, group_name)
    assert document["group"] == group_name
    assert document["state"] == "Empty"
    assert document["members"] == []
    assert document["total_lag"] == 0
    rows = offsets_by_partition(document)
    assert set(rows) == {(topic_name, 0), (topic_name, 1)}
    assert [rows[(topic_name, p)]["current_offset"] for p in (0, 1)] == [5, 3]
    assert [rows[(topic_name, p)]["log_end_offset"] for p in (0, 1)] == [5, 3]
    assert all(r["consumer_id"] is None for r in rows.values())

    produce(broker, topic_name, 4, partition=1)
    assert describe_json(moldau, broker, group_name)["total_lag"] == 4


def test_list_includes_group_and_filters_by_state(
    moldau: Runner, broker: BrokerProcess, topic_name: str, group_name: str
) -> None:
    create_topic(moldau, broker, topic_name)
    produce(broker, topic_name, 2)
    consume_and_commit(broker, group_name, topic_name, 2)
    b = ("-b", broker.bootstrap)

    listed = moldau("group", "list", *b)
    assert listed.code == 0, listed.err
    assert [group_name, "Empty"] in table(listed.out)[1:]
    empty = json.loads(moldau("group", "list", "--state", "empty", "-f", "json", *b).out)
    assert {"group": group_name, "state": "Empty", "simple": False} in empty
    stable = json.loads(moldau("group", "list", "--state", "Stable", "-f", "json", *b).out)
    assert group_name not in [g["group"] for g in stable]

    bad = moldau("group", "list", "--state", "Sleepy", *b)
    assert bad.code == 2
    assert len(bad.err_lines) == 1 and "invalid group state 'Sleepy'" in bad.err


def test_describe_unknown_group_is_one_line(
    moldau: Runner, broker: BrokerProcess, group_name: str
) -> None:
    result = moldau("group", "describe", group_name, "-b", broker.bootstrap)
    assert result.code == 1
    assert result.err_lines == [f"error: consumer group '{group_name}' does not exist"]
    assert result.out == ""


# -- moldau group: reset-offsets ---------------------------------------------------------


def test_reset_offsets_previews_then_executes(
    moldau: Runner, broker: BrokerProcess, topic_name: str, group_name: str
) -> None:
    create_topic(moldau, broker, topic_name)
    produce(broker, topic_name, 10)
    consume_and_commit(broker, group_name, topic_name, 4)
    reset = ("group", "reset-offsets", group_name, "-b", broker.bootstrap)

    preview = moldau(*reset, "--topic", topic_name, "--to-earliest")
    assert preview.code == 0, preview.err
    assert table(preview.out) == [
        ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
        [group_name, topic_name, "0", "0"],
    ]
    assert "--execute" in preview.err  # says nothing was changed
    assert (
        offsets_by_partition(describe_json(moldau, broker, group_name))[(topic_name, 0)][
            "current_offset"
        ]
        == 4
    )

    executed = moldau(*reset, "--topic", f"{topic_name}:0", "--to-offset", "2", "--execute")
    assert executed.code == 0, executed.err
    assert table(executed.out)[1] == [group_name, topic_name, "0", "2"]
    assert first_offset_read(broker, group_name, topic_name) == 2

    def new_offset(*how: str) -> int:
        result = moldau(*reset, "--all-topics", *how, "-f", "json")
        assert result.code == 0, result.err
        document = json.loads(result.out)
        assert document["executed"] is False
        (entry,) = document["offsets"]
        return int(entry["offset"])

    assert new_offset("--shift-by", "3") == 5
    assert new_offset("--shift-by", "-50") == 0  # clamped to the log start offset
    assert new_offset("--to-offset", "99") == 10  # clamped to the log end offset
    assert new_offset("--to-latest") == 10
    assert new_offset("--to-current") == 2
    assert new_offset("--to-datetime", "2000-01-01T00:00:00.000Z") == 0
    assert new_offset("--to-datetime", "2999-01-01T00:00:00.000Z") == 10  # none that late
    assert new_offset("--by-duration", "P1D") == 0


def test_reset_offsets_refused_while_group_is_active(
    moldau: Runner,
    kafka_consumer_groups: Runner,
    broker: BrokerProcess,
    topic_name: str,
    group_name: str,
) -> None:
    create_topic(moldau, broker, topic_name, partitions=2)
    produce(broker, topic_name, 3)
    with active_member(broker, group_name, topic_name):

        def stable() -> bool:
            if group_state(moldau, broker, group_name) is None:
                return False
            document = describe_json(moldau, broker, group_name)
            members = document["members"]
            return (
                document["state"] == "Stable"
                and isinstance(members, list)
                and (len(members) == 1 and len(members[0]["assignment"]) == 2)
            )

        wait_until(stable, "the member owns both partitions")
        refused = moldau(
            "group",
            "reset-offsets",
            group_name,
            "--all-topics",
            "--to-earliest",
            "--execute",
            "-b",
            broker.bootstrap,
        )
        assert refused.code == 1
        assert refused.err_lines == [
            f"error: Assignments can only be reset if the group '{group_name}' is inactive, "
            "but the current state is Stable."
        ]

        kafka = kafka_consumer_groups(
            "--bootstrap-server",
            broker.bootstrap,
            "--reset-offsets",
            "--group",
            group_name,
            "--topic",
            topic_name,
            "--to-earliest",
            "--execute",
        )
        assert kafka.code == 1
        assert kafka.err_lines == [
            f"Error: Assignments can only be reset if the group '{group_name}' is inactive, "
            "but the current state is Stable."
        ]

        # an active group shows its member on every partition it owns
        described = moldau("group", "describe", group_name, "-b", broker.bootstrap)
        header, *rows = table(described.out.split("\n\n", 1)[1])
        assert header == OFFSET_HEADER
        assert [r[2] for r in rows] == ["0", "1"]
        assert all(r[6] != "-" for r in rows)

        members = moldau("group", "describe", group_name, "--members", "-b", broker.bootstrap)
        header, *rows = table(members.out.split("\n\n", 1)[1])
        assert header == ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]
        assert len(rows) == 1 and rows[0][0] == group_name and rows[0][-1] == "2"

        kafka_members = kafka_consumer_groups(
            "--bootstrap-server",
            broker.bootstrap,
            "--describe",
            "--group",
            group_name,
            "--members",
        )
        assert kafka_members.code == 0, kafka_members.err
        lines = kafka_members.out.split("\n")
        assert lines[0] == ""  # Kafka starts every table with an empty line
        assert lines[1].split() == ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]
        (row,) = [line.split() for line in lines[2:] if line.strip()]
        assert row[0] == group_name and row[-1] == "2"

        verbose = kafka_consumer_groups(
            "--bootstrap-server",
            broker.bootstrap,
            "--describe",
            "--group",
            group_name,
            "--members",
            "--verbose",
        )
        assert "CURRENT-ASSIGNMENT" in verbose.out
        assert f"{topic_name}:0,1" in verbose.out


# -- moldau group: delete ----------------------------------------------------------------


def test_delete_group(
    moldau: Runner, broker: BrokerProcess, topic_name: str, group_name: str
) -> None:
    create_topic(moldau, broker, topic_name)
    produce(broker, topic_name, 2)
    consume_and_commit(broker, group_name, topic_name, 2)
    b = ("-b", broker.bootstrap)

    deleted = moldau("group", "delete", group_name, *b)
    assert deleted.code == 0, deleted.err
    assert deleted.out == f"Deleted consumer group {group_name}.\n"
    assert moldau("group", "describe", group_name, *b).code == 1
    groups = json.loads(moldau("group", "list", "-f", "json", *b).out)
    assert group_name not in [g["group"] for g in groups]

    again = moldau("group", "delete", group_name, *b)
    assert again.code == 1
    assert again.err_lines == [f"error: consumer group '{group_name}' does not exist"]


# -- kafka-consumer-groups ---------------------------------------------------------------


def test_kafka_consumer_groups_list_and_describe(
    moldau: Runner,
    kafka_consumer_groups: Runner,
    broker: BrokerProcess,
    topic_name: str,
    group_name: str,
) -> None:
    create_topic(moldau, broker, topic_name)
    produce(broker, topic_name, 10)
    consume_and_commit(broker, group_name, topic_name, 4)
    bs = ("--bootstrap-server", broker.bootstrap)

    listed = kafka_consumer_groups(*bs, "--list")
    assert listed.code == 0, listed.err
    assert group_name in listed.out.splitlines()

    with_state = kafka_consumer_groups(*bs, "--list", "--state")
    lines = with_state.out.splitlines()
    assert lines[0].split() == ["GROUP", "STATE"]
    assert [group_name, "Empty"] in [line.split() for line in lines[1:]]

    described = kafka_consumer_groups(*bs, "--describe", "--group", group_name)
    assert described.code == 0, described.err
    assert described.err_lines == [f"Consumer group '{group_name}' has no active members."]
    lines = described.out.split("\n")
    assert lines[0] == ""
    assert lines[1].split() == OFFSET_HEADER
    assert lines[2].split() == [group_name, topic_name, "0", "4", "10", "6", "-", "-", "-"]
    # Kafka's fixed layout: %-15s columns, PARTITION %-10s
    assert lines[1].index("TOPIC") == max(15, len(group_name)) + 1

    state = kafka_consumer_groups(*bs, "--describe", "--group", group_name, "--state")
    assert state.code == 0, state.err
    header, row = (line.split() for line in state.out.strip().splitlines())
    assert header == ["GROUP", "COORDINATOR", "(ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"]
    assert row[0] == group_name and row[-2:] == ["Empty", "0"]

    every = kafka_consumer_groups(*bs, "--describe", "--all-groups")
    assert every.code == 0, every.err
    assert any(
        line.split()[:2] == [group_name, topic_name]
        for line in every.out.splitlines()
        if line.strip()
    )


def test_kafka_consumer_groups_reset_offsets(
    moldau: Runner,
    kafka_consumer_groups: Runner,
    broker: BrokerProcess,
    topic_name: str,
    group_name: str,
) -> None:
    create_topic(moldau, broker, topic_name)
    produce(broker, topic_name, 10)
    consume_and_commit(broker, group_name, topic_name, 4)
    base = ("--bootstrap-server", broker.bootstrap, "--reset-offsets", "--group", group_name)

    planned = kafka_consumer_groups(*base, "--topic", topic_name, "--to-earliest")
    assert planned.code == 0, planned.err
    assert planned.err_lines[0].startswith("WARN: No action will be performed")
    lines = planned.out.split("\n")
    assert lines[0] == ""
    assert lines[1].split() == ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]
    assert lines[2].split() == [group_name, topic_name, "0", "0"]

    dry = kafka_consumer_groups(*base, "--all-topics", "--shift-by", "-1", "--dry-run")
    assert dry.code == 0 and dry.err == ""
    assert dry.out.split("\n")[2].split() == [group_name, topic_name, "0", "3"]
    row = offsets_by_partition(describe_json(moldau, broker, group_name))[(topic_name, 0)]
    assert row["current_offset"] == 4  # neither run changed anything

    exported = kafka_consumer_groups(*base, "--all-topics", "--to-latest", "--dry-run", "--export")
    assert exported.out == f"{topic_name},0,10\n\n"

    executed = kafka_consumer_groups(*base, "--all-topics", "--to-offset", "7", "--execute")
    assert executed.code == 0, executed.err
    row = offsets_by_partition(describe_json(moldau, broker, group_name))[(topic_name, 0)]
    assert (row["current_offset"], row["lag"]) == (7, 3)


def test_kafka_consumer_groups_delete_offsets_and_delete(
    moldau: Runner,
    kafka_consumer_groups: Runner,
    broker: BrokerProcess,
    topic_name: str,
    group_name: str,
) -> None:
    other = f"{topic_name}-other"
    for topic in (topic_name, other):
        create_topic(moldau, broker, topic)
        produce(broker, topic, 3)
        consume_and_commit(broker, group_name, topic, 3)
    bs = ("--bootstrap-server", broker.bootstrap)

    removed = kafka_consumer_groups(
        *bs, "--delete-offsets", "--group", group_name, "--topic", topic_name
    )
    assert removed.code == 0, removed.err
    lines = removed.out.split("\n")
    assert lines[0] == f"Request succeeded for deleting offsets from group {group_name}."
    assert lines[1] == ""
    assert lines[2].split() == ["TOPIC", "PARTITION", "STATUS"]
    assert lines[3].split() == [topic_name, "0", "Successful"]
    rows = offsets_by_partition(describe_json(moldau, broker, group_name))
    assert set(rows) == {(other, 0)}

    deleted = kafka_consumer_groups(*bs, "--delete", "--group", group_name)
    assert deleted.code == 0, deleted.err
    assert (
        deleted.out == f"Deletion of requested consumer groups ('{group_name}') was successful.\n"
    )

    missing = kafka_consumer_groups(*bs, "--describe", "--group", group_name)
    assert missing.code == 1
    assert missing.err_lines == [f"Error: Consumer group '{group_name}' does not exist."]


def test_kafka_consumer_groups_delete_refused_for_active_group(
    moldau: Runner,
    kafka_consumer_groups: Runner,
    broker: BrokerProcess,
    topic_name: str,
    group_name: str,
) -> None:
    create_topic(moldau, broker, topic_name)
    with active_member(broker, group_name, topic_name):
        wait_until(lambda: group_state(moldau, broker, group_name) == "Stable", "it is Stable")
        refused = kafka_consumer_groups(
            "--bootstrap-server", broker.bootstrap, "--delete", "--group", group_name
        )
        assert refused.code == 1
        assert refused.err_lines == [
            f"Error: Group '{group_name}' could not be deleted due to: The group is not empty."
        ]
        plain = moldau("group", "delete", group_name, "-b", broker.bootstrap)
        assert plain.code == 1
        assert plain.err_lines == [
            f"error: consumer group '{group_name}' is not empty: it still has active members"
        ]


# -- errors without a broker -------------------------------------------------------------


def test_broker_down_is_one_line(moldau: Runner, kafka_consumer_groups: Runner) -> None:
    address = f"127.0.0.1:{free_port()}"
    plain = moldau("group", "list", "-b", address)
    assert plain.code == 1
    assert len(plain.err_lines) == 1
    assert plain.err_lines[0].startswith(f"error: cannot connect to broker at {address}")
    kafka = kafka_consumer_groups("--bootstrap-server", address, "--describe", "--group", "g")
    assert kafka.code == 1
    assert len(kafka.err_lines) == 1 and "cannot connect to broker" in kafka.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--bootstrap-server", "h:1"],
            "Command must include exactly one action: --list, --describe, --delete, "
            "--reset-offsets, --delete-offsets, --validate-regex",
        ),
        (["--list"], 'Missing required argument "[bootstrap-server]"'),
        (
            ["--bootstrap-server", "h:1", "--describe"],
            "Option [describe] takes one of these options: [group], [all-groups]",
        ),
        (
            ["--bootstrap-server", "h:1", "--describe", "--group", "g", "--members", "--state"],
            "Option [describe] takes at most one of these options: [members], [offsets], [state]",
        ),
        (
            ["--bootstrap-server", "h:1", "--delete", "--group", "g", "--topic", "t"],
            "The consumer does not support topic-specific offset deletion from a consumer group.",
        ),
        (
            ["--bootstrap-server", "h:1", "--delete-offsets", "--group", "g"],
            "Option [delete-offsets] takes the following options: [group], [topic]",
        ),
        (
            [
                "--bootstrap-server",
                "h:1",
                "--reset-offsets",
                "--group",
                "g",
                "--dry-run",
                "--execute",
            ],
            "Option [reset-offsets] only accepts one of [execute] and [dry-run]",
        ),
        (
            [
                "--bootstrap-server",
                "h:1",
                "--reset-offsets",
                "--group",
                "g",
                "--all-topics",
                "--to-earliest",
                "--to-latest",
                "--dry-run",
            ],
            'Option "[to-earliest]" can\'t be used with option "[to-latest]"',
        ),
        (
            ["--bootstrap-server", "h:1", "--list", "--group", "g"],
            'Option "[group]" can\'t be used with option "[list]"',
        ),
        (
            ["--bootstrap-server", "h:1", "--list", "--shift-by", "x"],
            "argument --shift-by: invalid int value: 'x'",
        ),
    ],
)
def test_kafka_consumer_groups_usage_errors(
    kafka_consumer_groups: Runner, args: list[str], message: str
) -> None:
    result = kafka_consumer_groups(*args)
    assert result.code == 1
    assert result.err_lines == [message]
    assert result.out == ""


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--all-topics"], "say where to move the offsets"),
        (["--all-topics", "--to-earliest", "--to-latest"], "only one of the reset scenarios"),
        (["--to-earliest"], "either --topic"),
        (["--topic", "t", "--all-topics", "--to-earliest"], "either --topic"),
        (["--topic", "t", "--to-datetime", "yesterday"], "invalid datetime 'yesterday'"),
        (["--topic", "t", "--by-duration", "1h"], "invalid duration '1h'"),
    ],
)
def test_moldau_reset_offsets_usage_errors(moldau: Runner, args: list[str], fragment: str) -> None:
    # checked before connecting: the bootstrap address is never dialled
    result = moldau("group", "reset-offsets", "g", *args, "-b", f"127.0.0.1:{free_port()}")
    assert result.code == 2
    assert len(result.err_lines) == 1 and fragment in result.err


def test_validate_regex(kafka_consumer_groups: Runner) -> None:
    ok = kafka_consumer_groups("--bootstrap-server", "h:1", "--validate-regex", "orders-.*")
    assert ok.code == 0 and ok.out == "The regular expression `orders-.*` is valid.\n"
    bad = kafka_consumer_groups("--bootstrap-server", "h:1", "--validate-regex", "(")
    assert bad.out.startswith("The regular expression `(` is invalid: ")


def test_parse_topic_arg() -> None:
    assert parse_topic_arg("orders") == ("orders", None)
    assert parse_topic_arg("orders:0,2") == ("orders", [0, 2])
    for bad in ("orders:x", "a:b:c", ":1"):
        with pytest.raises(CliError):
            parse_topic_arg(bad)


def test_parse_duration() -> None:
    assert parse_duration("PT1H30M").total_seconds() == 5400
    assert parse_duration("P1DT0.5S").total_seconds() == 86400.5
    assert parse_duration("-PT10S").total_seconds() == -10
    for bad in ("P", "PT", "1H", "P1H"):
        with pytest.raises(CliError):
            parse_duration(bad)
