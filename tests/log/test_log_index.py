"""The sparse offset and time indexes: lookups, truncation, persistence, sanity checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from moldau.log.errors import CorruptIndexError
from moldau.log.index import OffsetIndex, TimeIndex


def test_offset_index_lookup_floor(tmp_path: Path) -> None:
    index = OffsetIndex(tmp_path / "x.index", 100, 1024)
    for last_offset, position in [(104, 0), (109, 500), (120, 1000)]:
        index.append(last_offset, position)
    assert index.lookup(99) == (100, 0)
    assert index.lookup(103) == (100, 0)
    assert index.lookup(104) == (104, 0)
    assert index.lookup(115) == (109, 500)
    assert index.lookup(10_000) == (120, 1000)
    assert index.lookup_position(499) == (104, 0)
    assert index.lookup_position(500) == (109, 500)
    assert index.lookup_position(5000) == (120, 1000)


def test_offset_index_truncate_and_persist(tmp_path: Path) -> None:
    path = tmp_path / "x.index"
    index = OffsetIndex(path, 0, 1024)
    for i in range(1, 6):
        index.append(i * 10, i * 100)
    index.flush()
    assert path.stat().st_size == 5 * 8
    index.truncate_to(30)  # entries for offsets ≥ 30 go
    assert index.entries == 2
    index.write_pending()
    assert path.stat().st_size == 2 * 8
    index.append(35, 350)
    index.flush()
    loaded = OffsetIndex(path, 0, 1024)
    loaded.load(log_size=1000)
    assert loaded.entries == 3
    assert loaded.lookup(36) == (35, 350)


def test_offset_index_is_full(tmp_path: Path) -> None:
    index = OffsetIndex(tmp_path / "x.index", 0, 16)
    assert not index.is_full
    index.append(1, 10)
    index.append(2, 20)
    assert index.is_full


@pytest.mark.parametrize(
    "content",
    [
        b"\x00" * 7,  # not a multiple of the entry size
        bytes.fromhex("00000005 00000064 00000003 000000c8"),  # offsets not increasing
        bytes.fromhex("00000005 00000064 00000006 00000010"),  # positions not increasing
        bytes.fromhex("00000005 00002000"),  # position past the log's end
    ],
)
def test_offset_index_load_refuses_corrupt_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.index"
    path.write_bytes(content)
    with pytest.raises(CorruptIndexError):
        OffsetIndex(path, 0, 1024).load(log_size=4096)


def test_missing_index_file_is_corrupt(tmp_path: Path) -> None:
    with pytest.raises(CorruptIndexError):
        OffsetIndex(tmp_path / "absent.index", 0, 1024).load(log_size=0)


def test_time_index_only_appends_greater_timestamps(tmp_path: Path) -> None:
    index = TimeIndex(tmp_path / "x.timeindex", 50, 1024)
    index.maybe_append(1000, 52)
    index.maybe_append(1000, 55)  # not greater: ignored
    index.maybe_append(900, 56)  # smaller: ignored
    index.maybe_append(2000, 60)
    assert index.entries == 2
    assert index.lookup(999) == (-1, 50)
    assert index.lookup(1500) == (1000, 52)
    assert index.lookup(2000) == (2000, 60)
    index.truncate_to(60)
    assert index.last_entry() == (1000, 52)


def test_time_index_round_trip_and_corruption(tmp_path: Path) -> None:
    path = tmp_path / "x.timeindex"
    index = TimeIndex(path, 0, 1024)
    index.maybe_append(10, 1)
    index.maybe_append(20, 5)
    index.flush()
    loaded = TimeIndex(path, 0, 1024)
    loaded.load()
    assert loaded.last_entry() == (20, 5)
    path.write_bytes(path.read_bytes()[12:] + path.read_bytes()[:12])  # unsorted
    with pytest.raises(CorruptIndexError):
        TimeIndex(path, 0, 1024).load()
