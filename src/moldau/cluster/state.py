"""The cluster's shared state records: broker registrations and partition states.

These are the values the metadata store keeps (in etcd for a cluster, synthesised for a single
node) and every broker reads from its ``MetadataImage``. They are immutable; a change is a new
record written with compare-and-swap, so two writers (the controller moving a leader, a leader
shrinking its ISR) can never both win on the same version.

``PartitionState`` follows KRaft's PartitionRecord: ``leader_epoch`` grows on every leader
change (it fences old leaders and orders the leader-epoch cache), ``partition_epoch`` grows on
every change at all (ISR, replicas, leader) and is what a compare-and-swap checks. A leader of
``NO_LEADER`` (-1) means the partition is offline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

NO_LEADER = -1


@dataclass(frozen=True, slots=True)
class ListenerEndpoint:
    """One advertised listener of a broker: ``NAME://host:port`` and its security protocol."""

    listener_name: str
    host: str
    port: int
    security_protocol: str = "PLAINTEXT"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.listener_name,
            "host": self.host,
            "port": self.port,
            "security_protocol": self.security_protocol,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ListenerEndpoint:
        return cls(
            listener_name=str(data["name"]),
            host=str(data["host"]),
            port=int(data["port"]),
            security_protocol=str(data.get("security_protocol", "PLAINTEXT")),
        )


@dataclass(frozen=True, slots=True)
class BrokerRegistration:
    """A live broker: where clients and followers reach it, and whether it is leaving.

    ``incarnation`` is a random id chosen at each process start, so a restarted broker is told
    apart from the one whose lease it replaces. ``shutting_down`` asks the controller to move
    leadership away (controlled shutdown) before the broker exits.

    ``endpoints`` lists every advertised listener, so that a broker answers a client with the
    peer's endpoint on the client's own listener and connects to peers on the inter-broker
    listener. ``host``/``port`` stay the client listener's endpoint: registrations written
    before ``endpoints`` existed (JSON without the key) read as that one listener.
    """

    node_id: int
    host: str
    port: int
    rack: str | None = None
    incarnation: str = ""
    shutting_down: bool = False
    endpoints: tuple[ListenerEndpoint, ...] = ()

    def endpoint(self, listener_name: str | None) -> tuple[str, int] | None:
        """(host, port) on ``listener_name``; None when the broker has no such listener.
        A registration without endpoints (older brokers) answers ``host:port`` for any."""
        if not self.endpoints or listener_name is None:
            return self.host, self.port
        for endpoint in self.endpoints:
            if endpoint.listener_name == listener_name:
                return endpoint.host, endpoint.port
        return None

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "node_id": self.node_id,
            "host": self.host,
            "port": self.port,
            "rack": self.rack,
            "incarnation": self.incarnation,
            "shutting_down": self.shutting_down,
        }
        if self.endpoints:
            data["endpoints"] = [endpoint.to_dict() for endpoint in self.endpoints]
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> BrokerRegistration:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            node_id=int(data["node_id"]),
            host=str(data["host"]),
            port=int(data["port"]),
            rack=data.get("rack"),
            incarnation=str(data.get("incarnation", "")),
            shutting_down=bool(data.get("shutting_down", False)),
            endpoints=tuple(ListenerEndpoint.from_dict(e) for e in data.get("endpoints") or ()),
        )


@dataclass(frozen=True, slots=True)
class PartitionState:
    """Replicas, ISR and leadership of one partition (KRaft's PartitionRecord, in JSON).

    Invariants: ``isr`` ⊆ ``replicas``; ``leader`` is in ``isr`` or is ``NO_LEADER`` (or, after
    an unclean election, the chosen replica, which then forms the whole ISR). During a
    reassignment ``replicas`` is the union of the old and new sets and ``adding_replicas`` /
    ``removing_replicas`` say which is which (KIP-455); the target is
    ``replicas - removing_replicas``.
    """

    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int = 0
    partition_epoch: int = 0
    adding_replicas: tuple[int, ...] = field(default=())
    removing_replicas: tuple[int, ...] = field(default=())

    @property
    def has_leader(self) -> bool:
        return self.leader != NO_LEADER

    @property
    def preferred_leader(self) -> int:
        return self.replicas[0] if self.replicas else NO_LEADER

    @property
    def target_replicas(self) -> tuple[int, ...]:
        """The replica set a reassignment moves towards (the current set when none runs)."""
        return tuple(r for r in self.replicas if r not in self.removing_replicas)

    @property
    def is_reassigning(self) -> bool:
        return bool(self.adding_replicas or self.removing_replicas)

    def next(self, **changes: Any) -> PartitionState:
        """A changed copy with ``partition_epoch`` bumped (and ``leader_epoch`` when the
        leader changes and the caller did not set it)."""
        new = replace(self, **changes)
        if "leader_epoch" not in changes and new.leader != self.leader:
            new = replace(new, leader_epoch=self.leader_epoch + 1)
        return replace(new, partition_epoch=self.partition_epoch + 1)

    def to_json(self) -> str:
        return json.dumps(
            {
                "replicas": list(self.replicas),
                "isr": list(self.isr),
                "leader": self.leader,
                "leader_epoch": self.leader_epoch,
                "partition_epoch": self.partition_epoch,
                "adding_replicas": list(self.adding_replicas),
                "removing_replicas": list(self.removing_replicas),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> PartitionState:
        data: dict[str, Any] = json.loads(raw)
        return cls(
            replicas=tuple(int(r) for r in data["replicas"]),
            isr=tuple(int(r) for r in data["isr"]),
            leader=int(data["leader"]),
            leader_epoch=int(data.get("leader_epoch", 0)),
            partition_epoch=int(data.get("partition_epoch", 0)),
            adding_replicas=tuple(int(r) for r in data.get("adding_replicas", ())),
            removing_replicas=tuple(int(r) for r in data.get("removing_replicas", ())),
        )
