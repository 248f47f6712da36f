"""Connections from this broker to the other brokers, for requests a broker sends itself.

The transaction coordinator sends WriteTxnMarkers to partition leaders elsewhere; keeping one
connection per peer (opened on first use, reopened after a failure, closed when the peer
leaves the cluster or its address changes) saves a TCP handshake per transaction. Replica
fetchers keep their own connections (cluster/replica_fetcher.py) so that a slow marker write
never queues behind a long-polling fetch. Peers are reached on their endpoint of the
inter-broker listener, with that listener's ``ClientSecurity`` (TLS, SASL login).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from moldau.cluster.kafka_client import PLAINTEXT, BrokerClient, ClientSecurity


class PeerClients:
    """Lazily opened ``BrokerClient``s by node id."""

    def __init__(
        self,
        node_id: int,
        address_of: Callable[[int], tuple[str, int] | None],
        security: ClientSecurity = PLAINTEXT,
    ) -> None:
        self._client_id = f"moldau-broker-{node_id}"
        self._security = security
        self._address_of = address_of
        self._clients: dict[int, tuple[tuple[str, int], BrokerClient]] = {}
        self._lock = asyncio.Lock()

    async def client(self, node_id: int) -> BrokerClient:
        """An open client to ``node_id``; raises ConnectionError when it is unknown or down."""
        address = self._address_of(node_id)
        if address is None:
            raise ConnectionError(f"broker {node_id} is not registered")
        async with self._lock:
            known = self._clients.get(node_id)
            if known is not None:
                old_address, old = known
                if old_address == address and not old.closed:
                    return old
                with contextlib.suppress(Exception):
                    await old.close()
            client = BrokerClient(
                address[0], address[1], client_id=self._client_id, security=self._security
            )
            self._clients[node_id] = (address, client)
            return client

    async def close(self) -> None:
        for _, client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        self._clients.clear()
