"""Timing small operations the way every lesson reports them.

One warm-up call first (it pays for connections, caches and imports, which a lesson
measures separately when they matter), then the median of repeated calls: the median is
what a student sees on a second run, and one slow outlier on a shared 2-core laptop
does not move it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def warm_ms(fn: Callable[[], Any], repeats: int = 5) -> float:
    """Median wall time of ``fn()`` in milliseconds (one decimal), after one warm-up call."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}: pass repeats=5")
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)
