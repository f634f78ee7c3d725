"""The parent of ``modelqueue_worker --concurrency N``: it forks N worker
processes, passes signals on to them, and replaces those that die.

- A child that exits with status 0 stopped by design (``--burst``,
  ``--max-tasks``, a signal) and is not replaced.
- A child that exits with :data:`~modelqueue.worker.limits.RECYCLE_STATUS`
  reached ``--max-tasks-per-child`` or ``--max-memory-per-child``
  (:mod:`modelqueue.worker.limits`): another is started in its place at
  once, and it is not a crash.
- A child that dies otherwise (killed by a signal, out of memory, an error
  that ended it) is logged, with its exit status or the signal, and started
  again after a pause: `RESTART_BACKOFF` seconds at first, doubling with
  each crash of that child within `CRASH_WINDOW`, at most the longest.
- A child whose action has run past the worker's time limit plus
  :data:`~modelqueue.worker.timelimit.KILL_GRACE` (code the child's own
  ``SIGALRM`` could not interrupt; see :mod:`modelqueue.worker.timelimit`)
  is killed with ``SIGKILL`` and another is started at once: not a crash.
- When one child has crashed `CRASH_LIMIT` times within `CRASH_WINDOW`
  seconds, something is wrong that restarting will not fix: the parent
  stops the others (they finish their tasks) and exits with status 1.

The first SIGTERM or SIGINT is passed on as SIGTERM (children finish their
task, nothing is restarted); the second kills the children at once and the
parent exits with 128 + the signal. A child ignores further signals itself,
since a terminal's Ctrl-C or a service manager may signal the whole group
as well as the parent; a child whose parent died stops after its task.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from django.db import connections

from .limits import RECYCLE_STATUS
from .protocol import SupervisedWorker
from .signals import SIGNALS, WakeupPipe
from .timelimit import KILL_GRACE

logger = logging.getLogger('modelqueue.worker')

#: The first and the longest pause before a crashed child is started again.
RESTART_BACKOFF = (0.1, 30.0)
#: The longest wait between two looks at the children's time limits.
TIME_LIMIT_POLL = 0.5
#: Crashes of one child within CRASH_WINDOW seconds after which the parent gives up.
CRASH_LIMIT = 5
CRASH_WINDOW = 60.0


def supervise(worker: SupervisedWorker, concurrency: int) -> int:
    """Run `concurrency` child processes of `worker`; return the exit status."""
    return Supervisor(worker, concurrency).run()


class Supervisor:
    """The parent of `concurrency` worker processes (see the module's text)."""

    def __init__(self, worker: SupervisedWorker, concurrency: int) -> None:
        self.worker = worker
        self.concurrency = concurrency
        # slot: its process, or None
        self.children: dict[int, BaseProcess | None] = dict.fromkeys(range(1, concurrency + 1))
        self.crashes: dict[int, collections.deque[float]] = {
            slot: collections.deque() for slot in self.children
        }
        self.restart_at: dict[int, float] = {}  # slot: time.monotonic() when to start it again
        self.clocks: dict[int, Any] = {}  # slot: its child's TimeLimit clock (shared memory)
        self.killed: set[int] = set()  # slots whose child was killed past the time limit
        self.received: list[int] = []  # signals, in order
        self.gave_up = False
        self.failed = False  # a child exited with an error while stopping
        self.pid: int | None = None
        self._fds: tuple[int, ...] = ()

    def run(self) -> int:
        connections.close_all()  # a forked child must not share the parent's
        self.pid = os.getpid()
        wakeup = WakeupPipe()
        self._fds = (wakeup.read_fd, wakeup.write_fd)
        wakeup.install()
        previous = {sig: signal.signal(sig, self._on_signal) for sig in SIGNALS}
        try:
            for slot in self.children:
                self._start(slot)
            while self.restart_at or any(self.children.values()):
                self._wait(wakeup)
                self._kill_past_time_limit()
                self._reap()
                self._restart_due()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            wakeup.close()
        if len(self.received) > 1:
            return 128 + self.received[-1]
        return 1 if self.gave_up or self.failed else 0

    def _start(self, slot: int) -> None:
        if self.worker.time_limit.seconds is not None:
            self.clocks[slot] = self.worker.time_limit.share()  # the child inherits it
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

    def _wait(self, wakeup: WakeupPipe) -> None:
        """Wait until a child exits, a signal comes, or a restart is due."""
        timeout = None
        if self.restart_at:
            timeout = max(0.0, min(self.restart_at.values()) - time.monotonic())
        if self.clocks:  # an action may start at any time: look again soon
            timeout = TIME_LIMIT_POLL if timeout is None else min(timeout, TIME_LIMIT_POLL)
        sentinels = [child.sentinel for child in self.children.values() if child]
        wait([*sentinels, wakeup.read_fd], timeout)
        wakeup.drain()

    def _kill_past_time_limit(self) -> None:
        """Kill each child whose action has run past the time limit and its grace."""
        seconds = self.worker.time_limit.seconds
        if seconds is None:
            return
        now = time.monotonic()
        for slot, child in self.children.items():
            started = float(self.clocks[slot].value) if slot in self.clocks else 0.0
            if child is None or child.exitcode is not None or not started or slot in self.killed:
                continue
            if now - started > seconds + KILL_GRACE:
                logger.error(
                    'Parent %s: worker %s has run its action for %.1fs, past the time limit of'
                    ' %gs and %gs of grace, in code that could not be interrupted; killing it and'
                    ' starting another (its row is given back after the timeout)',
                    self.pid,
                    child.pid,
                    now - started,
                    seconds,
                    KILL_GRACE,
                )
                self.killed.add(slot)
                _send(child, signal.SIGKILL)

    def _reap(self) -> None:
        for slot, child in self.children.items():
            if child is None or child.exitcode is None:
                continue
            self.children[slot] = None
            if slot in self.killed:
                self.killed.discard(slot)
                if not (self.received or self.gave_up):
                    self._start(slot)
                continue
            if child.exitcode == 0:
                continue
            if child.exitcode == RECYCLE_STATUS:
                if not (self.received or self.gave_up):
                    logger.info('Parent %s: worker %s reached its limit; starting another', self.pid, child.pid)
                    self._start(slot)
                continue
            why = _exit_reason(child.exitcode)
            if self.received or self.gave_up:
                if len(self.received) < 2:  # not killed by the second signal
                    logger.error('Parent %s: worker %s %s while stopping', self.pid, child.pid, why)
                    self.failed = True
                continue
            self._crashed(slot, child, why)

    def _crashed(self, slot: int, child: BaseProcess, why: str) -> None:
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

    def _restart_due(self) -> None:
        if self.received or self.gave_up:
            self.restart_at.clear()
            return
        now = time.monotonic()
        for slot, when in list(self.restart_at.items()):
            if when <= now:
                del self.restart_at[slot]
                self._start(slot)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if len(self.received) == 1:
            logger.info(
                'Parent %s: %s, letting %s workers finish their tasks',
                self.pid,
                signal.Signals(signum).name,
                self.concurrency,
            )
            sent: signal.Signals = signal.SIGTERM
        else:
            logger.warning('Parent %s: second signal, killing workers now', self.pid)
            sent = signal.SIGKILL
        for child in list(self.children.values()):
            if child is not None:
                _send(child, sent)


def _send(child: BaseProcess, signum: int) -> None:
    if child.exitcode is None:
        try:
            os.kill(child.pid, signum)  # type: ignore[arg-type]  # started: its pid is set
        except ProcessLookupError:
            pass


def _exit_reason(exitcode: int) -> str:
    if exitcode < 0:
        return f'was killed by {signal.Signals(-exitcode).name}'
    return f'exited with status {exitcode}'


def _ordinal(number: int) -> str:
    return {1: '1st', 2: '2nd', 3: '3rd'}.get(number, f'{number}th')


def _child(worker: SupervisedWorker, parent_pid: int, parent_fds: tuple[int, ...]) -> None:
    worker.become_child(parent_pid)
    for fd in parent_fds:
        os.close(fd)
    worker.run()
    if worker.exit_status:
        sys.exit(worker.exit_status)
    if worker.recycle:
        sys.exit(RECYCLE_STATUS)
