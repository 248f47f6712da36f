"""SaslHandshake (v0-1) and SaslAuthenticate (v0-2): the wire side of SASL login.

The state lives in the connection's ``SaslAuthenticator`` (``broker/auth/sasl.py``); these
handlers only translate requests and responses. On a listener without SASL both APIs are
answered ILLEGAL_SASL_STATE, as Kafka does. After a refusal the authenticator is ``failed``
and the connection closes itself once the response is out (after
``connection.failed.authentication.delay.ms``).
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.auth.sasl import authenticator_of
from moldau.broker.context import RequestContext
from moldau.broker.handlers import handles
from moldau.protocol.api import ApiKey


@handles(ApiKey.SASL_HANDSHAKE)
async def handle_sasl_handshake(ctx: RequestContext, request: Any) -> Any:
    authenticator = authenticator_of(ctx.session)
    if authenticator is None:
        return ctx.response(error_code=ErrorCode.illegal_sasl_state, mechanisms=())
    code, mechanisms = authenticator.handshake(str(request.mechanism), ctx.version)
    return ctx.response(error_code=code, mechanisms=mechanisms)


@handles(ApiKey.SASL_AUTHENTICATE)
async def handle_sasl_authenticate(ctx: RequestContext, request: Any) -> Any:
    authenticator = authenticator_of(ctx.session)
    if authenticator is None:
        return ctx.response(
            error_code=ErrorCode.illegal_sasl_state,
            error_message="SASL is not enabled on this listener",
            auth_bytes=b"",
            session_lifetime=0,
        )
    result = authenticator.authenticate(bytes(request.auth_bytes))
    return ctx.response(
        error_code=result.error_code,
        error_message=result.error_message,
        auth_bytes=result.auth_bytes,
        session_lifetime=result.session_lifetime_ms,
    )
