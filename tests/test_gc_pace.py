"""`lib/gc_pace.collecting_every`: the collector's pace raised inside blocks, the caller's back after the
last, however blocks in different threads overlap."""

from __future__ import annotations

import gc
import threading

from lib.gc_pace import collecting_every


def test_the_pace_is_raised_inside_and_restored_after_overlapping_blocks_end_out_of_order():
    before = gc.get_threshold()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    inside: list[int] = []

    def a() -> None:
        with collecting_every(50_000):
            a_in.set()
            b_in.wait(5)
            inside.append(gc.get_threshold()[0])
        a_out.set()  # A ends first, while B's block is still open

    def b() -> None:
        a_in.wait(5)
        with collecting_every(100_000):
            b_in.set()
            a_out.wait(5)
            inside.append(gc.get_threshold()[0])  # still raised: B's block is open

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert inside == [100_000, 100_000]
    assert gc.get_threshold() == before


def test_a_lower_pace_inside_never_lowers_the_callers():
    before = gc.get_threshold()
    gc.set_threshold(200_000, *before[1:])
    try:
        with collecting_every(20_000):
            assert gc.get_threshold()[0] == 200_000
        assert gc.get_threshold()[0] == 200_000
    finally:
        gc.set_threshold(*before)
