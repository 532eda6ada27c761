"""bench/common.py's /proc readers (Linux): CPU time and RSS of a process. Unit tests, no sockets."""

from __future__ import annotations

import os
import time

from bench.common import cpu_seconds, rss_kib


def test_cpu_seconds_counts_this_process_work() -> None:
    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    spent = cpu_seconds(os.getpid()) - before
    assert 0.1 <= spent <= 5


def test_rss_is_at_most_its_peak() -> None:
    rss, peak = rss_kib(os.getpid())
    assert 0 < rss <= peak
