"""Bounded waits: poll until something holds, or fail naming what was awaited."""

import time


def wait_until(predicate, timeout, what):
    """Poll `predicate` until it returns something true; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout}s waiting for {what}')
        time.sleep(0.05)
