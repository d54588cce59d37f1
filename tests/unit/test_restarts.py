"""The crash-loop guard shared by the engine process and `palestra serve`'s worker: a
child is started again until it has died `limit` times within the window, and only deaths
inside the window count; how a process ended reads as its signal's name."""

from __future__ import annotations

import signal
import time

from palestra.core.restarts import Deaths, exit_status


def test_the_limit_counts_deaths_within_the_window_only() -> None:
    deaths = Deaths(limit=3, window_s=0.3)
    assert not deaths.too_many() and not deaths.too_many()
    time.sleep(0.35)  # both fall out of the window
    assert not deaths.too_many() and deaths.count == 1
    assert not deaths.too_many()
    assert deaths.too_many() and deaths.count == 3


def test_the_default_is_three_deaths_in_five_minutes() -> None:
    deaths = Deaths()
    assert (deaths.limit, deaths.window_minutes) == (3, 5)
    assert [deaths.too_many() for _ in range(3)] == [False, False, True]


def test_how_a_process_ended_reads_as_its_signal() -> None:
    assert exit_status(-signal.SIGKILL) == "killed by SIGKILL"
    assert exit_status(-signal.SIGSEGV) == "killed by SIGSEGV"
    assert exit_status(1) == "exit code 1"
    assert exit_status(-999) == "exit code -999"  # no such signal
