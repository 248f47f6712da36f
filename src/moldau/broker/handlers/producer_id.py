"""InitProducerId for idempotent producers. Transactions (a transactional id) come later:
until then a transactional id is refused, and the transaction APIs are not advertised."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import RequestContext
from moldau.broker.handlers import handles
from moldau.protocol.api import ApiKey


@handles(ApiKey.INIT_PRODUCER_ID)
async def handle_init_producer_id(ctx: RequestContext, request: Any) -> Any:
    if request.transactional_id is not None:
        return ctx.response(
            throttle_time=0,
            error_code=ErrorCode.unsupported_version,
            producer_id=-1,
            producer_epoch=-1,
        )
    producer_id = ctx.broker.producer_ids.next_id()
    return ctx.response(
        throttle_time=0, error_code=ErrorCode.none, producer_id=producer_id, producer_epoch=0
    )
