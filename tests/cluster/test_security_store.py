"""Security records (SCRAM credentials, ACLs, quotas) persist in both metadata stores and
come back as the same image: a local file for a single node, etcd for a cluster."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from moldau.cluster.etcd_client import EtcdClient
from moldau.cluster.etcd_security_store import EtcdSecurityStore
from moldau.cluster.security_state import (
    AclBinding,
    ScramCredential,
    SecurityImage,
    build_image,
    normalize_entity,
    parse_quota_entity_key,
    quota_entity_key,
)
from moldau.cluster.security_store import LocalSecurityStore, SecurityStore
from moldau.protocol.acl import AclOperation, AclPermissionType, PatternType, ResourceType
from moldau.testing.etcd import EtcdProcess

CREDENTIAL = ScramCredential("SCRAM-SHA-512", b"salt", b"stored", b"server", 4096)
READ_ORDERS = AclBinding(
    ResourceType.TOPIC,
    "orders",
    PatternType.LITERAL,
    "User:alice",
    "*",
    AclOperation.READ,
    AclPermissionType.ALLOW,
)
DENY_PREFIX = AclBinding(
    ResourceType.TOPIC,
    "secret-",
    PatternType.PREFIXED,
    "User:*",
    "10.0.0.1",
    AclOperation.ALL,
    AclPermissionType.DENY,
)
ALICE = normalize_entity({"user": "alice"})
DEFAULT_CLIENT = normalize_entity({"client-id": None, "user": "bob/x"})


async def fill(store: SecurityStore) -> None:
    await store.alter_scram(upserts=[("alice", CREDENTIAL), ("user/with:odd=chars", CREDENTIAL)])
    await store.create_acls([READ_ORDERS, DENY_PREFIX, READ_ORDERS])
    await store.alter_quotas(ALICE, {"producer_byte_rate": 1024.0}, ())
    await store.alter_quotas(DEFAULT_CLIENT, {"consumer_byte_rate": 10.0}, ())


def check_filled(image: SecurityImage) -> None:
    assert image.credential("alice", "SCRAM-SHA-512") == CREDENTIAL
    assert image.credential("user/with:odd=chars", "SCRAM-SHA-512") == CREDENTIAL
    assert image.credential("alice", "SCRAM-SHA-256") is None
    assert image.acls == frozenset({READ_ORDERS, DENY_PREFIX})
    assert dict(image.quotas[ALICE]) == {"producer_byte_rate": 1024.0}
    assert dict(image.quotas[DEFAULT_CLIENT]) == {"consumer_byte_rate": 10.0}


def test_entity_keys_round_trip_defaults_and_odd_names() -> None:
    for entity in (ALICE, DEFAULT_CLIENT, normalize_entity({"ip": "::1"})):
        key = quota_entity_key(entity).removeprefix("quotas/")
        assert parse_quota_entity_key(key) == entity
    assert normalize_entity({"user": "a", "client-id": "c"})[0] == ("client-id", "c")


def test_a_damaged_record_is_skipped_not_fatal() -> None:
    image = build_image({"acls/x": b"{not json", "scram/bob/SCRAM-SHA-256": b'{"salt": 1}'})
    assert image.acls == frozenset()
    assert dict(image.scram) == {}


async def test_local_store_persists_and_reloads(tmp_path: Path) -> None:
    store = LocalSecurityStore(tmp_path)
    seen: list[SecurityImage] = []
    store.subscribe(seen.append)
    await fill(store)
    check_filled(store.image)
    assert seen[-1] is store.image
    check_filled(LocalSecurityStore(tmp_path).image)

    await store.delete_acls([READ_ORDERS])
    await store.alter_scram(deletions=[("alice", "SCRAM-SHA-512")])
    await store.alter_quotas(ALICE, {}, ["producer_byte_rate"])
    reloaded = LocalSecurityStore(tmp_path).image
    assert reloaded.acls == frozenset({DENY_PREFIX})
    assert "alice" not in reloaded.scram
    assert ALICE not in reloaded.quotas


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdProcess]:
    with EtcdProcess() as proc:
        yield proc


async def test_etcd_store_shares_changes_between_brokers(etcd: EtcdProcess) -> None:
    prefix = f"/moldau-{uuid.uuid4().hex[:8]}"
    client_a, client_b = EtcdClient([etcd.endpoint]), EtcdClient([etcd.endpoint])
    store_a, store_b = EtcdSecurityStore(client_a, prefix), EtcdSecurityStore(client_b, prefix)
    try:
        await store_a.start()
        await store_b.start()
        await fill(store_a)
        check_filled(store_a.image)  # the writer sees its own write at once
        for _ in range(100):  # the other broker sees it by watch
            if store_b.image.acls == store_a.image.acls and len(store_b.image.quotas) == 2:
                break
            await asyncio.sleep(0.05)
        check_filled(store_b.image)
        await store_b.delete_acls([DENY_PREFIX])
        for _ in range(100):
            if DENY_PREFIX not in store_a.image.acls:
                break
            await asyncio.sleep(0.05)
        assert store_a.image.acls == frozenset({READ_ORDERS})

        restarted = EtcdSecurityStore(client_a, prefix)
        await restarted.start()
        assert restarted.image.acls == frozenset({READ_ORDERS})
        await restarted.close()
    finally:
        await store_a.close()
        await store_b.close()
        await client_a.close()
        await client_b.close()
