"""Running Django tasks with ModelQueue's worker (``modelqueue_worker --tasks``).

:class:`TaskWorker` is the worker loop of :mod:`modelqueue.worker.loop` on the task
table, with :class:`TaskRunner` as its action. Every ``PROMOTE_EVERY``
seconds (and before its first claim) it gives due timestamped rows their
priority back (:func:`modelqueue.tasks.models.promote_due`), so a deferred
or retried task that came due runs in its place by priority.

A task's errors are stored as failure records store theirs
(:func:`modelqueue.failures.traceback_of`: text every database stores,
under the one cap ``MODELQUEUE_TRACEBACK_CHARS``, marked when cleaned). A
task whose outcome the database refuses (a return value with a NUL on
PostgreSQL, NaN anywhere) ran all the same: it ends FAILED with an error
saying why (``modelqueue.exceptions.OutcomeNotStored``), and never runs
again. ``task_finished`` of a FAILED task is sent while its exception is
being handled, so that receivers that log it (Django's own) find it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

from django.db import DatabaseError, router
from django.utils import timezone

from .. import conf
from ..exceptions import Abort, Cancel, Retry, TimeLimitExceeded
from ..failures import exception_name_of, traceback_of
from ..names import worker_name
from ..retries import RetryPolicy
from ..status import State, Status
from ..worker.housekeeping import Housekeeping
from ..worker.loop import Worker
from .backend import ModelQueueBackend
from .compat import (
    InvalidTask,
    TaskContext,
    TaskResult,
    TaskResultStatus,
    normalize_json,
    task_backends,
    task_finished,
    task_started,
)
from .models import QueuedTask, promote_due
from .paths import import_task_modules
from .policies import policy_of, task_policy
from .retention import TaskPruner
from .schedules import Scheduler, declared

logger = logging.getLogger('modelqueue.worker')

PROMOTE_EVERY = 0.1  # seconds
FINAL = (State.finished, State.canceled)


class TaskRunner(threading.local):
    """The action run() calls with a task row: runs the task function and
    records the outcome on the row, which run() then writes, fenced. Its
    last row and result are the calling thread's own (``--threads``)."""

    def __init__(self, backend: ModelQueueBackend) -> None:
        self.backend = backend
        self.row: QueuedTask | None = None  # the last row run, and the TaskResult it was run as
        self.result: TaskResult[..., Any] | None = None
        self.error: BaseException | None = None  # the exception the task failed with, if it did
        # The retry policy of the task that failed last in this thread, whose
        # backoff run() asks for through wait(); None: the backend's.
        self.policy: RetryPolicy | None = None
        #: Write the attempt's worker and times before the task runs.
        self.mark_running = True

    def wait(self, attempts: int) -> dt.timedelta:
        """run()'s delay: the backoff of the policy of the task that failed
        (its own, or the backend's), after `attempts` attempts."""
        return (self.policy or self.backend.policy)(attempts)

    def __call__(self, row: QueuedTask) -> None:
        self.row, self.result, self.error, self.policy = row, None, None, None
        at = timezone.now()
        row.started_at = row.started_at or at
        row.last_attempted_at = at
        row.worker_ids = [*row.worker_ids, worker_name()]
        if self.mark_running:
            self._mark_running(row)
        attempt = Status(row.status).attempts + 1
        try:
            result = self.backend.result_of(row)
        except (ImportError, AttributeError, ValueError, TypeError, InvalidTask) as error:
            # The path no longer names a task, or its queue is gone.
            self._record(row, error, final=True)
            raise Cancel from error
        object.__setattr__(result, 'status', TaskResultStatus.RUNNING)
        self.result = result
        task_started.send(type(self.backend), task_result=result)
        task = result.task
        policy = task_policy(self.backend.policy, policy_of(task.func))
        try:
            if task.takes_context:
                value = task.call(TaskContext(task_result=result), *result.args, **result.kwargs)
            else:
                value = task.call(*result.args, **result.kwargs)
            row.return_value = normalize_json(value)
        except Retry:
            self.policy = policy
            raise
        except Cancel as error:
            self._record(row, error, final=True)
            raise
        except Abort as error:
            self.policy = policy
            self._record(row, error, final=attempt > self.backend.retry)
            raise
        except (Exception, TimeLimitExceeded) as error:  # the time limit's is a BaseException
            if not self._retries(policy, error):  # ON_EXCEPTION 'fail', GIVE_UP_ON, or not RETRY_ON
                self._record(row, error, final=True)
                logger.error('Task %s pk=%s failed', row.task_path, row.pk, exc_info=error)
                raise Cancel from error
            self.policy = policy
            self._record(row, error, final=attempt > self.backend.retry)
            raise
        except BaseException as error:  # the worker is being stopped
            self._record(row, error, final=attempt > self.backend.retry)
            raise
        row.finished_at = timezone.now()

    @staticmethod
    def _mark_running(row: QueuedTask) -> None:
        """Write this attempt's worker and times before the task runs, so
        that a RUNNING task's ``worker_ids`` name its worker and a task the
        timeout gives back counts the lost attempt in ``TaskContext.attempt``
        (the length of ``worker_ids``). Fenced on the claimed status: a row
        an operator changed meanwhile is left alone. A failed write only
        defers them to the completion, which writes them too."""
        try:
            QueuedTask._base_manager.using(row._state.db).filter(pk=row.pk, status=row.status).update(
                worker_ids=row.worker_ids, started_at=row.started_at, last_attempted_at=row.last_attempted_at
            )
        except DatabaseError as error:
            logger.warning('Task %s pk=%s: its worker not written before it runs: %s', row.task_path, row.pk, error)

    def outcome_not_stored(self, row: QueuedTask, error: BaseException) -> None:
        """run() could not store this row's outcome (its return value, most
        likely; `error` is the OutcomeNotStored). The task ran: it is FAILED,
        saying why, and never runs again, whatever ON_EXCEPTION says."""
        row.return_value = None
        self._record(row, error, final=True)
        raise Cancel from error

    def _retries(self, policy: RetryPolicy, error: BaseException) -> bool:
        """Whether a task that raised `error` may be tried again: as its
        `policy` says; a task stopped by the time limit (a BaseException, so
        that the task's own ``except Exception`` cannot swallow it) as any
        exception under ``ON_EXCEPTION`` 'retry', unless GIVE_UP_ON names it."""
        if isinstance(error, TimeLimitExceeded) and not isinstance(error, policy.give_up_on):
            return self.backend.on_exception == 'retry' or policy.retries(error)
        return policy.retries(error)

    def _record(self, row: QueuedTask, error: BaseException, final: bool) -> None:
        """Add `error` to the row's errors, as text every database stores."""
        self.error = error
        row.errors = [
            *row.errors,
            {'exception_class_path': exception_name_of(error), 'traceback': traceback_of(error)},
        ]
        if final:
            row.finished_at = timezone.now()


class TaskWorker(Worker):
    """The ModelQueue worker on the tasks of one backend (of some queues).

    ``TaskWorker(alias, queues=['emails'], burst=True).run()`` runs every
    due task of the queue 'emails' of the backend `alias`, then returns.
    The task table is read and written through `database`, by default the
    router's ``db_for_write`` for it, as the model worker's queue.
    """

    def __init__(
        self,
        alias: str = 'default',
        queues: Iterable[str] = (),
        database: str | None = None,
        schedules: bool = True,
        **options: Any,
    ) -> None:
        # A ModelQueueBackend: task_worker() checks it.
        self.backend = cast(ModelQueueBackend, task_backends[alias])
        # The modules of the tasks, imported before the first claim (and, with
        # --concurrency, before the children are forked): a row's task_path
        # is looked up among them and never imported (modelqueue.tasks.paths).
        import_task_modules()
        # Checked here, not first in the heartbeat thread, where an error would
        # stop the heartbeat.
        conf.get('MODELQUEUE_TASK_RETENTION')
        # The backend's schedules (MODELQUEUE_SCHEDULES), checked at start;
        # the scheduler thread fires them while the worker runs.
        self.schedules = declared(alias) if schedules else []
        # Among tasks of one priority, enqueue order (the claim's tie-break; the
        # table's index on (status, id) serves it).
        queryset = (
            QueuedTask.objects.using(database or router.db_for_write(QueuedTask))
            .filter(backend_name=alias)
            .order_by('pk')
        )
        if queues:
            queryset = queryset.filter(queue_name__in=sorted(set(queues)))
        self.alias = alias
        self.queues = sorted(set(queues))
        self.runner = TaskRunner(self.backend)
        super().__init__(
            queryset,
            'status',
            self.runner,
            retry=self.backend.retry,
            timeout=self.backend.timeout,
            delay=self.runner.wait,
            **options,
        )
        self.on_not_stored = self.runner.outcome_not_stored
        # In a batch the completion writes the attempt's worker and times:
        # one write per task less (a lost attempt then counts no worker).
        self.runner.mark_running = self.batch == 1
        self.next_promotion = 0.0

    def run(self) -> int:
        """Run tasks until stopped, and fire the backend's schedules from a
        thread beside them (:class:`~modelqueue.tasks.schedules.Scheduler`)."""
        scheduler = Scheduler(self.schedules, self.queryset.db).start()
        try:
            return super().run()
        finally:
            scheduler.stop()

    def time_limit_keys(self) -> list[str]:
        """The keys of ``MODELQUEUE_TIME_LIMITS`` of the queues this worker
        runs (``'tasks:NAME'``; with no ``--queue``, the backend's QUEUES):
        the smallest of their limits applies."""
        return [f'tasks:{queue}' for queue in self.queues or sorted(self.backend.queues or ())]

    def describe_action(self) -> str:
        """The backend and its queues, for the worker's first log line."""
        queues = ', '.join(self.queues) if self.queues else 'every queue'
        return f'the tasks of backend {self.alias!r} ({queues})'

    def describe_task(self, task: Any) -> str:
        """A task in the log lines: its path, its queue and its id."""
        return f'task {task.task_path} (queue {task.queue_name}, id {task.pk})'

    def housekeeping(self) -> Housekeeping:
        """The worker's chores, and pruning the finished task rows past
        ``MODELQUEUE_TASK_RETENTION`` (:mod:`modelqueue.tasks.retention`)."""
        using = self.queryset.db
        return Housekeeping(self.queryset.model, self.attname, using, prune_also=[TaskPruner(using).prune])

    def run_one(
        self,
        on_claim: Callable[[], None] | None = None,
        claim_next: Callable[[], bool] | None = None,
    ) -> bool:
        """Give due deferred tasks their priority back (every
        ``PROMOTE_EVERY`` seconds), run one task, then send ``task_finished``."""
        self.name_session()
        if time.monotonic() >= self.next_promotion:
            self.next_promotion = time.monotonic() + PROMOTE_EVERY
            promote_due(self.queryset)
        self.runner.row = self.runner.result = self.runner.error = self.runner.policy = None
        found = super().run_one(on_claim, claim_next)
        if found and self.batch == 1:  # a batch's are sent once its outcomes are written
            self._send_finished()
        return found

    def after_action(self, task: Any) -> Callable[[], object] | None:
        """In a batch: send ``task_finished`` once the outcome is written."""
        row, result, error = self.runner.row, self.runner.result, self.runner.error
        return lambda: self._send_finished(row, result, error)

    def _send_finished(
        self,
        row: QueuedTask | None = None,
        result: TaskResult[..., Any] | None = None,
        error: BaseException | None = None,
    ) -> None:
        """task_finished, once the outcome is written (not when run() was
        fenced off, nor when the task waits for another attempt), for the
        row this thread ran last, or the one given."""
        if row is None:
            row, result, error = self.runner.row, self.runner.result, self.runner.error
        if result is None or row is None or Status(row.status).state not in FINAL:
            return
        self.backend.update_result(result, row)
        if result.status == TaskResultStatus.FAILED and error is not None:
            _while_handling(error, lambda: task_finished.send(type(self.backend), task_result=result))
        else:
            task_finished.send(type(self.backend), task_result=result)


def _while_handling(error: BaseException, call: Callable[[], object]) -> None:
    """Call `call` while `error` is being handled, as in an ``except``
    block: receivers that log with ``logger.exception`` (Django's own for
    task_finished) read it from ``sys.exc_info()``. Its traceback is kept
    as it was raised (from Python 3.11, where sys.exc_info() reads it from
    the exception)."""
    traceback = error.__traceback__
    try:
        raise error
    except BaseException:  # noqa: BLE001 (it is `error`, handled here on purpose)
        error.__traceback__ = traceback
        call()


def task_worker(alias: str = 'default', queues: Iterable[str] = (), **options: Any) -> TaskWorker:
    """A :class:`TaskWorker`, its backend and queues checked: ValueError
    names an alias that is not a ModelQueueBackend or a queue it lacks."""
    try:
        backend = task_backends[alias]
    except Exception as error:  # noqa: BLE001 (InvalidTaskBackend, or its backport's name)
        raise ValueError(f'invalid --backend {alias!r}: {error}') from None
    if not isinstance(backend, ModelQueueBackend):
        raise ValueError(
            f'invalid --backend {alias!r}: expected a TASKS alias whose BACKEND is'
            f' modelqueue.tasks.ModelQueueBackend, found {type(backend).__name__}'
        )
    # difference(): some django-stubs 6.0 releases type QUEUES as a list.
    unknown = sorted(set(queues).difference(backend.queues)) if backend.queues else []
    if unknown:
        raise ValueError(
            f'invalid --queue {", ".join(map(repr, unknown))}: expected one of the'
            f' QUEUES of TASKS[{alias!r}] ({", ".join(sorted(backend.queues))})'
        )
    return TaskWorker(alias, queues, **options)
