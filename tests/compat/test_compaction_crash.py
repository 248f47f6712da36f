"""A broker killed (SIGKILL) while it compacts loses nothing and duplicates nothing.

The data is written with the cleaner off; the broker then restarts with it on (and a test
hook set), so that the first clean covers all of it.

``test_kill_during_clean``: the test hook ``slow=200`` makes every output group of a clean
take a fifth of a second, so the status endpoint shows ``cleaning: true`` long enough to
SIGKILL the broker in the middle. The restarted broker (no hook) has every key's latest
value, offsets strictly increasing (no duplicate), no staging leftovers, and then completes a
clean that leaves exactly one record per key.

``test_crash_in_swap``: the hook ``crash-in-swap`` makes the broker SIGKILL itself after
renaming the cleaned files to ``.swap`` and before deleting the old segments — the one moment
when both the old and the new copy of the data are on disk. The restart must finish the swap:
no ``.swap`` file left, the cleaned segments in place (one record per key in the cleaned
range), every latest value there.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from compaction_helpers import (
    FILLER_KEY,
    STAGING_DIR,
    assert_offsets_increasing,
    cleaner_status,
    compaction_broker,
    create_compacted_topic,
    partition_dir,
    produce_all,
    request_compact,
    restart_with_cleaner,
    roll_past,
    set_hook,
    wait_cleaned,
    wait_for,
)
from txn_helpers import Rec, latest_offsets, read_to_end

from moldau.testing import BrokerProcess

pytestmark = pytest.mark.compat

KEYS = 500
UPDATES = 20
TOPIC_CONFIG = {
    "segment.bytes": str(16 * 1024),
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "60000",
}


def key(k: int) -> bytes:
    return f"key-{k:04d}".encode()


def value(k: int, i: int) -> bytes:
    return f"{k}:{i}:".encode().ljust(100, b"x")


def write_and_roll(broker: BrokerProcess) -> tuple[str, dict[bytes, bytes], int]:
    """A one-partition topic with KEYS x UPDATES records, all in closed segments; returns the
    topic, the latest value per key and the end of the data."""
    topic = create_compacted_topic(broker.bootstrap, 1, TOPIC_CONFIG)
    produce_all(
        broker.bootstrap,
        topic,
        ((0, key(k), value(k, i)) for i in range(UPDATES) for k in range(KEYS)),
    )
    end = latest_offsets(broker.bootstrap, [(topic, 0)], committed=False)[(topic, 0)]
    roll_past(broker, topic, {0: end})
    return topic, {key(k): value(k, UPDATES - 1) for k in range(KEYS)}, end


def check_latest(records: list[Rec], latest: dict[bytes, bytes]) -> None:
    """Every key's latest value is the last one read for it; no duplicate offset."""
    assert_offsets_increasing(records)
    offsets = [r.offset for r in records]
    assert len(offsets) == len(set(offsets))
    last: dict[bytes | None, bytes | None] = {}
    for r in records:
        last[r.key] = r.value
    last.pop(FILLER_KEY, None)
    assert last == latest


def data_records(records: list[Rec], end: int) -> list[Rec]:
    return [r for r in records if r.offset < end and r.key != FILLER_KEY]


def test_kill_during_clean(tmp_path: Path) -> None:
    broker = compaction_broker(tmp_path / "data", cleaner=False).start()
    try:
        topic, latest, end = write_and_roll(broker)
        restart_with_cleaner(broker, "slow=200")
        wait_for(
            lambda: cleaner_status(broker, topic)[0]["cleaning"],
            "the status to say cleaning",
            broker,
        )
        broker.kill()

        set_hook(broker, None)
        broker.start()
        assert not (partition_dir(broker, topic, 0) / STAGING_DIR).exists()
        assert not list(partition_dir(broker, topic, 0).glob("*.swap"))
        records = read_to_end(broker.bootstrap, [(topic, 0)], "read_uncommitted")
        check_latest(records, latest)

        assert request_compact(broker, topic) == 1
        wait_cleaned(broker, topic, {0: end})
        records = read_to_end(broker.bootstrap, [(topic, 0)], "read_uncommitted")
        check_latest(records, latest)
        cleaned = data_records(records, end)
        assert {r.key: r.value for r in cleaned} == latest
        assert len(cleaned) == KEYS, "a key appears twice after the clean"
    finally:
        broker.close()


def test_crash_in_swap(tmp_path: Path) -> None:
    broker = compaction_broker(tmp_path / "data", cleaner=False).start()
    try:
        topic, latest, end = write_and_roll(broker)
        restart_with_cleaner(broker, "crash-in-swap")  # the first clean's swap kills it
        process = broker.process
        assert process is not None
        returncode = process.wait(60)
        assert returncode == -signal.SIGKILL, broker.output()[-3000:]

        set_hook(broker, None)
        broker.start()
        directory = partition_dir(broker, topic, 0)
        assert not list(directory.glob("*.swap")), sorted(p.name for p in directory.iterdir())
        assert not (directory / STAGING_DIR).exists()
        records = read_to_end(broker.bootstrap, [(topic, 0)], "read_uncommitted")
        check_latest(records, latest)
        cleaned = data_records(records, end)
        assert {r.key: r.value for r in cleaned} == latest
        assert len(cleaned) == KEYS, "the swap was not completed: old and new records both there"
    finally:
        broker.close()
