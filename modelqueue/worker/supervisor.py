"""The parent of ``modelqueue_worker --concurrency N``: it forks N worker
processes, passes signals on to them, and replaces those that die.

- A child that exits with status 0 stopped by design (``--burst``,
  ``--max-tasks``, a signal) and is not replaced.
- A child that dies otherwise (killed by a signal, out of memory, an error
  that ended it) is logged, with its exit status or the signal, and started
  again after a pause: `RESTART_BACKOFF` seconds at first, doubling with
  each crash of that child within `CRASH_WINDOW`, at most the longest.
- When one child has crashed `CRASH_LIMIT` times within `CRASH_WINDOW`
  seconds, something is wrong that restarting will not fix: the parent
  stops the others (they finish their tasks) and exits with status 1.

The first SIGTERM or SIGINT is passed on as SIGTERM (children finish their
task, nothing is restarted); the second kills the children at once and the
parent exits with 128 + the signal. A child ignores further signals itself,
since a terminal's Ctrl-C or a service manager may signal the whole group
as well as the parent; a child whose parent died stops after its task.
"""

import collections
import logging
import multiprocessing
import os
import select
import signal
import time
from multiprocessing.connection import wait

from django.db import connections

from .worker import SIGNALS

logger = logging.getLogger('modelqueue.worker')

#: The first and the longest pause before a crashed child is started again.
RESTART_BACKOFF = (0.1, 30.0)
#: Crashes of one child within CRASH_WINDOW seconds after which the parent gives up.
CRASH_LIMIT = 5
CRASH_WINDOW = 60.0


def supervise(worker, concurrency):
    """Run `concurrency` child processes of `worker`; return the exit status."""
    return Supervisor(worker, concurrency).run()


class Supervisor:
    def __init__(self, worker, concurrency):
        self.worker = worker
        self.concurrency = concurrency
        self.children = dict.fromkeys(range(1, concurrency + 1))  # slot: Process or None
        self.crashes = {slot: collections.deque() for slot in self.children}
        self.restart_at = {}  # slot: time.monotonic() when to start it again
        self.received = []  # signals, in order
        self.gave_up = False
        self.failed = False  # a child exited with an error while stopping
        self.pid = None
        self._fds = ()

    def run(self):
        connections.close_all()  # a forked child must not share the parent's
        self.pid = os.getpid()
        read_fd, write_fd = self._fds = os.pipe()
        for fd in self._fds:
            os.set_blocking(fd, False)
        previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in SIGNALS}
        try:
            for slot in self.children:
                self._start(slot)
            while self.restart_at or any(self.children.values()):
                self._wait(read_fd)
                self._reap()
                self._restart_due()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_fd)
            for fd in self._fds:
                os.close(fd)
        if len(self.received) > 1:
            return 128 + self.received[-1]
        return 1 if self.gave_up or self.failed else 0

    def _start(self, slot):
        context = multiprocessing.get_context('fork')
        child = context.Process(
            target=_child,
            args=(self.worker, self.pid, self._fds),
            name=f'modelqueue-worker-{slot}',
        )
        child.start()
        self.children[slot] = child
        if self.received:  # a signal came while it was being started
            _send(child, signal.SIGTERM)

    def _wait(self, read_fd):
        """Wait until a child exits, a signal comes, or a restart is due."""
        timeout = None
        if self.restart_at:
            timeout = max(0.0, min(self.restart_at.values()) - time.monotonic())
        sentinels = [child.sentinel for child in self.children.values() if child]
        wait([*sentinels, read_fd], timeout)
        while select.select([read_fd], [], [], 0)[0]:
            if not os.read(read_fd, 512):
                break

    def _reap(self):
        for slot, child in self.children.items():
            if child is None or child.exitcode is None:
                continue
            self.children[slot] = None
            if child.exitcode == 0:
                continue
            why = _exit_reason(child.exitcode)
            if self.received or self.gave_up:
                if len(self.received) < 2:  # not killed by the second signal
                    logger.error('Parent %s: worker %s %s while stopping', self.pid, child.pid, why)
                    self.failed = True
                continue
            self._crashed(slot, child, why)

    def _crashed(self, slot, child, why):
        now = time.monotonic()
        crashes = self.crashes[slot]
        crashes.append(now)
        while crashes[0] < now - CRASH_WINDOW:
            crashes.popleft()
        if len(crashes) >= CRASH_LIMIT:
            logger.error(
                'Parent %s: worker %s %s, its %s crash within %gs; giving up: stopping'
                ' the other workers after their tasks',
                self.pid,
                child.pid,
                why,
                _ordinal(len(crashes)),
                CRASH_WINDOW,
            )
            self.gave_up = True
            self.restart_at.clear()
            for other in self.children.values():
                if other is not None:
                    _send(other, signal.SIGTERM)
            return
        first, longest = RESTART_BACKOFF
        pause = min(longest, first * 2 ** (len(crashes) - 1))
        logger.warning(
            'Parent %s: worker %s %s; starting another in %.1fs (crash %s of %s within %gs)',
            self.pid,
            child.pid,
            why,
            pause,
            len(crashes),
            CRASH_LIMIT,
            CRASH_WINDOW,
        )
        self.restart_at[slot] = now + pause

    def _restart_due(self):
        if self.received or self.gave_up:
            self.restart_at.clear()
            return
        now = time.monotonic()
        for slot, when in list(self.restart_at.items()):
            if when <= now:
                del self.restart_at[slot]
                self._start(slot)

    def _on_signal(self, signum, frame):
        self.received.append(signum)
        if len(self.received) == 1:
            logger.info(
                'Parent %s: %s, letting %s workers finish their tasks',
                self.pid,
                signal.Signals(signum).name,
                self.concurrency,
            )
            sent = signal.SIGTERM
        else:
            logger.warning('Parent %s: second signal, killing workers now', self.pid)
            sent = signal.SIGKILL
        for child in list(self.children.values()):
            if child is not None:
                _send(child, sent)


def _send(child, signum):
    if child.exitcode is None:
        try:
            os.kill(child.pid, signum)
        except ProcessLookupError:
            pass


def _exit_reason(exitcode):
    if exitcode < 0:
        return f'was killed by {signal.Signals(-exitcode).name}'
    return f'exited with status {exitcode}'


def _ordinal(number):
    return {1: '1st', 2: '2nd', 3: '3rd'}.get(number, f'{number}th')


def _child(worker, parent_pid, parent_fds):
    worker._parent_pid = parent_pid
    worker._second_signal_stops = False
    # Until the worker installs its own, the parent's handler must not run here.
    for sig in SIGNALS:
        signal.signal(sig, worker._on_signal)
    signal.set_wakeup_fd(-1)
    for fd in parent_fds:
        os.close(fd)
    worker.run()
