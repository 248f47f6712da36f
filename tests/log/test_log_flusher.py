"""GroupCommitFlusher: shared fsync rounds, the lazy flush policy, failures."""

from __future__ import annotations

import asyncio
import threading

import pytest
from log_helpers import NOW_MS, OpenLog, make_batch

from moldau.log.config import LogConfig
from moldau.log.errors import LogStorageError
from moldau.log.flusher import GroupCommitFlusher
from moldau.log.log import PartitionLog


class CountingFlush:
    """A flush hook that counts calls per log and can hold the first round."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()

    def __call__(self, log: PartitionLog) -> object:
        self.entered.set()
        self.hold.wait(10)
        self.calls.append(log.name)
        return log.flush()


def append(log: PartitionLog, count: int = 1) -> int:
    info = log.append_as_leader(make_batch(count), leader_epoch=0, now_ms=NOW_MS)
    return info.last_offset


async def test_concurrent_waiters_share_one_fsync(open_log: OpenLog) -> None:
    log = open_log()
    hook = CountingFlush()
    flusher = GroupCommitFlusher(flush_log=hook)
    first = append(log)
    second = append(log)
    await asyncio.gather(flusher.wait_durable(log, first), flusher.wait_durable(log, second))
    assert hook.calls == ["topic-0"]
    assert flusher.rounds == 1
    assert log.recovery_point == 2
    # already durable: no new round
    await flusher.wait_durable(log, first)
    assert flusher.rounds == 1


async def test_one_round_covers_every_dirty_log(open_log: OpenLog) -> None:
    log = open_log()
    other = PartitionLog.open(log.directory.with_name("other-3"), LogConfig(), recover=False)
    try:
        hook = CountingFlush()
        flusher = GroupCommitFlusher(flush_log=hook)
        append(other)
        flusher.maybe_flush(other)  # dirty, but nobody waits for it: no round yet
        assert flusher.rounds == 0
        await flusher.wait_durable(log, append(log))
        assert sorted(hook.calls) == ["other-3", "topic-0"]
        assert other.recovery_point == 1
    finally:
        other.close()


async def test_waiters_arriving_during_a_flush_wait_for_the_next(open_log: OpenLog) -> None:
    log = open_log()
    hook = CountingFlush()
    hook.hold.clear()
    flusher = GroupCommitFlusher(flush_log=hook)
    early = asyncio.ensure_future(flusher.wait_durable(log, append(log)))
    await asyncio.to_thread(hook.entered.wait, 10)  # round 1 is inside its fsync
    late_offset = append(log)
    late = asyncio.ensure_future(flusher.wait_durable(log, late_offset))
    await asyncio.sleep(0)
    assert not late.done()
    hook.hold.set()
    await asyncio.gather(early, late)
    assert flusher.rounds == 2
    assert len(hook.calls) == 2
    assert log.recovery_point > late_offset


async def test_flush_messages_policy(open_log: OpenLog) -> None:
    log = open_log(LogConfig(flush_messages=3))
    hook = CountingFlush()
    flusher = GroupCommitFlusher(flush_log=hook)
    append(log, 2)
    flusher.maybe_flush(log)
    await flusher.close()
    assert hook.calls == []
    append(log, 1)
    flusher.maybe_flush(log)
    await flusher.close()
    assert hook.calls == ["topic-0"]
    assert log.recovery_point == 3


async def test_flush_ms_policy(open_log: OpenLog) -> None:
    log = open_log(LogConfig(flush_ms=1000))
    hook = CountingFlush()
    flusher = GroupCommitFlusher(flush_log=hook, clock=lambda: NOW_MS)
    append(log)
    flusher.maybe_flush(log)
    await flusher.flush_due([log], NOW_MS + 999)
    assert hook.calls == []
    await flusher.flush_due([log], NOW_MS + 1000)
    assert hook.calls == ["topic-0"]
    assert log.recovery_point == 1


async def test_default_config_is_never_flushed_by_policy(open_log: OpenLog) -> None:
    log = open_log()
    hook = CountingFlush()
    flusher = GroupCommitFlusher(flush_log=hook)
    append(log)
    flusher.maybe_flush(log)
    await flusher.flush_due([log], NOW_MS + 10**12)
    await flusher.close()
    assert hook.calls == []


async def test_failed_fsync_fails_the_waiters(open_log: OpenLog) -> None:
    log = open_log()

    def broken(_: PartitionLog) -> object:
        raise OSError(5, "Input/output error")

    flusher = GroupCommitFlusher(flush_log=broken)
    with pytest.raises(LogStorageError):
        await flusher.wait_durable(log, append(log))


async def test_waiting_for_an_offset_not_yet_appended_is_an_error(open_log: OpenLog) -> None:
    log = open_log()
    with pytest.raises(ValueError):
        await GroupCommitFlusher().wait_durable(log, 0)
