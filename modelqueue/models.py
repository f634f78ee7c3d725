"""The tables of the modelqueue app: failure records, worker heartbeats and
queue pauses.

The app's third table, the task table of the Django Tasks backend, is
defined beside the backend (:mod:`modelqueue.tasks.models`); the app's
config imports it with these.

Neither of the first two is needed for run() to work: a failed attempt is
recorded when the table exists (see :mod:`modelqueue.failures`), and a
worker keeps a heartbeat row when it can (see :mod:`modelqueue.heartbeat`).
"""

from __future__ import annotations

import datetime as dt

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils.translation import gettext_lazy as _

from .names import worker_name


class FailureRecord(models.Model):
    """One failed attempt of a queue row: what was raised, by whom, when.

    Written by run() with one INSERT when an action raises ``Abort``,
    ``Cancel`` or any other exception (``Retry`` is a reschedule, not a
    failure), and when a row whose worker died is given back after the
    timeout. Pruned by the workers (see ``MODELQUEUE_FAILURES_PER_ROW`` and
    ``MODELQUEUE_FAILURE_MAX_AGE``).
    """

    WAITING = 'waiting'
    CANCELED = 'canceled'
    SUPERSEDED = 'superseded'
    OUTCOMES = [
        (WAITING, _('will retry')),
        (CANCELED, _('canceled')),
        (SUPERSEDED, _('left as changed meanwhile')),
    ]
    #: The exception class of a timeout reclaim (a worker died or hung).
    TIMEOUT = 'modelqueue.timeout'
    #: The exception class of a rescue: the row's worker missed three heartbeats.
    WORKER_LOST = 'modelqueue.worker_lost'
    #: The exception class of an action stopped by the worker's time limit.
    TIME_LIMIT = 'modelqueue.time_limit'

    content_type = models.ForeignKey(
        ContentType, on_delete=models.CASCADE, verbose_name=_('model')
    )
    object_id = models.CharField(_('row'), max_length=255)
    field = models.CharField(_('queue field'), max_length=100)
    attempt = models.PositiveSmallIntegerField(_('attempt'))
    outcome = models.CharField(_('outcome'), max_length=20, choices=OUTCOMES)
    exception = models.CharField(_('exception'), max_length=255)
    message = models.TextField(_('message'), blank=True)
    traceback = models.TextField(_('traceback'), blank=True)
    worker = models.CharField(_('worker'), max_length=255, blank=True)
    started = models.DateTimeField(_('started'))
    ended = models.DateTimeField(_('ended'), db_index=True)
    duration = models.DurationField(_('duration'))

    class Meta:
        verbose_name = _('failure record')
        verbose_name_plural = _('failure records')
        indexes = [
            models.Index(
                fields=['content_type', 'field', 'object_id', 'id'],
                name='modelqueue_failure_row',
            ),
            models.Index(
                fields=['content_type', 'field', 'ended'], name='modelqueue_failure_recent'
            ),
        ]

    def __str__(self) -> str:
        return f'{self.exception} on {self.content_type_id}:{self.object_id} attempt {self.attempt}'

    @property
    def exception_name(self) -> str:
        """The class name without its module: ``ValueError``."""
        return self.exception.rpartition('.')[2]


class WorkerHeartbeat(models.Model):
    """A live worker process: where it runs, what it holds, how it did.

    Inserted when a worker starts, updated every few seconds (never per
    task) from a thread of its own, and deleted on a graceful exit. A row
    not updated for three of its intervals belongs to a lost worker.
    """

    host = models.CharField(_('host'), max_length=255)
    pid = models.PositiveIntegerField(_('pid'))
    content_type = models.ForeignKey(
        ContentType, on_delete=models.CASCADE, verbose_name=_('model')
    )
    field = models.CharField(_('queue field'), max_length=100)
    started = models.DateTimeField(_('started'))
    last_seen = models.DateTimeField(_('last seen'), db_index=True)
    interval = models.FloatField(_('heartbeat interval (seconds)'))
    object_id = models.CharField(_('row in hand'), max_length=255, blank=True, default='')
    held_since = models.DateTimeField(_('held since'), null=True, blank=True)
    #: Every row the worker holds, as ``[[pk, working status], ...]`` (both
    #: as text): the exact status each claim wrote, so that a rescue gives
    #: back only a row still held by that claim (:mod:`modelqueue.rescue`).
    #: Written at each beat, with `object_id`.
    held = models.JSONField(_('rows in hand'), default=list, blank=True)
    tasks_done = models.BigIntegerField(_('tasks done'), default=0)
    failures = models.BigIntegerField(_('failures'), default=0)
    #: How the worker is woken when idle (its waiter's state): ``listening``
    #: (on commit, LISTEN/NOTIFY), ``unreachable`` (notifications do not reach
    #: it: it polls), ``broken`` (it cannot LISTEN: it polls), ``polling`` (by
    #: design), ``connecting``; empty for a row of an older worker.
    wakeup = models.CharField(_('wake-up'), max_length=20, blank=True, default='')
    #: What an operator asked of the worker (read by it at each beat):
    #: empty, :attr:`QUIET` or :attr:`STOP`.
    command = models.CharField(
        _('command'), max_length=10, blank=True, default='', choices=[
            ('', _('none')), ('quiet', _('quiet')), ('stop', _('stop')),
        ],
    )
    #: Whether the worker has quieted (it claims nothing more), as it reports.
    quiet = models.BooleanField(_('quiet'), default=False)

    QUIET = 'quiet'
    STOP = 'stop'

    class Meta:
        verbose_name = _('worker heartbeat')
        verbose_name_plural = _('worker heartbeats')
        permissions = [
            ('control_worker', _('Can quiet or stop a worker and rescue its rows')),
        ]
        indexes = [
            models.Index(fields=['content_type', 'field'], name='modelqueue_heartbeat_queue'),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        """``host:pid``, as failure records name their worker."""
        return worker_name(self.host, self.pid)

    def is_lost(self, current: dt.datetime) -> bool:
        """Whether the worker missed three heartbeats by `current`."""
        return (current - self.last_seen).total_seconds() > 3 * self.interval



class QueuePause(models.Model):
    """A paused queue: while this row exists, run() claims nothing from it.

    A model queue is named by its model and field, with an empty
    `queue_name`; a queue of the Django Tasks backend by the task model's
    queue field and its queue's name. The row survives restarts; deleting it
    resumes the queue.
    """

    content_type = models.ForeignKey(
        ContentType, on_delete=models.CASCADE, verbose_name=_('model')
    )
    field = models.CharField(_('queue field'), max_length=100)
    queue_name = models.CharField(_('queue name'), max_length=100, blank=True, default='')
    paused_at = models.DateTimeField(_('paused at'))
    paused_by = models.CharField(_('paused by'), max_length=150, blank=True, default='')

    class Meta:
        verbose_name = _('queue pause')
        verbose_name_plural = _('queue pauses')
        default_permissions = ('view',)
        permissions = [('pause_queue', _('Can pause and resume a queue'))]
        constraints = [
            models.UniqueConstraint(
                fields=['content_type', 'field', 'queue_name'], name='modelqueue_pause_queue'
            ),
        ]

    def __str__(self) -> str:
        queue = f'{self.content_type_id}.{self.field}'
        return f'{queue}:{self.queue_name}' if self.queue_name else queue
