"""The classic group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
DescribeGroups, ListGroups, DeleteGroups. (Offsets are in ``group_offsets``.)

Each handler translates its kio request version into the coordinator's version-free message
(``moldau.coordinator.group.messages``), hands it to the broker's
``GroupCoordinatorRuntime`` and translates the answer back. The coordinator call happens
before the handler returns, so a connection's requests take effect in order; the wait for
the answer — a JoinGroup parked for a whole rebalance, a write waiting for its fsync — is a
``Deferred``, so the connection keeps serving meanwhile.

Version notes: JoinGroup v0 has one timeout for session and rebalance; v4+ asks new members
to rejoin with their assigned id (MEMBER_ID_REQUIRED); ``protocol_name`` is nullable from
v7 and answered "" before. LeaveGroup v3+ names members in a batch (and lets admins remove
static members by instance id); before v3 the one member's error is the request's.
FindCoordinator v4+ answers a batch of keys. Single node: this broker coordinates every
group; transaction coordinators do not exist yet (COORDINATOR_NOT_AVAILABLE).

The handlers call ``ensure_offsets_topic`` where a group can come into existence
(FindCoordinator, JoinGroup, OffsetCommit): like Kafka, ``__consumer_offsets`` is created on
first use. Before that, other group requests answer NOT_COORDINATOR, as Kafka would.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import Deferred, RequestContext
from moldau.broker.handlers import handles
from moldau.coordinator.group import GROUP_METADATA_TOPIC
from moldau.coordinator.group.messages import (
    HeartbeatRequest,
    JoinGroupRequest,
    JoinGroupResult,
    LeaveGroupResult,
    LeavingMember,
    ListGroupsFilter,
    SyncGroupRequest,
    SyncGroupResult,
)
from moldau.coordinator.group.runtime import CoordinatorWriteError
from moldau.coordinator.txn import TRANSACTION_STATE_TOPIC
from moldau.protocol.acl import AclOperation, ResourceType
from moldau.protocol.api import ApiKey
from moldau.protocol.messages import millis

GROUP_KEY_TYPE = 0
TRANSACTION_KEY_TYPE = 1

AUTHORIZED_OPERATIONS_OMITTED = -(2**31)
GROUP_AUTHORIZED_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)
"""READ, DELETE and DESCRIBE: what a group supports, all allowed without an authorizer."""


def client_host(ctx: RequestContext) -> str:
    """The client address as Kafka reports it (``InetAddress.toString``: "/127.0.0.1")."""
    return "/" + ctx.peer.rsplit(":", 1)[0]


# -- FindCoordinator -------------------------------------------------------------------------


@handles(ApiKey.FIND_COORDINATOR)
async def handle_find_coordinator(ctx: RequestContext, request: Any) -> Any:
    key_type = int(getattr(request, "key_type", GROUP_KEY_TYPE))
    keys = tuple(request.coordinator_keys) if ctx.version >= 4 else (request.key,)
    answers = [_coordinator_for(ctx, key_type, key) for key in keys]
    if ctx.version >= 4:
        coordinators = tuple(
            ctx.make(
                "Coordinator",
                key=key,
                node_id=node_id,
                host=host,
                port=port,
                error_code=error,
                error_message=None if error is ErrorCode.none else error.name,
            )
            for key, (error, node_id, host, port) in zip(keys, answers, strict=True)
        )
        return ctx.response(throttle_time=0, coordinators=coordinators)
    error, node_id, host, port = answers[0]
    return ctx.response(
        throttle_time=0,
        error_code=error,
        error_message=None if error is ErrorCode.none else error.name,
        node_id=node_id,
        host=host,
        port=port,
    )


def _coordinator_for(
    ctx: RequestContext, key_type: int, key: str
) -> tuple[ErrorCode, int, str, int]:
    """The leader of the key's internal partition is its coordinator (Kafka's rule)."""
    broker = ctx.broker
    if key_type == GROUP_KEY_TYPE and not ctx.authorize(
        AclOperation.DESCRIBE, ResourceType.GROUP, key
    ):
        return ErrorCode.group_authorization_failed, -1, "", -1
    if key_type == TRANSACTION_KEY_TYPE and not ctx.authorize(
        AclOperation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, key
    ):
        return ErrorCode.transactional_id_authorization_failed, -1, "", -1
    if key_type == GROUP_KEY_TYPE:
        broker.ensure_offsets_topic()
        topic, partition = GROUP_METADATA_TOPIC, broker.group_coordinator.partition_for(key)
    elif key_type == TRANSACTION_KEY_TYPE:
        broker.ensure_transaction_state_topic()
        topic, partition = TRANSACTION_STATE_TOPIC, broker.txn_coordinator.partition_for(key)
    else:
        return ErrorCode.invalid_request, -1, "", -1
    state = broker.metadata.image.partition(topic, partition)
    if state is None or not state.has_leader:
        return ErrorCode.coordinator_not_available, -1, "", -1
    endpoint = broker.broker_endpoint(state.leader, ctx.session.listener_name)
    if endpoint is None:
        return ErrorCode.coordinator_not_available, -1, "", -1
    host, port = endpoint
    return ErrorCode.none, state.leader, host, port


# -- JoinGroup / SyncGroup / Heartbeat / LeaveGroup -----------------------------------------


def _may_join(ctx: RequestContext, group_id: str) -> bool:
    """Membership APIs need READ on the group (GROUP_AUTHORIZATION_FAILED otherwise)."""
    return ctx.authorize(AclOperation.READ, ResourceType.GROUP, group_id)


@handles(ApiKey.JOIN_GROUP)
async def handle_join_group(ctx: RequestContext, request: Any) -> Any:
    if not _may_join(ctx, request.group_id):
        return ctx.response(
            throttle_time=0,
            error_code=ErrorCode.group_authorization_failed,
            generation_id=-1,
            protocol_type=None,
            protocol_name=None if ctx.version >= 7 else "",
            leader="",
            skip_assignment=False,
            member_id=request.member_id,
            members=(),
        )
    ctx.broker.ensure_offsets_topic()
    session_timeout_ms = millis(request.session_timeout)
    join = JoinGroupRequest(
        group_id=request.group_id,
        member_id=request.member_id,
        protocol_type=request.protocol_type,
        protocols=tuple((p.name, bytes(p.metadata)) for p in request.protocols),
        session_timeout_ms=session_timeout_ms,
        rebalance_timeout_ms=(
            millis(request.rebalance_timeout) if ctx.version >= 1 else session_timeout_ms
        ),
        group_instance_id=getattr(request, "group_instance_id", None),
        client_id=ctx.client_id or "",
        client_host=client_host(ctx),
        reason=getattr(request, "reason", None),
        require_known_member_id=ctx.version >= 4,
        supports_skip_assignment=ctx.version >= 9,
    )
    answer = ctx.broker.group_coordinator.join_group(join)
    return Deferred(_join_response(ctx, answer))


async def _join_response(ctx: RequestContext, answer: Awaitable[JoinGroupResult]) -> Any:
    result = await answer
    protocol_name = result.protocol_name
    if protocol_name is None and ctx.version < 7:
        protocol_name = ""
    members = tuple(
        ctx.make(
            "JoinGroupResponseMember",
            member_id=m.member_id,
            group_instance_id=m.group_instance_id,
            metadata=m.metadata,
        )
        for m in result.members
    )
    return ctx.response(
        throttle_time=0,
        error_code=result.error,
        generation_id=result.generation_id,
        protocol_type=result.protocol_type,
        protocol_name=protocol_name,
        leader=result.leader,
        skip_assignment=result.skip_assignment,
        member_id=result.member_id,
        members=members,
    )


@handles(ApiKey.SYNC_GROUP)
async def handle_sync_group(ctx: RequestContext, request: Any) -> Any:
    if not _may_join(ctx, request.group_id):
        return ctx.response(
            throttle_time=0,
            error_code=ErrorCode.group_authorization_failed,
            protocol_type=None,
            protocol_name=None,
            assignment=b"",
        )
    sync = SyncGroupRequest(
        group_id=request.group_id,
        generation_id=request.generation_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        protocol_type=getattr(request, "protocol_type", None),
        protocol_name=getattr(request, "protocol_name", None),
        assignments=tuple((a.member_id, bytes(a.assignment)) for a in request.assignments),
    )
    answer = ctx.broker.group_coordinator.sync_group(sync)
    return Deferred(_sync_response(ctx, answer))


async def _sync_response(ctx: RequestContext, answer: Awaitable[SyncGroupResult]) -> Any:
    result = await answer
    return ctx.response(
        throttle_time=0,
        error_code=result.error,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name,
        assignment=result.assignment,
    )


@handles(ApiKey.HEARTBEAT)
async def handle_heartbeat(ctx: RequestContext, request: Any) -> Any:
    if not _may_join(ctx, request.group_id):
        return ctx.response(throttle_time=0, error_code=ErrorCode.group_authorization_failed)
    heartbeat = HeartbeatRequest(
        group_id=request.group_id,
        generation_id=request.generation_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
    )
    error = await ctx.broker.group_coordinator.heartbeat(heartbeat)
    return ctx.response(throttle_time=0, error_code=error)


@handles(ApiKey.LEAVE_GROUP)
async def handle_leave_group(ctx: RequestContext, request: Any) -> Any:
    if not _may_join(ctx, request.group_id):
        return ctx.response(
            throttle_time=0, error_code=ErrorCode.group_authorization_failed, members=()
        )
    if ctx.version >= 3:
        leaving = tuple(
            LeavingMember(
                m.member_id, getattr(m, "group_instance_id", None), getattr(m, "reason", None)
            )
            for m in request.members
        )
    else:
        leaving = (LeavingMember(request.member_id),)
    answer = ctx.broker.group_coordinator.leave_group(request.group_id, leaving)
    return Deferred(_leave_response(ctx, answer, leaving))


async def _leave_response(
    ctx: RequestContext, answer: Awaitable[LeaveGroupResult], leaving: tuple[LeavingMember, ...]
) -> Any:
    try:
        result = await answer
    except CoordinatorWriteError as exc:
        result = LeaveGroupResult(exc.error)
    if ctx.version < 3:
        error = result.error
        if error is ErrorCode.none:
            error = next((e for _, e in result.members if e is not ErrorCode.none), error)
        return ctx.response(throttle_time=0, error_code=error)
    members = tuple(
        ctx.make(
            "MemberResponse",
            member_id=who.member_id,
            group_instance_id=who.group_instance_id,
            error_code=error,
        )
        for who, error in result.members
    )
    return ctx.response(throttle_time=0, error_code=result.error, members=members)


# -- DescribeGroups / ListGroups / DeleteGroups ----------------------------------------------


@handles(ApiKey.DESCRIBE_GROUPS)
async def handle_describe_groups(ctx: RequestContext, request: Any) -> Any:
    include_operations = bool(getattr(request, "include_authorized_operations", False))
    operations = (
        GROUP_AUTHORIZED_OPERATIONS if include_operations else AUTHORIZED_OPERATIONS_OMITTED
    )
    described = ctx.broker.group_coordinator.describe_groups(request.groups)
    groups = tuple(
        ctx.make(
            "DescribedGroup",
            error_code=g.error,
            group_id=g.group_id,
            group_state=g.state,
            protocol_type=g.protocol_type,
            protocol_data=g.protocol_data,
            members=tuple(
                ctx.make(
                    "DescribedGroupMember",
                    member_id=m.member_id,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    member_metadata=m.metadata,
                    member_assignment=m.assignment,
                )
                for m in g.members
            ),
            authorized_operations=operations,
        )
        for g in described
    )
    return ctx.response(throttle_time=0, groups=groups)


@handles(ApiKey.LIST_GROUPS)
async def handle_list_groups(ctx: RequestContext, request: Any) -> Any:
    filter_ = ListGroupsFilter(
        states=frozenset(s.strip().lower() for s in getattr(request, "states_filter", ())),
        types=frozenset(t.strip().lower() for t in getattr(request, "types_filter", ())),
    )
    error, listed = ctx.broker.group_coordinator.list_groups(filter_)
    groups = tuple(
        ctx.make(
            "ListedGroup",
            group_id=g.group_id,
            protocol_type=g.protocol_type,
            group_state=g.state,
            group_type=g.group_type,
        )
        for g in listed
    )
    return ctx.response(throttle_time=0, error_code=error, groups=groups)


@handles(ApiKey.DELETE_GROUPS)
async def handle_delete_groups(ctx: RequestContext, request: Any) -> Any:
    answer = ctx.broker.group_coordinator.delete_groups(request.groups_names)

    async def respond() -> Any:
        results = tuple(
            ctx.make("DeletableGroupResult", group_id=group_id, error_code=error)
            for group_id, error in await answer
        )
        return ctx.response(throttle_time=0, results=results)

    return Deferred(respond())
