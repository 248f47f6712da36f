"""DescribeUserScramCredentials (v0) and AlterUserScramCredentials (v0): SCRAM users.

Both read and write ``broker.security_store`` (a local file or etcd, see
``cluster/security_store.py``), so every broker of a cluster authenticates against the same
credentials. Validation follows Kafka (``ScramControlManager`` and the request handlers):

- Describe: no users (null or empty) lists every user with a credential; a named user
  without one is RESOURCE_NOT_FOUND; a name asked twice is DUPLICATE_RESOURCE (for that
  user). Only mechanism and iteration count are returned — never salt or keys.
- Alter: one result per user. A user named twice in one request (in deletions, upsertions
  or both) is DUPLICATE_RESOURCE; an empty name or a bad iteration count (outside
  4096..16384) or an empty salt/salted password is UNACCEPTABLE_CREDENTIAL; an unknown
  mechanism is UNSUPPORTED_SASL_MECHANISM; deleting a credential that does not exist is
  RESOURCE_NOT_FOUND. The users that pass are written in one store change.

Authorization: DESCRIBE (Describe) and ALTER (Alter) on the CLUSTER resource, as in Kafka.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from kio.schema.errors import ErrorCode

from moldau.broker.auth.scram import (
    MAX_ITERATIONS,
    MECHANISM_IDS,
    MECHANISM_NAMES,
    MIN_ITERATIONS,
    credential_from_salted_password,
)
from moldau.broker.context import RequestContext
from moldau.broker.handlers import handles
from moldau.cluster.security_state import ScramCredential
from moldau.protocol.acl import AclOperation
from moldau.protocol.api import ApiKey


@handles(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS)
async def handle_describe_user_scram_credentials(ctx: RequestContext, request: Any) -> Any:
    if not ctx.authorize_cluster(AclOperation.DESCRIBE):
        return ctx.response(
            throttle_time=0,
            error_code=ErrorCode.cluster_authorization_failed,
            error_message="Cluster authorization failed.",
            results=(),
        )
    scram = ctx.broker.security_store.image.scram
    requested = [u.name for u in request.users] if request.users else None
    results = []
    if requested is None:
        names = sorted(user for user, mechanisms in scram.items() if mechanisms)
        results = [_describe_result(ctx, name, scram[name]) for name in names]
    else:
        counts = Counter(requested)
        for name in dict.fromkeys(requested):
            if counts[name] > 1:
                results.append(
                    _describe_error(
                        ctx,
                        name,
                        ErrorCode.duplicate_resource,
                        "Cannot describe SCRAM credentials for the same user twice in a "
                        "single request",
                    )
                )
            elif not scram.get(name):
                results.append(
                    _describe_error(
                        ctx,
                        name,
                        ErrorCode.resource_not_found,
                        "Attempt to describe a user credential that does not exist",
                    )
                )
            else:
                results.append(_describe_result(ctx, name, scram[name]))
    return ctx.response(
        throttle_time=0, error_code=ErrorCode.none, error_message=None, results=tuple(results)
    )


def _describe_result(ctx: RequestContext, name: str, mechanisms: Any) -> Any:
    infos = tuple(
        ctx.make(
            "CredentialInfo",
            mechanism=MECHANISM_IDS[mechanism],
            iterations=credential.iterations,
        )
        for mechanism, credential in sorted(mechanisms.items())
        if mechanism in MECHANISM_IDS
    )
    return ctx.make(
        "DescribeUserScramCredentialsResult",
        user=name,
        error_code=ErrorCode.none,
        error_message=None,
        credential_infos=infos,
    )


def _describe_error(ctx: RequestContext, name: str, code: ErrorCode, message: str) -> Any:
    return ctx.make(
        "DescribeUserScramCredentialsResult",
        user=name,
        error_code=code,
        error_message=message,
        credential_infos=(),
    )


@handles(ApiKey.ALTER_USER_SCRAM_CREDENTIALS)
async def handle_alter_user_scram_credentials(ctx: RequestContext, request: Any) -> Any:
    image = ctx.broker.security_store.image
    counts = Counter([d.name for d in request.deletions] + [u.name for u in request.upsertions])
    errors: dict[str, tuple[ErrorCode, str]] = {}
    if not ctx.authorize_cluster(AclOperation.ALTER):
        for name in counts:
            errors[name] = (ErrorCode.cluster_authorization_failed, "Cluster authorization failed.")
    order = list(dict.fromkeys(counts))

    def refuse(user: str, code: ErrorCode, message: str) -> None:
        errors.setdefault(user, (code, message))

    for name, count in counts.items():
        if count > 1:
            refuse(
                name,
                ErrorCode.duplicate_resource,
                "A user credential cannot be altered twice in the same request",
            )
        if not name:
            refuse(name, ErrorCode.unacceptable_credential, "Username must not be empty")
    deletions: list[tuple[str, str]] = []
    for deletion in request.deletions:
        mechanism = MECHANISM_NAMES.get(int(deletion.mechanism))
        if mechanism is None:
            refuse(deletion.name, ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism")
        elif image.credential(deletion.name, mechanism) is None:
            refuse(
                deletion.name,
                ErrorCode.resource_not_found,
                "Attempt to delete a user credential that does not exist",
            )
        else:
            deletions.append((deletion.name, mechanism))
    upserts: list[tuple[str, ScramCredential]] = []
    for upsertion in request.upsertions:
        mechanism = MECHANISM_NAMES.get(int(upsertion.mechanism))
        iterations = int(upsertion.iterations)
        if mechanism is None:
            refuse(upsertion.name, ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism")
        elif iterations < MIN_ITERATIONS:
            refuse(upsertion.name, ErrorCode.unacceptable_credential, "Too few iterations")
        elif iterations > MAX_ITERATIONS:
            refuse(upsertion.name, ErrorCode.unacceptable_credential, "Too many iterations")
        elif not upsertion.salt or not upsertion.salted_password:
            refuse(
                upsertion.name,
                ErrorCode.unacceptable_credential,
                "Salt and salted password must not be empty",
            )
        else:
            credential = credential_from_salted_password(
                mechanism, bytes(upsertion.salt), bytes(upsertion.salted_password), iterations
            )
            upserts.append((upsertion.name, credential))
    upserts = [(user, c) for user, c in upserts if user not in errors]
    deletions = [(user, m) for user, m in deletions if user not in errors]
    if upserts or deletions:
        await ctx.broker.security_store.alter_scram(upserts=upserts, deletions=deletions)
    results = tuple(
        ctx.make(
            "AlterUserScramCredentialsResult",
            user=name,
            error_code=errors.get(name, (ErrorCode.none, None))[0],
            error_message=errors.get(name, (ErrorCode.none, None))[1],
        )
        for name in order
    )
    return ctx.response(throttle_time=0, results=results)
