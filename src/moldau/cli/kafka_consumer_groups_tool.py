"""``kafka-consumer-groups``: Kafka's ConsumerGroupCommand, flag for flag, printing what it prints.

Runbooks paste these commands verbatim, so the checks, messages and column layouts follow
Kafka's ``tools/.../consumer/group/ConsumerGroupCommand.java`` and ``GroupOffsetsResetter``:
columns are ``%-Ns`` fields at least 15 wide (wider for long values), every table is
preceded by an empty line, and ``--reset-offsets`` without ``--execute`` warns and only
plans. The data comes from the same code as ``moldau group`` (``group.py``).

Where Kafka prints an error and carries on with exit status 0 (an unknown group in
``--describe``, a group that refuses a reset), this tool prints the same ``Error: …`` line
on stderr and exits 1 once it is done, so scripts can tell.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from confluent_kafka import KafkaError

from moldau.cli.admin import AdminSession, GroupDescription, GroupMember, TopicPartitionKey
from moldau.cli.common import DEFAULT_TIMEOUT_MS, CliError
from moldau.cli.group import (
    MISSING,
    OffsetRow,
    ResetKind,
    ResetPlan,
    ResetStrategy,
    error_message,
    offset_rows,
    parse_topic_arg,
    reset_group_offsets,
    strategy_from_flags,
)
from moldau.cli.kafka_args import (
    ToolArgumentParser,
    UsageProblem,
    librdkafka_config,
    load_properties,
)

ACTIONS = ("list", "describe", "delete", "reset_offsets", "delete_offsets", "validate_regex")
SCENARIOS = (
    "to_offset",
    "shift_by",
    "to_datetime",
    "by_duration",
    "to_earliest",
    "to_latest",
    "to_current",
    "from_file",
)
VALID_STATES = ("PreparingRebalance", "CompletingRebalance", "Stable", "Dead", "Empty")
NO_EXECUTE_WARNING = (
    "WARN: No action will be performed as the --execute option is missing.In a future major "
    "release, the default behavior of this command will be to prompt the user before executing "
    "the reset rather than doing a dry run. You should add the --dry-run option explicitly if "
    "you are scripting this command and want to keep the current default behavior without "
    "prompting."
)


def build_parser() -> ToolArgumentParser:
    parser = ToolArgumentParser(
        prog="kafka-consumer-groups",
        description="This tool helps to list all consumer groups, describe a consumer group, "
        "delete consumer group info, or reset consumer group offsets.",
    )
    parser.add_argument("--bootstrap-server", metavar="<String: server to connect to>")
    parser.add_argument("--command-config", metavar="<String: command config property file>")
    for action in ACTIONS[:-1]:
        parser.add_argument("--" + action.replace("_", "-"), action="store_true")
    parser.add_argument("--validate-regex", metavar="<String: regex>")
    parser.add_argument("--group", action="append", metavar="<String: consumer group>")
    parser.add_argument("--all-groups", action="store_true")
    parser.add_argument("--topic", action="append", metavar="<String: topic>")
    parser.add_argument("--all-topics", action="store_true")
    parser.add_argument("--timeout", type=int, metavar="<Long: timeout (ms)>")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--execute", action="store_true")
    parser.add_argument("--export", action="store_true")
    parser.add_argument("--to-offset", type=int, metavar="<Long: offset>")
    parser.add_argument("--shift-by", type=int, metavar="<Long: number-of-offsets>")
    parser.add_argument("--to-datetime", metavar="<String: datetime>")
    parser.add_argument("--by-duration", metavar="<String: duration>")
    parser.add_argument("--from-file", metavar="<String: path to CSV file>")
    parser.add_argument("--to-earliest", action="store_true")
    parser.add_argument("--to-latest", action="store_true")
    parser.add_argument("--to-current", action="store_true")
    parser.add_argument("--members", action="store_true")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--offsets", action="store_true")
    parser.add_argument("--state", nargs="?", const="", metavar="<String>")
    parser.add_argument("--type", nargs="?", const="", metavar="<String>")
    parser.add_argument("--version", action="store_true")
    return parser


def report(error: CliError) -> str:
    return f"Error: Executing consumer group command failed due to {error}"


def main(argv: Sequence[str]) -> int:
    opts = build_parser().parse_args(argv)
    if opts.version:
        from moldau import __version__

        print(f"{__version__} (moldau)")
        return 0
    _check_args(opts)
    actions = [a for a in ACTIONS if getattr(opts, a) not in (None, False)]
    if len(actions) != 1:
        names = ", ".join("--" + a.replace("_", "-") for a in ACTIONS)
        raise UsageProblem(f"Command must include exactly one action: {names}")
    (action,) = actions
    if action == "validate_regex":
        return _validate_regex(opts.validate_regex)
    extra = librdkafka_config(load_properties(opts.command_config)) if opts.command_config else {}
    session = AdminSession(opts.bootstrap_server, opts.timeout or DEFAULT_TIMEOUT_MS, extra)
    if action == "list":
        return _list(session, opts)
    if action == "describe":
        return _describe(session, opts)
    if action == "delete":
        return _delete(session, opts)
    if action == "reset_offsets":
        return _reset(session, opts)
    return _delete_offsets(session, opts)


def _has(opts: argparse.Namespace, name: str) -> bool:
    return getattr(opts, name) not in (None, False, [])


def _opt(name: str) -> str:
    return f"[{name.replace('_', '-')}]"


def _check_args(opts: argparse.Namespace) -> None:
    """Kafka's ConsumerGroupCommandOptions.checkArgs, message for message."""
    if not opts.bootstrap_server:
        raise UsageProblem('Missing required argument "[bootstrap-server]"')
    scope = f"{_opt('group')}, {_opt('all_groups')}"
    if opts.describe:
        if not _has(opts, "group") and not opts.all_groups:
            raise UsageProblem(f"Option [describe] takes one of these options: {scope}")
        if opts.members + opts.offsets + (opts.state is not None) > 1:
            raise UsageProblem(
                "Option [describe] takes at most one of these options: [members], [offsets], "
                "[state]"
            )
        if opts.state:
            raise UsageProblem("Option [describe] does not take a value for [state]")
    if opts.delete:
        if not _has(opts, "group") and not opts.all_groups:
            raise UsageProblem(f"Option [delete] takes one of these options: {scope}")
        if _has(opts, "topic"):
            raise UsageProblem(
                "The consumer does not support topic-specific offset deletion from a consumer "
                "group."
            )
    if opts.delete_offsets and (not _has(opts, "group") or not _has(opts, "topic")):
        raise UsageProblem("Option [delete-offsets] takes the following options: [group], [topic]")
    if opts.reset_offsets:
        if opts.dry_run and opts.execute:
            raise UsageProblem("Option [reset-offsets] only accepts one of [execute] and [dry-run]")
        if not opts.dry_run and not opts.execute:
            print(NO_EXECUTE_WARNING, file=sys.stderr)
        if not _has(opts, "group") and not opts.all_groups:
            raise UsageProblem(f"Option [reset-offsets] takes one of these options: {scope}")
        used = [s for s in SCENARIOS if _has(opts, s)]
        if len(used) > 1:
            raise UsageProblem(
                f'Option "{_opt(used[0])}" can\'t be used with option "{_opt(used[1])}"'
            )
    for flag in ("members", "verbose", "offsets"):
        if _has(opts, flag) and not opts.describe:
            raise UsageProblem(f"Option {_opt(flag)} can only be used with option [describe]")
    if _has_flag(opts, "state") and not (opts.describe or opts.list):
        raise UsageProblem("Option [state] can only be used with options [describe], [list]")
    if _has_flag(opts, "type") and not opts.list:
        raise UsageProblem("Option [type] can only be used with option [list]")
    if _has(opts, "group") and opts.all_groups:
        raise UsageProblem('Option "[group]" can\'t be used with option "[all-groups]"')
    if _has(opts, "group") and opts.list:
        raise UsageProblem('Option "[group]" can\'t be used with option "[list]"')
    for action in ("list", "describe"):
        if _has(opts, "topic") and getattr(opts, action):
            raise UsageProblem(f'Option "[topic]" can\'t be used with option "[{action}]"')


def _has_flag(opts: argparse.Namespace, name: str) -> bool:
    """For options with an optional value: given at all (even without a value)."""
    return getattr(opts, name) is not None


def _validate_regex(regex: str) -> int:
    """Kafka checks RE2 syntax; Python's ``re`` is the closest at hand."""
    try:
        re.compile(regex)
    except re.error as exc:
        print(f"The regular expression `{regex}` is invalid: {exc}.")
        return 0
    print(f"The regular expression `{regex}` is valid.")
    return 0


def _group_ids(session: AdminSession, opts: argparse.Namespace) -> list[str]:
    if opts.all_groups:
        return [g.group_id for g in session.list_groups()]
    return list(dict.fromkeys(opts.group))


def _error(message: str) -> None:
    print(f"Error: {message}", file=sys.stderr)


# -- --list ------------------------------------------------------------------------------


def _list(session: AdminSession, opts: argparse.Namespace) -> int:
    include_state = opts.state is not None
    include_type = opts.type is not None
    states = _split(opts.state or "")
    for state in states:
        if state.lower() not in {s.lower() for s in VALID_STATES}:
            valid = ", ".join(VALID_STATES)
            raise UsageProblem(f"Invalid state list '{opts.state}'. Valid states are: {valid}")
    types = {t.lower() for t in _split(opts.type or "")}
    if not types <= {"classic", "consumer"}:
        raise UsageProblem(f"Invalid types list '{opts.type}'. Valid types are: Classic, Consumer")
    groups = session.list_groups(states)
    if types:
        groups = [g for g in groups if g.group_type.lower() in types]
    if not (include_state or include_type):
        for group in groups:
            print(group.group_id)
        return 0
    width = max([15, *(len(g.group_id) for g in groups)]) + 10
    header = ["GROUP"] + (["TYPE"] if include_type else []) + (["STATE"] if include_state else [])
    print(_fields(header, [width] + [20] * (len(header) - 1)))
    for g in groups:
        values = [g.group_id] + ([g.group_type] if include_type else [])
        values += [g.state] if include_state else []
        print(_fields(values, [width] + [20] * (len(values) - 1)))
    return 0


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _fields(values: Sequence[object], widths: Sequence[int | None]) -> str:
    """Java's ``%-Ns`` fields separated by one space; a None width is a plain ``%s``."""
    cells = [MISSING if v is None else str(v) for v in values]
    return " ".join(c if w is None else c.ljust(w) for c, w in zip(cells, widths, strict=True))


# -- --describe --------------------------------------------------------------------------


def _describe(session: AdminSession, opts: argparse.Namespace) -> int:
    group_ids = _group_ids(session, opts)
    descriptions = sorted(session.describe_groups(group_ids), key=lambda d: d.group_id)
    status = 0
    for description in descriptions:
        if not description.exists:
            _error(f"Consumer group '{description.group_id}' does not exist.")
            status = 1
            continue
        if opts.members:
            _print_members(description, opts.verbose)
        elif opts.state is not None:
            _print_state(description)
        else:
            committed = session.committed_offsets(description.group_id)
            _print_offsets(description, offset_rows(session, description, committed), opts.verbose)
    return status


def _state_notice(description: GroupDescription) -> None:
    """What Kafka says on stderr about a group that is not Stable."""
    if description.state == "Empty":
        print(f"\nConsumer group '{description.group_id}' has no active members.", file=sys.stderr)
    elif description.state in ("PreparingRebalance", "CompletingRebalance"):
        print(
            f"\nWarning: Consumer group '{description.group_id}' is rebalancing.", file=sys.stderr
        )


def _print_offsets(description: GroupDescription, rows: list[OffsetRow], verbose: bool) -> None:
    _state_notice(description)
    if not rows:
        return
    group_w = max([15, *(len(r.group) for r in rows)])
    topic_w = max([15, *(len(r.topic) for r in rows)])
    consumer_w = max([15, *(len(r.consumer_id or MISSING) for r in rows)])
    host_w = max([15, *(len(r.host or MISSING) for r in rows)])
    widths: list[int | None] = [group_w, topic_w, 10, 15, 15, 15, consumer_w, host_w, None]
    header = ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"]
    header += ["CONSUMER-ID", "HOST", "CLIENT-ID"]
    if verbose:
        widths.insert(3, 15)
        header.insert(3, "LEADER-EPOCH")
    out = ["", _fields(header, widths)]
    for r in rows:
        values: list[object] = [r.group, r.topic, r.partition, r.current_offset]
        values += [r.log_end_offset, r.lag, r.consumer_id, r.host, r.client_id]
        if verbose:
            values.insert(3, r.leader_epoch)
        out.append(_fields(values, widths))
    print("\n".join(out))


def _assignment_text(assignment: Sequence[TopicPartitionKey]) -> str:
    if not assignment:
        return MISSING
    by_topic: dict[str, list[int]] = {}
    for topic, partition in assignment:
        by_topic.setdefault(topic, []).append(partition)
    parts = (f"{t}:{','.join(map(str, sorted(ps)))}" for t, ps in by_topic.items())
    return ";".join(sorted(parts))


def _print_members(description: GroupDescription, verbose: bool) -> None:
    _state_notice(description)
    members: Sequence[GroupMember] = description.members
    with_instance = any(m.group_instance_id for m in members)
    group_w = max([15, len(description.group_id)])
    consumer_w = max([15, *(len(m.member_id) for m in members)])
    instance_w = max([17, *(len(m.group_instance_id or "") for m in members)])
    host_w = max([15, *(len(m.host) for m in members)])
    client_w = max([15, *(len(m.client_id) for m in members)])
    current_w = max([20, *(len(_assignment_text(m.assignment)) for m in members)])
    widths: list[int | None] = [group_w, consumer_w, host_w, client_w, 15]
    header = ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]
    if with_instance:
        widths.insert(2, instance_w)
        header.insert(2, "GROUP-INSTANCE-ID")
    verbose_widths: list[int | None] = [15, current_w, 15, 20]
    verbose_header = ["CURRENT-EPOCH", "CURRENT-ASSIGNMENT", "TARGET-EPOCH", "TARGET-ASSIGNMENT"]
    line = _fields(header, widths) + " "
    if verbose:
        line += _fields(verbose_header, verbose_widths)
    out = ["", line]
    for m in members:
        values: list[object] = [description.group_id, m.member_id, m.host, m.client_id]
        values.append(len(m.assignment))
        if with_instance:
            values.insert(2, m.group_instance_id or "")
        line = _fields(values, widths) + " "
        if verbose:
            # classic groups have no member or target epochs and no target assignment
            extra = [MISSING, _assignment_text(m.assignment), MISSING, MISSING]
            line += _fields(extra, verbose_widths)
        out.append(line)
    print("\n".join(out))


def _print_state(description: GroupDescription) -> None:
    _state_notice(description)
    node = description.coordinator
    coordinator = f"{node.host}:{node.port}  ({node.node_id})" if node else MISSING
    widths: list[int | None] = [max(15, len(description.group_id)), max(25, len(coordinator))]
    widths += [20, 20, None]
    header = ["GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"]
    strategy = description.partition_assignor or MISSING
    values = [description.group_id, coordinator, strategy, description.state]
    values.append(str(len(description.members)))
    print("\n".join(["", _fields(header, widths), _fields(values, widths)]))


# -- --delete ----------------------------------------------------------------------------


def _delete(session: AdminSession, opts: argparse.Namespace) -> int:
    outcome = session.delete_groups(_group_ids(session, opts))
    succeeded = [g for g, error in outcome.items() if error is None]
    failed = {g: error for g, error in outcome.items() if error is not None}
    if not failed:
        names = ", ".join(f"'{g}'" for g in succeeded)
        print(f"Deletion of requested consumer groups ({names}) was successful.")
        return 0
    for group, error in failed.items():
        _error(f"Group '{group}' could not be deleted due to: {_delete_reason(error)}")
    if succeeded:
        names = ", ".join(f"'{g}'" for g in succeeded)
        print(f"These consumer groups were deleted successfully: {names}")
    return 1


def _delete_reason(error: CliError) -> str:
    if error.code == KafkaError.NON_EMPTY_GROUP:
        return "The group is not empty."
    if error.code == KafkaError.GROUP_ID_NOT_FOUND:
        return "The group id does not exist."
    return str(error)


# -- --reset-offsets ---------------------------------------------------------------------


def _reset(session: AdminSession, opts: argparse.Namespace) -> int:
    strategy = strategy_from_flags(
        to_earliest=opts.to_earliest,
        to_latest=opts.to_latest,
        to_current=opts.to_current,
        to_offset=opts.to_offset,
        shift_by=opts.shift_by,
        to_datetime=opts.to_datetime,
        by_duration=opts.by_duration,
    )
    file_plans = _read_plan(opts.from_file, opts.group or []) if opts.from_file else None
    if strategy is None and file_plans is None:
        scenarios = ", ".join(_opt(s) for s in SCENARIOS)
        raise UsageProblem(
            f"Option [reset-offsets] requires one of the following scenarios: {scenarios}"
        )
    if file_plans is None and not _has(opts, "topic") and not opts.all_topics:
        raise UsageProblem("One of the reset scopes should be defined: --all-topics, --topic.")
    execute = bool(opts.execute)
    plans: list[ResetPlan] = []
    status = 0
    for group_id in _group_ids(session, opts):
        group_strategy = strategy
        if file_plans is not None:
            if group_id not in file_plans:
                _error(f"No reset plan for group {group_id} found.")
                status = 1
                continue
            group_strategy = ResetStrategy(ResetKind.plan, planned=file_plans[group_id])
        assert group_strategy is not None
        try:
            plan = reset_group_offsets(
                session,
                group_id,
                topic_args=opts.topic or [],
                all_topics=opts.all_topics,
                strategy=group_strategy,
                execute=execute,
            )
        except CliError as exc:
            if not str(exc).startswith("Assignments can only be reset"):
                raise
            _error(str(exc))
            status = 1
            continue
        for warning in plan.warnings:
            print(warning, file=sys.stderr)
        plans.append(plan)
    if opts.export:
        print(_export(plans, single_group=len(opts.group or []) == 1))
    else:
        _print_plans(plans)
    return status


def _print_plans(plans: list[ResetPlan]) -> None:
    if not plans:
        return
    group_w = max([15, *(len(p.group_id) for p in plans)])
    topic_w = max([15, *(len(t) for p in plans for (t, _) in p.offsets)])
    widths: list[int | None] = [group_w, topic_w, 10, None]
    out = ["", _fields(["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], widths)]
    for plan in plans:
        for (topic, partition), offset in plan.offsets.items():
            out.append(_fields([plan.group_id, topic, partition, offset], widths))
    print("\n".join(out))


def _export(plans: list[ResetPlan], single_group: bool) -> str:
    """Kafka's CSV: ``topic,partition,offset`` (one group) or ``group,topic,partition,offset``."""
    lines = []
    for plan in plans:
        for (topic, partition), offset in plan.offsets.items():
            prefix = "" if single_group else f"{plan.group_id},"
            lines.append(f"{prefix}{topic},{partition},{offset}\n")
    return "".join(lines)


def _read_plan(path: str, groups: Sequence[str]) -> dict[str, dict[TopicPartitionKey, int]]:
    """A ``--from-file`` CSV (the ``--export`` format) as planned offsets per group."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line.strip() for line in handle if line.strip()]
    except OSError as exc:
        raise CliError(f"cannot read reset plan '{path}': {exc.strerror or exc}") from None
    plans: dict[str, dict[TopicPartitionKey, int]] = {}
    for line in lines:
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 3 and len(groups) == 1:
            fields.insert(0, groups[0])
        if len(fields) != 4 or not fields[2].isdigit() or not re.fullmatch(r"-?\d+", fields[3]):
            raise CliError(f"invalid line in reset plan '{path}': {line}")
        group, topic, partition, offset = fields
        plans.setdefault(group, {})[(topic, int(partition))] = int(offset)
    return plans


# -- --delete-offsets --------------------------------------------------------------------


def _delete_offsets(session: AdminSession, opts: argparse.Namespace) -> int:
    (group_id,) = opts.group[:1]
    partitions: list[TopicPartitionKey] = []
    failures: dict[TopicPartitionKey, int] = {}
    for arg in opts.topic:
        topic, numbers = parse_topic_arg(arg)
        if numbers is not None:
            partitions += [(topic, n) for n in numbers]
            continue
        try:
            (info,) = session.describe_topics([topic], with_configs=False)
        except CliError as exc:
            failures[(topic, -1)] = exc.code or KafkaError.UNKNOWN_TOPIC_OR_PART
            continue
        partitions += [(topic, p.partition) for p in info.partitions]
    top_error = 0
    errors: dict[TopicPartitionKey, int] = {}
    if partitions:
        top_error, errors = session.delete_group_offsets(group_id, partitions)
    errors = {**errors, **failures}
    first = top_error or next((code for code in errors.values() if code), 0)
    if first == 0:
        print(f"Request succeeded for deleting offsets from group {group_id}.")
    elif first in (24, 30, 68, 69):  # invalid group, no access, not empty, unknown group
        _error(error_message(first))
    elif first in (3, 29, 86):  # unknown topic, no access, group subscribed to the topic
        _error("Encountered some partition-level error, see the follow-up details.")
    else:
        _error(f"Encountered some unknown error: {error_message(first)}")
    topic_w = max([15, *(len(t) for t, _ in errors)])
    widths: list[int | None] = [topic_w, 10, 15]
    out = ["", _fields(["TOPIC", "PARTITION", "STATUS"], widths)]
    for (topic, partition), code in sorted(errors.items()):
        status = f"Error: {error_message(code)}" if code else "Successful"
        out.append(_fields([topic, partition if partition >= 0 else MISSING, status], widths))
    print("\n".join(out))
    return 0 if first == 0 else 1
