"""Property tests of the log cleaner: for any sequence of keyed writes, tombstones and
committed or aborted transactions spread over several segments, cleaning keeps the
latest-value-per-key view a read_committed consumer has, drops tombstoned keys once past
their delete horizon, keeps offsets strictly increasing and a subset of the input's, and
writes only CRC-valid, parseable batches."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from log_helpers import NOW_MS
from test_cleaner import (
    Rec,
    append,
    cleaned_view,
    data_records,
    make_job,
    marker,
    original_view,
    swap_in,
)

from moldau.log.cleaner import clean
from moldau.log.config import LogConfig
from moldau.log.log import PartitionLog
from moldau.log.txn_index import AbortedTxn
from moldau.protocol.record_batch import BatchHeader

KEYS = [b"k%d" % i for i in range(6)]
RETENTION_MS = 1000


@dataclass(frozen=True)
class Put:
    key: int
    value: bytes | None  # None: a tombstone


@dataclass(frozen=True)
class Txn:
    producer_id: int
    writes: tuple[Put, ...]
    commit: bool
    interleaved: Put | None  # a plain write between the data and the marker


@dataclass(frozen=True)
class Roll:
    pass


puts = st.builds(
    Put,
    st.integers(0, len(KEYS) - 1),
    st.one_of(st.none(), st.binary(min_size=1, max_size=8)),
)
ops = st.lists(
    st.one_of(
        puts,
        puts,
        st.builds(
            Txn,
            st.sampled_from([1, 2]),
            st.lists(puts, min_size=1, max_size=3).map(tuple),
            st.booleans(),
            st.one_of(st.none(), puts),
        ),
        st.just(Roll()),
    ),
    min_size=1,
    max_size=40,
)


def write(log: PartitionLog, operations: list[object]) -> dict[bytes, bytes | None]:
    """Write ``operations``; return the latest committed value per key (None: tombstone)."""
    expected: dict[bytes, bytes | None] = {}
    sequences = {1: 0, 2: 0}
    for op in operations:
        if isinstance(op, Put):
            append(log, [(KEYS[op.key], op.value)])
            expected[KEYS[op.key]] = op.value
        elif isinstance(op, Txn):
            pid = op.producer_id
            records = [(KEYS[w.key], w.value) for w in op.writes]
            append(log, records, producer_id=pid, producer_epoch=0,
                   base_sequence=sequences[pid], transactional=True)  # fmt: skip
            sequences[pid] += len(records)
            if op.commit:
                for key, value in records:
                    expected[key] = value
            if op.interleaved is not None:
                append(log, [(KEYS[op.interleaved.key], op.interleaved.value)])
                expected[KEYS[op.interleaved.key]] = op.interleaved.value
            marker(log, pid, commit=op.commit)
        else:
            log.roll(NOW_MS)
    log.roll(NOW_MS)
    return expected


def check_view(
    view: list[tuple[BatchHeader, list[Rec]]],
    input_offsets: set[int],
    aborted: tuple[AbortedTxn, ...],
    expected: dict[bytes, bytes | None],
    *,
    past: bool,
) -> None:
    """The properties of one cleaned log as a read_committed consumer sees it (``past``:
    the log was cleaned fully since every tombstone and marker passed its horizon, so no
    aborted data may remain)."""
    previous = -1
    for header, records in view:
        assert header.base_offset > previous
        for r in records:
            assert r.offset > previous
            assert r.offset in input_offsets
            previous = r.offset
        previous = max(previous, header.last_offset)
    latest: dict[bytes, bytes | None] = {}
    for r in data_records(view):
        if r.transactional and any(
            t.producer_id == r.producer_id and t.first_offset <= r.offset <= t.last_offset
            for t in aborted
        ):
            assert not past, f"aborted record {r} survived"
            continue
        assert r.key is not None
        latest[r.key] = r.value
    for key, value in expected.items():
        if value is not None:
            assert latest.get(key) == value, key
        elif past:
            assert key not in latest, key
        else:
            assert latest.get(key) is None, key
    assert set(latest) <= set(expected)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    operations=ops,
    segment_bytes=st.sampled_from([250, 600, 5000]),
    dedupe_buffer_bytes=st.sampled_from([1, 500, 1 << 20]),
    producers_known=st.booleans(),
)
def test_cleaning_preserves_the_committed_latest_value_view(
    operations: list[object], segment_bytes: int, dedupe_buffer_bytes: int, producers_known: bool
) -> None:
    """``producers_known``: the job says no producer is active (their state expired), else
    the cleaner works without that knowledge and keeps each producer's last batch."""
    with tempfile.TemporaryDirectory() as tmp:
        config = LogConfig(segment_bytes=300, index_interval_bytes=64, cleanup_policy="compact")
        directory = Path(tmp) / "t-0"
        log = PartitionLog.open(directory, config, recover=False, now_ms=NOW_MS)
        try:
            expected = write(log, operations)
            now = NOW_MS
            job = make_job(log, now_ms=now, delete_retention_ms=RETENTION_MS,
                           dedupe_buffer_bytes=dedupe_buffer_bytes,
                           segment_bytes=segment_bytes)  # fmt: skip
            input_offsets = {r.offset for _, rs in original_view(job) for r in rs}
            aborted = job.aborted_txns
            first_dirty = job.first_dirty_offset
            # a few rounds: the first may stop early (small map) and only stamps horizons;
            # from the third on, time has passed every horizon stamped before
            for round_number in range(4):
                job = replace(job, active_producers=() if producers_known else None)
                result = clean(job)
                assert first_dirty <= result.end_offset <= job.first_uncleanable_offset
                check_view(cleaned_view(job, result), input_offsets, aborted, expected, past=False)
                swap_in(log, job, result)
                log = PartitionLog.open(directory, config, recover=False, now_ms=NOW_MS)
                first_dirty = result.end_offset
                now += RETENTION_MS + 1
                job = make_job(
                    log,
                    now_ms=now,
                    delete_retention_ms=RETENTION_MS,
                    first_dirty_offset=first_dirty,
                    dedupe_buffer_bytes=dedupe_buffer_bytes if round_number == 0 else 1 << 20,
                    segment_bytes=segment_bytes,
                )
            check_view(original_view(job), input_offsets, aborted, expected, past=True)
        finally:
            if not log.closed:
                log.close()
