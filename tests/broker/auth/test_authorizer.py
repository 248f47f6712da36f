"""The ACL authorizer's decisions, rule by rule (Kafka's StandardAuthorizer semantics)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from moldau.broker.auth.authorizer import AclAuthorizer, parse_super_users
from moldau.broker.auth.principal import KafkaPrincipal
from moldau.cluster.security_state import AclBinding, SecurityImage
from moldau.protocol.acl import AclOperation, AclPermissionType, PatternType, ResourceType

ALICE = KafkaPrincipal.user("alice")
BOB = KafkaPrincipal.user("bob")
HOST = "10.1.2.3"
ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY
LITERAL, PREFIXED = PatternType.LITERAL, PatternType.PREFIXED
TOPIC, GROUP = ResourceType.TOPIC, ResourceType.GROUP
Op = AclOperation


def acl(
    name: str,
    operation: AclOperation,
    permission: AclPermissionType = ALLOW,
    *,
    principal: str = "User:alice",
    host: str = "*",
    pattern: PatternType = LITERAL,
    resource_type: ResourceType = TOPIC,
) -> AclBinding:
    return AclBinding(resource_type, name, pattern, principal, host, operation, permission)


def authorizer(*bindings: AclBinding, **kwargs: object) -> AclAuthorizer:
    result = AclAuthorizer(**kwargs)  # type: ignore[arg-type]
    result.update(SecurityImage(acls=frozenset(bindings)))
    return result


def test_no_acl_on_a_resource_denies_unless_allow_everyone_is_set() -> None:
    assert not authorizer().authorize(ALICE, HOST, Op.READ, TOPIC, "t")
    assert authorizer(allow_if_no_acl=True).authorize(ALICE, HOST, Op.READ, TOPIC, "t")
    # An ACL for someone else on the same resource: "found", so no fallback to allow.
    other = authorizer(acl("t", Op.READ, principal="User:bob"), allow_if_no_acl=True)
    assert not other.authorize(ALICE, HOST, Op.READ, TOPIC, "t")


def test_literal_wildcard_and_prefixed_names() -> None:
    auth = authorizer(
        acl("orders", Op.READ),
        acl("*", Op.DESCRIBE),
        acl("logs-", Op.WRITE, pattern=PREFIXED),
    )
    assert auth.authorize(ALICE, HOST, Op.READ, TOPIC, "orders")
    assert not auth.authorize(ALICE, HOST, Op.READ, TOPIC, "orders2")
    assert auth.authorize(ALICE, HOST, Op.DESCRIBE, TOPIC, "anything")
    assert auth.authorize(ALICE, HOST, Op.WRITE, TOPIC, "logs-eu")
    assert not auth.authorize(ALICE, HOST, Op.WRITE, TOPIC, "log")
    assert not auth.authorize(ALICE, HOST, Op.READ, GROUP, "orders")  # other resource type


def test_deny_wins_over_allow() -> None:
    auth = authorizer(
        acl("orders-", Op.ALL, pattern=PREFIXED),
        acl("orders-secret", Op.READ, DENY),
    )
    assert auth.authorize(ALICE, HOST, Op.READ, TOPIC, "orders-public")
    assert not auth.authorize(ALICE, HOST, Op.READ, TOPIC, "orders-secret")
    assert auth.authorize(ALICE, HOST, Op.WRITE, TOPIC, "orders-secret")
    denied_all = authorizer(acl("t", Op.READ), acl("t", Op.ALL, DENY, principal="User:*"))
    assert not denied_all.authorize(ALICE, HOST, Op.READ, TOPIC, "t")


def test_implied_operations() -> None:
    for granting in (Op.READ, Op.WRITE, Op.DELETE, Op.ALTER):
        assert authorizer(acl("t", granting)).authorize(ALICE, HOST, Op.DESCRIBE, TOPIC, "t")
    assert not authorizer(acl("t", Op.CREATE)).authorize(ALICE, HOST, Op.DESCRIBE, TOPIC, "t")
    configs = authorizer(acl("t", Op.ALTER_CONFIGS))
    assert configs.authorize(ALICE, HOST, Op.DESCRIBE_CONFIGS, TOPIC, "t")
    assert not authorizer(acl("t", Op.DESCRIBE)).authorize(ALICE, HOST, Op.READ, TOPIC, "t")
    # A DENY of READ does not deny DESCRIBE that WRITE implies.
    mixed = authorizer(acl("t", Op.WRITE), acl("t", Op.READ, DENY))
    assert mixed.authorize(ALICE, HOST, Op.DESCRIBE, TOPIC, "t")


def test_principal_and_host_matching() -> None:
    auth = authorizer(
        acl("t", Op.READ, principal="User:*", host=HOST),
        acl("u", Op.READ, principal="User:bob"),
    )
    assert auth.authorize(ALICE, HOST, Op.READ, TOPIC, "t")
    assert not auth.authorize(ALICE, "10.9.9.9", Op.READ, TOPIC, "t")
    assert auth.authorize(BOB, HOST, Op.READ, TOPIC, "u")
    assert not auth.authorize(ALICE, HOST, Op.READ, TOPIC, "u")


def test_super_users_bypass_every_rule() -> None:
    supers = parse_super_users(" User:admin ; User:broker;")
    assert supers == {"User:admin", "User:broker"}
    auth = authorizer(acl("t", Op.ALL, DENY, principal="User:*"), super_users=supers)
    assert auth.authorize(KafkaPrincipal.user("admin"), HOST, Op.WRITE, TOPIC, "t")
    assert not auth.authorize(ALICE, HOST, Op.WRITE, TOPIC, "t")


def test_allows_any_for_idempotent_producers() -> None:
    auth = authorizer(acl("x-", Op.WRITE, pattern=PREFIXED))
    assert auth.allows_any(ALICE, HOST, Op.WRITE, TOPIC)
    assert not auth.allows_any(BOB, HOST, Op.WRITE, TOPIC)
    blocked = authorizer(acl("x", Op.WRITE), acl("*", Op.WRITE, DENY))
    assert not blocked.allows_any(ALICE, HOST, Op.WRITE, TOPIC)


names = st.text(alphabet="ab-", min_size=1, max_size=6)


@given(prefix=names, name=names)
def test_prefixed_allow_matches_exactly_the_names_with_that_prefix(prefix: str, name: str) -> None:
    auth = authorizer(acl(prefix, Op.READ, pattern=PREFIXED))
    assert auth.authorize(ALICE, HOST, Op.READ, TOPIC, name) == name.startswith(prefix)
