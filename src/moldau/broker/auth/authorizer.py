"""The ACL authorizer: may this principal, from this host, do this to that resource?

Kafka's StandardAuthorizer rules, applied to the ACL bindings of the security image:

- ``super.users`` may do everything;
- the bindings that *match the resource* are those of its type whose LITERAL name equals the
  resource name or is ``*``, and whose PREFIXED name is a prefix of it;
- no matching binding at all → allowed only with ``allow.everyone.if.no.acl.found``;
- a matching DENY for the principal (or ``User:*``) and host (or ``*``) on the operation (or
  ALL) refuses, whatever ALLOWs say;
- else an ALLOW is needed, where ALL allows everything, and READ, WRITE, DELETE or ALTER also
  allow DESCRIBE, and ALTER_CONFIGS also allows DESCRIBE_CONFIGS.

Bindings are indexed once per image (by type, then literal name / prefixes), so a check costs
a few dictionary lookups rather than a scan of every ACL.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from moldau.broker.auth.principal import KafkaPrincipal
from moldau.cluster.security_state import AclBinding, SecurityImage
from moldau.protocol.acl import (
    WILDCARD,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
)

log = logging.getLogger("moldau.authorizer")

ACL_AUTHORIZER_NAMES = frozenset(
    {
        "acl",
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "kafka.security.authorizer.AclAuthorizer",
    }
)

_IMPLIED_BY: dict[AclOperation, frozenset[AclOperation]] = {
    AclOperation.DESCRIBE: frozenset(
        {
            AclOperation.DESCRIBE,
            AclOperation.READ,
            AclOperation.WRITE,
            AclOperation.DELETE,
            AclOperation.ALTER,
        }
    ),
    AclOperation.DESCRIBE_CONFIGS: frozenset(
        {AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS}
    ),
}

_DENIAL_LOG_INTERVAL_S = 10.0


def parse_super_users(text: str | None) -> frozenset[str]:
    """``User:a;User:b`` → {"User:a", "User:b"}; raises ValueError on a malformed entry."""
    principals = set()
    for item in (text or "").split(";"):
        item = item.strip()
        if item:
            principals.add(str(KafkaPrincipal.parse(item)))
    return frozenset(principals)


@dataclass(slots=True)
class _Index:
    literal: dict[str, list[AclBinding]] = field(default_factory=lambda: defaultdict(list))
    prefixed: list[AclBinding] = field(default_factory=list)


class AclAuthorizer:
    """Answers ``authorize`` from the current ACLs; ``update`` swaps in a new image."""

    def __init__(self, super_users: Iterable[str] = (), *, allow_if_no_acl: bool = False) -> None:
        self.super_users = frozenset(super_users)
        self.allow_if_no_acl = allow_if_no_acl
        self._index: dict[ResourceType, _Index] = {}
        self._last_denial_log: dict[tuple[str, str, str], float] = {}

    def update(self, image: SecurityImage) -> None:
        index: dict[ResourceType, _Index] = {}
        for binding in image.acls:
            entry = index.setdefault(binding.resource_type, _Index())
            if binding.pattern_type == PatternType.PREFIXED:
                entry.prefixed.append(binding)
            else:
                entry.literal[binding.resource_name].append(binding)
        self._index = index

    def matching(self, resource_type: ResourceType, name: str) -> list[AclBinding]:
        """Every binding that applies to the resource, whoever it names."""
        entry = self._index.get(resource_type)
        if entry is None:
            return []
        found = list(entry.literal.get(name, ()))
        if name != WILDCARD:
            found.extend(entry.literal.get(WILDCARD, ()))
        found.extend(b for b in entry.prefixed if name.startswith(b.resource_name))
        return found

    def authorize(
        self,
        principal: KafkaPrincipal,
        host: str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: str,
        *,
        log_denial: bool = True,
    ) -> bool:
        who = str(principal)
        if who in self.super_users:
            return True
        bindings = self.matching(resource_type, name)
        if not bindings:
            allowed = self.allow_if_no_acl
        else:
            allowed = self._decide(who, principal.type, host, operation, bindings)
        if not allowed and log_denial:
            self._log_denial(who, host, operation, resource_type, name)
        return allowed

    def allows_any(
        self,
        principal: KafkaPrincipal,
        host: str,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool:
        """Whether some ALLOW binding of ``resource_type`` grants ``operation`` to the
        principal from this host (Kafka's ``authorizeByResourceType``, used for idempotent
        producers). A DENY on every name (LITERAL ``*`` or PREFIXED ``""``) takes it back."""
        who = str(principal)
        if who in self.super_users:
            return True
        entry = self._index.get(resource_type)
        if entry is None:
            return self.allow_if_no_acl
        bindings = [b for names in entry.literal.values() for b in names] + entry.prefixed
        wildcard_principal = f"{principal.type}:{WILDCARD}"
        allowing = _IMPLIED_BY.get(operation, frozenset({operation}))
        allowed = False
        for b in bindings:
            if b.principal not in (who, wildcard_principal) or b.host not in (host, WILDCARD):
                continue
            if b.permission_type == AclPermissionType.DENY:
                everything = b.resource_name == WILDCARD or (
                    b.pattern_type == PatternType.PREFIXED and not b.resource_name
                )
                if everything and b.operation in (operation, AclOperation.ALL):
                    return False
            elif b.operation == AclOperation.ALL or b.operation in allowing:
                allowed = True
        return allowed

    def _decide(
        self,
        who: str,
        principal_type: str,
        host: str,
        operation: AclOperation,
        bindings: list[AclBinding],
    ) -> bool:
        wildcard_principal = f"{principal_type}:{WILDCARD}"
        allowing = _IMPLIED_BY.get(operation, frozenset({operation}))
        allowed = False
        for binding in bindings:
            if binding.principal not in (who, wildcard_principal):
                continue
            if binding.host not in (host, WILDCARD):
                continue
            if binding.permission_type == AclPermissionType.DENY:
                if binding.operation in (operation, AclOperation.ALL):
                    return False
            elif binding.operation == AclOperation.ALL or binding.operation in allowing:
                allowed = True
        return allowed

    def _log_denial(
        self,
        who: str,
        host: str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: str,
    ) -> None:
        key = (who, operation.name, f"{resource_type.name}:{name}")
        now = time.monotonic()
        if now - self._last_denial_log.get(key, -_DENIAL_LOG_INTERVAL_S) < _DENIAL_LOG_INTERVAL_S:
            return
        if len(self._last_denial_log) > 10_000:
            self._last_denial_log.clear()
        self._last_denial_log[key] = now
        log.info(
            "Principal = %s is Denied operation = %s from host = %s on resource = %s:LITERAL:%s",
            who,
            operation.name,
            host,
            resource_type.name,
            name,
        )
