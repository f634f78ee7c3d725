"""The hard time limit of an action: ``--time-limit`` and ``MODELQUEUE_TIME_LIMITS``.

A worker's ``--timeout`` gives a row back to the queue when its worker
hangs, but does not stop the hung action. A time limit does, in two ways:

- In the process that runs the action (its main thread), a ``SIGALRM``
  timer (``signal.setitimer``) raises
  :class:`~modelqueue.exceptions.TimeLimitExceeded` inside the action once
  it has run `seconds`: in a ``time.sleep``, a socket read, any Python
  code. run() counts the attempt as failed, as a timeout reclaim does (the
  row waits again after the delay, or is canceled past ``--retry``), and
  the failure record names ``modelqueue.time_limit``.
- Code that never returns to Python (a C extension holding the
  interpreter, a ``pthread`` wait that retries on ``EINTR``) cannot be
  interrupted that way. Under a supervising parent (``--concurrency``, or
  ``--max-tasks-per-child``), each child writes when its action started to
  shared memory (:attr:`TimeLimit.clock`); the parent kills a child whose
  action has run `seconds` plus :data:`KILL_GRACE` with ``SIGKILL`` and
  starts another at once. The killed child's row stays working until the
  timeout gives it back.

A thread cannot be stopped from outside in Python: a worker with
``--threads`` above 1 refuses a time limit (ValueError naming both).

>>> limit = TimeLimit(0.05)
>>> import time
>>> try:
...     with limit.applied():
...         time.sleep(5)
... except TimeLimitExceeded as error:
...     print(error)
stopped by the time limit of 0.05s
>>> with limit.applied():
...     pass
>>> limit.started_at()
0.0
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from ..exceptions import TimeLimitExceeded

__all__ = ['KILL_GRACE', 'TimeLimit', 'TimeLimitExceeded']

#: Seconds past the time limit after which a supervising parent kills a
#: child whose action did not stop (code that never returned to Python).
KILL_GRACE = 2.0


class TimeLimit:
    """How long an action may run: `seconds`, or no limit (None)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        #: In a supervisor's child: shared memory holding when its action
        #: started (``time.monotonic()``, the same clock in every process
        #: of the machine), 0.0 when none runs.
        self.clock: Any = None

    def share(self) -> Any:
        """Make the clock a supervising parent reads; return it (call before fork)."""
        self.clock = multiprocessing.get_context('fork').Value('d', 0.0, lock=False)
        return self.clock

    def started_at(self) -> float:
        """When the action in hand started (``time.monotonic()``), 0.0 when none runs."""
        return 0.0 if self.clock is None else float(self.clock.value)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Run the body under the limit: TimeLimitExceeded is raised in it
        after `seconds`. Only in the main thread (signals are delivered
        there); a timer set before (pytest-timeout's, say) is set again
        afterwards, less the time the body took."""
        if self.seconds is None:
            yield
            return
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError('a time limit applies in the main thread only: a thread cannot be stopped')
        seconds = self.seconds

        def expired(signum: int, frame: FrameType | None) -> None:
            raise TimeLimitExceeded(seconds)

        started = time.monotonic()
        previous_handler = signal.signal(signal.SIGALRM, expired)
        previous_delay, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
        if self.clock is not None:
            self.clock.value = started
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if self.clock is not None:
                self.clock.value = 0.0
            signal.signal(signal.SIGALRM, previous_handler)
            if previous_delay:
                left = previous_delay - (time.monotonic() - started)
                signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))
