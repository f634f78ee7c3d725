"""``ModelQueueBackend``: Django's Tasks framework on a ModelQueue queue.

``enqueue()`` inserts one row of :class:`modelqueue.tasks.models.QueuedTask` (in
the caller's transaction, so a rollback leaves nothing to run); ``manage.py
modelqueue_worker --tasks`` claims and runs the rows with :func:`modelqueue.run`,
so the claim, fenced completion, the timeout reclaim and ``modelqueue.Retry``,
``Abort`` and ``Cancel`` keep their meaning. Configure it with::

    TASKS = {
        'default': {
            'BACKEND': 'modelqueue.tasks.ModelQueueBackend',
            'QUEUES': ['default', 'emails'],
            'OPTIONS': {'RETRY': 3, 'ON_EXCEPTION': 'fail', 'TIMEOUT': 3600, 'DELAY': 0},
        }
    }

OPTIONS (all optional):

- ``ON_EXCEPTION``: what an exception other than Retry, Abort and Cancel
  does. ``'fail'`` (the default, as Django's own backends do): the task is
  FAILED at once. ``'retry'``: it counts as an attempt, like ``Abort``.
- ``RETRY`` (0 to 8, default 3): the attempts an ``Abort`` (and with
  ``'retry'``, any exception) or a run cut off by ``TIMEOUT`` may use before
  the task is FAILED.
- ``TIMEOUT`` (seconds, default 3600): a task left RUNNING longer (its worker
  died) is given back to the queue, that attempt counted.
- ``DELAY`` (seconds, default 0): the wait before a retried task is due again.
- ``BACKOFF`` (in place of ``DELAY``): a wait that grows with the attempts,
  a :class:`modelqueue.Backoff` or its text (``'exponential'``,
  ``'1,2,300'``: base, factor, cap, jitter).
- ``RETRY_ON``, ``GIVE_UP_ON`` (exception classes or their dotted paths):
  an exception of ``RETRY_ON`` (by default none under ``ON_EXCEPTION``
  'fail', ``Exception`` under 'retry') and of none of ``GIVE_UP_ON``
  retries; any other fails the task at once.

A task may declare its own policy with :func:`modelqueue.tasks.retry_policy`
(see :mod:`modelqueue.tasks.policies`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from django.apps import apps
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connections, router, transaction

from ..queue import MAX_RETRY
from ..retries import RetryPolicy
from ..status import Status, now, priority_to_datetime
from .compat import (
    BaseTaskBackend,
    Task,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_enqueued,
)
from .models import QueuedTask, ready_status
from .paths import find_task
from .policies import backend_policy
from .unique import DuplicateTask, active, check_if_exists, check_key
from .values import check_json, check_run_after

if TYPE_CHECKING:
    from django.core.checks import CheckMessage

_P = ParamSpec('_P')
_R = TypeVar('_R')

ON_EXCEPTION = ('fail', 'retry')
ID = re.compile(r'[0-9]{1,19}')
MAX_ID = 2**63 - 1
#: enqueue_unique()'s tries when the key is freed between its INSERT and its read.
UNIQUE_ATTEMPTS = 5


class ModelQueueBackend(BaseTaskBackend):
    """Store tasks in ModelQueue's task table; ``modelqueue_worker --tasks`` runs them."""

    supports_defer = True
    supports_priority = True
    supports_get_result = True
    supports_async_task = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = dict(self.options)
        self.on_exception = options.pop('ON_EXCEPTION', 'fail')
        if self.on_exception not in ON_EXCEPTION:
            raise ImproperlyConfigured(
                f"invalid TASKS[{alias!r}]['OPTIONS']['ON_EXCEPTION'] {self.on_exception!r}:"
                " expected 'fail' or 'retry'"
            )
        self.retry: int = _option(alias, options, 'RETRY', 3, maximum=MAX_RETRY)
        self.timeout = dt.timedelta(seconds=_option(alias, options, 'TIMEOUT', 3600, above_zero=True))
        self.delay = dt.timedelta(seconds=_option(alias, options, 'DELAY', 0))
        try:
            self.policy: RetryPolicy = backend_policy(
                options, self.on_exception, self.delay, lambda name: f'TASKS[{alias!r}][{"OPTIONS"!r}][{name!r}]'
            )
        except ValueError as error:
            raise ImproperlyConfigured(str(error)) from None
        if options:
            raise ImproperlyConfigured(
                f'unknown TASKS[{alias!r}] OPTIONS {", ".join(sorted(options))}: expected'
                ' ON_EXCEPTION, RETRY, TIMEOUT, DELAY, BACKOFF, RETRY_ON or GIVE_UP_ON'
            )

    def enqueue(self, task: Task[_P, _R], args: list[Any], kwargs: dict[str, Any]) -> TaskResult[_P, _R]:
        """Store the task; return its READY result (whose id is the row's id)."""
        return self._enqueue(task, args, kwargs)

    def enqueue_unique(
        self,
        task: Task[_P, _R],
        key: str,
        args: list[Any] | tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        if_exists: str = 'return',
    ) -> TaskResult[_P, _R]:
        """Store the task under `key`, unless a task of this backend with
        that key is READY or RUNNING: then return its result
        (`if_exists` 'return') or raise :class:`DuplicateTask` ('raise').
        See :mod:`modelqueue.tasks.unique`."""
        check_key(key)
        check_if_exists(if_exists)
        using = router.db_for_write(QueuedTask)
        for _ in range(UNIQUE_ATTEMPTS):
            existing = self._active_with(key, using)
            if existing is None:
                try:
                    # A savepoint within the caller's transaction, which the
                    # refused INSERT would otherwise break on PostgreSQL.
                    with transaction.atomic(using=using):
                        return self._enqueue(task, list(args), dict(kwargs or {}), key)
                except IntegrityError:
                    existing = self._active_with(key, using)
            if existing is not None:
                result = cast('TaskResult[_P, _R]', self.result_of(existing))
                if if_exists == 'raise':
                    raise DuplicateTask(key, result)
                return result
            # The task that held the key finished in between: try again.
        raise IntegrityError(
            f'enqueue_unique({key!r}): the key was taken and freed {UNIQUE_ATTEMPTS} times in a row'
        )

    def _active_with(self, key: str, using: str) -> QueuedTask | None:
        """The READY or RUNNING row of this backend with `key`, if any. On
        MariaDB inside a transaction, a locking read: it sees the row
        another transaction committed after this one's snapshot."""
        rows = QueuedTask.objects.using(using).filter(active(), backend_name=self.alias, unique_key=key)
        if connections[using].vendor == 'mysql' and connections[using].in_atomic_block:
            rows = rows.select_for_update()
        return rows.first()

    def _enqueue(
        self, task: Task[_P, _R], args: list[Any], kwargs: dict[str, Any], key: str | None = None
    ) -> TaskResult[_P, _R]:
        row, result = self.new_row(task, args, kwargs, key)
        row.save(force_insert=True, using=router.db_for_write(QueuedTask))
        return self.enqueued(row, result)

    def new_row(
        self, task: Task[_P, _R], args: list[Any], kwargs: dict[str, Any], key: str | None = None
    ) -> tuple[QueuedTask, TaskResult[_P, _R]]:
        """The unsaved row of `task` called with `args` and `kwargs`, and its
        result, everything checked: after the row's INSERT (one by one, or
        several in one statement, as the schedules do), :meth:`enqueued`
        gives the result its id and sends ``task_enqueued``."""
        self.validate_task(task)
        run_after = task.run_after
        if run_after is not None:
            check_run_after(run_after)
        # TaskResult normalizes the arguments to JSON and refuses what cannot
        # be (TypeError or ValueError); check_json refuses what a database
        # would (ValueError), before anything is written.
        result = TaskResult(
            task=task,
            id='',
            status=TaskResultStatus.READY,
            enqueued_at=None,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        check_json(result.args, 'args')
        check_json(result.kwargs, 'kwargs')
        enqueued_at = now()
        if run_after is None or run_after <= enqueued_at:
            status = ready_status(task.priority)
        else:
            status = Status.waiting(_next_millisecond(run_after), 0)
        row = QueuedTask(
            status=status,
            task_path=task.module_path,
            queue_name=task.queue_name,
            backend_name=self.alias,
            priority=task.priority,
            run_after=run_after,
            takes_context=task.takes_context,
            args=result.args,
            kwargs=result.kwargs,
            enqueued_at=enqueued_at,
            unique_key=key,
        )
        return row, result

    def enqueued(self, row: QueuedTask, result: TaskResult[_P, _R]) -> TaskResult[_P, _R]:
        """`result` of the inserted `row`, with its id, after ``task_enqueued``."""
        object.__setattr__(result, 'id', str(row.pk))
        object.__setattr__(result, 'enqueued_at', row.enqueued_at)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[..., Any]:
        """The stored state of the task `result_id`; TaskResultDoesNotExist for
        an id this backend never gave (of any shape), UnknownTaskPath for a
        row whose path names no task."""
        text = str(result_id)
        if not ID.fullmatch(text) or int(text) > MAX_ID:
            raise TaskResultDoesNotExist(result_id)
        try:
            row = QueuedTask.objects.using(router.db_for_read(QueuedTask)).get(
                pk=int(text), backend_name=self.alias
            )
        except QueuedTask.DoesNotExist:
            raise TaskResultDoesNotExist(result_id) from None
        return self.result_of(row)

    def result_of(self, row: QueuedTask) -> TaskResult[..., Any]:
        """The ``TaskResult`` that the task row `row` reads as; UnknownTaskPath
        if its path names no task of a module the application imports (the
        path is never imported: see :mod:`modelqueue.tasks.paths`)."""
        task = find_task(row.task_path)
        if (task.priority, task.queue_name, task.run_after, task.backend) != (
            row.priority, row.queue_name, row.run_after, self.alias
        ):  # (using() checks the task again: skipped when nothing differs)
            task = task.using(
                priority=row.priority,
                queue_name=row.queue_name,
                run_after=row.run_after,
                backend=self.alias,
            )
        result: TaskResult[..., Any] = TaskResult(
            task=task,
            id=str(row.pk),
            status=TaskResultStatus.READY,
            enqueued_at=row.enqueued_at,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=row.args,
            kwargs=row.kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        self.update_result(result, row)
        return result

    @staticmethod
    def update_result(result: TaskResult[..., Any], row: QueuedTask) -> None:
        """Give `result` the state the task row `row` holds."""
        state = TaskResultStatus(row.state)
        started_at, last_attempted_at = row.started_at, row.last_attempted_at
        if state == TaskResultStatus.RUNNING:
            # The claim wrote the time it began as the working status's priority.
            claimed_at = priority_to_datetime(Status(row.status).priority)
            started_at = started_at or claimed_at
            last_attempted_at = claimed_at or last_attempted_at
        values = {
            'status': state,
            'started_at': started_at,
            'finished_at': row.finished_at,
            'last_attempted_at': last_attempted_at,
            'worker_ids': list(row.worker_ids),
            'errors': [
                TaskError(
                    exception_class_path=error['exception_class_path'],
                    traceback=error['traceback'],
                )
                for error in row.errors
            ],
            '_return_value': row.return_value if state == TaskResultStatus.SUCCESSFUL else None,
        }
        for name, value in values.items():
            object.__setattr__(result, name, value)

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        if not apps.is_installed('modelqueue'):
            return [
                checks.Error(
                    f'TASKS[{self.alias!r}] uses ModelQueueBackend, whose task table'
                    " belongs to the 'modelqueue' app",
                    hint="Add 'modelqueue' to INSTALLED_APPS and run migrate.",
                    id='modelqueue.E201',
                )
            ]
        return []


def _option(
    alias: str,
    options: dict[str, Any],
    name: str,
    default: float,
    maximum: int | None = None,
    above_zero: bool = False,
) -> Any:
    value = options.pop(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (maximum is not None and (not isinstance(value, int) or value > maximum))
        or value < 0
        or (above_zero and value == 0)
    ):
        expected = (
            f'an integer from 0 through {maximum}'
            if maximum is not None
            else 'a number of seconds above 0' if above_zero else 'a number of seconds, 0 or more'
        )
        raise ImproperlyConfigured(
            f"invalid TASKS[{alias!r}]['OPTIONS'][{name!r}] {value!r}: expected {expected}"
        )
    return value


def _next_millisecond(value: dt.datetime) -> dt.datetime:
    """`value` rounded up to a whole millisecond, so a task never runs before
    its ``run_after`` (statuses keep milliseconds)."""
    extra = value.microsecond % 1000
    return value + dt.timedelta(microseconds=1000 - extra) if extra else value


def enqueue_unique(task: Task[_P, _R], key: str, /, *args: _P.args, **kwargs: _P.kwargs) -> TaskResult[_P, _R]:
    """``task.enqueue(*args, **kwargs)`` under `key`: the result of the task
    of the same backend and key that is READY or RUNNING, if there is one,
    else of the task enqueued now (:mod:`modelqueue.tasks.unique`). To refuse
    instead, call the backend's ``enqueue_unique(..., if_exists='raise')``."""
    backend = task.get_backend()
    if not isinstance(backend, ModelQueueBackend):
        raise ValueError(
            f'invalid task {task.module_path} for enqueue_unique(): expected a task of a'
            f' ModelQueueBackend, found its backend {task.backend!r} a {type(backend).__name__}'
        )
    return backend.enqueue_unique(task, key, args, kwargs)
