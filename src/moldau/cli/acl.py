"""``moldau acl add|list|remove``: manage ACL bindings, like ``kafka-acls.sh``.

Talks CreateAcls / DescribeAcls / DeleteAcls to ``--bootstrap`` through confluent-kafka's
AdminClient, with the client's security settings from ``--command-config`` (the principal
running it needs ALTER on the cluster to add or remove, DESCRIBE to list — a super user,
usually). A resource is one of ``--topic``, ``--group``, ``--transactional-id`` or
``--cluster``; ``--resource-pattern-type prefixed`` makes the name a prefix. ``list`` and
``remove`` treat every option left out as "any".
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, no __all__
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)
from rich.table import Table

from moldau.cli.common import (
    DEFAULT_TIMEOUT_MS,
    CliError,
    FormatOption,
    OutputFormat,
    TimeoutOption,
    admin_client,
    print_json,
    stdout_console,
    wait,
)
from moldau.cli.user import BootstrapOption, CommandConfigOption

app = typer.Typer(help="Add, list and remove ACLs.", no_args_is_help=True)

CLUSTER_NAME = "kafka-cluster"


class PatternChoice(StrEnum):
    literal = "literal"
    prefixed = "prefixed"
    any = "any"
    match = "match"


PrincipalOption = Annotated[
    str | None, typer.Option("--principal", help="Principal, e.g. User:alice (User:* = all).")
]
HostOption = Annotated[str | None, typer.Option("--host", help="Client host ('*' = any).")]
OperationOption = Annotated[
    list[str] | None,
    typer.Option("--operation", help="READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, ALL, ..."),
]
TopicOption = Annotated[str | None, typer.Option("--topic", help="A topic (or prefix).")]
GroupOption = Annotated[str | None, typer.Option("--group", help="A consumer group (or prefix).")]
TxnOption = Annotated[
    str | None, typer.Option("--transactional-id", help="A transactional id (or prefix).")
]
ClusterOption = Annotated[bool, typer.Option("--cluster", help="The cluster resource.")]


def _resource(
    topic: str | None, group: str | None, txn: str | None, cluster: bool, *, required: bool
) -> tuple[ResourceType, str | None]:
    given = [
        (ResourceType.TOPIC, topic),
        (ResourceType.GROUP, group),
        (ResourceType.TRANSACTIONAL_ID, txn),
        (ResourceType.BROKER, CLUSTER_NAME if cluster else None),
    ]
    chosen = [(kind, name) for kind, name in given if name is not None]
    if len(chosen) > 1:
        raise CliError("give one of --topic, --group, --transactional-id or --cluster", 2)
    if not chosen:
        if required:
            raise CliError("give one of --topic, --group, --transactional-id or --cluster", 2)
        return ResourceType.ANY, None
    return chosen[0]


def _operations(values: list[str] | None, *, required: bool) -> list[AclOperation]:
    if not values:
        if required:
            raise CliError("give at least one --operation", 2)
        return [AclOperation.ANY]
    operations = []
    for value in values:
        name = (
            value.strip().upper().replace("-", "_").replace("IDEMPOTENTWRITE", "IDEMPOTENT_WRITE")
        )
        try:
            operations.append(AclOperation[name])
        except KeyError:
            known = ", ".join(o.name for o in AclOperation if o.name not in ("UNKNOWN", "ANY"))
            raise CliError(f"unknown operation '{value}': expected one of {known}", 2) from None
    return operations


def _pattern(choice: PatternChoice) -> ResourcePatternType:
    return ResourcePatternType[choice.value.upper()]


def _principal(text: str | None) -> str | None:
    if text is not None and ":" not in text:
        raise CliError(f"invalid principal '{text}': expected Type:name, e.g. User:alice", 2)
    return text


@app.command("add")
def add(
    principal: PrincipalOption = None,
    allow: Annotated[bool, typer.Option("--allow", help="An ALLOW rule.")] = False,
    deny: Annotated[bool, typer.Option("--deny", help="A DENY rule (wins over ALLOWs).")] = False,
    operation: OperationOption = None,
    host: HostOption = "*",
    topic: TopicOption = None,
    group: GroupOption = None,
    transactional_id: TxnOption = None,
    cluster: ClusterOption = False,
    pattern: Annotated[
        PatternChoice, typer.Option("--resource-pattern-type", case_sensitive=False)
    ] = PatternChoice.literal,
    bootstrap: BootstrapOption = None,
    command_config: CommandConfigOption = None,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
) -> None:
    """Add ALLOW or DENY rules: one per --operation."""
    if allow == deny:
        raise CliError("give exactly one of --allow or --deny", 2)
    if principal is None:
        raise CliError("give --principal, e.g. --principal User:alice", 2)
    if pattern not in (PatternChoice.literal, PatternChoice.prefixed):
        raise CliError("--resource-pattern-type for add is literal or prefixed", 2)
    kind, resource_name = _resource(topic, group, transactional_id, cluster, required=True)
    name = str(resource_name)
    who = str(_principal(principal))
    permission = AclPermissionType.ALLOW if allow else AclPermissionType.DENY
    bindings = [
        AclBinding(kind, name, _pattern(pattern), who, host or "*", op, permission)
        for op in _operations(operation, required=True)
    ]
    admin = admin_client(bootstrap, command_config, timeout_ms)
    futures = admin.create_acls(bindings, request_timeout=timeout_ms / 1000)
    for future in futures.values():
        wait(future, timeout_ms, "adding ACLs")
    stdout_console().print(f"Added {len(bindings)} ACL(s).")


def _filter(
    principal: str | None,
    host: str | None,
    operation: list[str] | None,
    topic: str | None,
    group: str | None,
    txn: str | None,
    cluster: bool,
    pattern: PatternChoice,
) -> list[AclBindingFilter]:
    kind, name = _resource(topic, group, txn, cluster, required=False)
    return [
        AclBindingFilter(
            kind,
            name,  # type: ignore[arg-type]
            _pattern(pattern),
            _principal(principal),  # type: ignore[arg-type]  # None is "any" at runtime
            host,  # type: ignore[arg-type]
            op,
            AclPermissionType.ANY,
        )
        for op in _operations(operation, required=False)
    ]


def _describe(binding: Any) -> dict[str, str]:
    return {
        "principal": binding.principal,
        "host": binding.host,
        "operation": binding.operation.name,
        "permission": binding.permission_type.name,
        "resource_type": "CLUSTER"
        if binding.restype == ResourceType.BROKER
        else binding.restype.name,
        "resource_name": binding.name,
        "pattern_type": binding.resource_pattern_type.name,
    }


def _print(rows: list[dict[str, str]], output: OutputFormat) -> None:
    if output is OutputFormat.json:
        print_json(rows)
        return
    table = Table(box=None, pad_edge=False)
    columns = ("principal", "host", "operation", "permission", "resource_type", "resource_name")
    for column in (*columns, "pattern_type"):
        table.add_column(column.upper())
    for row in rows:
        table.add_row(*(row[c] for c in (*columns, "pattern_type")))
    stdout_console().print(table)


@app.command("list")
def list_(
    principal: PrincipalOption = None,
    host: HostOption = None,
    operation: OperationOption = None,
    topic: TopicOption = None,
    group: GroupOption = None,
    transactional_id: TxnOption = None,
    cluster: ClusterOption = False,
    pattern: Annotated[
        PatternChoice, typer.Option("--resource-pattern-type", case_sensitive=False)
    ] = PatternChoice.any,
    bootstrap: BootstrapOption = None,
    command_config: CommandConfigOption = None,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """List the ACLs that match the options given (all of them by default)."""
    admin = admin_client(bootstrap, command_config, timeout_ms)
    rows: list[dict[str, str]] = []
    filters = _filter(principal, host, operation, topic, group, transactional_id, cluster, pattern)
    for acl_filter in filters:
        future = admin.describe_acls(acl_filter, request_timeout=timeout_ms / 1000)
        rows.extend(_describe(b) for b in wait(future, timeout_ms, "listing ACLs"))
    _print(sorted(rows, key=lambda r: tuple(r.values())), output)


@app.command("remove")
def remove(
    principal: PrincipalOption = None,
    host: HostOption = None,
    operation: OperationOption = None,
    topic: TopicOption = None,
    group: GroupOption = None,
    transactional_id: TxnOption = None,
    cluster: ClusterOption = False,
    pattern: Annotated[
        PatternChoice, typer.Option("--resource-pattern-type", case_sensitive=False)
    ] = PatternChoice.literal,
    yes: Annotated[
        bool, typer.Option("--yes", help="Allow a filter without any resource or principal.")
    ] = False,
    bootstrap: BootstrapOption = None,
    command_config: CommandConfigOption = None,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Remove the ACLs that match the options given, and print them."""
    if not yes and principal is None and not (topic or group or transactional_id or cluster):
        raise CliError("this would remove every ACL: name a resource or principal, or add --yes", 2)
    admin = admin_client(bootstrap, command_config, timeout_ms)
    filters = _filter(principal, host, operation, topic, group, transactional_id, cluster, pattern)
    futures = admin.delete_acls(filters, request_timeout=timeout_ms / 1000)
    rows: list[dict[str, str]] = []
    for future in futures.values():
        rows.extend(_describe(b) for b in wait(future, timeout_ms, "removing ACLs"))
    _print(rows, output)
