"""Many worker threads in one process: ``modelqueue_worker --threads N``.

For actions that mostly wait (on an API, a mail server, a file store), a
thread costs far less memory than a process. Each thread claims its own
tasks with :func:`modelqueue.run` on its own database connection (Django's
connections belong to the thread that opened them), and an action runs in
the thread that claimed its row.

The main thread handles the signals and waits for work on behalf of all of
them, with the process's one waiter (on PostgreSQL, its one LISTEN
connection). Idle threads sleep until it wakes them:

- one idle thread per notification; a notification that finds none idle is
  kept, and the next thread to go idle looks again instead;
- when it polls (every `sleep` seconds, or when a scheduled row comes due),
  one idle thread;
- a thread woken that claims a row wakes one more idle thread, or two if
  another thread woke it (then at least two rows were due), so a burst of
  rows committed together spreads over the pool in doubling steps (32
  threads busy after 6 claims instead of 32), and each branch of the chain
  stops at the first thread that finds nothing: one look that finds nothing
  after a single row, at most two after a burst of two.

A busy thread claims its next row with the completion of its task (one
statement on PostgreSQL: see :func:`modelqueue.queue.run_chained`), and
sleeps only once a claim finds nothing.

:class:`ThreadPool` counts these wake-ups (`wakeups`) and logs them when it
stops. A first SIGTERM or SIGINT lets every thread finish the task it
holds; `max_tasks` counts the tasks of every thread (and process) together.
A worker an operator quieted (:attr:`~modelqueue.worker.protocol.PooledWorker.quieted`)
wakes no idle thread, and a busy thread claims no next row.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from collections.abc import Callable

from django.db import Error as DatabaseError
from django.db import connections

from .backoff import database_error_pause
from .protocol import PooledWorker
from .signals import WakeupPipe
from .waiters import Waiter

logger = logging.getLogger('modelqueue.worker')

#: Why an idle thread was woken: the names ThreadPool.wakeups counts.
NOTIFICATION, POLLING, HANDED_ON = 'notification', 'polling', 'another thread'


class Sleeper:
    """One idle thread's bed: the event that wakes it and why it was set."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.cause: str | None = None


class ThreadPool:
    """Run `threads` threads of `worker`'s loop, woken through `waiter`.

    Called by :meth:`modelqueue.worker.Worker.run` in the main thread, which
    has installed the signal handlers on the `wakeup` pipe and made `waiter`
    watch it. ``run()`` returns the number of tasks processed.
    """

    def __init__(
        self,
        worker: PooledWorker,
        waiter: Waiter,
        threads: int,
        wakeup: WakeupPipe | None = None,
    ) -> None:
        self.worker = worker
        self.waiter = waiter
        self.size = threads
        self.wakeup = wakeup
        self.processed = 0
        #: Wake-ups of idle threads by cause, and how many found no row.
        self.wakeups: collections.Counter[str] = collections.Counter()
        self.idle: list[Sleeper] = []  # sleepers, the most recently idle last
        self._lock = threading.Lock()
        self._pending: str | None = None  # the cause of a wake-up that found no thread idle
        self._stopped = threading.Event()
        self._running = 0
        self._crash: BaseException | None = None

    def run(self) -> int:
        threads = [
            threading.Thread(target=self._serve, name=f'modelqueue-worker-{n}')
            for n in range(1, self.size + 1)
        ]
        self._running = len(threads)
        for thread in threads:
            thread.start()
        try:
            self._dispatch()
        finally:
            self._stop()
            for thread in threads:
                thread.join()
            _close_connections()
        logger.info(
            'Worker %s: idle threads woken %s time%s by a notification, %s by another'
            ' thread, %s by polling; %s found nothing',
            os.getpid(),
            self.wakeups[NOTIFICATION],
            '' if self.wakeups[NOTIFICATION] == 1 else 's',
            self.wakeups[HANDED_ON],
            self.wakeups[POLLING],
            self.wakeups['found nothing'],
        )
        if self._crash is not None:
            raise self._crash
        return self.processed

    # -- the main thread ---------------------------------------------------

    def _dispatch(self) -> None:
        """Wait for work and wake idle threads, until stopped or all threads end."""
        worker = self.worker
        failures = 0
        while self._running and not (self._stopped.is_set() or worker.should_stop()):
            try:
                self.waiter.wait(worker.sleep)
            except DatabaseError as error:
                failures += 1
                self._pause(database_error_pause(error, failures))
                continue
            failures = 0
            if self.wakeup is not None:
                self.wakeup.drain()
            if worker.stopping:
                break
            if worker.quieted:  # claims nothing: its threads stay asleep
                continue
            if self.waiter.notifications:
                self.wake(self.waiter.notifications, NOTIFICATION)
            else:  # the poll is due, or a new LISTEN may have missed some
                self.wake(1, POLLING)

    def _pause(self, seconds: float) -> None:
        if self.wakeup is not None:
            self.wakeup.pause(seconds)
        else:
            self._stopped.wait(seconds)

    def wake(self, count: int, cause: str) -> None:
        """Wake up to `count` idle threads; keep a wake-up none was idle for."""
        with self._lock:
            for _ in range(count):
                if not self.idle:
                    if cause != HANDED_ON:
                        self._pending = cause
                    return
                sleeper = self.idle.pop()
                sleeper.cause = cause
                self.wakeups[cause] += 1
                sleeper.event.set()

    def _stop(self) -> None:
        """No thread starts another task; wake the idle ones to end."""
        with self._lock:
            self._stopped.set()
            self._release_idle()

    def _release_idle(self) -> None:
        """Wake every idle thread without a cause, to look at its stop conditions."""
        for sleeper in self.idle:
            sleeper.event.set()
        self.idle.clear()

    # -- each worker thread ------------------------------------------------

    def _serve(self) -> None:
        worker = self.worker
        woken_by = None  # why this thread was woken, until it has looked
        failures = 0
        try:
            while worker.holds_claim() or not self._stopping():
                if not worker.holds_claim() and worker.quieted:
                    if worker.burst:
                        break
                    woken_by = self._sleep()  # claims nothing until the pool stops
                    continue
                # A row claimed with the last completion has its task budgeted.
                if not worker.holds_claim() and not worker.budget.take():
                    with self._lock:  # the others may be waiting for nothing now
                        self._release_idle()
                    break
                # Woken and a row claimed: there may be more, so pass it on.
                hand_on = self._hand_on(woken_by)
                try:
                    found = worker.run_one(on_claim=hand_on, claim_next=self._goes_on)
                except DatabaseError as error:
                    worker.budget.give_back()
                    failures += 1
                    pause = worker.database_error(error, failures)
                    if pause is None:  # the worker gives up (its exit status says so)
                        self._stop()
                        break
                    self._stopped.wait(pause)
                    continue
                failures = 0
                if found:
                    with self._lock:
                        self.processed += 1
                    woken_by = None
                    continue
                worker.budget.give_back()
                if woken_by is not None:
                    with self._lock:
                        self.wakeups['found nothing'] += 1
                if worker.burst:
                    break
                woken_by = self._sleep()
        except BaseException as error:
            logger.exception(
                'Worker %s: %s stopped by %s; stopping the others after their tasks',
                os.getpid(),
                threading.current_thread().name,
                type(error).__name__,
            )
            with self._lock:
                if self._crash is None:
                    self._crash = error
            self._stop()
        finally:
            _close_connections()
            with self._lock:
                self._running -= 1
            self._nudge_main_thread()

    def _hand_on(self, woken_by: str | None) -> Callable[[], None] | None:
        """What a thread `woken_by` a cause calls once it has claimed a row:
        wake one idle thread, or two if it was itself woken by another (a
        burst of at least two rows), so the pool fills in doubling steps."""
        if woken_by is None:
            return None
        count = 2 if woken_by == HANDED_ON else 1
        return lambda: self.wake(count, HANDED_ON)

    def _stopping(self) -> bool:
        return self._stopped.is_set() or self.worker.stopping

    def _goes_on(self) -> bool:
        """Whether a thread may claim another row (with its completion)."""
        return not self._stopping() and not self.worker.quieted

    def _sleep(self) -> str | None:
        """Sleep until woken; return why (None: to look at the stop conditions)."""
        sleeper = Sleeper()
        with self._lock:
            if self._stopped.is_set():
                return None
            if self._pending is not None:  # it came while every thread was busy
                cause, self._pending = self._pending, None
                self.wakeups[cause] += 1
                return cause
            self.idle.append(sleeper)
        sleeper.event.wait()
        return sleeper.cause

    def _nudge_main_thread(self) -> None:
        """End the main thread's wait, so that it sees a thread has ended."""
        if self.wakeup is not None:
            self.wakeup.nudge()


def _close_connections() -> None:
    """Close this thread's database connections (those not in a transaction)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()
