"""``moldau quota …``: set, remove and list client quotas, like Kafka's
``kafka-configs.sh --entity-type users/clients --alter --add-config producer_byte_rate=…``
and ``kafka-client-quotas``.

A quota belongs to an *entity*: a user (``--user alice`` or ``--user-default`` for every user
without one of their own), a client id (``--client-id``, ``--client-id-default``), or both
(``--user alice --client-id app``). The broker picks, per quota key, the most specific entity
that sets it (Kafka's precedence). Keys: ``producer_byte_rate`` and ``consumer_byte_rate``
(bytes per second), ``request_percentage`` (percent of one request thread); others with
``--set KEY=VALUE``.

The requests are AlterClientQuotas / DescribeClientQuotas, sent over the wire with kio
(:mod:`moldau.cli.kafka_wire`): librdkafka's admin client has no client-quota API.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer
from kio.schema.errors import ErrorCode
from rich.table import Table

from moldau.cli.common import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_TIMEOUT_MS,
    BootstrapOption,
    CliError,
    FormatOption,
    OutputFormat,
    TimeoutOption,
    ensure_reachable,
    parse_bootstrap,
    parse_key_value,
    print_json,
    stdout_console,
)
from moldau.cli.kafka_wire import wire_request
from moldau.protocol.api import ApiKey, schema_for

app = typer.Typer(help="Set, remove and list client quotas.", no_args_is_help=True)

_VERSION = 1
_DEFAULT_TEXT = "<default>"
_INTEGER_KEYS = ("producer_byte_rate", "consumer_byte_rate", "connection_creation_rate")

UserOption = Annotated[str | None, typer.Option("--user", help="A user (principal name).")]
UserDefaultOption = Annotated[
    bool, typer.Option("--user-default", help="The default of every user without their own.")
]
ClientOption = Annotated[str | None, typer.Option("--client-id", help="A client id.")]
ClientDefaultOption = Annotated[
    bool,
    typer.Option("--client-id-default", help="The default of every client id without its own."),
]
IpOption = Annotated[str | None, typer.Option("--ip", help="A client IP address.")]
IpDefaultOption = Annotated[bool, typer.Option("--ip-default", help="The default of every IP.")]
ProducerRateOption = Annotated[
    int | None,
    typer.Option("--producer-byte-rate", min=1, help="producer_byte_rate, bytes/second."),
]
ConsumerRateOption = Annotated[
    int | None,
    typer.Option("--consumer-byte-rate", min=1, help="consumer_byte_rate, bytes/second."),
]
RequestPercentageOption = Annotated[
    float | None,
    typer.Option("--request-percentage", help="request_percentage, percent of one thread."),
]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Another quota, KEY=VALUE (repeatable).")
]


def entity_pairs(
    user: str | None,
    user_default: bool,
    client_id: str | None,
    client_id_default: bool,
    ip: str | None = None,
    ip_default: bool = False,
    *,
    required: bool,
) -> list[tuple[str, str | None]]:
    """The entity the options name, as (type, name) pairs; None is ``<default>``."""
    pairs: list[tuple[str, str | None]] = []
    for kind, name, default in (
        ("user", user, user_default),
        ("client-id", client_id, client_id_default),
        ("ip", ip, ip_default),
    ):
        flag = kind
        if name is not None and default:
            raise CliError(f"give either --{flag} or --{flag}-default, not both", 2)
        if name is not None:
            if not name:
                raise CliError(f"--{flag} must not be empty", 2)
            pairs.append((kind, name))
        elif default:
            pairs.append((kind, None))
    if required and not pairs:
        raise CliError("name an entity: --user/--user-default and/or --client-id/...", 2)
    return pairs


def _address(bootstrap: str | None, timeout_ms: int) -> tuple[str, int]:
    bootstrap = bootstrap or DEFAULT_BOOTSTRAP
    ensure_reachable(bootstrap, timeout_ms)
    return parse_bootstrap(bootstrap)[0]


def _parse_value(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CliError(f"invalid value '{text}' for {key}: expected a number", 2) from None
    if not math.isfinite(value):
        raise CliError(f"invalid value '{text}' for {key}: expected a finite number", 2)
    return value


def alter(
    bootstrap: str | None,
    pairs: list[tuple[str, str | None]],
    set_values: dict[str, float],
    remove_keys: list[str],
    timeout_ms: int,
    validate_only: bool = False,
) -> None:
    """One AlterClientQuotas entry; a refused entry is a one-line CliError."""
    host, port = _address(bootstrap, timeout_ms)
    schema = schema_for(ApiKey.ALTER_CLIENT_QUOTAS, _VERSION)
    module = schema.request_module
    ops = [module.OpData(key=k, value=v, remove=False) for k, v in set_values.items()]
    ops += [module.OpData(key=k, value=0.0, remove=True) for k in remove_keys]
    entity = tuple(module.EntityData(entity_type=k, entity_name=n) for k, n in pairs)
    request = schema.request_type(
        entries=(module.EntryData(entity=entity, ops=tuple(ops)),), validate_only=validate_only
    )
    response = wire_request(host, port, ApiKey.ALTER_CLIENT_QUOTAS, _VERSION, request, timeout_ms)
    for entry in response.entries:
        if entry.error_code != ErrorCode.none:
            raise CliError(_error_text(entry.error_code, entry.error_message))


def describe(
    bootstrap: str | None,
    components: list[tuple[str, int, str | None]],
    strict: bool,
    timeout_ms: int,
) -> list[dict[str, Any]]:
    """DescribeClientQuotas: ``[{"entity": {type: name-or-None}, "quotas": {key: value}}]``."""
    host, port = _address(bootstrap, timeout_ms)
    schema = schema_for(ApiKey.DESCRIBE_CLIENT_QUOTAS, _VERSION)
    module = schema.request_module
    request = schema.request_type(
        components=tuple(
            module.ComponentData(entity_type=kind, match_type=match_type, match=match)
            for kind, match_type, match in components
        ),
        strict=strict,
    )
    response = wire_request(
        host, port, ApiKey.DESCRIBE_CLIENT_QUOTAS, _VERSION, request, timeout_ms
    )
    if response.error_code != ErrorCode.none:
        raise CliError(_error_text(response.error_code, response.error_message))
    return [
        {
            "entity": {e.entity_type: e.entity_name for e in entry.entity},
            "quotas": {v.key: _number(v.key, float(v.value)) for v in entry.values},
        }
        for entry in response.entries or ()
    ]


def _number(key: str, value: float) -> float | int:
    return int(value) if key in _INTEGER_KEYS and value.is_integer() else value


def _error_text(code: ErrorCode, message: str | None) -> str:
    name = code.name.upper() if isinstance(code, ErrorCode) else str(code)
    return f"{name}: {message}" if message else name


def entity_text(entity: dict[str, str | None]) -> str:
    """Kafka's path form: ``/users/alice/clients/<default>``."""
    parts = []
    for kind, label in (("user", "users"), ("client-id", "clients"), ("ip", "ips")):
        if kind in entity:
            name = entity[kind]
            parts.append(f"/{label}/{_DEFAULT_TEXT if name is None else name}")
    return "".join(parts) or "/"


@app.command("set")
def set_(
    user: UserOption = None,
    user_default: UserDefaultOption = False,
    client_id: ClientOption = None,
    client_id_default: ClientDefaultOption = False,
    ip: IpOption = None,
    ip_default: IpDefaultOption = False,
    producer_byte_rate: ProducerRateOption = None,
    consumer_byte_rate: ConsumerRateOption = None,
    request_percentage: RequestPercentageOption = None,
    extra: SetOption = None,
    validate_only: Annotated[
        bool, typer.Option("--validate-only", help="Check with the broker, change nothing.")
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
) -> None:
    """Set quotas of one entity (other keys it has are kept)."""
    pairs = entity_pairs(
        user, user_default, client_id, client_id_default, ip, ip_default, required=True
    )
    values: dict[str, float] = {}
    if producer_byte_rate is not None:
        values["producer_byte_rate"] = float(producer_byte_rate)
    if consumer_byte_rate is not None:
        values["consumer_byte_rate"] = float(consumer_byte_rate)
    if request_percentage is not None:
        values["request_percentage"] = request_percentage
    for item in extra or ():
        key, text = parse_key_value(item, "quota")
        values[key] = _parse_value(key, text)
    if not values:
        raise CliError(
            "nothing to set: give --producer-byte-rate, --consumer-byte-rate, "
            "--request-percentage or --set KEY=VALUE",
            2,
        )
    alter(bootstrap, pairs, values, [], timeout_ms, validate_only)
    shown = ", ".join(f"{k}={_number(k, v)}" for k, v in values.items())
    verb = "would set" if validate_only else "set"
    stdout_console().print(f"{verb} {shown} for {entity_text(dict(pairs))}", highlight=False)


@app.command("remove")
def remove(
    key: Annotated[list[str], typer.Option("--key", help="Quota key to remove (repeatable).")],
    user: UserOption = None,
    user_default: UserDefaultOption = False,
    client_id: ClientOption = None,
    client_id_default: ClientDefaultOption = False,
    ip: IpOption = None,
    ip_default: IpDefaultOption = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
) -> None:
    """Remove quota keys of one entity (an entity left with none disappears)."""
    pairs = entity_pairs(
        user, user_default, client_id, client_id_default, ip, ip_default, required=True
    )
    alter(bootstrap, pairs, {}, list(dict.fromkeys(key)), timeout_ms)
    stdout_console().print(
        f"removed {', '.join(dict.fromkeys(key))} from {entity_text(dict(pairs))}",
        highlight=False,
    )


@app.command("list")
def list_(
    user: UserOption = None,
    user_default: UserDefaultOption = False,
    client_id: ClientOption = None,
    client_id_default: ClientDefaultOption = False,
    ip: IpOption = None,
    ip_default: IpDefaultOption = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Only entities with no other entity types.")
    ] = False,
    bootstrap: BootstrapOption = DEFAULT_BOOTSTRAP,
    timeout_ms: TimeoutOption = DEFAULT_TIMEOUT_MS,
    output: FormatOption = OutputFormat.text,
) -> None:
    """List quotas, of every entity or of those the options match."""
    pairs = entity_pairs(
        user, user_default, client_id, client_id_default, ip, ip_default, required=False
    )
    components = [(kind, 0 if name is not None else 1, name) for kind, name in pairs]
    rows = describe(bootstrap, components, strict, timeout_ms)
    if output == OutputFormat.json:
        print_json(rows)
        return
    console = stdout_console()
    if not rows:
        console.print("no quotas")
        return
    table = Table("ENTITY", "QUOTAS", box=None, pad_edge=False)
    for row in rows:
        quotas = ", ".join(f"{k}={v}" for k, v in sorted(row["quotas"].items()))
        table.add_row(entity_text(row["entity"]), quotas)
    console.print(table)
