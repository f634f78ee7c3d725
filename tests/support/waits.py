"""Bounded waits: poll until something holds, or fail naming what was awaited."""

import time


def wait_until(predicate, timeout, what, child=None):
    """Poll `predicate` until it returns something true, and return that.

    Fails after `timeout` seconds, naming `what`. Given a `child` process
    (a Popen with its output piped), fails as soon as the child exits, with
    its log, rather than waiting for what it will never do.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if child is not None and child.poll() is not None:
            _, log = child.communicate()
            raise AssertionError(
                f'the child process exited with {child.returncode} while waiting'
                f' for {what}; its log:\n{log}'
            )
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout}s waiting for {what}')
        time.sleep(0.05)
