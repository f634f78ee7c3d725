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
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import IntegrityError, router
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..admin.changeform import RowChangedMeanwhile
from ..admin.options import QueueAdminMixin
from ..status import Status
from .models import QueuedTask
from .unique import ACTIVE, active

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite
    from django.db.models import Model
    from django.http import HttpRequest
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


def register(site: AdminSite | None = None) -> None:
    """Register the task table on `site` (the default admin site) when a
    TASKS backend is ModelQueueBackend and it is not registered yet."""
    site = admin.site if site is None else site
    if uses_the_backend() and not site.is_registered(QueuedTask):
        site.register(QueuedTask, TaskAdmin)
