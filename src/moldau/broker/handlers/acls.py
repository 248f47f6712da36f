"""CreateAcls, DescribeAcls and DeleteAcls (v1-3; Kafka 4 dropped v0): ACL bindings.

Bindings live in ``broker.security_store`` (local file or etcd), so every broker of a cluster
authorizes against the same ACLs. Kafka's rules:

- with no authorizer configured every call is SECURITY_DISABLED;
- Describe needs DESCRIBE on the cluster, Create and Delete need ALTER
  (CLUSTER_AUTHORIZATION_FAILED otherwise);
- a binding to create needs a concrete resource type, LITERAL or PREFIXED pattern, operation
  and permission, a ``Type:name`` principal, and the name ``kafka-cluster`` for CLUSTER —
  otherwise INVALID_REQUEST for that binding only;
- filters (describe, delete) use ANY for "every value", a null name/principal/host for
  "any", and the MATCH pattern for "every binding that would apply to this name".
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import RequestContext
from moldau.broker.handlers import handles
from moldau.cluster.security_state import AclBinding
from moldau.protocol.acl import (
    CLUSTER_RESOURCE_NAME,
    WILDCARD,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
)
from moldau.protocol.api import ApiKey

_SECURITY_DISABLED = "No Authorizer is configured on the broker"


class InvalidAcl(ValueError):
    """A binding or filter that Kafka refuses with INVALID_REQUEST."""


@handles(ApiKey.CREATE_ACLS)
async def handle_create_acls(ctx: RequestContext, request: Any) -> Any:
    def result(code: ErrorCode, message: str | None = None) -> Any:
        return ctx.make("AclCreationResult", error_code=code, error_message=message)

    creations = list(request.creations)
    refusal = _refusal(ctx, AclOperation.ALTER)
    if refusal is not None:
        code, message = refusal
        return ctx.response(
            throttle_time=0, results=tuple(result(code, message) for _ in creations)
        )
    results: list[Any] = []
    to_create: list[AclBinding] = []
    for creation in creations:
        try:
            binding = _binding_from_creation(creation)
        except InvalidAcl as exc:
            results.append(result(ErrorCode.invalid_request, str(exc)))
            continue
        to_create.append(binding)
        results.append(result(ErrorCode.none))
    if to_create:
        await ctx.broker.security_store.create_acls(to_create)
    return ctx.response(throttle_time=0, results=tuple(results))


@handles(ApiKey.DESCRIBE_ACLS)
async def handle_describe_acls(ctx: RequestContext, request: Any) -> Any:
    refusal = _refusal(ctx, AclOperation.DESCRIBE)
    if refusal is not None:
        code, message = refusal
        return ctx.response(throttle_time=0, error_code=code, error_message=message, resources=())
    try:
        matches = _matching(ctx, request)
    except InvalidAcl as exc:
        return ctx.response(
            throttle_time=0,
            error_code=ErrorCode.invalid_request,
            error_message=str(exc),
            resources=(),
        )
    grouped: dict[tuple[int, str, int], list[AclBinding]] = defaultdict(list)
    for binding in matches:
        key = (binding.resource_type, binding.resource_name, binding.pattern_type)
        grouped[key].append(binding)
    resources = []
    for (resource_type, name, pattern), bindings in sorted(grouped.items()):
        acls = tuple(
            ctx.make(
                "AclDescription",
                principal=b.principal,
                host=b.host,
                operation=int(b.operation),
                permission_type=int(b.permission_type),
            )
            for b in sorted(bindings, key=_sort_key)
        )
        resources.append(
            ctx.make(
                "DescribeAclsResource",
                resource_type=resource_type,
                resource_name=name,
                pattern_type=pattern,
                acls=acls,
            )
        )
    return ctx.response(
        throttle_time=0, error_code=ErrorCode.none, error_message=None, resources=tuple(resources)
    )


@handles(ApiKey.DELETE_ACLS)
async def handle_delete_acls(ctx: RequestContext, request: Any) -> Any:
    def filter_result(code: ErrorCode, message: str | None, matched: tuple[Any, ...]) -> Any:
        return ctx.make(
            "DeleteAclsFilterResult", error_code=code, error_message=message, matching_acls=matched
        )

    filters = list(request.filters)
    refusal = _refusal(ctx, AclOperation.ALTER)
    if refusal is not None:
        code, message = refusal
        return ctx.response(
            throttle_time=0, filter_results=tuple(filter_result(code, message, ()) for _ in filters)
        )
    current = ctx.broker.security_store.image.acls
    results: list[Any] = []
    doomed: set[AclBinding] = set()
    for item in filters:
        try:
            matched = sorted((b for b in current if _filter_matches(item, b)), key=_sort_key)
        except InvalidAcl as exc:
            results.append(filter_result(ErrorCode.invalid_request, str(exc), ()))
            continue
        doomed.update(matched)
        described = tuple(
            ctx.make(
                "DeleteAclsMatchingAcl",
                error_code=ErrorCode.none,
                error_message=None,
                resource_type=int(b.resource_type),
                resource_name=b.resource_name,
                pattern_type=int(b.pattern_type),
                principal=b.principal,
                host=b.host,
                operation=int(b.operation),
                permission_type=int(b.permission_type),
            )
            for b in matched
        )
        results.append(filter_result(ErrorCode.none, None, described))
    if doomed:
        await ctx.broker.security_store.delete_acls(doomed)
    return ctx.response(throttle_time=0, filter_results=tuple(results))


# -- helpers ---------------------------------------------------------------------------------


def _refusal(ctx: RequestContext, operation: AclOperation) -> tuple[ErrorCode, str] | None:
    if ctx.broker.authorizer is None:
        return ErrorCode.security_disabled, _SECURITY_DISABLED
    if not ctx.authorize_cluster(operation):
        return ErrorCode.cluster_authorization_failed, "Cluster authorization failed."
    return None


def _enum(kind: Any, value: int, what: str) -> Any:
    try:
        return kind(int(value))
    except ValueError:
        raise InvalidAcl(f"Unknown {what} {value}") from None


def _binding_from_creation(creation: Any) -> AclBinding:
    resource_type = _enum(ResourceType, creation.resource_type, "resource type")
    pattern = _enum(
        PatternType, getattr(creation, "resource_pattern_type", PatternType.LITERAL), "pattern"
    )
    operation = _enum(AclOperation, creation.operation, "operation")
    permission = _enum(AclPermissionType, creation.permission_type, "permission type")
    if resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
        raise InvalidAcl(f"Invalid resource type {resource_type.name} for an ACL binding")
    if pattern not in (PatternType.LITERAL, PatternType.PREFIXED):
        raise InvalidAcl(f"Invalid pattern type {pattern.name}: use LITERAL or PREFIXED")
    if operation in (AclOperation.UNKNOWN, AclOperation.ANY):
        raise InvalidAcl(f"Invalid operation {operation.name} for an ACL binding")
    if permission in (AclPermissionType.UNKNOWN, AclPermissionType.ANY):
        raise InvalidAcl(f"Invalid permission type {permission.name} for an ACL binding")
    name = str(creation.resource_name or "")
    if not name:
        raise InvalidAcl("Resource name must not be empty")
    if resource_type == ResourceType.CLUSTER and name != CLUSTER_RESOURCE_NAME:
        raise InvalidAcl(f"The only valid name for the CLUSTER resource is {CLUSTER_RESOURCE_NAME}")
    if pattern == PatternType.PREFIXED and name == WILDCARD:
        raise InvalidAcl("A PREFIXED pattern cannot be the wildcard '*'")
    principal = str(creation.principal or "")
    kind, sep, principal_name = principal.partition(":")
    if not sep or not kind or not principal_name:
        raise InvalidAcl(f"Invalid principal {principal!r}: expected Type:name, e.g. User:alice")
    host = str(creation.host or "")
    if not host:
        raise InvalidAcl("Host must not be empty (use '*' for every host)")
    return AclBinding(resource_type, name, pattern, principal, host, operation, permission)


def _matching(ctx: RequestContext, request: Any) -> list[AclBinding]:
    return [b for b in ctx.broker.security_store.image.acls if _filter_matches(request, b)]


def _filter_matches(item: Any, binding: AclBinding) -> bool:
    resource_type = _enum(ResourceType, item.resource_type_filter, "resource type")
    pattern = _enum(
        PatternType, getattr(item, "pattern_type_filter", PatternType.LITERAL), "pattern"
    )
    operation = _enum(AclOperation, item.operation, "operation")
    permission = _enum(AclPermissionType, item.permission_type, "permission type")
    if PatternType.UNKNOWN in (pattern,) or resource_type == ResourceType.UNKNOWN:
        raise InvalidAcl("A filter cannot use the UNKNOWN resource or pattern type")
    if resource_type != ResourceType.ANY and resource_type != binding.resource_type:
        return False
    if pattern not in (PatternType.ANY, PatternType.MATCH) and pattern != binding.pattern_type:
        return False
    name = item.resource_name_filter
    if name is not None:
        if pattern in (PatternType.ANY, binding.pattern_type):
            if name != binding.resource_name:
                return False
        elif binding.pattern_type == PatternType.LITERAL:  # MATCH
            if binding.resource_name not in (name, WILDCARD):
                return False
        elif not name.startswith(binding.resource_name):  # MATCH against PREFIXED
            return False
    if item.principal_filter is not None and item.principal_filter != binding.principal:
        return False
    if item.host_filter is not None and item.host_filter != binding.host:
        return False
    if operation != AclOperation.ANY and operation != binding.operation:
        return False
    return bool(permission in (AclPermissionType.ANY, binding.permission_type))


def _sort_key(binding: AclBinding) -> tuple[Any, ...]:
    return (
        binding.resource_type,
        binding.resource_name,
        binding.pattern_type,
        binding.principal,
        binding.host,
        binding.operation,
        binding.permission_type,
    )
