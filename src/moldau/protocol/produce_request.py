"""A zero-copy reader for Produce requests (v3-v9).

kio decodes every field into Python objects, which for Produce means copying each
partition's record bytes out of the request frame. The broker instead wants to validate the
batch and patch its offsets *in the frame it received*, then write those same bytes to the
segment file. This reader walks the (small) envelope by hand and hands out writable
memoryviews into the frame for the records, so a produced batch is never copied between the
socket and the file.

Layout (Kafka's ProduceRequest.json; v9+ is flexible: compact strings/arrays/bytes, tagged
fields after each struct)::

    transactional_id  nullable string
    acks              int16
    timeout_ms        int32
    topic_data        [name string, partition_data [index int32, records nullable bytes]]
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_ACKS_TIMEOUT = struct.Struct(">hi")

FIRST_FLEXIBLE_VERSION = 9


class ProduceParseError(ValueError):
    """The request body does not parse; the connection must be closed."""


@dataclass(slots=True)
class PartitionProduceData:
    index: int
    records: memoryview | None


@dataclass(slots=True)
class TopicProduceData:
    name: str
    partition_data: list[PartitionProduceData]


@dataclass(slots=True)
class ProduceRequestView:
    """Attribute names follow kio's ProduceRequest so handlers read either alike."""

    transactional_id: str | None
    acks: int
    timeout_ms: int
    topic_data: list[TopicProduceData]


class _Cursor:
    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: memoryview, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf)

    def need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.end:
            raise ProduceParseError(f"produce request truncated at byte {self.pos}")

    def int16(self) -> int:
        self.need(2)
        (value,) = _I16.unpack_from(self.buf, self.pos)
        self.pos += 2
        return int(value)

    def int32(self) -> int:
        self.need(4)
        (value,) = _I32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(value)

    def uvarint(self) -> int:
        result = 0
        shift = 0
        while True:
            self.need(1)
            byte = self.buf[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 28:
                raise ProduceParseError("unsigned varint too long")

    def text(self, length: int) -> str:
        self.need(length)
        raw = bytes(self.buf[self.pos : self.pos + length])
        self.pos += length
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProduceParseError("string is not UTF-8") from None

    def view(self, length: int) -> memoryview:
        self.need(length)
        view = self.buf[self.pos : self.pos + length]
        self.pos += length
        return view

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            length = self.uvarint()
            self.need(length)
            self.pos += length


def parse_produce_request(buf: memoryview, offset: int, version: int) -> ProduceRequestView:
    """Parse the Produce body starting at ``offset`` of ``buf`` (the whole request frame).

    Records are returned as views into ``buf``: writable if ``buf`` is. Raises
    ProduceParseError on any malformation, including trailing garbage.
    """
    flexible = version >= FIRST_FLEXIBLE_VERSION
    cur = _Cursor(buf, offset)
    length = cur.uvarint() - 1 if flexible else cur.int16()
    if length < -1:
        raise ProduceParseError("invalid transactional id length")
    transactional_id = None if length == -1 else cur.text(length)
    cur.need(6)
    acks, timeout_ms = _ACKS_TIMEOUT.unpack_from(buf, cur.pos)
    cur.pos += 6
    topic_count = cur.uvarint() - 1 if flexible else cur.int32()
    if topic_count < 0:
        raise ProduceParseError("produce request without topics")
    topics: list[TopicProduceData] = []
    for _ in range(topic_count):
        name_length = cur.uvarint() - 1 if flexible else cur.int16()
        if name_length < 0:
            raise ProduceParseError("null topic name")
        name = cur.text(name_length)
        partition_count = cur.uvarint() - 1 if flexible else cur.int32()
        if partition_count < 0:
            raise ProduceParseError("null partition list")
        partitions: list[PartitionProduceData] = []
        for _ in range(partition_count):
            index = cur.int32()
            size = cur.uvarint() - 1 if flexible else cur.int32()
            if size < -1:
                raise ProduceParseError("invalid records length")
            records = None if size == -1 else cur.view(size)
            if flexible:
                cur.skip_tags()
            partitions.append(PartitionProduceData(index, records))
        if flexible:
            cur.skip_tags()
        topics.append(TopicProduceData(name, partitions))
    if flexible:
        cur.skip_tags()
    if cur.pos != cur.end:
        raise ProduceParseError(f"{cur.end - cur.pos} trailing bytes after the produce request")
    return ProduceRequestView(transactional_id, int(acks), int(timeout_ms), topics)
