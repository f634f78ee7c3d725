"""Timing helpers shared by the workload driver and the dashboard benchmark."""

import statistics
import time


def timings_ms(function, repeat, warm=False):
    """Milliseconds of `repeat` calls of `function`, after one uncounted
    call when `warm` (to fill the caches)."""
    if warm:
        function()
    timings = []
    for _ in range(repeat):
        before = time.perf_counter()
        function()
        timings.append(1000 * (time.perf_counter() - before))
    return timings


def median_ms(function, repeat, warm=False):
    return statistics.median(timings_ms(function, repeat, warm))

