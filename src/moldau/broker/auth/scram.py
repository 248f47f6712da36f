"""SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802 / 7677): credentials and the SASL server.

Credentials are what Kafka keeps per user and mechanism: salt, iteration count, StoredKey =
H(HMAC(SaltedPassword, "Client Key")) and ServerKey = HMAC(SaltedPassword, "Server Key");
SaltedPassword = PBKDF2-HMAC(password, salt, iterations). The password itself is never
stored, and — as in Kafka — it is used as its UTF-8 bytes, without SASLprep, so credentials
made here, by Kafka's tools and by AlterUserScramCredentials (which sends SaltedPassword)
agree.

The exchange itself is scramp's ``ScramServer`` (a well-kept implementation: nonce check,
proof check in constant time). Two things are added around it:

- An unknown user is not refused at the first message, which would tell a client which user
  names exist: it gets a made-up salt (derived from the name with a per-process key, so a
  retry sees the same salt) and fails at the proof like a wrong password.
- Every scramp error becomes ``SaslAuthenticationError`` with scramp's reason for the broker
  log (no secrets in it); the client sees the generic failure message.

Channel binding (SCRAM-*-PLUS) and Kafka's delegation-token extension (``tokenauth``) are
not supported: Kafka clients send neither for user logins.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Any

import scramp

from moldau.broker.auth.sasl import SaslAuthenticationError, SaslServer
from moldau.cluster.security_state import SCRAM_MECHANISMS, ScramCredential

MIN_ITERATIONS = 4096
"""Kafka's ``ScramMechanism.minIterations`` for both SHA-256 and SHA-512."""
MAX_ITERATIONS = 16384
"""Kafka's ``ScramMechanism.maxIterations``: AlterUserScramCredentials refuses more."""
DEFAULT_ITERATIONS = 4096

_HASHES: dict[str, str] = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}

MECHANISM_IDS: dict[str, int] = {"SCRAM-SHA-256": 1, "SCRAM-SHA-512": 2}
"""Kafka's ``ScramMechanism`` wire ids (0 is UNKNOWN), as Describe/AlterUserScramCredentials
carry them."""
MECHANISM_NAMES: dict[int, str] = {v: k for k, v in MECHANISM_IDS.items()}


def _hash_name(mechanism: str) -> str:
    try:
        return _HASHES[mechanism]
    except KeyError:
        raise ValueError(
            f"unknown SCRAM mechanism {mechanism!r}; expected one of {', '.join(SCRAM_MECHANISMS)}"
        ) from None


def credential_from_salted_password(
    mechanism: str, salt: bytes, salted_password: bytes, iterations: int
) -> ScramCredential:
    """The stored credential for an already salted password (what AlterUserScramCredentials
    sends: the client computes SaltedPassword, the broker derives the keys)."""
    name = _hash_name(mechanism)
    client_key = hmac.digest(salted_password, b"Client Key", name)
    stored_key = hashlib.new(name, client_key).digest()
    server_key = hmac.digest(salted_password, b"Server Key", name)
    return ScramCredential(mechanism, salt, stored_key, server_key, iterations)


def salted_password(mechanism: str, password: str, salt: bytes, iterations: int) -> bytes:
    """SaltedPassword = Hi(password, salt, i) = PBKDF2-HMAC (RFC 5802 §2.2)."""
    return hashlib.pbkdf2_hmac(_hash_name(mechanism), password.encode("utf-8"), salt, iterations)


def make_scram_credential(
    password: str,
    mechanism: str,
    iterations: int = DEFAULT_ITERATIONS,
    salt: bytes | None = None,
) -> ScramCredential:
    """A new credential for ``password`` (a random 32-byte salt unless one is given).

    Raises ValueError for an unknown mechanism or an iteration count outside Kafka's
    4096..16384.
    """
    _hash_name(mechanism)
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(
            f"iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}, got {iterations}"
        )
    if salt is None:
        salt = os.urandom(32)
    return credential_from_salted_password(
        mechanism, salt, salted_password(mechanism, password, salt, iterations), iterations
    )


_FAKE_KEY = os.urandom(32)
"""Per-process key for the made-up salts of unknown users."""


def _fake_credential(user: str, mechanism: str) -> tuple[bytes, bytes, bytes, int]:
    name = _hash_name(mechanism)
    salt = hmac.digest(_FAKE_KEY, f"{mechanism}\0{user}".encode(), "sha256")
    # Random keys: no proof can match them.
    size = hashlib.new(name).digest_size
    return salt, os.urandom(size), os.urandom(size), DEFAULT_ITERATIONS


class ScramSaslServer(SaslServer):
    """Server side of one SCRAM exchange: client-first → server-first, client-final →
    server-final. ``credentials(user, mechanism)`` is read at the first message, so a
    credential altered meanwhile applies to the next login."""

    def __init__(
        self, mechanism: str, credentials: Callable[[str, str], ScramCredential | None]
    ) -> None:
        super().__init__()
        _hash_name(mechanism)
        self.mechanism = mechanism
        self._credentials = credentials
        self._unknown_user = False
        self._server: Any = scramp.ScramMechanism(mechanism).make_server(self._auth_info)
        self._step = 0

    def _auth_info(self, user: str) -> tuple[bytes, bytes, bytes, int]:
        self.username = user
        credential = self._credentials(user, self.mechanism)
        if credential is None:
            self._unknown_user = True
            return _fake_credential(user, self.mechanism)
        return (
            credential.salt,
            credential.stored_key,
            credential.server_key,
            credential.iterations,
        )

    def evaluate(self, token: bytes) -> bytes:
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslAuthenticationError("SCRAM message is not UTF-8", self.username) from None
        try:
            if self._step == 0:
                self._step = 1
                self._server.set_client_first(text)
                return str(self._server.get_server_first()).encode("utf-8")
            if self._step == 1:
                self._step = 2
                self._server.set_client_final(text)
                if self._unknown_user:  # unreachable in practice: random keys never match
                    raise SaslAuthenticationError("unknown user", self.username)
                final = str(self._server.get_server_final()).encode("utf-8")
                self.complete = True
                return final
        except scramp.ScramException as exc:
            reason = "unknown user" if self._unknown_user else _reason(exc)
            raise SaslAuthenticationError(reason, self.username) from None
        raise SaslAuthenticationError("SCRAM exchange already complete", self.username)


def _reason(exc: scramp.ScramException) -> str:
    """scramp's message, for the log: it names the failed check (nonce, proof, syntax)."""
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    server_error = getattr(exc, "server_error", None)
    return f"{text} ({server_error})" if server_error else text
