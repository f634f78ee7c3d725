"""The benchmark's action, shared by every implementation's worker.

It sleeps the configured time and records which task it ran and when it
started, so the driver can count executions per task and measure latencies.
"""

import time

DELAY = 0.0
RECORD = []  # (key, time.time() at start, time.perf_counter() at start)
ON_START = None  # optional callback(key, wall_time)
LONG = 0.0  # seconds a task whose data is 'long' takes (bench hostage)


def perform(key):
    wall, counter = time.time(), time.perf_counter()
    RECORD.append((key, wall, counter))
    if ON_START is not None:
        ON_START(key, wall)
    if DELAY:
        time.sleep(DELAY)


def perform_task(task):
    """The action the worker command of this checkout is given."""
    perform(task.pk)
    if LONG and task.data == 'long':
        time.sleep(LONG)
