"""Request/response framing: the size prefix, request headers v1/v2, response headers v0/v1.

A Kafka frame is ``int32 size`` followed by ``size`` bytes. Requests start with a header::

    int16 api_key, int16 api_version, int32 correlation_id, nullable string client_id
    [tagged fields]      only in header v2, i.e. when the request version is flexible

We parse the header by hand (it is tiny and on every request) and hand the rest to kio.
Responses start with ``int32 correlation_id`` and, for flexible versions (header v1), an
empty tagged-field section (one zero byte).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

from kio.serial import entity_reader, entity_writer
from kio.serial.readers import read_unsigned_varint

from moldau.protocol.api import ApiSchema, schema_for

_HEADER_FIXED = struct.Struct(">hhih")
_INT32 = struct.Struct(">i")
_INT16 = struct.Struct(">h")


class FramingError(ValueError):
    """The request bytes do not form a valid header or body: the connection must be closed."""


@dataclass(frozen=True, slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_offset: int
    """Where the request body starts in the frame (after the header's tagged fields, if any)."""


def parse_request_header_prefix(frame: bytes | bytearray | memoryview) -> RequestHeader:
    """Parse the v1 part of the header (common to every version).

    The caller decides from (api_key, api_version) whether the header also has tagged fields
    and calls ``skip_header_tags``. Raises FramingError if the frame is too short.
    """
    if len(frame) < 10:
        raise FramingError(f"request header truncated ({len(frame)} bytes)")
    api_key, api_version, correlation_id, client_len = _HEADER_FIXED.unpack_from(frame, 0)
    offset = 10
    client_id: str | None = None
    if client_len >= 0:
        end = offset + client_len
        if end > len(frame):
            raise FramingError("client id runs past the end of the request")
        try:
            client_id = bytes(frame[offset:end]).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FramingError("client id is not UTF-8") from exc
        offset = end
    elif client_len != -1:
        raise FramingError(f"invalid client id length {client_len}")
    return RequestHeader(api_key, api_version, correlation_id, client_id, offset)


def skip_header_tags(frame: bytes | bytearray | memoryview, header: RequestHeader) -> RequestHeader:
    """Advance past header v2's tagged fields (we know of none we need)."""
    offset = header.body_offset
    try:
        count, size = read_unsigned_varint(frame, offset)
        offset += size
        for _ in range(count):
            _tag, size = read_unsigned_varint(frame, offset)
            offset += size
            length, size = read_unsigned_varint(frame, offset)
            offset += size + length
    except Exception as exc:  # kio raises various errors on truncated varints
        raise FramingError(f"bad tagged fields in request header: {exc}") from exc
    if offset > len(frame):
        raise FramingError("request header tagged fields run past the end")
    return RequestHeader(
        header.api_key, header.api_version, header.correlation_id, header.client_id, offset
    )


def decode_request_body(
    schema: ApiSchema, frame: bytes | bytearray | memoryview, offset: int
) -> Any:
    """Decode the request body with kio. Raises FramingError on malformed bytes."""
    reader = _reader(schema.request_type)
    try:
        value, size = reader(frame, offset)
    except Exception as exc:
        raise FramingError(
            f"malformed {schema.request_type.__name__} v{schema.version}: {exc}"
        ) from exc
    if offset + size > len(frame):
        raise FramingError("request body runs past the end of the frame")
    return value


def encode_response(schema: ApiSchema, correlation_id: int, response: Any) -> bytes:
    """A whole response frame: size prefix, header v0/v1, body."""
    buffer = io.BytesIO()
    buffer.write(b"\x00\x00\x00\x00")
    buffer.write(_INT32.pack(correlation_id))
    if schema.response_header_flexible:
        buffer.write(b"\x00")
    _writer(type(response))(buffer, response)
    data = buffer.getbuffer()
    _INT32.pack_into(data, 0, len(data) - 4)
    del data
    return buffer.getvalue()


def encode_response_parts(schema: ApiSchema, correlation_id: int, body_size: int) -> bytes:
    """Size prefix and response header for a body of ``body_size`` bytes written separately
    (the zero-copy Fetch path writes its own body around file slices)."""
    header = _INT32.pack(correlation_id) + (b"\x00" if schema.response_header_flexible else b"")
    return _INT32.pack(len(header) + body_size) + header


_READERS: dict[type, Any] = {}
_WRITERS: dict[type, Any] = {}


def _reader(entity_type: type) -> Any:
    reader = _READERS.get(entity_type)
    if reader is None:
        reader = _READERS[entity_type] = entity_reader(entity_type)
    return reader


def _writer(entity_type: type) -> Any:
    writer = _WRITERS.get(entity_type)
    if writer is None:
        writer = _WRITERS[entity_type] = entity_writer(entity_type)
    return writer


def encode_entity(value: Any) -> bytes:
    """Encode any kio entity on its own (no header), e.g. nested pieces of a hand-built body."""
    buffer = io.BytesIO()
    _writer(type(value))(buffer, value)
    return buffer.getvalue()


def encode_request(
    api_key: int, version: int, correlation_id: int, client_id: str | None, body: Any
) -> bytes:
    """A whole request frame as a client sends it: size, header v1/v2, kio body.

    Used by moldau's own small clients (the CLI's rare direct requests, the test kit)."""
    schema = schema_for(api_key, version)
    client = None if client_id is None else client_id.encode()
    header = struct.pack(">hhi", api_key, version, correlation_id)
    header += _INT16.pack(-1) if client is None else _INT16.pack(len(client)) + client
    if schema.request_flexible:
        header += b"\x00"
    payload = header + encode_entity(body)
    return _INT32.pack(len(payload)) + payload


def decode_response(api_key: int, version: int, frame: bytes) -> tuple[int, Any]:
    """``(correlation_id, response)`` from a response frame without its size prefix."""
    schema = schema_for(api_key, version)
    (correlation_id,) = _INT32.unpack_from(frame, 0)
    offset = 4 + (1 if schema.response_header_flexible else 0)
    value, _size = _reader(schema.response_type)(frame, offset)
    return int(correlation_id), value
