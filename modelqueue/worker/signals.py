"""Signals and the pipe that wakes a worker's main thread.

A worker stops gracefully on SIGTERM or SIGINT (:data:`SIGNALS`). Python
runs a signal handler only between bytecodes of the main thread, so a
thread blocked in ``select()`` would not notice one: :class:`WakeupPipe`
is a pipe whose write end is given to ``signal.set_wakeup_fd``, and every
wait of the worker (the waiter's, a pause after a database error) also
watches its read end. The worker's own threads write to it too
(:meth:`WakeupPipe.nudge`) to end the main thread's wait.
"""

from __future__ import annotations

import os
import select
import signal

__all__ = ['SIGNALS', 'WakeupPipe']

#: The signals that stop a worker: the first gracefully, a second at once.
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class WakeupPipe:
    """A non-blocking pipe: signals and nudges make its read end readable.

    >>> pipe = WakeupPipe()
    >>> pipe.nudge()
    >>> pipe.pause(10)  # returns at once: the nudge is waiting
    >>> pipe.close()
    """

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self._previous_fd: int | None = None

    def install(self) -> None:
        """Let signals write to this pipe (in the main thread)."""
        self._previous_fd = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)

    def drain(self) -> None:
        """Read everything written so far."""
        try:
            while os.read(self.read_fd, 512):
                pass
        except BlockingIOError:
            pass

    def pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less if a signal or a nudge arrives."""
        select.select([self.read_fd], [], [], seconds)
        self.drain()

    def nudge(self) -> None:
        """End a wait on the read end (from any thread)."""
        try:
            os.write(self.write_fd, b'\0')
        except OSError:  # full: the reader wakes anyway; or closed
            pass

    def close(self) -> None:
        """Give signals back their previous wake-up fd, and close the pipe."""
        if self._previous_fd is not None:
            signal.set_wakeup_fd(self._previous_fd)
            self._previous_fd = None
        os.close(self.read_fd)
        os.close(self.write_fd)
