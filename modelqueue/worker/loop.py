"""The worker loop behind ``manage.py modelqueue_worker``.

A :class:`Worker` calls :func:`modelqueue.run` on one queue until it is told
to stop, logging one line per task through the ``modelqueue.worker`` logger,
in the main thread or, with `threads`, in a pool of threads
(:mod:`modelqueue.worker.threads`). :func:`serve` runs one worker in this
process, or several in child processes that a parent supervises
(:mod:`modelqueue.worker.supervisor`).

Signals: the first SIGTERM or SIGINT lets the task in hand finish, claims no
new one, and exits 0; a second one stops at once (rows then held stay
working until another worker rescues them, or run() reclaims them after
the timeout). An operator's commands arrive with the heartbeat
(:mod:`modelqueue.worker.heartbeat`): *quiet* lets the tasks in hand finish
and claims nothing more; *stop* is a quiet, then the exit of a SIGTERM.
After each beat the worker rescues the rows of its queue's lost workers
(:mod:`modelqueue.worker.rescuer`). Database errors are
logged, the connection closed, and the worker backs off and continues; a
database that takes no writes stops it (:class:`DatabaseNotWritable`). A
queue whose table does not exist is named as such: a ``burst`` worker then
exits with status 1, another keeps trying (the migrations may come).

An action's exception, whatever its text, and values the database refuses
(see :class:`modelqueue.OutcomeNotStored`) are the task's failure, logged
and recorded: they never stop the worker.

A worker claims, completes and beats through its queryset's write database
(:func:`modelqueue.databases.write_database`: the one it names with
``.using()``, else the router's ``db_for_write``), and LISTENs through
`listen_database` (``MODELQUEUE_LISTEN_DATABASE``, else that same one).
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from django.db import Error as DatabaseError
from django.db import close_old_connections, connections
from django.db.models import Model, QuerySet

from .. import conf
from ..batches import MAX_BATCH
from ..databases import DatabaseNotWritable, check_writable, for_writes, read_only_cause
from ..exceptions import Abort, Cancel, OutcomeNotStored, Repeat, Retry, TimeLimitExceeded
from ..queue import check_run_arguments, run_chained
from ..retries import Delay
from ..schema import missing_tables, queue_tables
from ..status import ONE_HOUR, ZERO_SECS, Status
from ..validation import check_count, check_seconds, check_timedelta
from ..wakeup import install_trigger
from .backoff import backoff_seconds, close_connections, database_error_pause
from .batch import WAIT, Batch
from .heartbeat import Heartbeat
from .housekeeping import Housekeeping
from .limits import ChildLimits
from .protocol import Budget
from .rescuer import Rescuer
from .sessions import name_sessions, named_sessions
from .signals import SIGNALS, WakeupPipe
from .supervisor import supervise
from .threads import ThreadPool
from .timelimit import TimeLimit
from .waiters import Waiter, waiter_for

logger = logging.getLogger('modelqueue.worker')

__all__ = [
    'MAX_CONCURRENCY',
    'MAX_THREADS',
    'ActionCall',
    'DatabaseNotWritable',
    'TaskBudget',
    'Worker',
    'serve',
]

#: The most worker processes one command starts.
MAX_CONCURRENCY = 256
#: The most threads one worker process runs.
MAX_THREADS = 256

Action = Callable[[Any], object]


class TaskBudget:
    """How many more tasks may start: unlimited, or shared by processes.

    >>> budget = TaskBudget(1)
    >>> budget.take(), budget.take()
    (True, False)
    >>> budget.give_back()
    >>> budget.take()
    True
    >>> budget.left()
    0
    >>> TaskBudget(None).take()
    True
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._left: Any = None
        if limit is not None:
            self._left = multiprocessing.get_context('fork').Value('q', limit)

    def take(self) -> bool:
        if self._left is None:
            return True
        with self._left.get_lock():
            if self._left.value <= 0:
                return False
            self._left.value -= 1
            return True

    def give_back(self) -> None:
        if self._left is not None:
            with self._left.get_lock():
                self._left.value += 1

    def left(self) -> int | None:
        if self._left is None:
            return None
        with self._left.get_lock():
            return int(self._left.value)


class Worker:
    """Process the `field` queue of `queryset` with `action` until stopped.

    `retry`, `timeout` and `delay` go to run(). An idle worker waits at most
    `sleep` seconds before it looks again (less when a scheduled row comes
    due sooner, and on PostgreSQL it wakes on commit when `listen` is true).
    `burst` stops it when nothing is due; `max_tasks` after that many tasks.
    `threads` runs that many threads, each claiming and running its own
    tasks on its own database connection (see :mod:`modelqueue.worker.threads`).
    `listen_database` names the ``DATABASES`` alias of the LISTEN connection
    (default: the ``MODELQUEUE_LISTEN_DATABASE`` setting, else the queue's
    database). `max_tasks_per_child` and `max_memory_per_child` (KiB) make a
    supervised process give way to a new one (:mod:`modelqueue.worker.limits`).
    `time_limit` (seconds; default: ``MODELQUEUE_TIME_LIMITS`` for the
    queue, else none) stops an action that runs past it
    (:mod:`modelqueue.worker.timelimit`); it needs `threads` 1.

    For example, to process every due task, then return::

        Worker(Task.objects.all(), 'status', send, burst=True).run()

    Arguments are checked as run() checks them; `sleep` must be a number of
    seconds above 0.

    It implements the protocols of :mod:`modelqueue.worker.protocol`:
    :meth:`run_one`, :meth:`holds_claim`, :meth:`should_stop`,
    :meth:`database_error`, :attr:`stopping`, :attr:`budget` for the thread
    pool, and :meth:`become_child` and :attr:`exit_status` for the
    supervisor. A subclass may override :meth:`run_one` to do something
    around each task (the Tasks worker does), and set :attr:`on_not_stored`
    (see :func:`modelqueue.queue.run_chained`).
    """

    def __init__(
        self,
        queryset: QuerySet[Any],
        field: str,
        action: Action,
        retry: int = 3,
        timeout: dt.timedelta = ONE_HOUR,
        delay: Delay = ZERO_SECS,
        sleep: float = 1.0,
        burst: bool = False,
        max_tasks: int | None = None,
        listen: bool = True,
        threads: int = 1,
        listen_database: str | None = None,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        time_limit: float | None = None,
        batch: int = 1,
        batch_wait: float = WAIT,
    ) -> None:
        self.attname = check_run_arguments(queryset, field, action, retry, timeout, delay)
        # A zero timeout would let a second worker reclaim the task in hand.
        check_timedelta('timeout', timeout, above_zero=True)
        # Claims are writes: never through a router's read replica.
        self.queryset = for_writes(queryset)
        self.field = field
        self.action = action
        self.retry = retry
        self.timeout = timeout
        self.delay = delay
        self.sleep = check_seconds('sleep', sleep, above_zero=True)
        self.burst = burst
        self.budget: Budget = TaskBudget(check_count('max_tasks', max_tasks, allow_none=True))
        self.listen = listen
        if listen_database is None:
            listen_database = conf.get('MODELQUEUE_LISTEN_DATABASE')
        self.listen_database = conf.check_database_alias('listen_database', listen_database)
        self.threads = check_count('threads', threads, MAX_THREADS)
        self.limits = ChildLimits(
            check_count('max_tasks_per_child', max_tasks_per_child, allow_none=True),
            check_count('max_memory_per_child', max_memory_per_child, allow_none=True),
        )
        self.time_limit = TimeLimit(self._time_limit_seconds(time_limit))
        self.batch = check_count('batch', batch, MAX_BATCH)
        self.batch_wait = check_seconds('batch_wait', batch_wait, above_zero=True)
        self._batch: Batch | None = None  # while running, with batch above 1
        self.recycle = False  # a limit was reached: the supervisor starts another process
        self._limits_lock = threading.Lock()
        self.processed = 0
        self.stopping = False
        #: Set by an operator's quiet (or stop): claim nothing more.
        self.quieted = False
        #: The status the process should exit with: 1 once it gave up (a
        #: burst worker whose queue's table does not exist).
        self.exit_status = 0
        #: Called by run() when the database refused the action's values.
        self.on_not_stored: Callable[[Any, OutcomeNotStored], None] | None = None
        self.parent_pid: int | None = None  # set in a supervisor's child
        self.second_signal_stops = True
        self.wakeup: WakeupPipe | None = None  # while running
        self._signals = 0
        self._failures = 0
        self._heartbeat: Heartbeat | None = None
        self._chain = threading.local()  # .held: the row each thread claimed with its last completion
        self._named = threading.local()  # .done: this thread's claim session is named

    @property
    def label(self) -> str:
        return f'{self.queryset.model._meta.label}.{self.field}'

    def time_limit_keys(self) -> list[str]:
        """The keys of ``MODELQUEUE_TIME_LIMITS`` that apply to this worker's queue."""
        return [self.label]

    def _time_limit_seconds(self, time_limit: float | None) -> float | None:
        """`time_limit`, checked, else the setting's; refused with threads."""
        if time_limit is not None:
            seconds: float | None = check_seconds('time_limit', time_limit, above_zero=True)
            source = f'--time-limit {seconds:g}'
        else:
            seconds = conf.time_limit_of(self.time_limit_keys())
            source = f'MODELQUEUE_TIME_LIMITS ({seconds:g}s for {self.label})' if seconds else ''
        if seconds is not None and self.threads > 1:
            raise ValueError(
                f'invalid threads {self.threads} with {source}: a thread cannot be stopped,'
                ' so a time limit needs one thread per process; use --concurrency for more'
                ' processes instead'
            )
        return seconds

    def run(self) -> int:
        """Process tasks until stopped; return the number processed.

        Must be called in the main thread: it handles SIGTERM and SIGINT.

        :raises DatabaseNotWritable: when the database refuses its writes
        """
        with named_sessions('claim' if self.threads == 1 else 'main', [self.queryset.db]):
            self._named.done = self.threads == 1
            try:
                self._run()
            finally:
                self._named.done = False
        logger.info(
            'Worker %s stopped after %s task%s',
            os.getpid(),
            self.processed,
            '' if self.processed == 1 else 's',
        )
        return self.processed

    def _run(self) -> None:
        wakeup = self.wakeup = WakeupPipe()
        wakeup.install()
        previous_handlers = {sig: signal.signal(sig, self.on_signal) for sig in SIGNALS}
        waiter = waiter_for(
            self.queryset, self.field, listen=self.listen, wakeup_fd=wakeup.read_fd,
            listen_using=self.listen_database,
        )
        self._heartbeat = None
        try:
            waiter.start()  # LISTEN and prove it, so the first line and the heartbeat can say
            logger.info(
                'Worker %s started on %s with %s (%s)',
                os.getpid(),
                self.label,
                self.describe_action(),
                waiter.describe(self.sleep)
                + (f', {self.threads} threads' if self.threads > 1 else '')
                + (f', batches of {self.batch}' if self.batch > 1 else '')
                + (f', time limit {self.time_limit.seconds:g}s' if self.time_limit.seconds else ''),
            )
            self._heartbeat = Heartbeat(
                self.queryset,
                self.attname,
                chores=self.housekeeping(),
                wakeup=lambda: waiter.wakeup,
                on_command=self.on_command,
                rescue=self.rescuer(),
            ).start()
            if self.batch > 1:
                self._batch = Batch(self, self.batch, self.batch_wait).start()
            if self.threads > 1:
                self.processed = ThreadPool(self, waiter, self.threads, wakeup).run()
            else:
                self._loop(waiter, wakeup)
        finally:
            try:
                if self._batch is not None:
                    self._batch.stop()  # outcomes written, unstarted rows given back
            finally:
                self._batch = None
            if self._heartbeat is not None:
                self._heartbeat.stop()  # deletes the heartbeat row: a graceful exit
            waiter.close()
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
            wakeup.close()
            self.wakeup = None

    def describe_action(self) -> str:
        """What the worker runs, for its first log line: the action's dotted path."""
        return _dotted_name(self.action)

    def describe_task(self, task: Any) -> str:
        """A task in the worker's log lines: ``app.Model.field pk=42``."""
        return f'{task._meta.label}.{self.attname} pk={task.pk}'

    def _loop(self, waiter: Waiter, wakeup: WakeupPipe) -> None:
        while self.holds_claim() or not self.should_stop():
            if not self.holds_claim() and self.quieted:
                if self.burst:
                    break
                self._wait(waiter, wakeup)  # claims nothing; reads (and drops) its wake-ups
                continue
            if not self.holds_claim() and not self.budget.take():
                break
            try:
                found = self.run_one(claim_next=lambda: not self.should_stop() and not self.quieted)
            except DatabaseError as error:
                self.budget.give_back()
                self._failures += 1
                pause = self.database_error(error, self._failures)
                if pause is None:
                    break
                wakeup.pause(pause)
                continue
            self._failures = 0
            if found:
                self.processed += 1
                continue
            self.budget.give_back()
            if self.burst:
                break
            self._wait(waiter, wakeup)

    def _wait(self, waiter: Waiter, wakeup: WakeupPipe) -> None:
        """Wait for work (or a signal, or a command) at most `sleep` seconds."""
        try:
            waiter.wait(self.sleep)
        except DatabaseError as error:
            self._failures += 1
            wakeup.pause(database_error_pause(error, self._failures))
        wakeup.drain()

    def rescuer(self) -> Rescuer:
        """What the heartbeat thread calls after each beat: rescue the rows
        of the queue's lost workers, with this worker's `retry` and `delay`."""
        return Rescuer(
            self.queryset.model, self.attname, self.queryset.db, self.retry, self.delay, on_given=self._nudge
        )

    def _nudge(self) -> None:
        """End the main thread's wait, so that it looks for work (or stops) now."""
        if self.wakeup is not None:
            self.wakeup.nudge()

    def on_command(self, command: str) -> None:
        """An operator's command, read by the heartbeat thread: ``quiet``
        claims nothing more; ``stop`` also stops, as a SIGTERM does."""
        if command not in ('quiet', 'stop'):
            return
        if not self.quieted:
            logger.info(
                'Worker %s: told to %s from the admin; finishing the tasks in hand, claiming no more%s',
                os.getpid(),
                command,
                ', then stopping' if command == 'stop' else '',
            )
        self.quieted = True
        if command == 'stop':
            self.stopping = True
        self._nudge()

    def housekeeping(self) -> Housekeeping:
        """The chores the heartbeat thread runs after each beat; a subclass
        may add pruners (the Tasks worker prunes finished task rows)."""
        return Housekeeping(self.queryset.model, self.attname, self.queryset.db)

    def should_stop(self) -> bool:
        """Whether to claim no more rows: a signal came, or, in a
        supervisor's child, the parent is gone."""
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            logger.warning('Worker %s: parent process gone; stopping', os.getpid())
            self.stopping = True
        return self.stopping

    def database_error(self, error: BaseException, failures: int) -> float | None:
        """Log the `failures`-th database error in a row, close the
        connections, and return the pause before trying again; None when the
        worker should stop instead: a burst worker whose queue's table does
        not exist (its exit status is then 1)."""
        missing = missing_tables(self.queryset.db, queue_tables(self.queryset.model))
        if not missing:
            return database_error_pause(error, failures)
        close_connections()
        if self.burst:
            logger.error('Worker %s: %s; exiting (--burst)', os.getpid(), self.missing_table_text(missing))
            self.exit_status = 1
            return None
        pause = backoff_seconds(failures)
        logger.error(
            'Worker %s: %s; trying again in %.1fs', os.getpid(), self.missing_table_text(missing), pause
        )
        return pause

    def missing_table_text(self, missing: list[str]) -> str:
        """What a worker whose queue lacks the tables `missing` says."""
        return (
            f"the table {missing[0]!r} of {self.queryset.model._meta.label} does not exist"
            f" (are its migrations applied? run manage.py migrate)"
        )

    def run_one(
        self,
        on_claim: Callable[[], None] | None = None,
        claim_next: Callable[[], bool] | None = None,
    ) -> bool:
        """Run one task; return whether a row was due.

        An action's own exception is logged here (run() has recorded the
        attempt), as are values the database refused (run() wrote the
        outcome without them); errors of the queue's own queries
        propagate. `on_claim`, if given, is called once a row is claimed,
        before its action.

        The task is the row this thread claimed with its last completion, if
        it holds one (`holds_claim`), else a row claimed now. `claim_next`,
        if given, is asked once the action has returned whether this thread
        may go on: if so, and the budget allows one more task, the outcome is
        written with the next claim in one statement where the database can
        (see :func:`modelqueue.queue.run_chained`), and the row claimed is
        the next call's task. Its budget is given back if no row was due.
        """
        self.name_session()
        if self._batch is not None:
            return self._batch.run_one(on_claim)
        call = self.action_call(on_claim)
        held, self._chain.held = self.holds_claim(), None
        took_next = counted = False

        def may_claim_next() -> bool:
            nonlocal took_next, counted
            counted = True  # before the next claim: a process at its limit claims none
            self.count_for_limits()
            took_next = bool(claim_next and claim_next()) and self.budget.take()
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
                self.on_not_stored,
            )
        except OutcomeNotStored as error:  # raised by run(), though the action raised Abort, say
            if call.task is None:
                raise
            call.not_stored = error
            call.log(self.attname)
            return True
        except (Exception, TimeLimitExceeded) as error:  # the time limit's is a BaseException
            if call.task is None or error is not call.error:
                if call.task is not None:
                    call.log(self.attname, note='but its outcome was not written')
                refused = read_only_cause(error, self.queryset.db) if isinstance(error, DatabaseError) else None
                if refused is not None:
                    raise refused from error
                raise
            call.log(self.attname)
            close_old_connections()
            if not counted:
                self.count_for_limits()
            return True
        finally:
            if took_next and following is None:
                self.budget.give_back()
            self._chain.held = following
            if following is not None and self._heartbeat is not None:
                self._heartbeat.took(following[0])  # held from now: a rescue may give it back
        if call.task is None:
            return False
        call.log(self.attname)
        if not counted:
            self.count_for_limits()
        return True

    @property
    def heartbeat(self) -> Heartbeat | None:
        """The worker's heartbeat, while it runs (None without one)."""
        return self._heartbeat

    def action_call(self, on_claim: Callable[[], None] | None = None) -> ActionCall:
        """The action, wrapped to tell the heartbeat, keep the time limit and log."""
        return ActionCall(self.action, self._heartbeat, on_claim, self.describe_task, self.time_limit)

    def after_action(self, task: Any) -> Callable[[], object] | None:
        """In a batch, what to call once `task`'s outcome is written (the
        Tasks worker sends ``task_finished``); None: nothing."""
        return None

    def count_for_limits(self) -> None:
        """Count a task against the process's limits; at one, stop claiming
        (the tasks in hand finish) and exit to be replaced."""
        if not self.limits.active:
            return
        with self._limits_lock:
            why = self.limits.took_one()
            if why is None or self.recycle:
                return
            self.recycle = True
        logger.info('Worker %s: %s; finishing the tasks in hand, then making way for a new process', os.getpid(), why)
        self.stopping = True

    def name_session(self) -> None:
        """Name this thread's session a claim session, once (a thread of the
        pool; the main thread's is named by :meth:`run`)."""
        if not getattr(self._named, 'done', False):
            name_sessions('claim', [self.queryset.db])
            self._named.done = True

    def holds_claim(self) -> tuple[Model, Status] | None:
        """The row this thread claimed with its last completion, and not yet
        ran (see `run_one`), as (task, claimed status); else None."""
        return getattr(self._chain, 'held', None)

    def become_child(self, parent_pid: int) -> None:
        """Run as a child of the supervisor `parent_pid`: stop after the task
        in hand once the parent is gone, and leave the second signal to the
        parent (a terminal's Ctrl-C signals the whole group)."""
        self.parent_pid = parent_pid
        self.second_signal_stops = False
        # Until run() installs them again, the parent's handlers must not run here.
        for sig in SIGNALS:
            signal.signal(sig, self.on_signal)
        signal.set_wakeup_fd(-1)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM or SIGINT: stop after the tasks in hand; a second one at once."""
        name = signal.Signals(signum).name
        self._signals += 1
        if self._signals > 1 and self.second_signal_stops:
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


def _dotted_name(action: object) -> str:
    module = getattr(action, '__module__', None)
    name = getattr(action, '__qualname__', None)
    return f'{module}.{name}' if module and name else repr(action)


class ActionCall:
    """The worker's action wrapped: remembers the task, its error and time."""

    def __init__(
        self,
        action: Action,
        heartbeat: Heartbeat | None = None,
        on_claim: Callable[[], None] | None = None,
        describe: Callable[[Any], str] | None = None,
        time_limit: TimeLimit | None = None,
    ) -> None:
        self.action = action
        self.time_limit = time_limit or TimeLimit(None)
        self.heartbeat = heartbeat  # told what is in hand; writes it every few seconds
        self.on_claim = on_claim
        self.describe = describe
        self.task: Any = None
        self.error: BaseException | None = None
        #: Set when the database refused the values the action set.
        self.not_stored: OutcomeNotStored | None = None
        self.seconds: float | None = None

    def __call__(self, task: Any) -> None:
        self.task = task
        if self.heartbeat is not None:
            self.heartbeat.took(task)
        if self.on_claim is not None:
            self.on_claim()
        started = time.monotonic()
        try:
            with self.time_limit.applied():
                self.action(task)
        except BaseException as error:
            self.error = error
            raise
        finally:
            self.seconds = time.monotonic() - started
            if self.heartbeat is not None:
                self.heartbeat.done(failed=self.outcome() not in ('finished', 'repeats', 'retry'))

    def outcome(self) -> str:
        """Name what the action did: finished, repeats, retry, aborted,
        canceled or failed (its values refused count as failed, whatever it
        raised)."""
        if self.not_stored is not None:
            return 'failed'
        if self.error is None:
            return 'finished'
        for kind, name in ((Repeat, 'repeats'), (Retry, 'retry'), (Abort, 'aborted'), (Cancel, 'canceled')):
            if isinstance(self.error, kind):
                return name
        return 'failed'

    def log(self, attname: str, note: str | None = None) -> None:
        """Log one line: the task, the outcome, the duration (and the new
        state), with the traceback of a failure. It never raises: whatever
        the exception's text, the worker goes on."""
        try:
            self._log(attname, note)
        except Exception:  # noqa: BLE001 (a log line must not stop the worker)
            try:
                logger.error(
                    '%s pk=%s %s (the log line could not be written)',
                    self.task._meta.label, self.task.pk, self.outcome(),
                )
            except Exception:  # noqa: BLE001 (nor a broken logging set-up)
                pass

    def _log(self, attname: str, note: str | None) -> None:
        outcome = self.outcome()
        if outcome != 'failed' and not logger.isEnabledFor(logging.INFO):
            return  # no line to format
        state = Status(getattr(self.task, attname)).state.name
        message = '%s %s in %.3fs'
        task = self.describe(self.task) if self.describe else f'{self.task._meta.label}.{attname} pk={self.task.pk}'
        args = [task, outcome, self.seconds]
        if note:
            message += ' ' + note
        elif self.not_stored is not None:
            message += ': the values it set could not be stored, now %s'
            args.append(state)
        elif state != outcome:
            message += ', now %s'
            args.append(state)
        if outcome == 'failed':
            logger.error(message, *args, exc_info=self.not_stored or self.error)
        else:
            logger.info(message, *args)


def serve(worker: Worker, concurrency: int = 1) -> int:
    """Run `worker` here, or `concurrency` copies of it in child processes.

    First makes sure the database takes writes (:class:`DatabaseNotWritable`
    otherwise); on PostgreSQL with ``worker.listen``, installs the trigger
    that wakes idle workers on commit (see
    :func:`modelqueue.wakeup.install_trigger`). Children are supervised: one
    that dies is started again, and so is one that reached
    ``max_tasks_per_child`` or ``max_memory_per_child`` (a worker with such a
    limit, or with a time limit, runs under a supervisor even with
    `concurrency` 1, which kills a child stuck past it; see
    :func:`modelqueue.worker.supervisor.supervise`). Returns the exit status:
    0 after a graceful stop.
    """
    check_count('concurrency', concurrency, MAX_CONCURRENCY)
    with named_sessions('main', [worker.queryset.db]):
        if not _table_exists(worker):
            return 1
        _check_writable(worker)
        if worker.listen:
            _install_trigger(worker)
    if concurrency == 1 and not worker.limits.active and worker.time_limit.seconds is None:
        worker.run()
        return worker.exit_status
    return supervise(worker, concurrency)


def _table_exists(worker: Worker) -> bool:
    """Say plainly if the queue's table does not exist; False for a burst
    worker, which then exits with status 1 (another keeps trying)."""
    try:
        missing = missing_tables(worker.queryset.db, queue_tables(worker.queryset.model))
    finally:
        connections[worker.queryset.db].close()  # a forked child must not share it
    if not missing:
        return True
    if worker.burst:
        logger.error('Worker %s: %s; exiting (--burst)', os.getpid(), worker.missing_table_text(missing))
        return False
    logger.error(
        'Worker %s: %s; trying again every few seconds until it does',
        os.getpid(),
        worker.missing_table_text(missing),
    )
    return True


def _check_writable(worker: Worker) -> None:
    """Stop here when the database takes no writes; a database that cannot
    be asked now is the loop's to retry."""
    try:
        check_writable(worker.queryset.db)
    except DatabaseError as error:
        logger.warning('Could not ask database %r whether it takes writes: %s', worker.queryset.db, error)
        connections[worker.queryset.db].close()


def _install_trigger(worker: Worker) -> None:
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
