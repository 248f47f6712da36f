"""One Kafka request on a fresh TCP connection, for the few APIs confluent-kafka's admin
client lacks (OffsetDelete, the transaction APIs).

Why by hand: librdkafka's AdminClient exposes no generic "send this request", and the CLI must
stay a wire client (it never imports the broker). kio encodes the request and decodes the
answer; this module only frames, sends and reads, with the session's timeout on every socket
operation and every failure turned into a one-line :class:`~moldau.cli.common.CliError`.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from moldau.cli.common import CLIENT_ID, CliError
from moldau.protocol.api import ApiKey
from moldau.protocol.framing import decode_response, encode_request

_INT32 = struct.Struct(">i")


def wire_request(
    host: str, port: int, api_key: int, version: int, body: Any, timeout_ms: int
) -> Any:
    """One request on a fresh connection, for the rare API the admin client lacks.

    A broker that does not implement the API closes the connection (Kafka does the same for
    an unknown API key), which becomes a one-line CliError.
    """
    frame = wire_exchange(host, port, api_key, version, body, timeout_ms)
    _correlation_id, value = decode_response(api_key, version, frame)
    return value


def wire_exchange(
    host: str, port: int, api_key: int, version: int, body: Any, timeout_ms: int
) -> bytes:
    """Send one request, return the response frame (without its size prefix) undecoded."""
    request = encode_request(api_key, version, 1, CLIENT_ID, body)
    name = ApiKey(api_key).name
    try:
        with socket.create_connection((host, port), timeout=timeout_ms / 1000) as sock:
            sock.sendall(request)
            size = _INT32.unpack(read_exact(sock, 4))[0]
            return read_exact(sock, size)
    except TimeoutError:
        raise CliError(f"timed out after {timeout_ms} ms waiting for {name}") from None
    except OSError as exc:
        raise CliError(f"{name} request to {host}:{port} failed: {exc.strerror or exc}") from None


def read_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(0, "the broker closed the connection (API not supported?)")
        data += chunk
    return bytes(data)
