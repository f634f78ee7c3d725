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
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib import admin, messages
from django.db import router
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from ..admin.options import QueueAdminMixin
from ..status import now
from . import schedules
from .models import QueuedTask, ScheduleState

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite
    from django.db.models import QuerySet
    from django.http import HttpRequest, HttpResponse
    from django.utils.functional import _StrOrPromise
    from django.utils.safestring import SafeString

BACKEND = 'modelqueue.tasks.ModelQueueBackend'


def uses_the_backend() -> bool:
    """Whether a ``TASKS`` backend of the settings is ModelQueueBackend."""
    backends = getattr(settings, 'TASKS', None) or {}
    return any(params.get('BACKEND') == BACKEND for params in backends.values())


def _json(value: object) -> SafeString:
    return format_html('<pre>{}</pre>', json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


class TaskAdmin(QueueAdminMixin, admin.ModelAdmin):
    """Tasks enqueued through ModelQueueBackend; they are added by ``enqueue()``, not here."""

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
        schedules.sync(schedules.declared(), router.db_for_write(ScheduleState))
        return super().changelist_view(request, extra_context)

    def _declared(self) -> dict[str, schedules.Schedule]:
        return {schedule.name: schedule for schedule in schedules.declared()}

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
