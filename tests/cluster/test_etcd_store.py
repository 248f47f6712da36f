"""ClusterMetadataStore against real etcd processes: registration, image, CAS, faults."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from moldau.cluster.errors import (
    ClusterIdMismatchError,
    EtcdError,
    NodeIdInUseError,
    TopicExistsError,
    UnknownTopicError,
)
from moldau.cluster.etcd_client import EtcdClient
from moldau.cluster.etcd_store import ClusterMetadataStore
from moldau.cluster.metadata import MetadataImage
from moldau.cluster.placement import PlacementError
from moldau.cluster.state import NO_LEADER, BrokerRegistration
from moldau.testing.broker import free_port
from moldau.testing.etcd import EtcdProcess

StoreFactory = Callable[..., Awaitable[ClusterMetadataStore]]


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdProcess]:
    with EtcdProcess() as proc:
        yield proc


@pytest.fixture
def prefix() -> str:
    return f"/moldau-{uuid.uuid4().hex[:8]}"


def make_store(
    endpoint: str, prefix: str, tmp_path: Path, node_id: int, **kwargs: Any
) -> ClusterMetadataStore:
    data_dir = kwargs.pop("data_dir", tmp_path / f"node-{node_id}")
    registration = BrokerRegistration(
        node_id=node_id,
        host="127.0.0.1",
        port=kwargs.pop("port", 9000 + node_id),
        rack=kwargs.pop("rack", None),
        incarnation=uuid.uuid4().hex,
    )
    kwargs.setdefault("session_timeout_ms", 2000)
    kwargs.setdefault("heartbeat_interval_ms", 300)
    return ClusterMetadataStore(
        [endpoint],
        node_id=node_id,
        registration=registration,
        data_dir=data_dir,
        prefix=prefix,
        **kwargs,
    )


@pytest.fixture
async def stores(etcd: EtcdProcess, prefix: str, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """``await stores(node_id, **kwargs)`` starts a store; all are closed at the end."""
    created: list[ClusterMetadataStore] = []

    async def start(node_id: int, **kwargs: Any) -> ClusterMetadataStore:
        endpoint = kwargs.pop("endpoint", etcd.endpoint)
        store = make_store(endpoint, prefix, tmp_path, node_id, **kwargs)
        created.append(store)
        await store.start()
        return store

    yield start
    for store in created:
        await store.close()


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 15.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.02)


def props(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if "=" in line]
    return dict(line.split("=", 1) for line in lines if not line.startswith("#"))


# -- registration, cluster id ---------------------------------------------------------------


async def test_two_brokers_see_each_other(stores: StoreFactory, tmp_path: Path) -> None:
    seen: list[MetadataImage] = []
    a = await stores(1)
    b = make_store(a.client.endpoint, a._prefix, tmp_path, 2)
    b.subscribe(seen.append)
    try:
        await b.start()
        assert seen and set(seen[-1].brokers) == {1, 2}
        await wait_until(lambda: set(a.image.brokers) == {1, 2})
        assert a.image.brokers[2].port == 9002
        assert a.image.cluster_id == b.image.cluster_id == a.cluster_id
        assert len(a.cluster_id) == 22
        assert a.lease_valid() and b.lease_valid()
        meta = props(tmp_path / "node-2" / "meta.properties")
        assert meta["cluster.id"] == a.cluster_id
        assert meta["node.id"] == "2"
        assert meta["directory.id"] == b.directory_id and len(meta["directory.id"]) == 22
    finally:
        await b.close()
    await wait_until(lambda: set(a.image.brokers) == {1})  # deregistered at once


async def test_existing_meta_properties_are_kept_and_extended(
    stores: StoreFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "kept"
    data_dir.mkdir()
    (data_dir / "meta.properties").write_text(
        "#written by the single-node store\nversion=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\n"
        "node.id=3\ncustom=1\n"
    )
    store = await stores(3, data_dir=data_dir)
    assert store.cluster_id == "AAAAAAAAAAAAAAAAAAAAAA"  # a fresh etcd adopts the local id
    text = (data_dir / "meta.properties").read_text()
    assert text.startswith("#written by the single-node store\nversion=1\n")
    meta = props(data_dir / "meta.properties")
    assert meta["custom"] == "1"
    assert meta["directory.id"] == store.directory_id


async def test_cluster_id_mismatch(stores: StoreFactory, tmp_path: Path, prefix: str) -> None:
    first = await stores(1)
    data_dir = tmp_path / "other"
    data_dir.mkdir()
    (data_dir / "meta.properties").write_text("version=1\ncluster.id=BBBBBBBBBBBBBBBBBBBBBB\n")
    other = make_store(first.client.endpoint, prefix, tmp_path, 2, data_dir=data_dir)
    try:
        with pytest.raises(ClusterIdMismatchError, match="BBBBBBBBBBBBBBBBBBBBBB"):
            await other.start()
    finally:
        await other.close()


async def test_node_id_in_use_by_another_directory(stores: StoreFactory, tmp_path: Path) -> None:
    first = await stores(1, port=9555)
    twin = make_store(first.client.endpoint, first._prefix, tmp_path, 1, data_dir=tmp_path / "twin")
    try:
        with pytest.raises(NodeIdInUseError) as info:
            await twin.start()
        assert str(info.value) == (
            "node id 1 is already registered by a live broker at 127.0.0.1:9555"
        )
    finally:
        await twin.close()
    assert first.image.brokers[1].port == 9555


async def test_restart_of_same_directory_takes_over_at_once(
    stores: StoreFactory, tmp_path: Path
) -> None:
    old = await stores(1, session_timeout_ms=60000)  # its lease would outlive the test
    observer = await stores(2)
    await old.close(deregister=False)  # crash: the registration stays until the lease expires
    new = await stores(1, session_timeout_ms=60000, port=9777)
    assert new.directory_id == old.directory_id
    await wait_until(
        lambda: (
            observer.image.brokers.get(1, None) is not None
            and observer.image.brokers[1].port == 9777
        )
    )
    assert new.lease_id != old.lease_id


async def test_etcd_down_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    store = make_store(dead, "/moldau", tmp_path, 1, startup_timeout_s=1.0)
    try:
        with (
            caplog.at_level(logging.WARNING, logger="moldau.cluster.etcd"),
            pytest.raises(EtcdError, match=f"^etcd at {dead} is not reachable: "),
        ):
            await store.start()
    finally:
        await store.close()
    assert any("retrying" in r.getMessage() for r in caplog.records)


# -- topics ---------------------------------------------------------------------------------


async def test_topic_lifecycle_in_both_images(stores: StoreFactory) -> None:
    a = await stores(1)
    b = await stores(2)
    await wait_until(lambda: len(a.image.brokers) == 2)
    topic = await a.create_topic("orders", 4, 2, {"cleanup.policy": "compact"})
    assert a.image.topics["orders"] == topic  # visible as soon as create returns
    states = a.image.partitions["orders"]
    assert len(states) == 4
    for state in states:
        assert len(state.replicas) == 2 and set(state.replicas) == {1, 2}
        assert state.isr == state.replicas and state.leader == state.replicas[0]
        assert (state.leader_epoch, state.partition_epoch) == (0, 0)
    await wait_until(lambda: "orders" in b.image.topics)
    assert b.image.topics["orders"].topic_id == topic.topic_id
    assert b.image.partitions["orders"] == states

    with pytest.raises(TopicExistsError):
        await b.create_topic("orders", 1, 1, {})
    with pytest.raises(PlacementError):
        await a.create_topic("too-wide", 1, 3, {})

    grown = await b.add_partitions("orders", 6)
    assert grown.partitions == 6 and len(b.image.partitions["orders"]) == 6
    await wait_until(lambda: len(a.image.partitions["orders"]) == 6)
    assert a.image.partitions["orders"][:4] == states

    configured = await a.set_topic_configs("orders", {"retention.ms": "1000"})
    assert dict(configured.configs) == {"retention.ms": "1000"}
    await wait_until(lambda: dict(b.image.topics["orders"].configs) == {"retention.ms": "1000"})

    await b.delete_topic("orders")
    assert "orders" not in b.image.topics and "orders" not in b.image.partitions
    await wait_until(lambda: "orders" not in a.image.topics)
    with pytest.raises(UnknownTopicError):
        await a.delete_topic("orders")
    with pytest.raises(UnknownTopicError):
        await a.set_topic_configs("orders", {})


async def test_big_topic_is_written_in_chunks_and_appears_whole(stores: StoreFactory) -> None:
    a = await stores(1)
    b = await stores(2)
    partial: list[int] = []
    b.subscribe(lambda image: partial.append(len(image.partitions.get("big", ()))))
    await a.create_topic("big", 250, 1, {})
    assert len(a.image.partitions["big"]) == 250
    await wait_until(lambda: "big" in b.image.topics)
    assert set(partial) <= {0, 250}  # never half a topic
    await a.add_partitions("big", 420)
    await wait_until(lambda: len(b.image.partitions["big"]) == 420)
    assert set(partial) <= {0, 250, 420}


async def test_compare_and_set_partition(stores: StoreFactory) -> None:
    a = await stores(1)
    b = await stores(2)
    await wait_until(lambda: len(a.image.brokers) == 2)
    await a.create_topic("cas", 1, 2, {})
    await wait_until(lambda: "cas" in b.image.topics)
    expected = a.image.partitions["cas"][0]
    follower = next(r for r in expected.replicas if r != expected.leader)
    shrunk = expected.next(isr=(expected.leader,))
    assert await a.compare_and_set_partition("cas", 0, expected, shrunk)
    assert a.image.partition("cas", 0) == shrunk  # applied before returning
    assert shrunk.partition_epoch == expected.partition_epoch + 1
    # b's image may still hold `expected` or already `shrunk`: either way b loses.
    moved = expected.next(leader=follower)
    assert not await b.compare_and_set_partition("cas", 0, expected, moved)
    assert b.image.partition("cas", 0) == shrunk  # brought up to date before returning
    offline = shrunk.next(leader=NO_LEADER)
    assert offline.leader_epoch == shrunk.leader_epoch + 1
    assert await b.compare_and_set_partition("cas", 0, shrunk, offline)
    await wait_until(lambda: a.image.partition("cas", 0) == offline)
    assert not await a.compare_and_set_partition("nope", 0, expected, moved)


async def test_concurrent_cas_has_one_winner(stores: StoreFactory) -> None:
    a = await stores(1)
    b = await stores(2)
    await a.create_topic("race", 1, 1, {})
    await wait_until(lambda: "race" in b.image.topics)
    base = a.image.partitions["race"][0]
    results = await asyncio.gather(
        a.compare_and_set_partition("race", 0, base, base.next(isr=())),
        b.compare_and_set_partition("race", 0, base, base.next(leader=NO_LEADER)),
    )
    assert sorted(results) == [False, True]


async def test_producer_id_blocks_never_overlap(stores: StoreFactory) -> None:
    a = await stores(1)
    b = await stores(2)
    blocks = await asyncio.gather(
        *(store.allocate_producer_ids(10) for store in (a, b) for _ in range(10))
    )
    assert sorted(blocks)[0] == (0, 9)
    ids = [pid for first, last in blocks for pid in range(first, last + 1)]
    assert len(ids) == len(set(ids)) == 200
    assert max(ids) == 199


async def test_controller_campaign_and_resign(stores: StoreFactory) -> None:
    a = await stores(1)
    b = await stores(2)
    assert a.image.controller_id == -1
    assert await a.try_become_controller()
    assert await a.try_become_controller()  # already ours
    assert a.image.controller_id == 1
    assert not await b.try_become_controller()
    await a.resign_controller()
    assert a.image.controller_id == -1
    assert await b.try_become_controller()
    await wait_until(lambda: a.image.controller_id == 2)
    await b.close()  # revoking the lease drops the controller key
    await wait_until(lambda: a.image.controller_id == -1 and 2 not in a.image.brokers)


async def test_set_shutting_down_is_seen_and_avoided_by_placement(stores: StoreFactory) -> None:
    a = await stores(1)
    b = await stores(2)
    await b.set_shutting_down()
    assert b.image.brokers[2].shutting_down
    await wait_until(lambda: 2 in a.image.brokers and a.image.brokers[2].shutting_down)
    await a.create_topic("avoid", 3, 1, {})
    assert all(s.replicas == (1,) for s in a.image.partitions["avoid"])


# -- faults ---------------------------------------------------------------------------------


async def test_lease_lapses_while_etcd_paused_and_recovers(tmp_path: Path) -> None:
    with EtcdProcess(tmp_path / "etcd") as etcd:
        store = make_store(etcd.endpoint, "/moldau", tmp_path, 1, etcd_timeout_s=1.0)
        observer = make_store(etcd.endpoint, "/moldau", tmp_path, 2, session_timeout_ms=60000)
        states: list[bool] = []
        store.on_lease_state(states.append)
        try:
            await store.start()
            await observer.start()
            old_lease = store.lease_id
            etcd.pause()
            try:
                await wait_until(lambda: not store.lease_valid())
                await wait_until(lambda: states == [False])
                await asyncio.sleep(1.5)  # past the 2 s TTL on etcd's own clock too
            finally:
                etcd.resume()
            await wait_until(lambda: store.lease_valid())
            assert states == [False, True]
            await wait_until(lambda: 1 in observer.image.brokers)
            kv = await observer.client.get("/moldau/brokers/1")
            assert kv is not None and kv.lease == store.lease_id
            if store.lease_id != old_lease:  # etcd expired the old lease: registered again
                assert await observer.client.lease_time_to_live(old_lease) == -1
        finally:
            await store.close()
            await observer.close()


async def test_watch_survives_etcd_restart(tmp_path: Path) -> None:
    with EtcdProcess(tmp_path / "etcd") as etcd:
        a = make_store(etcd.endpoint, "/moldau", tmp_path, 1, session_timeout_ms=30000)
        b = make_store(etcd.endpoint, "/moldau", tmp_path, 2, session_timeout_ms=30000)
        try:
            await a.start()
            await b.start()
            await a.create_topic("before", 1, 1, {})
            await wait_until(lambda: "before" in b.image.topics)
            etcd.kill()
            etcd.start()
            await b.create_topic("after", 2, 1, {})
            await wait_until(lambda: "after" in a.image.topics)
            assert len(a.image.partitions["after"]) == 2
            assert a.lease_valid() and b.lease_valid()
        finally:
            await a.close()
            await b.close()


async def test_compacted_watch_reloads_the_image(
    stores: StoreFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = await stores(1)
    gate = asyncio.Event()
    reader: ClusterMetadataStore | None = None
    real_watch = EtcdClient.watch

    async def gated_watch(self: EtcdClient, prefix: str, start_revision: int) -> AsyncIterator[Any]:
        if reader is not None and self is reader.client:
            await gate.wait()
        async for events in real_watch(self, prefix, start_revision):
            yield events

    monkeypatch.setattr(EtcdClient, "watch", gated_watch)
    reader = await stores(2)
    await writer.create_topic("missed", 1, 1, {})
    await writer.delete_topic("missed")
    await writer.create_topic("kept", 1, 1, {})
    latest = await writer.client.put(writer._prefix + "/producer_ids/next", '"0"')
    await writer.client.compact(latest)
    assert "kept" not in reader.image.topics
    gate.set()
    await wait_until(lambda: "kept" in reader.image.topics)
    assert "missed" not in reader.image.topics
    await writer.create_topic("later", 1, 1, {})  # the watch goes on after the reload
    await wait_until(lambda: "later" in reader.image.topics)
