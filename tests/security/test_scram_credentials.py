"""DescribeUserScramCredentials / AlterUserScramCredentials against a real broker: through
confluent-kafka's AdminClient, and over the wire for Kafka's exact error codes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from kio.schema.alter_user_scram_credentials.v0.request import (
    AlterUserScramCredentialsRequest,
    ScramCredentialDeletion,
    ScramCredentialUpsertion,
)
from kio.schema.describe_user_scram_credentials.v0.request import (
    DescribeUserScramCredentialsRequest,
    UserName,
)
from kio.schema.errors import ErrorCode
from kio.schema.sasl_authenticate.v2 import SaslAuthenticateRequest
from kio.schema.sasl_handshake.v1 import SaslHandshakeRequest
from kio.static.primitive import i8, i32
from sasl_helpers import ADMIN_PASSWORD, SECRETS, confluent_config, sasl_broker_config

from moldau.protocol.api import ApiKey
from moldau.testing import BrokerProcess
from moldau.testing.wire import WireClient

NEW_PASSWORD = "dave-Secret-55aa"


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with BrokerProcess(config=sasl_broker_config()) as process:
        yield process
        log = process.output()
    for secret in (*SECRETS, NEW_PASSWORD):
        assert secret not in log


@pytest.fixture
def admin_wire(broker: BrokerProcess) -> Iterator[WireClient]:
    with WireClient(broker.host, broker.port) as client:
        client.request(ApiKey.SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism="PLAIN"))
        token = f"\0admin\0{ADMIN_PASSWORD}".encode()
        response = client.request(
            ApiKey.SASL_AUTHENTICATE, 2, SaslAuthenticateRequest(auth_bytes=token)
        )
        assert response.error_code == ErrorCode.none
        yield client


def _admin(broker: BrokerProcess) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient(confluent_config(broker.bootstrap, "PLAIN", "admin", ADMIN_PASSWORD))


def _upsertion(name: str, mechanism: int = 2, iterations: int = 4096) -> ScramCredentialUpsertion:
    salt = b"0123456789abcdef"
    salted = hashlib.pbkdf2_hmac("sha512", b"pw", salt, max(iterations, 1))
    return ScramCredentialUpsertion(
        name=name,
        mechanism=i8(mechanism),
        iterations=i32(iterations),
        salt=salt,
        salted_password=salted,
    )


def _alter(client: WireClient, deletions: tuple = (), upsertions: tuple = ()) -> dict[str, Any]:
    response = client.request(
        ApiKey.ALTER_USER_SCRAM_CREDENTIALS,
        0,
        AlterUserScramCredentialsRequest(deletions=deletions, upsertions=upsertions),
    )
    return {r.user: (r.error_code, r.error_message) for r in response.results}


def _describe(client: WireClient, names: tuple[str, ...] | None) -> Any:
    users = None if names is None else tuple(UserName(name=n) for n in names)
    return client.request(
        ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, 0, DescribeUserScramCredentialsRequest(users=users)
    )


@pytest.mark.compat
def test_admin_client_creates_a_user_who_can_log_in(broker: BrokerProcess) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import (
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = _admin(broker)
    # One mechanism per request: as in Kafka (ScramControlManager keys changes by user name),
    # two changes of one user in one request are DUPLICATE_RESOURCE.
    for mechanism in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):
        upsertion = UserScramCredentialUpsertion(
            "dave", ScramCredentialInfo(mechanism, 8192), NEW_PASSWORD.encode()
        )
        for future in admin.alter_user_scram_credentials([upsertion]).values():
            future.result(timeout=10)
    described = admin.describe_user_scram_credentials(["dave"])["dave"].result(timeout=10)
    assert sorted((i.mechanism.name, i.iterations) for i in described.scram_credential_infos) == [
        ("SCRAM_SHA_256", 8192),
        ("SCRAM_SHA_512", 8192),
    ]
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
        producer = Producer(confluent_config(broker.bootstrap, mechanism, "dave", NEW_PASSWORD))
        producer.produce("scram-created", b"x")
        assert producer.flush(15) == 0


def test_describe_all_and_unknown(admin_wire: WireClient) -> None:
    assert _alter(admin_wire, upsertions=(_upsertion("erin"),)) == {"erin": (ErrorCode.none, None)}
    everyone = _describe(admin_wire, None)
    assert "erin" in {r.user for r in everyone.results}
    response = _describe(admin_wire, ("erin", "nobody", "nobody2", "nobody2"))
    codes = {r.user: r.error_code for r in response.results}
    assert codes == {
        "erin": ErrorCode.none,
        "nobody": ErrorCode.resource_not_found,
        "nobody2": ErrorCode.duplicate_resource,
    }
    erin = next(r for r in response.results if r.user == "erin")
    assert [(int(i.mechanism), int(i.iterations)) for i in erin.credential_infos] == [(2, 4096)]


def test_alter_errors(admin_wire: WireClient) -> None:
    results = _alter(
        admin_wire,
        deletions=(
            ScramCredentialDeletion(name="ghost", mechanism=i8(1)),
            ScramCredentialDeletion(name="twice", mechanism=i8(1)),
        ),
        upsertions=(
            _upsertion("few", iterations=1000),
            _upsertion("many", iterations=20000),
            _upsertion("weird", mechanism=7),
            _upsertion("twice"),
            _upsertion(""),
            _upsertion("fine"),
        ),
    )
    assert {user: code for user, (code, _) in results.items()} == {
        "ghost": ErrorCode.resource_not_found,
        "twice": ErrorCode.duplicate_resource,
        "few": ErrorCode.unacceptable_credential,
        "many": ErrorCode.unacceptable_credential,
        "weird": ErrorCode.unsupported_sasl_mechanism,
        "": ErrorCode.unacceptable_credential,
        "fine": ErrorCode.none,
    }
    assert results["few"][1] == "Too few iterations"
    assert results["many"][1] == "Too many iterations"
    described = {r.user for r in _describe(admin_wire, None).results}
    assert "fine" in described
    assert not described & {"few", "many", "weird", "twice"}


def test_delete_removes_one_mechanism(admin_wire: WireClient) -> None:
    both = _alter(admin_wire, upsertions=(_upsertion("frank", 1), _upsertion("frank", 2)))
    assert both == {
        "frank": (
            ErrorCode.duplicate_resource,
            "A user credential cannot be altered twice in the same request",
        )
    }
    _alter(admin_wire, upsertions=(_upsertion("gina", 1),))
    _alter(admin_wire, upsertions=(_upsertion("gina", 2),))
    assert _alter(
        admin_wire, deletions=(ScramCredentialDeletion(name="gina", mechanism=i8(1)),)
    ) == {"gina": (ErrorCode.none, None)}
    gina = _describe(admin_wire, ("gina",)).results[0]
    assert [int(i.mechanism) for i in gina.credential_infos] == [2]
    _alter(admin_wire, deletions=(ScramCredentialDeletion(name="gina", mechanism=i8(2)),))
    assert _describe(admin_wire, ("gina",)).results[0].error_code == ErrorCode.resource_not_found
