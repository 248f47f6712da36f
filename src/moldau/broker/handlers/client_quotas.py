"""DescribeClientQuotas (v0-1) and AlterClientQuotas (v0-1): client quotas in the metadata.

Quotas live in ``broker.security_store`` (a local file or etcd), keyed by entity — a sorted
tuple of (type, name) pairs, a None name being that type's ``<default>`` — so every broker of
a cluster enforces the same quotas (``broker/quotas.py`` reads them from each new image).

Describe follows Kafka's ``ClientQuotasImage.describe``: filter components are matched per
entity type — EXACT (0) a name, DEFAULT (1) the ``<default>`` entity, SPECIFIED (2) any name
(the default included, as Kafka's image does); an entity type may appear once; ip cannot be
combined with user or client-id. ``strict`` keeps only entities with no types beyond the
filter's; no components and not strict lists everything. Bad filters fail the whole request
with INVALID_REQUEST (an unknown entity type: UNSUPPORTED_VERSION, as in Kafka).

Alter follows Kafka's ``ClientQuotaControlManager``: one result per entry. The entity must be
valid (known types, each once, no empty names, ip alone, ip names are addresses); a set
operation's key must be one of the entity's quota keys (``producer_byte_rate``,
``consumer_byte_rate``, ``request_percentage``, ``controller_mutation_rate`` for users and
client ids; ``connection_creation_rate`` for ips), its value finite and positive, a whole
number for the byte rates — otherwise INVALID_REQUEST and nothing of that entry is applied.
Removing a key that is not set is a no-op, as in Kafka. ``validate_only`` checks and applies
nothing.

Authorization: DESCRIBE_CONFIGS (Describe) / ALTER_CONFIGS (Alter) on the CLUSTER resource,
as in Kafka; refused with CLUSTER_AUTHORIZATION_FAILED.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import RequestContext
from moldau.broker.handlers import handles
from moldau.broker.quotas import IP, validate_entity, validate_quota_value
from moldau.cluster.security_state import QUOTA_ENTITY_TYPES, QuotaEntity, normalize_entity
from moldau.protocol.acl import AclOperation
from moldau.protocol.api import ApiKey

MATCH_EXACT = 0
MATCH_DEFAULT = 1
MATCH_SPECIFIED = 2


class _FilterError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- DescribeClientQuotas ----------------------------------------------------------------------


@handles(ApiKey.DESCRIBE_CLIENT_QUOTAS)
async def handle_describe_client_quotas(ctx: RequestContext, request: Any) -> Any:
    if not ctx.authorize_cluster(AclOperation.DESCRIBE_CONFIGS):
        return _describe_error(
            ctx, ErrorCode.cluster_authorization_failed, "Cluster authorization failed."
        )
    try:
        exact, specified = _parse_filter(request.components)
    except _FilterError as exc:
        return _describe_error(ctx, exc.code, exc.message)
    quotas = ctx.broker.security_store.image.quotas
    entries = [
        _describe_entry(ctx, entity, values)
        for entity, values in sorted(quotas.items(), key=lambda item: _sort_key(item[0]))
        if matches(entity, exact, specified, bool(request.strict))
    ]
    return ctx.response(
        throttle_time=0, error_code=ErrorCode.none, error_message=None, entries=tuple(entries)
    )


def _parse_filter(components: Any) -> tuple[dict[str, str | None], set[str]]:
    exact: dict[str, str | None] = {}
    specified: set[str] = set()
    for component in components:
        kind = component.entity_type
        if not kind:
            raise _FilterError(ErrorCode.invalid_request, "Invalid empty entity type.")
        if kind in exact or kind in specified:
            raise _FilterError(
                ErrorCode.invalid_request,
                f"Entity type {kind} cannot appear more than once in the filter.",
            )
        if kind not in QUOTA_ENTITY_TYPES:
            raise _FilterError(ErrorCode.unsupported_version, f"Unsupported entity type {kind}")
        match_type = int(component.match_type)
        if match_type == MATCH_EXACT:
            if component.match is None:
                raise _FilterError(
                    ErrorCode.invalid_request,
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.",
                )
            exact[kind] = component.match
        elif match_type == MATCH_DEFAULT:
            if component.match is not None:
                raise _FilterError(
                    ErrorCode.invalid_request,
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
                )
            exact[kind] = None
        elif match_type == MATCH_SPECIFIED:
            if component.match is not None:
                raise _FilterError(
                    ErrorCode.invalid_request,
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.",
                )
            specified.add(kind)
        else:
            raise _FilterError(ErrorCode.invalid_request, f"Unknown match type {match_type}")
    kinds = set(exact) | specified
    if IP in kinds and len(kinds) > 1:
        raise _FilterError(
            ErrorCode.invalid_request,
            "Invalid entity filter component combination. IP filter component should not be "
            "used with user or clientId filter component.",
        )
    return exact, specified


def matches(
    entity: QuotaEntity, exact: Mapping[str, str | None], specified: set[str], strict: bool
) -> bool:
    """Does ``entity`` pass the filter (Kafka's describe semantics, see module docstring)?"""
    names = dict(entity)
    for kind, name in exact.items():
        if kind not in names or names[kind] != name:
            return False
    for kind in specified:
        if kind not in names:
            return False
    if strict:
        return len(names) == len(exact) + len(specified)
    return True


def _describe_entry(ctx: RequestContext, entity: QuotaEntity, values: Mapping[str, float]) -> Any:
    return ctx.make(
        "EntryData",
        entity=tuple(
            ctx.make("EntityData", entity_type=kind, entity_name=name) for kind, name in entity
        ),
        values=tuple(
            ctx.make("ValueData", key=key, value=float(value))
            for key, value in sorted(values.items())
        ),
    )


def _describe_error(ctx: RequestContext, code: ErrorCode, message: str) -> Any:
    return ctx.response(throttle_time=0, error_code=code, error_message=message, entries=None)


def _sort_key(entity: QuotaEntity) -> tuple[tuple[str, int, str], ...]:
    return tuple((kind, 0 if name is None else 1, name or "") for kind, name in entity)


# -- AlterClientQuotas -------------------------------------------------------------------------


@handles(ApiKey.ALTER_CLIENT_QUOTAS)
async def handle_alter_client_quotas(ctx: RequestContext, request: Any) -> Any:
    authorized = ctx.authorize_cluster(AclOperation.ALTER_CONFIGS)
    results = []
    for entry in request.entries:
        pairs = [(e.entity_type, e.entity_name) for e in entry.entity]
        code: ErrorCode
        message: str | None
        if not authorized:
            code, message = ErrorCode.cluster_authorization_failed, "Cluster authorization failed."
        else:
            code, message = await _alter_entry(ctx, pairs, entry.ops, bool(request.validate_only))
        results.append(
            ctx.make(
                "EntryData",
                error_code=code,
                error_message=message,
                entity=tuple(
                    ctx.make("EntityData", entity_type=kind, entity_name=name)
                    for kind, name in pairs
                ),
            )
        )
    return ctx.response(throttle_time=0, entries=tuple(results))


async def _alter_entry(
    ctx: RequestContext, pairs: list[tuple[str, str | None]], ops: Any, validate_only: bool
) -> tuple[ErrorCode, str | None]:
    problem = validate_entity(pairs)
    if problem is None:
        problem = _check_ip(pairs)
    if problem is not None:
        return ErrorCode.invalid_request, problem
    kinds = [kind for kind, _ in pairs]
    alterations: dict[str, float | None] = {}
    for op in ops:
        if op.remove:
            alterations[op.key] = None
            continue
        value = float(op.value)
        problem = validate_quota_value(kinds, op.key, value)
        if problem is not None:
            return ErrorCode.invalid_request, problem
        alterations[op.key] = value
    if validate_only:
        return ErrorCode.none, None
    set_values = {key: value for key, value in alterations.items() if value is not None}
    remove_keys = [key for key, value in alterations.items() if value is None]
    entity = normalize_entity(tuple(pairs))
    current = ctx.broker.security_store.image.quotas.get(entity, {})
    if any(current.get(k) != v for k, v in set_values.items()) or any(
        k in current for k in remove_keys
    ):
        await ctx.broker.security_store.alter_quotas(entity, set_values, remove_keys)
    return ErrorCode.none, None


def _check_ip(pairs: list[tuple[str, str | None]]) -> str | None:
    for kind, name in pairs:
        if kind == IP and name is not None:
            try:
                ipaddress.ip_address(name)
            except ValueError:
                return f"{name} is not a valid IP or resolvable host."
    return None
