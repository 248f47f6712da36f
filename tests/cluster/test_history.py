"""The queue checker finds each kind of violation, and passes a clean history."""

from __future__ import annotations

import pytest
from history import History


def clean() -> History:
    h = History()
    for i in range(3):
        h.sent(b"v%d" % i)
        h.ack(b"v%d" % i, 0, i)
        h.read(1, 0, i, b"v%d" % i)
    h.sent(b"maybe")
    h.fail(b"maybe")
    return h


def test_a_clean_history_passes() -> None:
    report = clean().check()
    assert report.ok and report.acked == 3 and report.read == 3
    report.assert_ok()


def test_a_lost_ack_is_found() -> None:
    h = clean()
    h.ack(b"gone", 0, 3)
    report = h.check()
    assert report.lost == [b"gone"]
    with pytest.raises(AssertionError, match="never read"):
        report.assert_ok()


def test_two_values_at_one_offset_are_found() -> None:
    h = clean()
    h.read(2, 0, 1, b"other")
    assert h.check().conflicts == [((0, 1), {b"v1", b"other"})]


def test_duplicates_are_found() -> None:
    h = clean()
    h.read(2, 0, 7, b"v0")
    report = h.check()
    assert report.duplicates == [(b"v0", {(0, 0), (0, 7)})]


def test_reads_going_backwards_are_found() -> None:
    h = clean()
    h.read(1, 0, 1, b"v1")
    assert h.check().backwards == [(1, 0, 2, 1)]


def test_a_value_read_elsewhere_than_acked_is_found() -> None:
    h = History()
    h.ack(b"x", 0, 5)
    h.read(1, 0, 4, b"x")
    assert h.check().moved == [(b"x", (0, 5), (0, 4))]
