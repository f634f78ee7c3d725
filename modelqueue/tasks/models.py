"""The table behind :class:`modelqueue.tasks.ModelQueueBackend`: one row per
enqueued task, its queue state in one `StatusField`.

A task's status encodes its Django priority, so that the worker's claim,
which takes the lowest due status (and the lowest id among equal ones),
runs higher priorities first and, within one priority, tasks in the order
they were enqueued::

    state  (100 - priority) x 10**10   attempts
      2    0000100 0000000000              0        a ready task of priority 0 (100 x 10**10)

Such a plain-integer priority is always due. A task that may run only later
(``run_after``, a retry after a delay, an operator's requeue) holds a
timestamp priority instead, which becomes due at that time; the worker then
gives it back its integer priority (:func:`promote_due`), so it takes its
place by priority and enqueue order among the ready tasks.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import models
from django.db.models import BigIntegerField, ExpressionWrapper, F, OuterRef, QuerySet, Value
from django.db.models.functions import Concat
from django.utils.translation import gettext_lazy as _

from .. import ranges
from ..expressions import Remainder, integer
from ..status import State, Status, now

#: Django's priorities run from -100 to 100, higher first.
HIGHEST_PRIORITY = 100
PRIORITY_STEP = 10**10


def ready_status(priority: int, attempts: int = 0) -> Status:
    """The waiting status of a ready task of Django `priority`.

    >>> ready_status(0)
    Status(2000010000000000000)
    >>> ready_status(100) < ready_status(0) < ready_status(-100)
    True
    """
    return Status.waiting((HIGHEST_PRIORITY - priority) * PRIORITY_STEP, attempts)


def promote_due(queryset: QuerySet[Any], field: str = 'status', at: dt.datetime | None = None) -> int:
    """Give the due rows of `queryset` that hold a timestamp priority their
    integer priority back, attempts kept; return how many were changed.

    One UPDATE, conditioned on the rows' status range, so a row claimed or
    changed by an operator meanwhile is left alone.
    """
    at = now() if at is None else at
    status = ExpressionWrapper(
        integer(Status.minimum(State.waiting))
        + (HIGHEST_PRIORITY - F('priority')) * integer(PRIORITY_STEP * 10)
        + Remainder(F(field), integer(10)),
        output_field=BigIntegerField(),
    )
    return queryset.filter(ranges.due_with_timestamp(field, at)).update(**{field: status})


class TaskState(models.TextChoices):
    """How a status reads as a Django ``TaskResultStatus``."""

    READY = 'READY', _('Ready')
    RUNNING = 'RUNNING', _('Running')
    FAILED = 'FAILED', _('Failed')
    SUCCESSFUL = 'SUCCESSFUL', _('Successful')


STATE_OF = {
    State.created: TaskState.READY,
    State.waiting: TaskState.READY,
    State.working: TaskState.RUNNING,
    State.finished: TaskState.SUCCESSFUL,
    State.canceled: TaskState.FAILED,
}


class QueuedTask(models.Model):
    """One task enqueued through ModelQueue's backend of Django's Tasks framework."""

    id = models.BigAutoField(primary_key=True)
    status = models.BigIntegerField(_('status'), default=Status.waiting)
    task_path = models.CharField(_('task path'), max_length=255, db_index=True)
    queue_name = models.CharField(_('queue name'), max_length=100, db_index=True)
    backend_name = models.CharField(_('backend'), max_length=100)
    priority = models.SmallIntegerField(_('priority'), default=0)
    run_after = models.DateTimeField(_('run after'), null=True, blank=True)
    takes_context = models.BooleanField(_('takes context'), default=False)
    args = models.JSONField(_('arguments'), default=list, blank=True)
    kwargs = models.JSONField(_('keyword arguments'), default=dict, blank=True)
    enqueued_at = models.DateTimeField(_('enqueued at'), default=now)
    started_at = models.DateTimeField(_('started at'), null=True, blank=True)
    finished_at = models.DateTimeField(_('finished at'), null=True, blank=True)
    last_attempted_at = models.DateTimeField(_('last attempted at'), null=True, blank=True)
    worker_ids = models.JSONField(_('worker ids'), default=list, blank=True)
    return_value = models.JSONField(_('return value'), null=True, blank=True)
    errors = models.JSONField(_('errors'), default=list, blank=True)
    #: enqueue_unique()'s key: one READY or RUNNING task per key and backend
    #: (a partial unique index, or a generated column on MariaDB: migration 0004).
    unique_key = models.CharField(  # noqa: DJ001 (NULL, unlike '', never collides in the unique index)
        _('unique key'), max_length=255, null=True, blank=True
    )

    class Meta:
        app_label = 'modelqueue'
        db_table = 'modelqueue_task'
        verbose_name = _('task')
        verbose_name_plural = _('tasks')
        indexes = [
            # The claim orders by status, then id (enqueue order among equals).
            models.Index(fields=['status', 'id'], name='modelqueue_task_claim'),
        ]

    def __str__(self) -> str:
        return f'{self.task_path} #{self.pk}'

    @classmethod
    def modelqueue_pause_name(cls) -> Concat:
        """The queue name of the pause that holds a row: ``<backend>/<queue>``
        (:mod:`modelqueue.tasks.pauses`), as the claim's subquery reads it."""
        return Concat(OuterRef('backend_name'), Value('/'), OuterRef('queue_name'), output_field=models.CharField())

    @property
    def state(self) -> TaskState:
        """The Django ``TaskResultStatus`` value this row's status reads as."""
        status = Status(self.status)
        return STATE_OF.get(status.state, TaskState.READY)


class ScheduleState(models.Model):
    """The state of one declared schedule (:mod:`modelqueue.tasks.schedules`):
    its next slot, whether it is enabled, and its last run.

    Written by the workers' schedulers, which enqueue a slot only if their
    UPDATE moves `next_slot` on from the value they read; the declaration
    itself (task, cron or interval, arguments) lives in the settings.
    """

    name = models.CharField(_('name'), max_length=100, unique=True)
    #: A digest of the declaration's cron, interval and time zone, so that a
    #: changed declaration moves the next slot (Schedule.definition).
    definition = models.CharField(_('definition'), max_length=64)
    next_slot = models.DateTimeField(_('next run'), db_index=True)
    enabled = models.BooleanField(_('enabled'), default=True)
    last_slot = models.DateTimeField(_('last slot'), null=True, blank=True)
    last_enqueued_at = models.DateTimeField(_('last enqueued at'), null=True, blank=True)
    #: The id of the task enqueued last (empty: none, or its enqueue failed).
    last_task_id = models.CharField(_('last task'), max_length=40, blank=True, default='')
    #: Why the last slot's enqueue failed (empty when it did not).
    last_error = models.TextField(_('last error'), blank=True, default='')

    class Meta:
        app_label = 'modelqueue'
        db_table = 'modelqueue_schedule'
        verbose_name = _('schedule')
        verbose_name_plural = _('schedules')
        default_permissions = ('view', 'change')
        permissions = [('run_schedule', _('Can run a schedule now'))]

    def __str__(self) -> str:
        return self.name
