"""EtcdClient against a real etcd process: KV, transactions, leases, watches, failover."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from moldau.cluster.errors import EtcdError, WatchCompacted
from moldau.cluster.etcd_client import (
    EtcdClient,
    WatchEvent,
    compare_create_revision,
    compare_mod_revision,
    op_get,
    op_put,
    parse_metadata_url,
    prefix_range_end,
)
from moldau.testing.broker import free_port
from moldau.testing.etcd import EtcdProcess


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdProcess]:
    with EtcdProcess() as proc:
        yield proc


@pytest.fixture
async def client(etcd: EtcdProcess) -> AsyncIterator[EtcdClient]:
    c = EtcdClient([etcd.endpoint])
    yield c
    await c.close()


@pytest.fixture
def prefix() -> str:
    return f"/test-{uuid.uuid4().hex[:8]}/"


async def test_put_get_range_delete(client: EtcdClient, prefix: str) -> None:
    assert await client.get(prefix + "a") is None
    rev = await client.put(prefix + "a", b"1")
    await client.put(prefix + "b", "two")
    await client.put(prefix.rstrip("/") + "x", b"outside")  # shares the prefix minus '/'
    kv = await client.get(prefix + "a")
    assert kv is not None
    assert (kv.key, kv.value, kv.mod_revision, kv.create_revision, kv.version) == (
        prefix + "a",
        b"1",
        rev,
        rev,
        1,
    )
    kvs, revision = await client.range_prefix(prefix)
    assert [(k.key, k.value) for k in kvs] == [(prefix + "a", b"1"), (prefix + "b", b"two")]
    assert revision >= rev
    assert await client.delete(prefix + "a") == 1
    assert await client.delete(prefix + "a") == 0
    assert await client.delete(prefix, prefix=True) == 1
    assert (await client.range_prefix(prefix))[0] == []


async def test_txn_create_if_absent_and_cas(client: EtcdClient, prefix: str) -> None:
    key = prefix + "k"
    first = await client.txn([compare_create_revision(key, 0)], [op_put(key, "v1")], [op_get(key)])
    assert first.succeeded
    second = await client.txn([compare_create_revision(key, 0)], [op_put(key, "v2")], [op_get(key)])
    assert not second.succeeded
    [existing] = second.range_kvs(0)
    assert existing.value == b"v1"
    assert existing.mod_revision == first.revision
    stale = await client.txn(
        [compare_mod_revision(key, existing.mod_revision - 1)], [op_put(key, "x")]
    )
    assert not stale.succeeded
    fresh = await client.txn(
        [compare_mod_revision(key, existing.mod_revision)], [op_put(key, "v3")]
    )
    assert fresh.succeeded
    kv = await client.get(key)
    assert kv is not None and kv.value == b"v3" and kv.mod_revision == fresh.revision


async def test_lease_grant_keepalive_revoke(client: EtcdClient, prefix: str) -> None:
    lease = await client.lease_grant(30)
    assert lease > 0
    await client.put(prefix + "leased", "x", lease=lease)
    kv = await client.get(prefix + "leased")
    assert kv is not None and kv.lease == lease
    assert await client.lease_keepalive(lease) == 30
    assert 0 < await client.lease_time_to_live(lease) <= 30
    await client.lease_revoke(lease)
    assert await client.get(prefix + "leased") is None  # keys die with their lease
    assert await client.lease_keepalive(lease) == 0
    assert await client.lease_time_to_live(lease) == -1
    await client.lease_revoke(lease)  # already gone: no error


async def test_put_on_unknown_lease_is_refused(client: EtcdClient, prefix: str) -> None:
    with pytest.raises(EtcdError, match="lease not found") as info:
        await client.put(prefix + "x", "v", lease=12345)
    assert info.value.code == 5


async def test_watch_sees_changes_in_order(client: EtcdClient, prefix: str) -> None:
    start = await client.put(prefix + "before", "0")
    seen: list[WatchEvent] = []
    done = asyncio.Event()

    async def follow() -> None:
        async for events in client.watch(prefix, start + 1):
            seen.extend(events)
            if any(e.type == "DELETE" for e in events):
                done.set()
                return

    task = asyncio.create_task(follow())
    await client.put(prefix + "a", "1")
    await client.txn([], [op_put(prefix + "b", "2"), op_put(prefix + "c", "3")])
    await client.put("/elsewhere-" + prefix, "not watched")
    await client.delete(prefix + "a")
    await asyncio.wait_for(done.wait(), 10)
    await task
    assert [(e.type, e.kv.key, e.kv.value) for e in seen] == [
        ("PUT", prefix + "a", b"1"),
        ("PUT", prefix + "b", b"2"),
        ("PUT", prefix + "c", b"3"),
        ("DELETE", prefix + "a", b""),
    ]


async def test_watch_from_compacted_revision_raises(client: EtcdClient, prefix: str) -> None:
    first = await client.put(prefix + "a", "1")
    last = await client.put(prefix + "a", "2")
    await client.compact(last)
    with pytest.raises(WatchCompacted) as info:
        async for _ in client.watch(prefix, first):
            pass
    assert info.value.compact_revision == last


async def test_failover_to_a_live_endpoint(etcd: EtcdProcess, prefix: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    client = EtcdClient([dead, etcd.endpoint])
    try:
        await client.put(prefix + "k", "v")
        assert client.endpoint == etcd.endpoint
        kv = await client.get(prefix + "k")
        assert kv is not None and kv.value == b"v"
    finally:
        await client.close()


async def test_unreachable_error_names_the_endpoint() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    client = EtcdClient([dead], timeout_s=1.0)
    try:
        with pytest.raises(EtcdError, match=f"etcd at {dead} is not reachable"):
            await client.get("/x")
    finally:
        await client.close()


def test_helpers() -> None:
    assert prefix_range_end("/a/") == b"/a0"
    assert prefix_range_end(b"a\xff") == b"b"
    assert parse_metadata_url("etcd://h1:2379,h2:2380") == ["http://h1:2379", "http://h2:2380"]
    with pytest.raises(ValueError):
        parse_metadata_url("http://h1:2379")
    with pytest.raises(ValueError):
        parse_metadata_url("etcd://h1")
