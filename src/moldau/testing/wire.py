"""A minimal blocking Kafka wire client for tests that must send exact (or broken) bytes.

Real client libraries never send a bad CRC or an unknown API key, so bad-input tests speak
the protocol themselves: kio encodes the request bodies, this module frames them.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from moldau.protocol.framing import decode_response as decode_frame
from moldau.protocol.framing import encode_request

_INT32 = struct.Struct(">i")


class WireClient:
    """One TCP connection; ``request()`` sends a kio request and returns the decoded response."""

    def __init__(
        self, host: str, port: int, *, timeout_s: float = 10.0, client_id: str = "wire-test"
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.client_id = client_id
        self._correlation = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def next_correlation_id(self) -> int:
        self._correlation += 1
        return self._correlation

    def encode(self, api_key: int, version: int, body: Any, correlation_id: int) -> bytes:
        """A whole request frame for ``body`` (a kio request entity)."""
        return encode_request(api_key, version, correlation_id, self.client_id, body)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_frame(self) -> bytes:
        """The next response frame (without its size), or raise ConnectionError on EOF."""
        size = _INT32.unpack(self._read_exact(4))[0]
        return self._read_exact(size)

    def _read_exact(self, n: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < n:
            chunk = self.sock.recv(n - len(chunks))
            if not chunk:
                raise ConnectionError("connection closed by broker")
            chunks += chunk
        return bytes(chunks)

    def request(self, api_key: int, version: int, body: Any) -> Any:
        correlation_id = self.next_correlation_id()
        self.send_raw(self.encode(api_key, version, body, correlation_id))
        frame = self.read_frame()
        return decode_response(api_key, version, correlation_id, frame)

    def is_closed_by_peer(self, timeout_s: float = 5.0) -> bool:
        """True if the broker closes this connection (EOF or reset) within the timeout."""
        self.sock.settimeout(timeout_s)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False


def decode_response(api_key: int, version: int, correlation_id: int, frame: bytes) -> Any:
    """Decode a response frame, checking it answers ``correlation_id``."""
    got, value = decode_frame(api_key, version, frame)
    if got != correlation_id:
        raise AssertionError(f"correlation id {got} != {correlation_id}")
    return value
