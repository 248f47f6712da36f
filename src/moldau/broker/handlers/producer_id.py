"""InitProducerId: a fresh producer id for idempotent producers, or — with a transactional
id — the transaction coordinator's id and epoch for it (bumping the epoch fences the
previous incarnation of that transactional id)."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import Deferred, RequestContext
from moldau.broker.handlers import handles
from moldau.broker.handlers.txn import fenced_for_version
from moldau.broker.producer_ids import ProducerIdsUnavailableError
from moldau.protocol.acl import AclOperation, ResourceType
from moldau.protocol.api import ApiKey
from moldau.protocol.messages import millis

PRODUCER_FENCED_SINCE = 4
"""InitProducerId v4 (KIP-588) introduced PRODUCER_FENCED; older clients get
INVALID_PRODUCER_EPOCH."""


@handles(ApiKey.INIT_PRODUCER_ID)
async def handle_init_producer_id(ctx: RequestContext, request: Any) -> Any:
    transactional_id = request.transactional_id
    if transactional_id is not None and not ctx.authorize(
        AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id
    ):
        return _answer(ctx, ErrorCode.transactional_id_authorization_failed)
    if transactional_id is None and not _may_write_idempotently(ctx):
        return _answer(ctx, ErrorCode.cluster_authorization_failed)
    if transactional_id is None:
        try:
            producer_id = ctx.broker.producer_ids.next_id()
        except ProducerIdsUnavailableError:
            return _answer(ctx, ErrorCode.coordinator_not_available)
        return ctx.response(
            throttle_time=0, error_code=ErrorCode.none, producer_id=producer_id, producer_epoch=0
        )
    broker = ctx.broker
    if not transactional_id:
        return _answer(ctx, ErrorCode.invalid_request)
    broker.ensure_transaction_state_topic()
    coordinator = broker.txn_coordinator
    error = coordinator.status_error(transactional_id)
    if error is not None:
        return _answer(ctx, error)

    async def answer() -> Any:
        result = await coordinator.init_producer_id(
            transactional_id,
            millis(request.transaction_timeout),
            int(getattr(request, "producer_id", -1)),
            int(getattr(request, "producer_epoch", -1)),
        )
        if result.error is not ErrorCode.none:
            error = fenced_for_version(result.error, ctx.version, PRODUCER_FENCED_SINCE)
            return _answer(ctx, error)
        return ctx.response(
            throttle_time=0,
            error_code=ErrorCode.none,
            producer_id=result.producer_id,
            producer_epoch=result.producer_epoch,
        )

    return Deferred(answer())


def _may_write_idempotently(ctx: RequestContext) -> bool:
    """Kafka 3's rule: IDEMPOTENT_WRITE on the cluster, or WRITE on at least one topic."""
    authorizer = ctx.broker.authorizer
    if authorizer is None or ctx.authorize_cluster(AclOperation.IDEMPOTENT_WRITE):
        return True
    session = ctx.session
    return authorizer.allows_any(
        session.principal, session.client_host, AclOperation.WRITE, ResourceType.TOPIC
    )


def _answer(ctx: RequestContext, error: ErrorCode) -> Any:
    return ctx.response(throttle_time=0, error_code=error, producer_id=-1, producer_epoch=-1)
