"""``moldau group …``: list, describe (offsets and lag), delete and reset consumer groups.

Two layers in one module, because both front ends need the second:

* **Group operations** — :func:`offset_rows` (committed offset, log end offset and lag per
  partition, the way Kafka's ``ConsumerGroupCommand`` builds them) and
  :func:`reset_group_offsets` (Kafka's ``GroupOffsetsResetter``: choose partitions, compute
  new offsets, clamp them to the log, refuse while the group is active, commit only when
  asked). ``kafka-consumer-groups`` (``kafka_consumer_groups_tool.py``) prints the same data
  in Kafka's layout, so the two tools can only differ in how they print.
* **The typer commands** — parse flags, call the above, render text or JSON.

Lag follows Kafka: LOG-END-OFFSET is the high watermark (ListOffsets ``latest``, read
uncommitted), LAG is log end minus the committed offset, and ``-`` where either is unknown.
Rows come first for members (most partitions first, each member's partitions in order), then
for partitions that have a committed offset but no owner.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

import typer
from confluent_kafka import KafkaError

from moldau.cli.admin import (
    AdminSession,
    CommittedOffset,
    GroupDescription,
    TopicPartitionKey,
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

INACTIVE_STATES = frozenset({"Empty", "Dead"})
"""Kafka resets offsets only in these states: no member could overwrite the new offsets."""

MISSING = "-"


# -- offsets and lag ---------------------------------------------------------------------


@dataclass(frozen=True)
class OffsetRow:
    """One row of ``describe``: a partition the group owns or has committed an offset for.

    ``consumer_id``/``host``/``client_id`` are None for a partition no member owns.
    """

    group: str
    topic: str
    partition: int
    current_offset: int | None
    log_end_offset: int | None
    lag: int | None
    consumer_id: str | None
    host: str | None
    client_id: str | None
    leader_epoch: int | None = None


def offset_rows(
    session: AdminSession,
    description: GroupDescription,
    committed: Mapping[TopicPartitionKey, CommittedOffset],
) -> list[OffsetRow]:
    """Kafka's describe rows: members' partitions first, then committed-but-unowned ones."""
    owners = sorted(
        (m for m in description.members if m.assignment), key=lambda m: -len(m.assignment)
    )
    owned = {tp for m in owners for tp in m.assignment}
    unowned = sorted(tp for tp in committed if tp not in owned)
    log_ends = session.partition_offsets([*owned, *unowned], "latest")

    def row(
        tp: TopicPartitionKey, consumer: str | None, host: str | None, client: str | None
    ) -> OffsetRow:
        commit = committed.get(tp)
        current = commit.offset if commit is not None else None
        end = log_ends.get(tp)
        lag = end - current if current is not None and end is not None else None
        epoch = commit.leader_epoch if commit is not None else None
        return OffsetRow(
            description.group_id, tp[0], tp[1], current, end, lag, consumer, host, client, epoch
        )

    rows = [row(tp, m.member_id, m.host, m.client_id) for m in owners for tp in m.assignment]
    rows += [row(tp, None, None, None) for tp in unowned]
    return rows


def total_lag(rows: Iterable[OffsetRow]) -> int:
    return sum(r.lag for r in rows if r.lag is not None)


def describe_one(session: AdminSession, group_id: str) -> GroupDescription:
    """The group's description, or a CliError if the coordinator does not know it."""
    (description,) = session.describe_groups([group_id])
    if not description.exists:
        raise CliError(f"consumer group '{group_id}' does not exist")
    return description


# -- resetting offsets -------------------------------------------------------------------


class ResetKind(StrEnum):
    """How new offsets are chosen (Kafka's reset "scenarios")."""

    earliest = "to-earliest"
    latest = "to-latest"
    offset = "to-offset"
    shift = "shift-by"
    timestamp = "to-datetime"  # also --by-duration: both end as a timestamp in ms
    current = "to-current"
    plan = "from-file"


@dataclass(frozen=True)
class ResetStrategy:
    """A scenario and its argument: the offset, the shift, or the timestamp in ms."""

    kind: ResetKind
    value: int | None = None
    planned: Mapping[TopicPartitionKey, int] = field(default_factory=dict)


@dataclass
class ResetPlan:
    """New offsets per partition, what was worth a warning, and whether they were committed."""

    group_id: str
    offsets: dict[TopicPartitionKey, int]
    warnings: list[str] = field(default_factory=list)
    executed: bool = False


def parse_topic_arg(arg: str) -> tuple[str, list[int] | None]:
    """``topic`` or ``topic:0,1,2`` (Kafka's ``--topic`` for reset-offsets and delete-offsets)."""
    if ":" not in arg:
        return arg, None
    parts = arg.split(":")
    if len(parts) != 2 or not parts[0]:
        raise CliError(f"Invalid topic arg '{arg}', expected topic name and partitions", 2)
    topic, partitions = parts
    numbers: list[int] = []
    for text in partitions.split(","):
        if not text.strip().isdigit():
            raise CliError(f"Invalid partition '{text}' specified in topic arg '{arg}'", 2)
        numbers.append(int(text))
    return topic, numbers


def resolve_partitions(session: AdminSession, topic_args: Sequence[str]) -> list[TopicPartitionKey]:
    """The partitions ``--topic`` arguments name; every one must exist (as Kafka checks)."""
    parsed = [parse_topic_arg(a) for a in topic_args]
    names = sorted({topic for topic, _ in parsed})
    topics = session.describe_topics(names, with_configs=False)
    layout = {t.name: {p.partition for p in t.partitions} for t in topics}
    chosen: list[TopicPartitionKey] = []
    for topic, partitions in parsed:
        chosen += [
            (topic, p) for p in (sorted(layout[topic]) if partitions is None else partitions)
        ]
    missing = [tp for tp in chosen if tp[1] not in layout[tp[0]]]
    if missing:
        names_text = ",".join(f"{t}-{p}" for t, p in missing)
        raise CliError(f'The partitions "{names_text}" do not exist', code=3)
    return sorted(set(chosen))


def ensure_inactive(description: GroupDescription) -> None:
    if description.state not in INACTIVE_STATES:
        raise CliError(
            f"Assignments can only be reset if the group '{description.group_id}' is inactive, "
            f"but the current state is {description.state}."
        )


def plan_reset(
    session: AdminSession,
    group_id: str,
    partitions: Sequence[TopicPartitionKey],
    strategy: ResetStrategy,
    committed: Mapping[TopicPartitionKey, CommittedOffset],
) -> ResetPlan:
    """New offsets for ``partitions`` (Kafka's GroupOffsetsResetter), clamped to the log."""
    plan = ResetPlan(group_id, {})
    kind = strategy.kind
    if kind in (ResetKind.earliest, ResetKind.latest):
        spec = "earliest" if kind is ResetKind.earliest else "latest"
        found = session.partition_offsets(partitions, spec)
        for tp in partitions:
            if tp not in found:
                which = "starting" if spec == "earliest" else "ending"
                raise CliError(f"Error getting {which} offset of topic partition: {tp[0]}-{tp[1]}")
            plan.offsets[tp] = found[tp]
    elif kind is ResetKind.timestamp:
        assert strategy.value is not None
        found = session.partition_offsets(partitions, strategy.value)
        ends = session.partition_offsets(partitions, "latest")
        for tp in partitions:
            offset = found.get(tp, -1)
            if offset < 0:
                plan.warnings.append(
                    f"Warn: Partition {tp[1]} from topic {tp[0]} is empty. "
                    "Falling back to latest known offset."
                )
                if tp not in ends:
                    raise CliError(f"Error getting offset by timestamp of topic partition: {tp}")
                offset = ends[tp]
            plan.offsets[tp] = offset
    elif kind is ResetKind.current:
        without = [tp for tp in partitions if tp not in committed]
        ends = session.partition_offsets(without, "latest")
        for tp in partitions:
            if tp in committed:
                plan.offsets[tp] = committed[tp].offset
            elif tp in ends:
                plan.offsets[tp] = ends[tp]
            else:
                raise CliError(f"Error getting ending offset of topic partition: {tp[0]}-{tp[1]}")
    else:
        requested: dict[TopicPartitionKey, int] = {}
        for tp in partitions:
            if kind is ResetKind.offset:
                assert strategy.value is not None
                requested[tp] = strategy.value
            elif kind is ResetKind.shift:
                assert strategy.value is not None
                if tp not in committed:
                    raise CliError(
                        f"Cannot shift offset for partition {tp[0]}-{tp[1]} since there is no "
                        "current committed offset"
                    )
                requested[tp] = committed[tp].offset + strategy.value
            else:
                requested[tp] = strategy.planned[tp]
        plan.offsets = _clamp(session, requested, plan.warnings)
    plan.offsets = dict(sorted(plan.offsets.items()))
    return plan


def _clamp(
    session: AdminSession, requested: Mapping[TopicPartitionKey, int], warnings: list[str]
) -> dict[TopicPartitionKey, int]:
    """Keep each offset within [log start offset, log end offset], warning when moved."""
    starts = session.partition_offsets(requested, "earliest")
    ends = session.partition_offsets(requested, "latest")
    clamped: dict[TopicPartitionKey, int] = {}
    for tp, offset in requested.items():
        name = f"{tp[0]}-{tp[1]}"
        if tp in ends and offset > ends[tp]:
            warnings.append(
                f"New offset ({offset}) is higher than latest offset for topic partition "
                f"{name}. Value will be set to {ends[tp]}."
            )
            offset = ends[tp]
        elif tp in starts and offset < starts[tp]:
            warnings.append(
                f"New offset ({offset}) is lower than earliest offset for topic partition "
                f"{name}. Value will be set to {starts[tp]}."
            )
            offset = starts[tp]
        clamped[tp] = offset
    return clamped


def reset_group_offsets(
    session: AdminSession,
    group_id: str,
    *,
    topic_args: Sequence[str],
    all_topics: bool,
    strategy: ResetStrategy,
    execute: bool,
) -> ResetPlan:
    """Plan (and with ``execute`` commit) new offsets; refused while the group is active.

    ``all_topics`` means every partition the group has committed offsets for (Kafka's
    ``--all-topics``); a plan from a file names its own partitions.
    """
    (description,) = session.describe_groups([group_id])
    ensure_inactive(description)
    committed = session.committed_offsets(group_id)
    if strategy.kind is ResetKind.plan:
        partitions = sorted(strategy.planned)
    elif all_topics:
        partitions = sorted(committed)
    else:
        partitions = resolve_partitions(session, topic_args)
    plan = plan_reset(session, group_id, partitions, strategy, committed)
    if execute:
        session.alter_group_offsets(group_id, plan.offsets)
        plan.executed = True
    return plan


_DURATION = re.compile(
    r"([-+]?)P(?:([-+]?\d+)D)?"
    r"(?:T(?:([-+]?\d+)H)?(?:([-+]?\d+)M)?(?:([-+]?\d+)(?:[.,](\d{0,9}))?S)?)?",
    re.IGNORECASE,
)


def parse_duration(text: str) -> timedelta:
    """An ISO-8601 duration as Java's ``Duration.parse`` reads it: ``PnDTnHnMn.nS``."""
    match = _DURATION.fullmatch(text.strip())
    if not match or text.strip().upper().endswith("T") or text.strip().upper() in ("P", "-P"):
        raise CliError(f"invalid duration '{text}': expected PnDTnHnMnS, e.g. PT1H30M", 2)
    sign, days, hours, minutes, seconds, fraction = match.groups()
    total = timedelta(
        days=int(days or 0),
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        seconds=int(seconds or 0),
    )
    if fraction:
        frac = timedelta(microseconds=int(fraction.ljust(9, "0")[:6]))
        total += -frac if (seconds or "").startswith("-") else frac
    return -total if sign == "-" else total


def parse_datetime_ms(text: str) -> int:
    """``YYYY-MM-DDTHH:mm:SS.sss`` with an optional zone (``Z``, ``+01:00``) as epoch ms.

    Without a zone the time is local, as in Kafka's tools.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(
            f"invalid datetime '{text}': expected YYYY-MM-DDTHH:mm:SS.sss, optionally with a "
            "time zone such as Z or +01:00",
            2,
        ) from None
    return int(moment.timestamp() * 1000)


def strategy_from_flags(
    *,
    to_earliest: bool = False,
    to_latest: bool = False,
    to_current: bool = False,
    to_offset: int | None = None,
    shift_by: int | None = None,
    to_datetime: str | None = None,
    by_duration: str | None = None,
) -> ResetStrategy | None:
    """The one scenario the flags ask for; None if none; a CliError if several."""
    chosen: list[ResetStrategy] = []
    if to_earliest:
        chosen.append(ResetStrategy(ResetKind.earliest))
    if to_latest:
        chosen.append(ResetStrategy(ResetKind.latest))
    if to_current:
        chosen.append(ResetStrategy(ResetKind.current))
    if to_offset is not None:
        chosen.append(ResetStrategy(ResetKind.offset, to_offset))
    if shift_by is not None:
        chosen.append(ResetStrategy(ResetKind.shift, shift_by))
    if to_datetime is not None:
        chosen.append(ResetStrategy(ResetKind.timestamp, parse_datetime_ms(to_datetime)))
    if by_duration is not None:
        since = datetime.now().astimezone() - parse_duration(by_duration)
        chosen.append(ResetStrategy(ResetKind.timestamp, int(since.timestamp() * 1000)))
    if len(chosen) > 1:
        raise CliError("give only one of the reset scenarios (e.g. --to-earliest)", 2)
    return chosen[0] if chosen else None


# -- rendering ---------------------------------------------------------------------------


def columns(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Left-aligned columns two spaces apart; None prints as ``-`` (as Kafka's tools do)."""
    cells = [list(header)] + [[MISSING if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]


OFFSET_HEADER = (
    "GROUP",
    "TOPIC",
    "PARTITION",
    "CURRENT-OFFSET",
    "LOG-END-OFFSET",
    "LAG",
    "CONSUMER-ID",
    "HOST",
    "CLIENT-ID",
)


def offset_cells(r: OffsetRow) -> tuple[object, ...]:
    return (
        r.group,
        r.topic,
        r.partition,
        r.current_offset,
        r.log_end_offset,
        r.lag,
        r.consumer_id,
        r.host,
        r.client_id,
    )


def group_document(description: GroupDescription, rows: Sequence[OffsetRow]) -> dict[str, object]:
    """The JSON shape of ``group describe``."""
    coordinator = description.coordinator
    return {
        "group": description.group_id,
        "state": description.state,
        "protocol_type": description.protocol_type,
        "assignor": description.partition_assignor,
        "coordinator": asdict(coordinator) if coordinator else None,
        "members": [
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "host": m.host,
                "assignment": [{"topic": t, "partition": p} for t, p in m.assignment],
            }
            for m in description.members
        ],
        "offsets": [{k: v for k, v in asdict(r).items() if k != "group"} for r in rows],
        "total_lag": total_lag(rows),
    }


def _summary(description: GroupDescription, rows: Sequence[OffsetRow]) -> list[str]:
    protocol = description.protocol_type or "(simple)"
    if description.partition_assignor:
        protocol += f" ({description.partition_assignor})"
    node = description.coordinator
    pairs = [
        ("GROUP", description.group_id),
        ("STATE", description.state),
        ("PROTOCOL", protocol),
        ("MEMBERS", str(len(description.members))),
        ("COORDINATOR", f"{node.node_id} ({node.host}:{node.port})" if node else MISSING),
        ("TOTAL-LAG", str(total_lag(rows))),
    ]
    width = max(len(k) for k, _ in pairs)
    return [f"{k.ljust(width)}  {v}" for k, v in pairs]


def _print(lines: Iterable[str]) -> None:
    for line in lines:
        print(line)


# -- typer commands ----------------------------------------------------------------------

app = typer.Typer(
    help="List, describe (offsets and lag), delete and reset consumer groups.",
    no_args_is_help=True,
)

GroupArgument = Annotated[str, typer.Argument(help="Consumer group id.", show_default=False)]


@app.command("list")
def list_(
    state: Annotated[
        list[str] | None,
        typer.Option("--state", "-s", help="Only groups in this state, e.g. Stable (repeatable)."),
    ] = None,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """List consumer groups with their state."""
    states = [s for item in state or [] for s in item.split(",") if s.strip()]
    groups = AdminSession(bootstrap, timeout_ms).list_groups(states)
    if output is OutputFormat.json:
        print_json([{"group": g.group_id, "state": g.state, "simple": g.is_simple} for g in groups])
    elif groups:
        _print(columns(("GROUP", "STATE"), ((g.group_id, g.state) for g in groups)))


@app.command("describe")
def describe(
    group: GroupArgument,
    members: Annotated[
        bool, typer.Option("--members", help="Show members instead of partitions.")
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """State, members, and per partition the committed offset, log end offset and lag."""
    session = AdminSession(bootstrap, timeout_ms)
    description = describe_one(session, group)
    rows = offset_rows(session, description, session.committed_offsets(group))
    if output is OutputFormat.json:
        print_json(group_document(description, rows))
        return
    _print(_summary(description, rows))
    print()
    if members:
        with_instance = any(m.group_instance_id for m in description.members)
        header = ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]
        if with_instance:
            header.insert(2, "GROUP-INSTANCE-ID")
        member_rows = []
        for m in description.members:
            cells: list[object] = [group, m.member_id, m.host, m.client_id, len(m.assignment)]
            if with_instance:
                cells.insert(2, m.group_instance_id)
            member_rows.append(cells)
        _print(columns(header, member_rows))
    else:
        _print(columns(OFFSET_HEADER, (offset_cells(r) for r in rows)))


@app.command("delete")
def delete(
    group: GroupArgument,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Delete a group and its committed offsets; only a group without members can go."""
    error = AdminSession(bootstrap, timeout_ms).delete_groups([group])[group]
    if error is not None:
        raise _group_error(group, error)
    if output is OutputFormat.json:
        print_json({"group": group, "deleted": True})
    else:
        print(f"Deleted consumer group {group}.")


@app.command("reset-offsets")
def reset_offsets(
    group: GroupArgument,
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", "-t", help="TOPIC or TOPIC:P1,P2 (repeatable)."),
    ] = None,
    all_topics: Annotated[
        bool, typer.Option("--all-topics", help="Every partition the group has committed.")
    ] = False,
    to_earliest: Annotated[bool, typer.Option("--to-earliest", help="Log start offset.")] = False,
    to_latest: Annotated[bool, typer.Option("--to-latest", help="Log end offset.")] = False,
    to_current: Annotated[
        bool, typer.Option("--to-current", help="The committed offset (log end if none).")
    ] = False,
    to_offset: Annotated[int | None, typer.Option("--to-offset", help="This offset.")] = None,
    shift_by: Annotated[
        int | None, typer.Option("--shift-by", help="Committed offset plus N (N may be < 0).")
    ] = None,
    to_datetime: Annotated[
        str | None,
        typer.Option("--to-datetime", help="First offset at or after an ISO-8601 time."),
    ] = None,
    by_duration: Annotated[
        str | None, typer.Option("--by-duration", help="As --to-datetime, now minus PnDTnHnMnS.")
    ] = None,
    execute: Annotated[
        bool, typer.Option("--execute", help="Commit the new offsets (default: preview).")
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Preview, or with --execute commit, new offsets for an inactive group.

    Offsets are kept within the log (log start offset to log end offset).
    """
    strategy = strategy_from_flags(
        to_earliest=to_earliest,
        to_latest=to_latest,
        to_current=to_current,
        to_offset=to_offset,
        shift_by=shift_by,
        to_datetime=to_datetime,
        by_duration=by_duration,
    )
    if strategy is None:
        raise CliError(
            "say where to move the offsets: --to-earliest, --to-latest, --to-current, "
            "--to-offset N, --shift-by N, --to-datetime ISO8601 or --by-duration PnDTnHnMnS",
            2,
        )
    if bool(topic) == all_topics:
        raise CliError("give either --topic TOPIC[:PARTITIONS] or --all-topics", 2)
    plan = reset_group_offsets(
        AdminSession(bootstrap, timeout_ms),
        group,
        topic_args=topic or [],
        all_topics=all_topics,
        strategy=strategy,
        execute=execute,
    )
    for warning in plan.warnings:
        print(warning, file=sys.stderr)
    if output is OutputFormat.json:
        offsets = [{"topic": t, "partition": p, "offset": o} for (t, p), o in plan.offsets.items()]
        print_json({"group": group, "executed": plan.executed, "offsets": offsets})
        return
    header = ("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET")
    _print(columns(header, ((group, t, p, o) for (t, p), o in plan.offsets.items())))
    if not plan.executed:
        print("Preview only: nothing was changed. Add --execute to apply.", file=sys.stderr)


@app.command("delete-offsets")
def delete_offsets(
    group: GroupArgument,
    topic: Annotated[
        list[str],
        typer.Option("--topic", "-t", help="TOPIC or TOPIC:P1,P2 (repeatable)."),
    ],
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Forget the group's committed offsets for some topics (the group must not use them)."""
    session = AdminSession(bootstrap, timeout_ms)
    top_error, errors = session.delete_group_offsets(group, resolve_partitions(session, topic))
    if output is OutputFormat.json:
        results = [
            {"topic": t, "partition": p, "error": error_message(code) if code else None}
            for (t, p), code in errors.items()
        ]
        print_json({"group": group, "partitions": results})
    else:
        statuses = [f"Error: {error_message(c)}" if c else "Successful" for c in errors.values()]
        rows = ((t, p, status) for ((t, p), status) in zip(errors, statuses, strict=True))
        _print(columns(("TOPIC", "PARTITION", "STATUS"), rows))
    if top_error:
        message = error_message(top_error)
        raise CliError(
            f"deleting offsets of consumer group '{group}' failed: {message}", 1, top_error
        )
    if any(errors.values()):
        raise CliError(f"some offsets of consumer group '{group}' could not be deleted")


# Kafka's messages (``Errors.message()``) for what group admin calls commonly answer.
ERROR_MESSAGES = {
    3: "This server does not host this topic-partition.",
    14: "The coordinator is loading and hence can't process requests.",
    15: "The coordinator is not available.",
    16: "This is not the correct coordinator.",
    24: "The configured groupId is invalid.",
    30: "Group authorization failed.",
    68: "The group is not empty.",
    69: "The group id does not exist.",
    86: "The consumer group is actively subscribed to the topic.",
}


def error_message(code: int) -> str:
    return ERROR_MESSAGES.get(code, f"Kafka error code {code}")


def _group_error(group: str, error: CliError) -> CliError:
    """Reword the common DeleteGroups failures so they name the group plainly."""
    if error.code == KafkaError.GROUP_ID_NOT_FOUND:
        return CliError(f"consumer group '{group}' does not exist", code=error.code)
    if error.code == KafkaError.NON_EMPTY_GROUP:
        return CliError(
            f"consumer group '{group}' is not empty: it still has active members",
            code=error.code,
        )
    return error
