"""What a request handler sees: the parsed header, the kio schema of its version, the broker."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from moldau.broker.auth.session import Session
from moldau.protocol.acl import CLUSTER_RESOURCE_NAME, AclOperation, ResourceType
from moldau.protocol.api import ApiSchema
from moldau.protocol.framing import RequestHeader
from moldau.protocol.messages import make

if TYPE_CHECKING:
    from moldau.broker.server import Broker


@dataclass(slots=True)
class Deferred:
    """A response that is not ready yet (acks=all waiting for fsync, a long-polling Fetch).

    ``awaitable`` yields the kio response (or ready-encoded frame bytes, or None for no
    response). The connection keeps serving later requests meanwhile and still writes
    responses in request order.
    """

    awaitable: Awaitable[Any]


@dataclass(slots=True)
class RequestContext:
    header: RequestHeader
    schema: ApiSchema
    broker: Broker
    peer: str
    frame: bytearray
    """The whole request frame; Produce hands slices of it to the log without copying."""
    session: Session
    """The connection's security state (listener, principal); shared, not a copy."""

    def authorize(self, operation: AclOperation, resource_type: ResourceType, name: str) -> bool:
        """May this connection's principal do ``operation`` on the resource? Always True
        when no authorizer is configured."""
        authorizer = self.broker.authorizer
        if authorizer is None:
            return True
        session = self.session
        return authorizer.authorize(
            session.principal, session.client_host, operation, resource_type, name
        )

    def authorize_cluster(self, operation: AclOperation) -> bool:
        return self.authorize(operation, ResourceType.CLUSTER, CLUSTER_RESOURCE_NAME)

    @property
    def version(self) -> int:
        return self.header.api_version

    @property
    def client_id(self) -> str | None:
        return self.header.client_id

    @property
    def m(self) -> ModuleType:
        """The response module of this version: nested response classes live here."""
        return self.schema.response_module

    def response(self, **fields: Any) -> Any:
        """Build this version's response payload from version-agnostic fields."""
        return make(self.schema.response_type, **fields)

    def make(self, class_name: str, **fields: Any) -> Any:
        """Build a nested response entity by its kio class name, e.g. ``"TopicProduceResponse"``."""
        return make(getattr(self.schema.response_module, class_name), **fields)
