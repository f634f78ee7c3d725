"""The worker loop behind ``manage.py modelqueue_worker``.

A :class:`Worker` calls :func:`modelqueue.run` on one queue until it is told
to stop, logging one line per task through the ``modelqueue.worker`` logger,
in the main thread or, with `threads`, in a pool of threads
(:mod:`modelqueue.threads`). :func:`serve` runs one worker in this process,
or several in child processes that a parent supervises
(:mod:`modelqueue.supervisor`).

Signals: the first SIGTERM or SIGINT lets the task in hand finish, claims no
new one, and exits 0; a second one stops at once (rows then held stay
working until run() reclaims them after the timeout). Database errors are
logged, the connection closed, and the worker backs off and continues.
"""

import logging
import multiprocessing
import os
import random
import select
import signal
import threading
import time

from django.db import Error as DatabaseError
from django.db import close_old_connections, connections

from .heartbeat import Heartbeat
from .queue import Abort, Cancel, Retry, check_run_arguments, run_chained
from .status import ONE_HOUR, ZERO_SECS, Status
from .validation import check_count, check_seconds, check_timedelta
from .wakeup import install_trigger, waiter_for

logger = logging.getLogger('modelqueue.worker')

BACKOFF = (0.5, 30.0)  # first and longest pause after a database error
#: The most worker processes one command starts.
MAX_CONCURRENCY = 256
#: The most threads one worker process runs.
MAX_THREADS = 256
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Worker:
    """Process the `field` queue of `queryset` with `action` until stopped.

    `retry`, `timeout` and `delay` go to run(). An idle worker waits at most
    `sleep` seconds before it looks again (less when a scheduled row comes
    due sooner, and on PostgreSQL it wakes on commit when `listen` is true).
    `burst` stops it when nothing is due; `max_tasks` after that many tasks.
    `threads` runs that many threads, each claiming and running its own
    tasks on its own database connection (see :mod:`modelqueue.threads`).

    For example, to process every due task, then return::

        Worker(Task.objects.all(), 'status', send, burst=True).run()

    Arguments are checked as run() checks them; `sleep` must be a number of
    seconds above 0.
    """

    def __init__(
        self,
        queryset,
        field,
        action,
        retry=3,
        timeout=ONE_HOUR,
        delay=ZERO_SECS,
        sleep=1.0,
        burst=False,
        max_tasks=None,
        listen=True,
        threads=1,
    ):
        self.attname = check_run_arguments(queryset, field, action, retry, timeout, delay)
        # A zero timeout would let a second worker reclaim the task in hand.
        check_timedelta('timeout', timeout, above_zero=True)
        self.queryset = queryset
        self.field = field
        self.action = action
        self.retry = retry
        self.timeout = timeout
        self.delay = delay
        self.sleep = check_seconds('sleep', sleep, above_zero=True)
        self.burst = burst
        self.budget = TaskBudget(check_count('max_tasks', max_tasks, allow_none=True))
        self.listen = listen
        self.threads = check_count('threads', threads, MAX_THREADS)
        self.processed = 0
        self.stopping = False
        self._signals = 0
        self._second_signal_stops = True
        self._parent_pid = None
        self._failures = 0
        self._wakeup_fd = None
        self._heartbeat = None
        self._wakeup_write_fd = None  # worker threads write to it to wake the main thread
        self._chain = threading.local()  # .held: the row each thread claimed with its last completion

    @property
    def label(self):
        return f'{self.queryset.model._meta.label}.{self.field}'

    def run(self):
        """Process tasks until stopped; return the number processed.

        Must be called in the main thread: it handles SIGTERM and SIGINT.
        """
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        os.set_blocking(write_fd, False)
        previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        previous_handlers = {sig: signal.signal(sig, self._on_signal) for sig in SIGNALS}
        self._wakeup_fd, self._wakeup_write_fd = read_fd, write_fd
        waiter = waiter_for(
            self.queryset, self.field, listen=self.listen, wakeup_fd=read_fd
        )
        logger.info(
            'Worker %s started on %s with %s (%s)',
            os.getpid(),
            self.label,
            _dotted_name(self.action),
            waiter.describe(self.sleep) + (f', {self.threads} threads' if self.threads > 1 else ''),
        )
        self._heartbeat = Heartbeat(self.queryset, self.attname).start()
        try:
            if self.threads > 1:
                from .threads import ThreadPool  # noqa: PLC0415 (it imports this module)

                self.processed = ThreadPool(self, waiter, self.threads).run()
            else:
                self._loop(waiter)
        finally:
            self._heartbeat.stop()  # deletes the heartbeat row: a graceful exit
            waiter.close()
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_fd)
            os.close(read_fd)
            os.close(write_fd)
            self._wakeup_fd = self._wakeup_write_fd = None
        logger.info(
            'Worker %s stopped after %s task%s',
            os.getpid(),
            self.processed,
            '' if self.processed == 1 else 's',
        )
        return self.processed

    def _loop(self, waiter):
        while self.holds_claim() or not self._should_stop():
            if not self.holds_claim() and not self.budget.take():
                break
            try:
                found = self._run_one(claim_next=lambda: not self._should_stop())
            except DatabaseError as error:
                self.budget.give_back()
                self._back_off(error)
                continue
            self._failures = 0
            if found:
                self.processed += 1
                continue
            self.budget.give_back()
            if self.burst:
                break
            try:
                waiter.wait(self.sleep)
            except DatabaseError as error:
                self._back_off(error)
            self._drain_wakeup_fd()

    def _should_stop(self):
        if self._parent_pid is not None and os.getppid() != self._parent_pid:
            logger.warning('Worker %s: parent process gone; stopping', os.getpid())
            self.stopping = True
        return self.stopping

    def _run_one(self, on_claim=None, claim_next=None):
        """Run one task; return whether a row was due.

        An action's own exception is logged here (run() has recorded the
        attempt); errors of the queue's own queries propagate. `on_claim`,
        if given, is called once a row is claimed, before its action.

        The task is the row this thread claimed with its last completion, if
        it holds one (`holds_claim`), else a row claimed now. `claim_next`,
        if given, is asked once the action has returned whether this thread
        may go on: if so, and the budget allows one more task, the outcome is
        written with the next claim in one statement where the database can
        (see :func:`modelqueue.queue.run_chained`), and the row claimed is
        the next call's task. Its budget is given back if no row was due.
        """
        call = ActionCall(self.action, self._heartbeat, on_claim)
        held, self._chain.held = self.holds_claim(), None
        took_next = False

        def may_claim_next():
            nonlocal took_next
            took_next = claim_next() and self.budget.take()
            return took_next

        following = None
        try:
            _, following = run_chained(
                self.queryset,
                self.attname,
                call,
                self.retry,
                self.timeout,
                self.delay,
                held,
                None if claim_next is None else may_claim_next,
            )
        except Exception as error:
            if call.task is None or error is not call.error:
                if call.task is not None:
                    call.log(self.attname, note='but its outcome was not written')
                raise
            call.log(self.attname)
            close_old_connections()
            return True
        finally:
            if took_next and following is None:
                self.budget.give_back()
            self._chain.held = following
        if call.task is None:
            return False
        call.log(self.attname)
        return True

    def holds_claim(self):
        """The row this thread claimed with its last completion, and not yet
        ran (see `_run_one`), as (task, claimed status); else None."""
        return getattr(self._chain, 'held', None)

    def _back_off(self, error):
        """Log a database error, drop the connection, pause, and go on."""
        self._failures += 1
        self._pause(database_error_pause(error, self._failures))

    def _pause(self, seconds):
        """Sleep `seconds`, or less if a signal arrives."""
        select.select([self._wakeup_fd], [], [], seconds)
        self._drain_wakeup_fd()

    def _drain_wakeup_fd(self):
        try:
            while os.read(self._wakeup_fd, 512):
                pass
        except BlockingIOError:
            pass

    def _on_signal(self, signum, frame):
        name = signal.Signals(signum).name
        self._signals += 1
        if self._signals > 1 and self._second_signal_stops:
            logger.warning(
                'Worker %s: second %s, stopping now; rows in hand are given'
                ' back after the timeout (%s)',
                os.getpid(),
                name,
                self.timeout,
            )
            os._exit(128 + signum)
        if not self.stopping:
            logger.info(
                'Worker %s: %s, finishing the task in hand, then stopping',
                os.getpid(),
                name,
            )
        self.stopping = True


def database_error_pause(error, failures):
    """Log a database error and close this thread's connections; return the
    pause before trying again, which doubles with each of `failures`."""
    first, longest = BACKOFF
    pause = min(longest, first * 2 ** (failures - 1))
    pause *= random.uniform(0.75, 1.25)
    logger.warning(
        'Worker %s: database error %s: %s; reconnecting in %.1fs',
        os.getpid(),
        type(error).__name__,
        str(error).strip(),
        pause,
    )
    for connection in connections.all(initialized_only=True):
        try:
            connection.close()
        except DatabaseError:
            pass
    return pause


def _dotted_name(action):
    module = getattr(action, '__module__', None)
    name = getattr(action, '__qualname__', None)
    return f'{module}.{name}' if module and name else repr(action)


class ActionCall:
    """The worker's action wrapped: remembers the task, its error and time."""

    def __init__(self, action, heartbeat=None, on_claim=None):
        self.action = action
        self.heartbeat = heartbeat  # told what is in hand; writes it every few seconds
        self.on_claim = on_claim
        self.task = None
        self.error = None
        self.seconds = None

    def __call__(self, task):
        self.task = task
        if self.heartbeat is not None:
            self.heartbeat.took(task)
        if self.on_claim is not None:
            self.on_claim()
        started = time.monotonic()
        try:
            self.action(task)
        except BaseException as error:
            self.error = error
            raise
        finally:
            self.seconds = time.monotonic() - started
            if self.heartbeat is not None:
                self.heartbeat.done(failed=self.outcome() not in ('finished', 'retry'))

    def outcome(self):
        """Name what the action did: finished, retry, aborted, canceled or failed."""
        if self.error is None:
            return 'finished'
        for kind, name in ((Retry, 'retry'), (Abort, 'aborted'), (Cancel, 'canceled')):
            if isinstance(self.error, kind):
                return name
        return 'failed'

    def log(self, attname, note=None):
        """Log one line: the task, the outcome, the duration (and the new state)."""
        outcome = self.outcome()
        state = Status(getattr(self.task, attname)).state.name
        message = '%s.%s pk=%s %s in %.3fs'
        args = [self.task._meta.label, attname, self.task.pk, outcome, self.seconds]
        if note:
            message += ' ' + note
        elif state != outcome:
            message += ', now %s'
            args.append(state)
        if outcome == 'failed':
            logger.error(message, *args, exc_info=self.error)
        else:
            logger.info(message, *args)


class TaskBudget:
    """How many more tasks may start: unlimited, or shared by processes.

    >>> budget = TaskBudget(1)
    >>> budget.take(), budget.take()
    (True, False)
    >>> budget.give_back()
    >>> budget.take()
    True
    >>> TaskBudget(None).take()
    True
    """

    def __init__(self, limit):
        self.limit = limit
        self._left = None
        if limit is not None:
            self._left = multiprocessing.get_context('fork').Value('q', limit)

    def take(self):
        if self._left is None:
            return True
        with self._left.get_lock():
            if self._left.value <= 0:
                return False
            self._left.value -= 1
            return True

    def give_back(self):
        if self._left is not None:
            with self._left.get_lock():
                self._left.value += 1


def serve(worker, concurrency=1):
    """Run `worker` here, or `concurrency` copies of it in child processes.

    On PostgreSQL with ``worker.listen``, first installs the trigger that
    wakes idle workers on commit (see :func:`modelqueue.wakeup.install_trigger`).
    Children are supervised: one that dies is started again (see
    :func:`modelqueue.supervisor.supervise`). Returns the exit status: 0
    after a graceful stop.
    """
    check_count('concurrency', concurrency, MAX_CONCURRENCY)
    if worker.listen:
        _install_trigger(worker)
    if concurrency == 1:
        worker.run()
        return 0
    from .supervisor import supervise  # noqa: PLC0415 (it imports this module)

    return supervise(worker, concurrency)


def _install_trigger(worker):
    model = worker.queryset.model
    try:
        install_trigger(model, worker.field, using=worker.queryset.db)
    except DatabaseError as error:
        logger.warning(
            'Could not install the wake-up trigger on %s (%s); idle workers'
            ' will still poll every %ss',
            worker.label,
            str(error).strip(),
            worker.sleep,
        )
    finally:
        connections[worker.queryset.db].close()
