"""Request header parsing and response framing (the parts of the protocol we hand-write)."""

from __future__ import annotations

import struct

import pytest
from kio.schema.errors import ErrorCode

from moldau.protocol.api import ADVERTISED, ApiKey, schema_for
from moldau.protocol.framing import (
    FramingError,
    decode_request_body,
    encode_response,
    parse_request_header_prefix,
    skip_header_tags,
)
from moldau.protocol.messages import make, millis


def test_header_v1_with_client_id() -> None:
    frame = struct.pack(">hhih", 3, 9, 77, 3) + b"abc" + b"rest"
    header = parse_request_header_prefix(frame)
    assert (header.api_key, header.api_version, header.correlation_id) == (3, 9, 77)
    assert header.client_id == "abc"
    assert header.body_offset == 13


def test_header_with_null_client_id_and_tags() -> None:
    frame = struct.pack(">hhih", 3, 9, 1, -1) + b"\x01\x05\x02zz" + b"body"
    header = skip_header_tags(frame, parse_request_header_prefix(frame))
    assert header.client_id is None
    assert frame[header.body_offset :] == b"body"


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00\x03\x00",
        struct.pack(">hhih", 3, 9, 1, 50) + b"short",
        struct.pack(">hhih", 3, 9, 1, -7),
        struct.pack(">hhih", 3, 9, 1, 2) + b"\xff\xfe",
    ],
)
def test_bad_headers_raise_framing_error(frame: bytes) -> None:
    with pytest.raises(FramingError):
        parse_request_header_prefix(frame)


def test_truncated_tagged_fields_raise() -> None:
    frame = struct.pack(">hhih", 3, 9, 1, -1) + b"\x02\x05"
    with pytest.raises(FramingError):
        skip_header_tags(frame, parse_request_header_prefix(frame))


def test_truncated_body_raises() -> None:
    schema = schema_for(ApiKey.METADATA, 9)
    with pytest.raises(FramingError):
        decode_request_body(schema, b"\x05\x00", 0)


def test_api_versions_response_header_is_always_v0() -> None:
    schema = schema_for(ApiKey.API_VERSIONS, 3)
    assert schema.request_flexible
    assert not schema.response_header_flexible
    response = make(schema.response_type, error_code=0, api_keys=(), throttle_time=0)
    frame = encode_response(schema, 5, response)
    size, correlation = struct.unpack_from(">ii", frame)
    assert size == len(frame) - 4 and correlation == 5
    assert frame[8:10] == b"\x00\x00"  # error code right after the v0 header


def test_flexible_response_header_has_tag_byte() -> None:
    schema = schema_for(ApiKey.METADATA, 9)
    response = make(
        schema.response_type,
        throttle_time=0,
        brokers=(),
        cluster_id="c",
        controller_id=1,
        topics=(),
    )
    frame = encode_response(schema, 9, response)
    assert frame[8] == 0


def test_make_drops_unknown_fields_and_converts() -> None:
    schema = schema_for(ApiKey.INIT_PRODUCER_ID, 0)
    response = make(
        schema.response_type,
        throttle_time=250,
        error_code=0,
        producer_id=3,
        producer_epoch=0,
        not_a_field=1,
    )
    assert response.error_code is ErrorCode.none
    assert millis(response.throttle_time) == 250


def test_make_turns_minus_one_timestamps_into_none_or_minus_one_on_the_wire() -> None:
    produce = schema_for(ApiKey.PRODUCE, 9).response_module
    nullable = make(
        produce.PartitionProduceResponse,
        index=0,
        error_code=0,
        base_offset=0,
        log_append_time=-1,
        record_errors=(),
    )
    assert nullable.log_append_time is None
    describe = schema_for(ApiKey.DESCRIBE_TRANSACTIONS, 0)
    state = make(
        describe.response_module.TransactionState,
        error_code=0,
        transactional_id="t",
        transaction_state="Empty",
        transaction_timeout=0,
        transaction_start_time=-1,
        producer_id=-1,
        producer_epoch=-1,
        topics=(),
    )
    response = make(describe.response_type, throttle_time=0, transaction_states=(state,))
    frame = encode_response(describe, 7, response)
    assert struct.pack(">q", -1) + struct.pack(">q", -1) in frame  # start time, producer id


def test_every_advertised_version_has_kio_schemas() -> None:
    for key, versions in ADVERTISED.items():
        for version in range(versions.decodable_min, versions.max + 1):
            schema = schema_for(key, version)
            assert schema.api_key == key
