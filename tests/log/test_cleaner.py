"""The log cleaner's clean function (moldau.log.cleaner.clean) on real partition logs.

The helpers at the top (also used by test_cleaner_properties) write a real partition log,
build its CleanJob as the cleaner manager would, and read the staged output back as the log
it becomes after the swap."""

from __future__ import annotations

import errno
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from log_helpers import NOW_MS

from moldau.log.cleaner import (
    STAGING_DIR_NAME,
    CleanerError,
    CleanJob,
    CleanResult,
    ProducerLastRecord,
    SegmentSpec,
    clean,
)
from moldau.log.config import LogConfig
from moldau.log.log import PartitionLog
from moldau.log.segment import (
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    LogSegment,
    segment_file_name,
)
from moldau.log.txn_index import TXN_INDEX_SUFFIX, TransactionIndex
from moldau.protocol.record_batch import (
    CODEC_ZSTD,
    BatchHeader,
    crc_is_valid,
    delete_horizon_ms,
    iter_batches,
)
from moldau.protocol.records import NewRecord, build_batch, decode_records

KeyValue = tuple[bytes | None, bytes | None]


@dataclass(frozen=True, slots=True)
class Rec:
    """One record of a log as a consumer sees it."""

    offset: int
    key: bytes | None
    value: bytes | None
    transactional: bool
    control: bool
    producer_id: int


def append(
    log: PartitionLog,
    records: list[KeyValue],
    *,
    now_ms: int = NOW_MS,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
    compression: int = 0,
) -> int:
    """Append one batch; returns its base offset."""
    batch = bytearray(
        build_batch(
            [NewRecord(key=k, value=v, timestamp_ms=now_ms) for k, v in records],
            compression=compression,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            base_sequence=base_sequence,
            is_transactional=transactional,
        )
    )
    return log.append_as_leader(batch, leader_epoch=0, now_ms=now_ms).base_offset


def marker(log: PartitionLog, producer_id: int, *, commit: bool, now_ms: int = NOW_MS) -> int:
    return log.append_txn_marker(
        producer_id=producer_id,
        producer_epoch=0,
        commit=commit,
        coordinator_epoch=0,
        leader_epoch=0,
        now_ms=now_ms,
    ).base_offset


def make_job(
    log: PartitionLog,
    *,
    now_ms: int = NOW_MS,
    delete_retention_ms: int = 1000,
    first_dirty_offset: int | None = None,
    dedupe_buffer_bytes: int = 1 << 24,
    segment_bytes: int | None = None,
) -> CleanJob:
    """The job the cleaner manager would build: every closed segment, up to the active one."""
    closed = log.segments[:-1]
    specs = tuple(SegmentSpec(s.base_offset, s.next_offset, s.size) for s in closed)
    aborted = (
        tuple(log.aborted_transactions(closed[0].base_offset, closed[-1].next_offset))
        if closed
        else ()
    )
    return CleanJob(
        directory=str(log.directory),
        segments=specs,
        first_dirty_offset=log.log_start_offset
        if first_dirty_offset is None
        else first_dirty_offset,
        first_uncleanable_offset=log.segments[-1].base_offset,
        delete_retention_ms=delete_retention_ms,
        now_ms=now_ms,
        segment_bytes=log.config.segment_bytes if segment_bytes is None else segment_bytes,
        max_index_bytes=log.config.segment_index_bytes,
        index_interval_bytes=log.config.index_interval_bytes,
        aborted_txns=aborted,
        dedupe_buffer_bytes=dedupe_buffer_bytes,
        io_max_bytes_per_second=float("inf"),
    )


def read_records(data: bytes) -> list[tuple[BatchHeader, list[Rec]]]:
    """Every batch of a ``.log`` file's bytes, CRC-checked, with its records decoded."""
    out = []
    for pos, header in iter_batches(data):
        assert crc_is_valid(data, pos, header), f"bad CRC at {pos}"
        records = decode_records(data, pos, header, contiguous_offsets=False)
        out.append(
            (
                header,
                [
                    Rec(
                        r.offset(header),
                        r.key,
                        r.value,
                        header.is_transactional,
                        header.is_control,
                        header.producer_id,
                    )
                    for r in records
                ],
            )
        )
    return out


def log_file(directory: Path, base_offset: int) -> Path:
    return directory / segment_file_name(base_offset, LOG_SUFFIX)


def cleaned_view(job: CleanJob, result: CleanResult) -> list[tuple[BatchHeader, list[Rec]]]:
    """The batches of the closed segments as they will be after the swap: each group's
    staged file in place of its sources, the other segments as they are."""
    directory = Path(job.directory)
    staging = directory / STAGING_DIR_NAME
    replaced = {b for g in result.groups for b in g.source_base_offsets}
    starts = {g.base_offset for g in result.groups}
    out: list[tuple[BatchHeader, list[Rec]]] = []
    for spec in job.segments:
        if spec.base_offset in starts:
            out += read_records(log_file(staging, spec.base_offset).read_bytes())
        elif spec.base_offset not in replaced:
            out += read_records(
                log_file(directory, spec.base_offset).read_bytes()[: spec.size_bytes]
            )
    return out


def original_view(job: CleanJob) -> list[tuple[BatchHeader, list[Rec]]]:
    directory = Path(job.directory)
    out: list[tuple[BatchHeader, list[Rec]]] = []
    for spec in job.segments:
        out += read_records(log_file(directory, spec.base_offset).read_bytes()[: spec.size_bytes])
    return out


def data_records(view: list[tuple[BatchHeader, list[Rec]]]) -> list[Rec]:
    return [r for _, records in view for r in records if not r.control]


def latest_values(records: list[Rec]) -> dict[bytes, bytes | None]:
    """Latest value per key (None: a tombstone) of committed data in offset order."""
    latest: dict[bytes, bytes | None] = {}
    for r in records:
        if r.key is not None:
            latest[r.key] = r.value
    return latest


# --- tests ---------------------------------------------------------------------------------


SMALL = LogConfig(segment_bytes=400, index_interval_bytes=1, cleanup_policy="compact")


def closed_log(open_log: Callable[..., PartitionLog], config: LogConfig = SMALL) -> PartitionLog:
    return open_log(config)


def finish(log: PartitionLog) -> None:
    """Roll so every written batch is in a closed segment."""
    log.roll(NOW_MS)


def test_keeps_only_the_latest_value_per_key(open_log: Callable[..., PartitionLog]) -> None:
    log = closed_log(open_log)
    for i in range(30):
        append(log, [(b"k%d" % (i % 5), b"v%d" % i)])
    finish(log)
    job = make_job(log)
    result = clean(job)
    view = cleaned_view(job, result)
    records = data_records(view)
    assert {r.key: r.value for r in records} == {b"k%d" % k: b"v%d" % (25 + k) for k in range(5)}
    assert [r.offset for r in records] == list(range(25, 30))
    assert result.end_offset == job.first_uncleanable_offset
    assert result.records_read == 30 and result.records_kept == 5
    assert result.bytes_read == sum(s.size_bytes for s in job.segments)
    assert result.bytes_written == sum(g.size_bytes for g in result.groups)


def test_small_segments_are_grouped_and_indexes_built(
    open_log: Callable[..., PartitionLog],
) -> None:
    log = closed_log(open_log)
    for i in range(40):
        append(log, [(b"k%d" % (i % 4), b"v%d" % i)])
    finish(log)
    job = make_job(log, segment_bytes=1000)
    assert len(job.segments) > 4
    result = clean(job)
    bases = [b for g in result.groups for b in g.source_base_offsets]
    assert bases == [s.base_offset for s in job.segments]  # consecutive, all covered
    assert len(result.groups) < len(job.segments)
    staging = Path(job.directory) / STAGING_DIR_NAME
    for group in result.groups:
        assert group.base_offset == group.source_base_offsets[0]
        assert (
            sum(s.size_bytes for s in job.segments if s.base_offset in group.source_base_offsets)
            <= 1000
            or len(group.source_base_offsets) == 1
        )
        for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            assert (staging / segment_file_name(group.base_offset, suffix)).exists()
        # the staged segment opens with its indexes and finds every offset it holds
        segment = LogSegment.open(
            staging, group.base_offset, index_interval_bytes=1, max_index_bytes=1 << 20, now_ms=0
        )
        try:
            assert segment.size == group.size_bytes
            assert segment.next_offset == group.next_offset
            assert segment.offset_index.entries > 0 or segment.size == 0
            for header, _ in read_records(log_file(staging, group.base_offset).read_bytes()):
                found = segment.translate_offset(header.base_offset)
                assert found is not None and found[1].base_offset == header.base_offset
        finally:
            segment.close()


def test_a_batch_whose_records_all_survive_is_copied_byte_for_byte(
    open_log: Callable[..., PartitionLog],
) -> None:
    log = closed_log(open_log, LogConfig(segment_bytes=10_000, cleanup_policy="compact"))
    append(log, [(b"a", b"1"), (b"b", b"2")], compression=CODEC_ZSTD)
    append(log, [(b"c", b"3"), (b"a", b"4")], compression=CODEC_ZSTD)
    finish(log)
    job = make_job(log)
    original = log_file(log.directory, 0).read_bytes()
    first_size = read_records(original)[0][0].size
    result = clean(job)
    staged = log_file(Path(job.directory) / STAGING_DIR_NAME, 0).read_bytes()
    # batch 1 loses "a"; batch 2 is untouched
    assert staged.endswith(original[first_size:])
    (h1, r1), _ = read_records(staged)
    assert [r.key for r in r1] == [b"b"]
    assert h1.compression == CODEC_ZSTD  # the codec is kept when rewritten
    assert h1.last_offset_delta == 1 and h1.base_offset == 0  # lastOffsetDelta preserved
    assert result.groups[0].next_offset == 4


def test_tombstones_get_a_delete_horizon_then_go(open_log: Callable[..., PartitionLog]) -> None:
    log = closed_log(open_log)
    append(log, [(b"a", b"1")])
    append(log, [(b"b", b"2")])
    append(log, [(b"a", None)])  # tombstone
    finish(log)
    job = make_job(log, delete_retention_ms=1000)
    result = clean(job)
    view = cleaned_view(job, result)
    tombstone_batches = [(h, rs) for h, rs in view if any(r.value is None for r in rs)]
    assert len(tombstone_batches) == 1
    header, _ = tombstone_batches[0]
    assert delete_horizon_ms(header) == NOW_MS + 1000
    assert [r.key for r in data_records(view)] == [b"b", b"a"]
    # swap it in (as the manager does, by file) and clean again, before and after the horizon
    swap_in(log, job, result)
    log = reopen(open_log, log)
    for now, expect in ((NOW_MS + 999, [b"b", b"a"]), (NOW_MS + 1000, [b"b"])):
        job2 = make_job(log, now_ms=now, first_dirty_offset=result.end_offset)
        result2 = clean(job2)
        assert [r.key for r in data_records(cleaned_view(job2, result2))] == expect


def swap_in(log: PartitionLog, job: CleanJob, result: CleanResult) -> None:
    """Put the staged files in place of their sources (what the manager's swap does)."""
    directory = Path(job.directory)
    staging = directory / STAGING_DIR_NAME
    log.close()
    for group in result.groups:
        for base in group.source_base_offsets:
            for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX):
                (directory / segment_file_name(base, suffix)).unlink(missing_ok=True)
        for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX):
            source = staging / segment_file_name(group.base_offset, suffix)
            if source.exists():
                os.replace(source, directory / source.name)


def reopen(open_log: Callable[..., PartitionLog], log: PartitionLog) -> PartitionLog:
    return open_log(log.config)


def test_keyless_records_are_dropped(open_log: Callable[..., PartitionLog]) -> None:
    # a compacted log refuses keyless records; one written before the policy changed
    log = closed_log(open_log, LogConfig(segment_bytes=400, cleanup_policy="delete"))
    append(log, [(None, b"x"), (b"k", b"1")])
    append(log, [(b"k", b"2")])
    finish(log)
    job = make_job(log)
    view = cleaned_view(job, clean(job))
    assert [(r.key, r.value) for r in data_records(view)] == [(b"k", b"2")]


def test_first_dirty_offset_limits_the_map_but_clean_head_is_compacted(
    open_log: Callable[..., PartitionLog],
) -> None:
    log = closed_log(open_log)
    for i in range(10):
        append(log, [(b"k", b"v%d" % i)])
    finish(log)
    # pretend offsets < 5 were cleaned already: the dirty k@9 still supersedes them
    job = make_job(log, first_dirty_offset=5)
    view = cleaned_view(job, clean(job))
    assert [r.offset for r in data_records(view)] == [9]


def test_a_full_offset_map_stops_at_a_batch_boundary(
    open_log: Callable[..., PartitionLog],
) -> None:
    log = closed_log(open_log)
    for i in range(20):
        append(log, [(b"key-%02d" % i, b"v")])  # 20 distinct keys
    for i in range(20):
        append(log, [(b"key-%02d" % i, b"w")])
    finish(log)
    job = make_job(log, dedupe_buffer_bytes=1)  # room for a single key
    result = clean(job)
    assert 0 < result.end_offset < job.first_uncleanable_offset
    view = cleaned_view(job, result)
    records = data_records(view)
    # nothing past the map is lost, every key still has a value
    assert {r.key for r in records} == {b"key-%02d" % i for i in range(20)}
    assert all(r.offset >= 0 for r in records)
    # cleaning again from the new checkpoint makes progress
    swap_in(log, job, result)
    log = reopen(open_log, log)
    job2 = make_job(log, first_dirty_offset=result.end_offset, dedupe_buffer_bytes=1)
    assert clean(job2).end_offset > result.end_offset


def test_aborted_data_goes_and_committed_data_stays(
    open_log: Callable[..., PartitionLog],
) -> None:
    log = closed_log(open_log)
    append(log, [(b"a", b"committed")], producer_id=7, producer_epoch=0, base_sequence=0,
           transactional=True)  # fmt: skip
    marker(log, 7, commit=True)
    append(log, [(b"a", b"aborted"), (b"b", b"aborted")], producer_id=7, producer_epoch=0,
           base_sequence=1, transactional=True)  # fmt: skip
    marker(log, 7, commit=False)
    append(log, [(b"c", b"plain")])
    finish(log)
    job = make_job(log)
    assert job.aborted_txns
    result = clean(job)
    view = cleaned_view(job, result)
    assert [(r.key, r.value) for r in data_records(view)] == [
        (b"a", b"committed"),
        (b"c", b"plain"),
    ]
    # the aborted data was seen in this clean: its ABORT marker stays, with its index entry
    controls = [h for h, _ in view if h.is_control]
    assert len(controls) == 2
    staging = Path(job.directory) / STAGING_DIR_NAME
    entries = []
    for group in result.groups:
        index = TransactionIndex(staging / segment_file_name(group.base_offset, TXN_INDEX_SUFFIX),
                                 group.base_offset)  # fmt: skip
        index.load()
        entries += index.entries
    assert [(e.producer_id, e.last_offset) for e in entries] == [(7, controls[1].base_offset)]


def test_markers_go_after_their_horizon_once_their_data_is_gone(
    open_log: Callable[..., PartitionLog],
) -> None:
    log = closed_log(open_log)
    append(log, [(b"a", b"1")], producer_id=7, producer_epoch=0, base_sequence=0,
           transactional=True)  # fmt: skip
    marker(log, 7, commit=True)
    append(log, [(b"x", b"2")], producer_id=8, producer_epoch=0, base_sequence=0,
           transactional=True)  # fmt: skip
    marker(log, 8, commit=False)
    append(log, [(b"a", b"3")])  # supersedes the committed txn's only record
    append(log, [(b"z", b"4")])
    finish(log)
    now = NOW_MS
    # the producers are no longer active (their state expired): nothing is kept for them
    job = replace(make_job(log, now_ms=now, delete_retention_ms=100), active_producers=())
    for _ in range(4):
        result = clean(job)
        swap_in(log, job, result)
        log = reopen(open_log, log)
        now += 1000
        job = make_job(
            log, now_ms=now, delete_retention_ms=100, first_dirty_offset=result.end_offset
        )
        job = replace(job, active_producers=())
    view = original_view(job)
    assert [h for h, _ in view if h.is_control and h.records_count] == []
    assert [(r.key, r.value) for r in data_records(view)] == [(b"a", b"3"), (b"z", b"4")]


def test_producer_last_batch_is_kept_empty(open_log: Callable[..., PartitionLog]) -> None:
    log = closed_log(open_log)
    append(log, [(b"a", b"1")], producer_id=5, producer_epoch=0, base_sequence=0)
    append(log, [(b"a", b"2"), (b"b", b"2")], producer_id=5, producer_epoch=0, base_sequence=1)
    append(log, [(b"a", b"3"), (b"b", b"3")])  # no producer id
    append(log, [(b"c", b"4")])
    finish(log)
    job = make_job(log)
    view = cleaned_view(job, clean(job))
    producer_batches = [h for h, _ in view if h.producer_id == 5]
    assert len(producer_batches) == 1
    header = producer_batches[0]
    assert header.records_count == 0
    assert (header.base_offset, header.last_offset_delta, header.base_sequence) == (1, 1, 1)
    assert header.producer_epoch == 0


def test_offsets_keep_their_gaps_and_the_last_batch_stays(
    open_log: Callable[..., PartitionLog],
) -> None:
    log = closed_log(open_log)
    append(log, [(b"a", b"1"), (b"b", b"1"), (b"a", b"2")])
    append(log, [(b"b", b"3")])
    finish(log)
    job = make_job(log)
    result = clean(job)
    view = cleaned_view(job, result)
    assert [r.offset for r in data_records(view)] == [2, 3]
    assert view[-1][0].next_offset == job.first_uncleanable_offset


def test_corrupt_segment_raises_and_leaves_no_staging(
    open_log: Callable[..., PartitionLog],
) -> None:
    log = closed_log(open_log)
    for i in range(10):
        append(log, [(b"k%d" % i, b"value-%d" % i)])
    finish(log)
    job = make_job(log)
    victim = log_file(log.directory, job.segments[1].base_offset)
    data = bytearray(victim.read_bytes())
    data[-3] ^= 0xFF  # inside the last batch's records: CRC mismatch
    victim.write_bytes(bytes(data))
    with pytest.raises(CleanerError, match=rf"{victim.name}.*position \d+.*CRC"):
        clean(job)
    assert not (log.directory / STAGING_DIR_NAME).exists()


def test_truncated_framing_raises_cleaner_error(open_log: Callable[..., PartitionLog]) -> None:
    log = closed_log(open_log)
    for i in range(6):
        append(log, [(b"k%d" % i, b"v")])
    finish(log)
    job = make_job(log)
    spec = job.segments[0]
    victim = log_file(log.directory, spec.base_offset)
    data = bytearray(victim.read_bytes())
    data[8:12] = (10_000).to_bytes(4, "big")  # batchLength past the end of the file
    victim.write_bytes(bytes(data))
    with pytest.raises(CleanerError, match="position 0"):
        clean(job)
    assert not (log.directory / STAGING_DIR_NAME).exists()


def test_never_reads_past_size_bytes(open_log: Callable[..., PartitionLog]) -> None:
    log = closed_log(open_log)
    for i in range(6):
        append(log, [(b"k", b"v%d" % i)])
    finish(log)
    job = make_job(log)
    # garbage appended after the size the broker reported is never looked at
    with open(log_file(log.directory, job.segments[0].base_offset), "ab") as f:
        f.write(b"\xff" * 100)
    result = clean(job)
    assert [r.value for r in data_records(cleaned_view(job, result))] == [b"v5"]


def test_enospc_hook_removes_staging(
    open_log: Callable[..., PartitionLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = closed_log(open_log)
    for i in range(20):
        append(log, [(b"k%d" % i, b"v")])
    finish(log)
    monkeypatch.setenv("MOLDAU_TEST_CLEANER_HOOK", "enospc=100")
    with pytest.raises(OSError) as info:
        clean(make_job(log))
    assert info.value.errno == errno.ENOSPC
    assert not (log.directory / STAGING_DIR_NAME).exists()


def test_leftover_staging_is_replaced(open_log: Callable[..., PartitionLog]) -> None:
    log = closed_log(open_log)
    append(log, [(b"k", b"v")])
    finish(log)
    staging = log.directory / STAGING_DIR_NAME
    staging.mkdir()
    (staging / "junk").write_bytes(b"x")
    result = clean(make_job(log))
    assert sorted(p.name for p in staging.iterdir()) == sorted(
        segment_file_name(result.groups[0].base_offset, s)
        for s in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX)
    )


def test_job_and_result_pickle(open_log: Callable[..., PartitionLog]) -> None:
    log = closed_log(open_log)
    append(log, [(b"k", b"v")])
    finish(log)
    job = make_job(log)
    result = clean(job)
    assert pickle.loads(pickle.dumps(job)) == job
    assert pickle.loads(pickle.dumps(result)) == result


def test_active_producer_keeps_its_last_data_batch_and_commit_marker(
    open_log: Callable[..., PartitionLog],
) -> None:
    log = closed_log(open_log)
    append(log, [(b"a", b"1")], producer_id=7, producer_epoch=0, base_sequence=0,
           transactional=True)  # fmt: skip
    marker(log, 7, commit=True)
    append(log, [(b"a", b"3")])
    finish(log)
    producers = (ProducerLastRecord(7, 0, 0),)
    job = replace(make_job(log), active_producers=producers)
    view = cleaned_view(job, clean(job))
    kept = [(h.base_offset, h.records_count, h.is_control) for h, _ in view if h.producer_id == 7]
    assert kept == [(0, 0, False), (1, 1, True)]


def test_a_marker_only_producer_keeps_its_marker_batch(
    open_log: Callable[..., PartitionLog],
) -> None:
    log = closed_log(open_log)
    append(log, [(b"x", b"2")], producer_id=8, producer_epoch=0, base_sequence=0,
           transactional=True)  # fmt: skip
    marker(log, 8, commit=False)
    append(log, [(b"z", b"4")])
    finish(log)
    job = replace(make_job(log, delete_retention_ms=0), active_producers=(
        ProducerLastRecord(8, None, 0),))  # fmt: skip
    result = clean(job)
    view = cleaned_view(job, result)
    assert [r.key for r in data_records(view)] == [b"z"]
    assert [(h.base_offset, h.is_control) for h, _ in view if h.producer_id == 8] == [(1, True)]
