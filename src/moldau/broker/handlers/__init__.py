"""Request handlers, one module per API family; ``HANDLERS`` maps API key → handler.

A handler is ``async def handle_x(ctx: RequestContext, request) -> response | Deferred |
None``. It is awaited in request order on its connection, so anything that must happen in
order (an append) happens before it returns; slow completion goes in a ``Deferred``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from moldau.broker.context import RequestContext

Handler = Callable[[RequestContext, Any], Awaitable[Any]]
HANDLERS: dict[int, Handler] = {}


def handles(*api_keys: int) -> Callable[[Handler], Handler]:
    """Register the decorated coroutine as the handler of ``api_keys``."""

    def register(func: Handler) -> Handler:
        for key in api_keys:
            HANDLERS[key] = func
        return func

    return register


def load_all() -> None:
    """Import every handler module so that their ``@handles`` registrations run."""
    from moldau.broker.handlers import (  # noqa: F401
        acls,
        admin,
        api_versions,
        client_quotas,
        consumer_group,
        fetch,
        group_offsets,
        groups,
        list_offsets,
        metadata,
        offset_for_leader_epoch,
        partition_admin,
        produce,
        producer_id,
        sasl,
        scram_credentials,
        txn,
        txn_admin,
        txn_offset_commit,
        write_txn_markers,
    )
