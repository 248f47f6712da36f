"""Security metadata: SCRAM credentials, ACL bindings and client quotas, as an immutable image.

Both metadata stores (a local file on a single node, etcd in a cluster) keep the same flat
records — ``key → JSON`` — and build a ``SecurityImage`` from them, so the broker reads
security state the same way whichever store it runs on. Keys:

- ``scram/<user>/<mechanism>`` → salt, stored key, server key, iterations (RFC 5802: the
  password itself is never stored);
- ``acls/<digest>`` → one ACL binding (the digest of its canonical JSON makes equal bindings
  one record, as Kafka's authorizer treats them);
- ``quotas/<entity>`` → quota values of one client-quota entity.

User names and entity names are percent-encoded inside keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, unquote

from moldau.protocol.acl import AclOperation, AclPermissionType, PatternType, ResourceType

SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")

QUOTA_ENTITY_TYPES = ("user", "client-id", "ip")
"""Kafka's client-quota entity types; a name of None is the entity's ``<default>``."""

QuotaEntity = tuple[tuple[str, str | None], ...]
"""E.g. ``(("user", "alice"),)`` or ``(("client-id", None), ("user", "alice"))``: entity
type/name pairs sorted by type; a None name is that type's default."""

_DEFAULT = "<default>"


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """A salted SCRAM credential as RFC 5802 defines it (what Kafka keeps per user and
    mechanism)."""

    mechanism: str
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def to_json(self) -> dict[str, Any]:
        return {
            "mechanism": self.mechanism,
            "salt": _b64(self.salt),
            "stored_key": _b64(self.stored_key),
            "server_key": _b64(self.server_key),
            "iterations": self.iterations,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScramCredential:
        return cls(
            mechanism=str(data["mechanism"]),
            salt=base64.b64decode(data["salt"]),
            stored_key=base64.b64decode(data["stored_key"]),
            server_key=base64.b64decode(data["server_key"]),
            iterations=int(data["iterations"]),
        )


@dataclass(frozen=True, slots=True)
class AclBinding:
    """One stored ACL: ``principal`` from ``host`` is ALLOWed/DENYed ``operation`` on the
    resources a (type, name, LITERAL|PREFIXED pattern) selects. ``principal`` is the
    ``Type:name`` text and may be ``User:*``; ``host`` may be ``*``."""

    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: AclOperation
    permission_type: AclPermissionType

    def to_json(self) -> dict[str, Any]:
        return {
            "resource_type": self.resource_type.name,
            "resource_name": self.resource_name,
            "pattern_type": self.pattern_type.name,
            "principal": self.principal,
            "host": self.host,
            "operation": self.operation.name,
            "permission_type": self.permission_type.name,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AclBinding:
        return cls(
            resource_type=ResourceType[data["resource_type"]],
            resource_name=str(data["resource_name"]),
            pattern_type=PatternType[data["pattern_type"]],
            principal=str(data["principal"]),
            host=str(data["host"]),
            operation=AclOperation[data["operation"]],
            permission_type=AclPermissionType[data["permission_type"]],
        )

    @property
    def record_key(self) -> str:
        canonical = json.dumps(self.to_json(), sort_keys=True).encode()
        return "acls/" + hashlib.sha256(canonical).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class SecurityImage:
    """Everything the broker needs to authenticate, authorize and throttle, at one moment.

    ``scram`` maps user → mechanism → credential; ``quotas`` maps entity → quota key
    (``producer_byte_rate``, ``consumer_byte_rate``, ``request_percentage``, ...) → value.
    """

    scram: Mapping[str, Mapping[str, ScramCredential]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    acls: frozenset[AclBinding] = frozenset()
    quotas: Mapping[QuotaEntity, Mapping[str, float]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def credential(self, user: str, mechanism: str) -> ScramCredential | None:
        return self.scram.get(user, {}).get(mechanism)


# -- record keys and values --------------------------------------------------------------


def scram_key(user: str, mechanism: str) -> str:
    return f"scram/{quote(user, safe='')}/{mechanism}"


def quota_entity_key(entity: QuotaEntity) -> str:
    parts = [
        f"{kind}={_DEFAULT if name is None else quote(name, safe='')}" for kind, name in entity
    ]
    return "quotas/" + "&".join(parts)


def normalize_entity(entity: Mapping[str, str | None] | QuotaEntity) -> QuotaEntity:
    """Sort an entity's (type, name) pairs, so equal entities are equal tuples."""
    pairs = entity.items() if isinstance(entity, Mapping) else entity
    return tuple(sorted((str(kind), name) for kind, name in pairs))


def build_image(records: Mapping[str, bytes]) -> SecurityImage:
    """The image the records describe; a malformed record is skipped (and reported by the
    caller's logging), never fatal: security state must load even if one key is damaged."""
    scram: dict[str, dict[str, ScramCredential]] = {}
    acls: set[AclBinding] = set()
    quotas: dict[QuotaEntity, dict[str, float]] = {}
    for key, value in records.items():
        kind, _, rest = key.partition("/")
        try:
            data = json.loads(value)
            if kind == "scram":
                user_part, _, mechanism = rest.rpartition("/")
                credential = ScramCredential.from_json(data)
                scram.setdefault(unquote(user_part), {})[mechanism] = credential
            elif kind == "acls":
                acls.add(AclBinding.from_json(data))
            elif kind == "quotas":
                quotas[parse_quota_entity_key(rest)] = {k: float(v) for k, v in data.items()}
        except (ValueError, KeyError, TypeError):
            continue
    return SecurityImage(
        scram=MappingProxyType({u: MappingProxyType(m) for u, m in scram.items()}),
        acls=frozenset(acls),
        quotas=MappingProxyType({e: MappingProxyType(q) for e, q in quotas.items()}),
    )


def parse_quota_entity_key(text: str) -> QuotaEntity:
    pairs: list[tuple[str, str | None]] = []
    for part in text.split("&"):
        kind, sep, name = part.partition("=")
        if not sep:
            raise ValueError(f"bad quota entity key {text!r}")
        pairs.append((kind, None if name == _DEFAULT else unquote(name)))
    return normalize_entity(tuple(pairs))


def encode(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
