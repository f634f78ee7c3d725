"""The task table in the admin: ModelQueue's queue operations (state filter,
requeue, cancel, dashboard) plus what Django's Tasks framework adds: the
task path and queue to filter and search by, and the arguments, return value
and errors to read.

:mod:`modelqueue.admin` registers it on the default admin site when a
``TASKS`` backend is ``ModelQueueBackend``; to register it on a site of your
own: ``site.register(QueuedTask, TaskAdmin)``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import IntegrityError, router
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..admin.changeform import RowChangedMeanwhile
from ..admin.options import QueueAdminMixin
from ..status import Status, now
from . import schedules
from .models import QueuedTask, ScheduleState
from .unique import ACTIVE, active

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite
    from django.db.models import Model, QuerySet
    from django.http import HttpRequest, HttpResponse
    from django.utils.functional import _StrOrPromise
    from django.utils.safestring import SafeString

    from ..admin.operations import Leave, Left, Operation

BACKEND = 'modelqueue.tasks.ModelQueueBackend'

#: The operations that make a task READY again (requeue, retry all failed, the 2.2.1 changes to
#: created, waiting or working): a task whose unique key another READY or
#: RUNNING task holds must stay as it is (the database's unique index would
#: refuse the whole operation).
ACTIVATING = frozenset({'requeue', 'retry_failed', 'state_created', 'state_waiting', 'state_working'})


def uses_the_backend() -> bool:
    """Whether a ``TASKS`` backend of the settings is ModelQueueBackend."""
    backends = getattr(settings, 'TASKS', None) or {}
    return any(params.get('BACKEND') == BACKEND for params in backends.values())


def _json(value: object) -> SafeString:
    return format_html('<pre>{}</pre>', json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


def held_keys(using: str, pks: list[Any]) -> dict[Any, Left]:
    """Of the tasks `pks` about to become READY, those that must not: a
    task whose unique key another READY or RUNNING task of its backend
    holds, and, of tasks that share a key no such task holds, all but the
    newest (which takes it). Read in the caller's transaction, so a task
    made READY by a write before counts as holding its key."""
    rows = QueuedTask._base_manager.using(using)
    candidates = list(
        rows.filter(pk__in=pks, unique_key__isnull=False)
        .exclude(active())
        .values_list('pk', 'backend_name', 'unique_key', 'status')
    )
    if not candidates:
        return {}
    holders = {
        (backend, key): pk
        for pk, backend, key in rows.filter(
            active(), unique_key__in={key for _pk, _backend, key, _status in candidates}
        ).values_list('pk', 'backend_name', 'unique_key')
    }
    left: dict[Any, Left] = {}
    for pk, backend, key, status in sorted(candidates, key=lambda row: row[0], reverse=True):
        holder = holders.setdefault((backend, key), pk)
        if holder != pk:
            left[pk] = (
                Status(status),
                gettext('task %(id)s (its unique key %(key)r is held by the READY or RUNNING task %(holder)s)')
                % {'id': pk, 'key': key, 'holder': holder},
            )
    return left


if TYPE_CHECKING:
    _ModelForm = forms.ModelForm[QueuedTask]
else:  # not subscriptable at run time
    _ModelForm = forms.ModelForm


class TaskForm(_ModelForm):
    """The change form of a task: a status that makes it READY or RUNNING
    is refused while another task holds its unique key."""

    def clean(self) -> dict[str, Any] | None:
        cleaned: dict[str, Any] = super().clean() or {}
        status, task = cleaned.get('status'), self.instance
        if task.pk is None or not task.unique_key or status is None or not ACTIVE[0] <= status <= ACTIVE[1]:
            return cleaned
        holder = (
            QueuedTask._base_manager.using(router.db_for_write(QueuedTask))
            .filter(active(), backend_name=task.backend_name, unique_key=task.unique_key)
            .exclude(pk=task.pk)
            .values_list('pk', flat=True)
            .first()
        )
        if holder is not None:
            raise ValidationError(
                _(
                    'Nothing was saved: the task %(holder)s, READY or RUNNING, holds the unique key'
                    ' %(key)r; this task can be READY or RUNNING again once it is not.'
                ),
                code='unique_key_held',
                params={'holder': holder, 'key': task.unique_key},
            )
        return cleaned


class TaskAdmin(QueueAdminMixin, admin.ModelAdmin):
    """Tasks enqueued through ModelQueueBackend; they are added by ``enqueue()``, not here."""

    form = TaskForm

    list_display = ['id', 'task_path', 'queue_name', 'priority', 'result', 'enqueued_at', 'finished_at']
    list_filter = ['queue_name', 'task_path', 'backend_name']
    search_fields = ['task_path', 'queue_name']
    date_hierarchy = 'enqueued_at'
    fields = [
        'status', 'task_path', 'queue_name', 'backend_name', 'priority', 'run_after',
        'arguments', 'keyword_arguments', 'result', 'returned', 'error_list',
        'enqueued_at', 'started_at', 'last_attempted_at', 'finished_at', 'worker_ids',
    ]
    readonly_fields = [
        'task_path', 'queue_name', 'backend_name', 'priority', 'run_after',
        'arguments', 'keyword_arguments', 'result', 'returned', 'error_list',
        'enqueued_at', 'started_at', 'last_attempted_at', 'finished_at', 'worker_ids',
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def queue_rows_to_leave(self, field: str, operation: Operation) -> Leave | None:
        """An operation that makes tasks READY leaves those whose unique key
        another READY or RUNNING task holds (:func:`held_keys`)."""
        return held_keys if operation.name in ACTIVATING else None

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: Any) -> None:
        """Save, or say that another task took the unique key meanwhile."""
        try:
            super().save_model(request, obj, form, change)
        except IntegrityError:
            raise RowChangedMeanwhile(
                gettext(
                    'Nothing was saved: another task took the unique key %(key)r meanwhile.'
                    ' Here the task is as it is now.'
                )
                % {'key': getattr(obj, 'unique_key', None)}
            ) from None

    @admin.display(description=_('result'))
    def result(self, task: QueuedTask) -> _StrOrPromise:
        return task.state.label

    @admin.display(description=_('arguments'))
    def arguments(self, task: QueuedTask) -> SafeString:
        return _json(task.args)

    @admin.display(description=_('keyword arguments'))
    def keyword_arguments(self, task: QueuedTask) -> SafeString:
        return _json(task.kwargs)

    @admin.display(description=_('return value'))
    def returned(self, task: QueuedTask) -> str:
        return _json(task.return_value) if task.state == 'SUCCESSFUL' else '-'

    @admin.display(description=_('errors'))
    def error_list(self, task: QueuedTask) -> str:
        if not task.errors:
            return '-'
        return format_html_join(
            '',
            '<p><strong>{}</strong></p><pre>{}</pre>',
            ((error.get('exception_class_path', ''), error.get('traceback', '')) for error in task.errors),
        )


class ScheduleAdmin(admin.ModelAdmin):
    """The *Schedules* page: each schedule of ``MODELQUEUE_SCHEDULES``
    (:mod:`modelqueue.tasks.schedules`) with its next run, its last run and
    that task's outcome; actions enable, disable and run schedules now.

    The declarations live in the settings: the page adds no schedule and
    deletes none. Opening it gives each declared schedule its row, as a
    worker does when it starts. Enabling and disabling need the change
    permission, running now ``modelqueue.run_schedule``; each leaves a
    LogEntry naming the user.
    """

    list_display = ['name', 'task', 'when', 'enabled', 'next_slot', 'last_slot', 'last_outcome', 'last_error']
    list_filter = ['enabled']
    search_fields = ['name']
    ordering = ['name']
    actions = ['enable', 'disable', 'run_now']
    fields = readonly_fields = (
        'name', 'task', 'when', 'arguments', 'enabled', 'next_slot', 'last_slot', 'last_enqueued_at',
        'last_outcome', 'last_error',
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm('modelqueue.run_schedule')

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, object] | None = None) -> HttpResponse:
        schedules.sync(self._declared().values(), router.db_for_write(ScheduleState))
        return super().changelist_view(request, extra_context)

    def _declared(self) -> dict[str, schedules.Schedule]:
        """The declared schedules by name, read from the settings once per
        value of ``MODELQUEUE_SCHEDULES``, not once per cell of the page (each
        read checks every declaration, cron expressions included)."""
        value = getattr(settings, 'MODELQUEUE_SCHEDULES', {})
        cached = getattr(self, '_declared_for', None)
        if cached is None or cached[0] is not value:  # holding `value` keeps its identity unique
            cached = self._declared_for = (value, {schedule.name: schedule for schedule in schedules.declared()})
        return cached[1]

    @admin.display(description=_('task'))
    def task(self, state: ScheduleState) -> str:
        schedule = self._declared().get(state.name)
        return schedule.task if schedule else str(_('(no longer declared)'))

    @admin.display(description=_('when'))
    def when(self, state: ScheduleState) -> str:
        schedule = self._declared().get(state.name)
        return schedule.when if schedule else '-'

    @admin.display(description=_('arguments'))
    def arguments(self, state: ScheduleState) -> SafeString | str:
        schedule = self._declared().get(state.name)
        return _json({'args': list(schedule.args), 'kwargs': schedule.kwargs}) if schedule else '-'

    @admin.display(description=_('last outcome'))
    def last_outcome(self, state: ScheduleState) -> SafeString | str:
        if not state.last_task_id:
            return '-'
        task = QueuedTask.objects.filter(pk=state.last_task_id).only('status').first()
        label = task.state.label if task is not None else _('deleted')
        try:
            url = reverse(f'{self.admin_site.name}:modelqueue_queuedtask_change', args=[state.last_task_id])
        except NoReverseMatch:
            return format_html('{} (#{})', label, state.last_task_id)
        return format_html('<a href="{}">{} (#{})</a>', url, label, state.last_task_id)

    @admin.action(description=_('Enable the selected schedules'), permissions=['change'])
    def enable(self, request: HttpRequest, queryset: QuerySet[ScheduleState]) -> None:
        declared = self._declared()
        changed = 0
        for state in queryset.filter(enabled=False, name__in=declared):
            # From now on: the slots it missed while disabled are skipped.
            ScheduleState.objects.filter(pk=state.pk, enabled=False).update(
                enabled=True, next_slot=declared[state.name].next_slot(now())
            )
            self.log_change(request, state, 'Enabled the schedule.')
            changed += 1
        self.message_user(request, _('%(count)d schedules enabled.') % {'count': changed}, messages.SUCCESS)

    @admin.action(description=_('Disable the selected schedules'), permissions=['change'])
    def disable(self, request: HttpRequest, queryset: QuerySet[ScheduleState]) -> None:
        changed = 0
        for state in queryset.filter(enabled=True):
            ScheduleState.objects.filter(pk=state.pk).update(enabled=False)
            self.log_change(request, state, 'Disabled the schedule.')
            changed += 1
        self.message_user(request, _('%(count)d schedules disabled.') % {'count': changed}, messages.SUCCESS)

    @admin.action(description=_('Run the selected schedules now'), permissions=['run'])
    def run_now(self, request: HttpRequest, queryset: QuerySet[ScheduleState]) -> None:
        declared = self._declared()
        for state in queryset:
            schedule = declared.get(state.name)
            if schedule is None:
                self.message_user(
                    request, _('%(name)s is no longer declared: not run.') % {'name': state.name}, messages.ERROR
                )
                continue
            try:
                task_id = schedules.run_now(schedule, queryset.db)
            except (ValueError, TypeError, ImportError, LookupError) as error:
                self.message_user(
                    request, _('%(name)s not run: %(error)s') % {'name': state.name, 'error': error}, messages.ERROR
                )
                continue
            self.log_change(request, state, f'Ran the schedule now: task {task_id}.')
            self.message_user(
                request, _('%(name)s enqueued as task %(id)s.') % {'name': state.name, 'id': task_id}, messages.SUCCESS
            )


def register(site: AdminSite | None = None) -> None:
    """Register the task table and the schedules on `site` (the default
    admin site) when a TASKS backend is ModelQueueBackend and they are not
    registered yet."""
    site = admin.site if site is None else site
    if uses_the_backend() and not site.is_registered(QueuedTask):
        site.register(QueuedTask, TaskAdmin)
    if uses_the_backend() and not site.is_registered(ScheduleState):
        site.register(ScheduleState, ScheduleAdmin)
