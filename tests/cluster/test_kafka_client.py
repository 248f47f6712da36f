"""BrokerClient: the broker-to-broker Kafka client, against a real broker and fake servers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.api_versions.v3.response import ApiVersionsResponse
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.schema.types import TopicName

from moldau.cluster.kafka_client import BrokerClient, BrokerConnectionError, RequestTimedOutError
from moldau.protocol.api import ApiKey, schema_for
from moldau.protocol.framing import encode_response
from moldau.testing import BrokerProcess, free_port

API_VERSIONS = ApiVersionsRequest(client_software_name="moldau", client_software_version="1")


def metadata_request(*topics: str) -> MetadataRequest:
    return MetadataRequest(
        topics=tuple(MetadataRequestTopic(topic_id=None, name=TopicName(t)) for t in topics),
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )


async def test_api_versions_and_metadata(broker: BrokerProcess) -> None:
    async with BrokerClient(broker.host, broker.port, client_id="test") as client:
        versions = await client.request(ApiKey.API_VERSIONS, 3, API_VERSIONS)
        assert versions.error_code == ErrorCode.none
        keys = {int(k.api_key) for k in versions.api_keys}
        assert {ApiKey.FETCH, ApiKey.METADATA, ApiKey.LIST_OFFSETS} <= keys
        metadata = await client.request(ApiKey.METADATA, 12, metadata_request())
        assert [b.node_id for b in metadata.brokers] == [broker.node_id]
        assert metadata.brokers[0].port == broker.port
    assert client.closed


async def test_pipelined_requests_are_answered_in_order(broker: BrokerProcess) -> None:
    async with BrokerClient(broker.host, broker.port, client_id="test") as client:
        names = [f"absent-{i}" for i in range(20)]
        calls = [client.request(ApiKey.METADATA, 12, metadata_request(n)) for n in names]
        responses = await asyncio.gather(*calls)
        assert [r.topics[0].name for r in responses] == names
        assert all(
            r.topics[0].error_code == ErrorCode.unknown_topic_or_partition for r in responses
        )
        assert client.in_flight == 0
        assert not client.closed


async def test_cancelled_caller_leaves_the_connection_usable(broker: BrokerProcess) -> None:
    async with BrokerClient(broker.host, broker.port, client_id="test") as client:
        first = asyncio.ensure_future(client.request(ApiKey.METADATA, 12, metadata_request("a")))
        second = asyncio.ensure_future(client.request(ApiKey.METADATA, 12, metadata_request("b")))
        await asyncio.sleep(0)
        first.cancel()
        response = await second
        assert response.topics[0].name == "b"
        third = await client.request(ApiKey.METADATA, 12, metadata_request("c"))
        assert third.topics[0].name == "c"
        assert not client.closed


async def test_connection_refused_raises_connection_error() -> None:
    client = BrokerClient("127.0.0.1", free_port(), client_id="test", timeout_s=5)
    with pytest.raises(BrokerConnectionError, match="cannot connect"):
        await client.request(ApiKey.API_VERSIONS, 3, API_VERSIONS)
    assert client.closed
    assert isinstance(BrokerConnectionError("x"), ConnectionError)
    with pytest.raises(BrokerConnectionError):  # stays closed
        await client.request(ApiKey.API_VERSIONS, 3, API_VERSIONS)


# --- fake servers for the failure paths -------------------------------------------------


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def fake_server(handler: Handler) -> AsyncIterator[int]:
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> int:
    """Read one request frame; return its correlation id."""
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    frame = await reader.readexactly(size)
    return int(struct.unpack_from(">i", frame, 4)[0])


async def test_peer_closing_fails_every_request_in_flight() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await read_request(reader)

    async with fake_server(handler) as port:
        client = BrokerClient("127.0.0.1", port, client_id="test", timeout_s=10)
        calls = [
            asyncio.ensure_future(client.request(ApiKey.API_VERSIONS, 3, API_VERSIONS))
            for _ in range(2)
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, BrokerConnectionError) for r in results), results
        assert client.closed


async def test_wrong_correlation_id_closes_the_client() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        correlation_id = await read_request(reader)
        body = struct.pack(">i", correlation_id + 7) + b"\x00" * 16
        writer.write(struct.pack(">i", len(body)) + body)
        await writer.drain()
        await reader.read()  # until the client hangs up

    async with fake_server(handler) as port:
        client = BrokerClient("127.0.0.1", port, client_id="test", timeout_s=10)
        with pytest.raises(BrokerConnectionError, match="correlation id"):
            await client.request(ApiKey.API_VERSIONS, 3, API_VERSIONS)
        assert client.closed


async def test_timeout_drops_the_connection() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await release.wait()  # never answers in time

    async with fake_server(handler) as port:
        client = BrokerClient("127.0.0.1", port, client_id="test", timeout_s=0.2)
        with pytest.raises(RequestTimedOutError):
            await client.request(ApiKey.API_VERSIONS, 3, API_VERSIONS)
        assert client.closed
        release.set()


async def test_requests_go_out_before_any_answer_arrives() -> None:
    """The server reads all requests before it answers any: a client that waited for each
    answer before sending the next request would never get one."""
    count = 5
    schema = schema_for(ApiKey.API_VERSIONS, 3)
    answer = ApiVersionsResponse(
        error_code=ErrorCode.none, api_keys=(), throttle_time=datetime.timedelta(0)
    )

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        correlation_ids = [await read_request(reader) for _ in range(count)]
        for correlation_id in correlation_ids:
            writer.write(encode_response(schema, correlation_id, answer))
        await writer.drain()
        await reader.read()

    async with fake_server(handler) as port:
        client = BrokerClient("127.0.0.1", port, client_id="test", timeout_s=10)
        responses = await asyncio.gather(
            *(client.request(ApiKey.API_VERSIONS, 3, API_VERSIONS) for _ in range(count))
        )
        assert [r.error_code for r in responses] == [ErrorCode.none] * count
        await client.close()
