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
from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from ..admin.options import QueueAdminMixin
from .models import QueuedTask

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite
    from django.http import HttpRequest
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


def register(site: AdminSite | None = None) -> None:
    """Register the task table on `site` (the default admin site) when a
    TASKS backend is ModelQueueBackend and it is not registered yet."""
    site = admin.site if site is None else site
    if uses_the_backend() and not site.is_registered(QueuedTask):
        site.register(QueuedTask, TaskAdmin)
