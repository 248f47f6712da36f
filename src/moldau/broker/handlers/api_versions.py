"""ApiVersions: the ranges in ``protocol.api.ADVERTISED``.

Traps (DESIGN.md §3): the response header is always v0 (handled by framing), and an
ApiVersions version we do not know is answered in v0 with UNSUPPORTED_VERSION plus our ranges
(handled by the connection, which calls ``api_versions_response`` for it).
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.context import RequestContext
from moldau.broker.handlers import handles
from moldau.protocol.api import ADVERTISED, ApiKey, ApiSchema
from moldau.protocol.messages import make


def api_versions_response(schema: ApiSchema, error_code: ErrorCode = ErrorCode.none) -> Any:
    module = schema.response_module
    keys = tuple(
        make(module.ApiVersion, api_key=key, min_version=r.min, max_version=r.max)
        for key, r in sorted(ADVERTISED.items())
    )
    return make(schema.response_type, error_code=error_code, api_keys=keys, throttle_time=0)


@handles(ApiKey.API_VERSIONS)
async def handle_api_versions(ctx: RequestContext, request: Any) -> Any:
    return api_versions_response(ctx.schema)
