"""The broker's named listeners: one server socket per listener, each with its protocol.

Kafka's ``listeners`` names every endpoint the broker binds (``PLAINTEXT://:9092,
SSL://:9093``), ``listener.security.protocol.map`` says what each one speaks and
``advertised.listeners`` what clients are told to connect to. A client is always answered
(Metadata, FindCoordinator, DescribeCluster) with the advertised endpoint of the listener its
request came in on, so a client that bootstrapped over SSL keeps talking SSL. Brokers talk to
each other on ``inter.broker.listener.name``.

``BrokerListeners`` is built from the config before anything starts: it builds the SSL
context of every SSL/SASL_SSL listener (so that bad PEM files stop the broker with one
line) and the client side of inter-broker connections. ``start`` binds them all;
a port 0 binds an ephemeral port, which the advertised endpoint of that listener then
carries. Controller listeners (``controller.listener.names``) are not bound: moldau has no
KRaft quorum to serve on them.

A TLS listener accepts in its own loop (``sock_accept``, then ``connect_accepted_socket``
with the SSL context) rather than with ``create_server(ssl=...)``: asyncio and uvloop drop a
failed server-side handshake silently, and a refused client certificate is an
authentication failure the log must show (Kafka logs "Failed authentication ... (SSL
handshake failed)"). Each handshake runs in its own task, so a slow or garbage-sending
client delays nobody; the Kafka protocol only ever sees connections whose handshake
succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from moldau.broker.auth.plain import JaasConfigError, parse_jaas_config
from moldau.broker.auth.session import SASL_PROTOCOLS, TLS_PROTOCOLS
from moldau.broker.auth.tls import TlsConfigError, client_context, server_context, tls_settings
from moldau.broker.config import BrokerConfig, Endpoint
from moldau.cluster.kafka_client import ClientSecurity
from moldau.log.config import ConfigError

__all__ = ["BrokerListeners", "inter_broker_listener_name", "inter_broker_security"]

log = logging.getLogger("moldau.broker.listeners")

ProtocolFactory = Callable[[Endpoint], asyncio.BaseProtocol]
"""Makes the protocol (a ``KafkaConnection``) of one accepted connection on a listener."""

_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


TLS_HANDSHAKE_TIMEOUT_S = 10.0
"""A client that has not finished its TLS handshake by then is dropped."""


@dataclass(slots=True)
class _Listener:
    endpoint: Endpoint
    ssl_context: ssl.SSLContext | None
    server: asyncio.AbstractServer | None = None
    """The asyncio server of a plaintext listener."""
    sock: socket.socket | None = None
    """The listening socket of a TLS listener, served by ``accept_task``."""
    accept_task: asyncio.Task[None] | None = None
    bound_port: int | None = None


class BrokerListeners:
    """Every client-facing listener of one broker; see the module docstring."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        controller = {
            name.strip().upper()
            for name in str(config.get("controller.listener.names") or "").split(",")
            if name.strip()
        }
        self._listeners: dict[str, _Listener] = {}
        self._handshakes: set[asyncio.Task[None]] = set()
        for endpoint in config.listeners:
            if endpoint.listener_name in controller:
                continue
            context = None
            if endpoint.security_protocol in TLS_PROTOCOLS:
                context = server_context(tls_settings(config, endpoint.listener_name))
            self._listeners[endpoint.listener_name] = _Listener(endpoint, context)
        self.inter_broker_listener_name = inter_broker_listener_name(config)
        # A single node has no peers: its inter-broker settings must not stop it starting.
        self.inter_broker_security = (
            inter_broker_security(config, self.inter_broker_listener_name)
            if config.metadata_endpoints
            else ClientSecurity()
        )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._listeners)

    def security_protocol(self, listener_name: str) -> str:
        return self._listeners[listener_name].endpoint.security_protocol

    async def start(self, protocol_factory: ProtocolFactory) -> None:
        """Bind every listener; connections get ``protocol_factory(endpoint)``."""
        loop = asyncio.get_running_loop()
        for listener in self._listeners.values():
            endpoint = listener.endpoint

            def factory(endpoint: Endpoint = endpoint) -> asyncio.BaseProtocol:
                return protocol_factory(endpoint)

            if listener.ssl_context is None:
                listener.server = await loop.create_server(
                    factory, endpoint.host or None, endpoint.port, reuse_address=True, backlog=1024
                )
                sockets = listener.server.sockets
                listener.bound_port = sockets[0].getsockname()[1] if sockets else endpoint.port
            else:
                listener.sock = _listening_socket(endpoint.host, endpoint.port)
                listener.bound_port = listener.sock.getsockname()[1]
                listener.accept_task = loop.create_task(
                    self._accept_tls(listener, listener.sock, listener.ssl_context, factory),
                    name=f"accept-{endpoint.listener_name}",
                )
            log.info(
                "listening on %s (%s) port %d",
                endpoint,
                endpoint.security_protocol,
                listener.bound_port,
            )

    async def _accept_tls(
        self,
        listener: _Listener,
        sock: socket.socket,
        context: ssl.SSLContext,
        factory: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                connection, address = await loop.sock_accept(sock)
            except asyncio.CancelledError:
                raise
            except OSError as exc:  # EMFILE and friends: back off, keep serving
                log.warning("listener %s: accept failed: %s", listener.endpoint, exc)
                await asyncio.sleep(0.1)
                continue
            task = loop.create_task(
                self._handshake(
                    listener.endpoint.listener_name, connection, address, context, factory
                )
            )
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(
        self,
        listener_name: str,
        connection: socket.socket,
        address: tuple[str, int],
        context: ssl.SSLContext,
        factory: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        """TLS handshake of one accepted socket; the Kafka connection starts on success."""
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(
                factory, connection, ssl=context, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S
            )
        except (OSError, TimeoutError, EOFError) as exc:
            reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            # A peer that hangs up before the handshake (a port probe) is no login attempt.
            quiet = isinstance(exc, ConnectionError | EOFError) and not isinstance(
                exc, ssl.SSLError
            )
            log.log(
                logging.DEBUG if quiet else logging.INFO,
                "failed authentication on listener %s from %s:%s (SSL handshake failed: %s)",
                listener_name,
                address[0],
                address[1],
                reason,
            )
            with contextlib.suppress(OSError):
                connection.close()

    def close(self) -> None:
        for listener in self._listeners.values():
            if listener.server is not None:
                listener.server.close()
            if listener.accept_task is not None:
                listener.accept_task.cancel()
            if listener.sock is not None:
                listener.sock.close()
        for task in list(self._handshakes):
            task.cancel()

    def bound_port(self, listener_name: str) -> int | None:
        listener = self._listeners.get(listener_name)
        return listener.bound_port if listener is not None else None

    def advertised_endpoints(self) -> tuple[Endpoint, ...]:
        """``advertised.listeners`` with port 0 replaced by the port bound (once started)."""
        result = []
        for endpoint in self.config.advertised_listeners:
            port = endpoint.port
            if port == 0:
                port = self.bound_port(endpoint.listener_name) or 0
            result.append(dataclasses.replace(endpoint, port=port))
        return tuple(result)

    def advertised(self, listener_name: str) -> tuple[str, int] | None:
        """Where clients of ``listener_name`` reach this broker (None: not advertised)."""
        for endpoint in self.advertised_endpoints():
            if endpoint.listener_name == listener_name:
                return endpoint.host, endpoint.port
        return None


def _listening_socket(host: str, port: int) -> socket.socket:
    """A non-blocking listening TCP socket on (host, port); "" means every interface."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def inter_broker_listener_name(config: BrokerConfig) -> str:
    """``inter.broker.listener.name``, else the listener named like
    ``security.inter.broker.protocol`` (Kafka's rule), else — so that a single-listener
    broker needs no inter-broker settings — the client listener."""
    explicit = config.get("inter.broker.listener.name")
    protocol = str(config.get("security.inter.broker.protocol"))
    advertised = {e.listener_name for e in config.advertised_listeners}
    if explicit:
        name = str(explicit).strip().upper()
        if "security.inter.broker.protocol" in config.static_properties:
            raise ConfigError(
                "Only one of inter.broker.listener.name and security.inter.broker.protocol "
                "may be set"
            )
        if name not in advertised:
            raise ConfigError(
                f"Invalid value {explicit} for configuration inter.broker.listener.name: "
                f"no listener {name} in advertised.listeners ({', '.join(sorted(advertised))})"
            )
        return name
    if protocol in advertised:
        return protocol
    if "security.inter.broker.protocol" in config.static_properties:
        raise ConfigError(
            f"Invalid value {protocol} for configuration security.inter.broker.protocol: no "
            f"listener named {protocol} in advertised.listeners; set inter.broker.listener.name"
        )
    return config.listener_name


def _listener_protocol(config: BrokerConfig, listener_name: str) -> str:
    for endpoint in config.listeners:
        if endpoint.listener_name == listener_name:
            return endpoint.security_protocol
    raise ConfigError(f"no listener {listener_name} in listeners")


def _jaas_credentials(config: BrokerConfig, listener_name: str, mechanism: str) -> tuple[str, str]:
    """username/password of the inter-broker login (``<mechanism>.sasl.jaas.config`` of the
    listener, else ``sasl.jaas.config``), as a Kafka broker's client side reads them."""
    key = f"{mechanism.lower()}.sasl.jaas.config"
    text = config.listener_value(listener_name, key) or config.listener_value(
        listener_name, "sasl.jaas.config"
    )
    where = f"listener.name.{listener_name.lower()}.{key}"
    if not text:
        raise ConfigError(
            f"{where} is not set: the inter-broker listener {listener_name} uses SASL with "
            f"{mechanism}, so brokers need a username and password to log in with"
        )
    try:
        entries = parse_jaas_config(str(text))
    except JaasConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    module = _LOGIN_MODULES[mechanism]
    for entry in entries:
        if entry.login_module == module:
            username, password = entry.options.get("username"), entry.options.get("password")
            if username and password is not None:
                return username, password
    raise ConfigError(
        f"{where}: no {module.rsplit('.', 1)[-1]} entry with username and password options"
    )


def inter_broker_security(config: BrokerConfig, listener_name: str) -> ClientSecurity:
    """How this broker connects to its peers' ``listener_name``: TLS with this listener's
    CA and certificate, SASL with ``sasl.mechanism.inter.broker.protocol``."""
    protocol = _listener_protocol(config, listener_name)
    context = None
    if protocol in TLS_PROTOCOLS:
        try:
            context = client_context(tls_settings(config, listener_name))
        except TlsConfigError as exc:
            raise TlsConfigError(f"inter-broker client: {exc}") from None
    if protocol not in SASL_PROTOCOLS:
        return ClientSecurity(ssl_context=context)
    mechanism = str(config.get("sasl.mechanism.inter.broker.protocol"))
    username, password = _jaas_credentials(config, listener_name, mechanism)
    return ClientSecurity(
        ssl_context=context,
        sasl_mechanism=mechanism,
        sasl_username=username,
        sasl_password=password,
    )
