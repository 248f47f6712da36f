"""SASL PLAIN (RFC 4616): one token ``[authzid] NUL authcid NUL passwd``, checked against a
user table.

Users come from two places, as a listener's settings say:

- a JAAS-style config, exactly as Kafka writes it
  (``listener.name.<l>.plain.sasl.jaas.config``, else ``sasl.jaas.config``)::

      org.apache.kafka.common.security.plain.PlainLoginModule required
          username="admin" password="admin-secret"
          user_admin="admin-secret" user_alice="alice-secret";

  Each ``user_<name>="<password>"`` option is a user; ``username``/``password`` are the
  broker's own client credentials (for inter-broker traffic) and are not users by themselves.
- moldau's users file (``moldau.sasl.plain.users.file``): one ``name:password`` per line,
  split at the first ``:``; blank lines and lines starting with ``#`` are skipped. It is
  re-read when its modification time changes, so users can be added without a restart.
  The JAAS config wins when both name a user.

Passwords are compared with ``hmac.compare_digest``, and an unknown user is compared
against a dummy, so the time taken says nothing about which users exist. Nothing here
logs a password or the token.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from moldau.broker.auth.sasl import SaslAuthenticationError, SaslServer

if TYPE_CHECKING:
    from moldau.broker.auth.sasl import ListenerSaslConfig

log = logging.getLogger("moldau.security.plain")

PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"

_JAAS_TOKEN = re.compile(
    r"""\s*(?:
        (?P<quoted>"(?:[^"\\]|\\.)*")
      | (?P<eq>=)
      | (?P<semi>;)
      | (?P<word>[^\s=;"]+)
    )""",
    re.VERBOSE | re.DOTALL,
)


class JaasConfigError(ValueError):
    """A JAAS config that does not parse; the message never quotes option values."""


@dataclass(frozen=True, slots=True)
class JaasEntry:
    """One login module of a JAAS config: class name, control flag, options."""

    login_module: str
    control_flag: str
    options: Mapping[str, str]


def parse_jaas_config(text: str) -> list[JaasEntry]:
    """Parse Kafka's ``sasl.jaas.config`` syntax: ``Module flag key=value ... ;`` repeated.

    Values may be bare words or double-quoted strings (``\\"`` and ``\\\\`` escape inside).
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _JAAS_TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip() == "":
                break
            raise JaasConfigError(f"JAAS config: cannot parse at character {pos}")
        pos = match.end()
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "quoted":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
    entries: list[JaasEntry] = []
    i = 0
    while i < len(tokens):
        if i + 1 >= len(tokens) or tokens[i][0] != "word" or tokens[i + 1][0] != "word":
            raise JaasConfigError("JAAS config: expected '<LoginModule> <flag> key=value ... ;'")
        module, flag = tokens[i][1], tokens[i + 1][1].lower()
        if flag not in ("required", "requisite", "sufficient", "optional"):
            raise JaasConfigError(f"JAAS config: invalid control flag {flag!r} for {module}")
        i += 2
        options: dict[str, str] = {}
        while i < len(tokens) and tokens[i][0] != "semi":
            if (
                i + 2 >= len(tokens)
                or tokens[i][0] != "word"
                or tokens[i + 1][0] != "eq"
                or tokens[i + 2][0] not in ("word", "quoted")
            ):
                raise JaasConfigError(f"JAAS config: expected key=value options for {module}")
            options[tokens[i][1]] = tokens[i + 2][1]
            i += 3
        if i >= len(tokens):
            raise JaasConfigError(f"JAAS config: the entry for {module} must end with ';'")
        i += 1
        entries.append(JaasEntry(module, flag, options))
    if not entries:
        raise JaasConfigError("JAAS config: no login module")
    return entries


def jaas_plain_users(text: str) -> dict[str, str]:
    """The ``user_<name>`` options of the PlainLoginModule entry of a JAAS config."""
    users: dict[str, str] = {}
    for entry in parse_jaas_config(text):
        if entry.login_module != PLAIN_LOGIN_MODULE:
            continue
        for key, value in entry.options.items():
            if key.startswith("user_") and len(key) > len("user_"):
                users[key[len("user_") :]] = value
    return users


def parse_users_file(text: str) -> dict[str, str]:
    """``name:password`` lines (see module docstring) into a dict; bad lines are skipped
    with a warning that names the line number only."""
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, password = stripped.partition(":")
        if not sep or not name.strip():
            log.warning("PLAIN users file: line %d is not name:password; skipped", number)
            continue
        users[name.strip()] = password
    return users


class PlainUserTable:
    """A listener's PLAIN users: JAAS users plus a users file re-read when it changes."""

    def __init__(self, jaas_users: Mapping[str, str], users_file: Path | None) -> None:
        self._jaas_users = dict(jaas_users)
        self._users_file = users_file
        self._file_stamp: tuple[int, int] | None = None
        self._file_users: dict[str, str] = {}

    def password_of(self, user: str) -> str | None:
        if user in self._jaas_users:
            return self._jaas_users[user]
        return self._read_file().get(user)

    def _read_file(self) -> dict[str, str]:
        path = self._users_file
        if path is None:
            return {}
        try:
            stat = os.stat(path)
        except OSError as exc:
            if self._file_stamp is not None or not self._file_users:
                log.warning("PLAIN users file %s cannot be read: %s", path, exc.strerror)
            self._file_stamp, self._file_users = None, {}
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._file_stamp:
            try:
                self._file_users = parse_users_file(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                log.warning("PLAIN users file %s cannot be read: %s", path, exc)
                self._file_users = {}
            self._file_stamp = stamp
        return self._file_users


_tables: dict[tuple[str | None, str | None], PlainUserTable] = {}


def user_table(config: ListenerSaslConfig) -> PlainUserTable:
    """The user table of a listener's settings (one per distinct JAAS text + file)."""
    file_key = str(config.plain_users_file) if config.plain_users_file else None
    key = (config.plain_jaas_config, file_key)
    table = _tables.get(key)
    if table is None:
        jaas_users: dict[str, str] = {}
        if config.plain_jaas_config:
            try:
                jaas_users = jaas_plain_users(config.plain_jaas_config)
            except JaasConfigError as exc:
                log.error("listener %s: %s; no JAAS PLAIN users", config.listener_name, exc)
        table = _tables[key] = PlainUserTable(jaas_users, config.plain_users_file)
    return table


_DUMMY_PASSWORD = os.urandom(32).hex().encode()


class PlainSaslServer(SaslServer):
    """RFC 4616 server: a single token, no challenge."""

    mechanism = "PLAIN"

    def __init__(self, users: PlainUserTable) -> None:
        super().__init__()
        self._users = users

    @classmethod
    def for_listener(cls, config: ListenerSaslConfig) -> PlainSaslServer:
        return cls(user_table(config))

    def evaluate(self, token: bytes) -> bytes:
        if self.complete:
            raise SaslAuthenticationError("PLAIN exchange already complete")
        parts = token.split(b"\0")
        if len(parts) != 3:
            raise SaslAuthenticationError("malformed PLAIN token (expected 3 NUL-separated parts)")
        try:
            authzid, authcid, passwd = (part.decode("utf-8") for part in parts)
        except UnicodeDecodeError:
            raise SaslAuthenticationError("PLAIN token is not UTF-8") from None
        if not authcid:
            raise SaslAuthenticationError("PLAIN token without a user name")
        self.username = authcid
        if authzid and authzid != authcid:
            raise SaslAuthenticationError(
                "client asked for an authorization id different from its user name", authcid
            )
        if not passwd:
            raise SaslAuthenticationError("PLAIN token without a password", authcid)
        expected = self._users.password_of(authcid)
        candidate = passwd.encode("utf-8")
        matched = hmac.compare_digest(
            candidate, expected.encode("utf-8") if expected is not None else _DUMMY_PASSWORD
        )
        if expected is None:
            raise SaslAuthenticationError("unknown user", authcid)
        if not matched:
            raise SaslAuthenticationError("wrong password", authcid)
        self.complete = True
        return b""
