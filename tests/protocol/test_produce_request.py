"""The zero-copy Produce reader agrees with kio's decoder on every version it serves."""

from __future__ import annotations

import datetime
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kio.serial import entity_writer

from moldau.protocol.api import ApiKey, schema_for
from moldau.protocol.produce_request import ProduceParseError, parse_produce_request

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-._0123456789", min_size=1, max_size=20)
partitions = st.lists(
    st.tuples(st.integers(0, 1000), st.one_of(st.none(), st.binary(max_size=300))), max_size=4
)
topics = st.lists(st.tuples(names, partitions), max_size=4)


def encode(version: int, txn: str | None, acks: int, topic_data: list) -> bytes:  # type: ignore[type-arg]
    schema = schema_for(ApiKey.PRODUCE, version)
    module = schema.request_module
    request = schema.request_type(
        transactional_id=txn,
        acks=acks,
        timeout=datetime.timedelta(milliseconds=1500),
        topic_data=tuple(
            module.TopicProduceData(
                name=name,
                partition_data=tuple(
                    module.PartitionProduceData(index=index, records=records)
                    for index, records in parts
                ),
            )
            for name, parts in topic_data
        ),
    )
    buffer = io.BytesIO()
    entity_writer(schema.request_type)(buffer, request)
    return buffer.getvalue()


@settings(max_examples=60, deadline=None)
@given(
    version=st.integers(3, 9),
    txn=st.one_of(st.none(), names),
    acks=st.sampled_from([-1, 0, 1]),
    topic_data=topics,
)
def test_matches_kio(version: int, txn: str | None, acks: int, topic_data: list) -> None:  # type: ignore[type-arg]
    body = encode(version, txn, acks, topic_data)
    frame = bytearray(b"HEADER" + body)
    parsed = parse_produce_request(memoryview(frame), 6, version)
    assert parsed.transactional_id == txn
    assert parsed.acks == acks
    assert parsed.timeout_ms == 1500
    got = [
        (
            t.name,
            [(p.index, None if p.records is None else bytes(p.records)) for p in t.partition_data],
        )
        for t in parsed.topic_data
    ]
    assert got == [(name, list(parts)) for name, parts in topic_data]


def test_records_are_views_into_the_frame() -> None:
    body = encode(8, None, 1, [("t", [(0, b"abcdef")])])
    frame = bytearray(body)
    parsed = parse_produce_request(memoryview(frame), 0, 8)
    records = parsed.topic_data[0].partition_data[0].records
    assert records is not None
    records[0] = ord("Z")
    assert b"Zbcdef" in frame


@pytest.mark.parametrize("version", [3, 8, 9])
def test_truncated_or_padded_bodies_are_refused(version: int) -> None:
    body = encode(version, "tx", 1, [("topic", [(0, b"x" * 50)])])
    for cut in (1, 5, len(body) // 2, len(body) - 1):
        with pytest.raises(ProduceParseError):
            parse_produce_request(memoryview(bytearray(body[:cut])), 0, version)
    with pytest.raises(ProduceParseError):
        parse_produce_request(memoryview(bytearray(body + b"\x00")), 0, version)
