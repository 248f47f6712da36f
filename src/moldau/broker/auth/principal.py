"""Kafka principals: ``User:alice`` — the identity ACLs and quotas are keyed on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KafkaPrincipal:
    """A principal type and name, written ``Type:name`` as Kafka's tools write it.

    Kafka only ever authenticates ``User`` principals; the type is kept because ACL bindings
    name it and a binding for ``Group:x`` must not match ``User:x``.
    """

    type: str
    name: str

    def __str__(self) -> str:
        return f"{self.type}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> KafkaPrincipal:
        """``User:alice`` → KafkaPrincipal("User", "alice"); raises ValueError otherwise."""
        kind, sep, name = text.partition(":")
        if not sep or not kind or not name:
            raise ValueError(f"invalid principal {text!r}: expected Type:name, e.g. User:alice")
        return cls(kind, name)

    @classmethod
    def user(cls, name: str) -> KafkaPrincipal:
        return cls("User", name)


ANONYMOUS = KafkaPrincipal("User", "ANONYMOUS")
"""The principal of an unauthenticated PLAINTEXT connection (and of SSL without a client
certificate), as in Kafka."""
