"""The failure records and worker heartbeats as read-only admin tables.

A queue site (:class:`modelqueue.admin.QueueAdminSiteMixin`) registers both.
Nobody may add, change or delete a row here: workers write them. A failure
record can hold secrets in its traceback and message, so a user sees only
the records of models they may view, besides the view permission on the
table itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from ..models import FailureRecord, WorkerHeartbeat
from ..status import now

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite
    from django.db.models import Model, QuerySet
    from django.http import HttpRequest
    from django.utils.functional import _StrOrPromise
    from django.utils.safestring import SafeString


def viewable_content_types(request: HttpRequest, queryset: QuerySet[Any]) -> list[int]:
    """The content types among `queryset`'s rows whose model `request`'s user may view."""
    allowed = []
    for content_type in ContentType.objects.filter(pk__in=queryset.order_by().values('content_type')):
        app, model = content_type.app_label, content_type.model
        if any(request.user.has_perm(f'{app}.{action}_{model}') for action in ('view', 'change')):
            allowed.append(content_type.pk)
    return allowed


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by workers: viewed, never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        return queryset.filter(content_type__in=viewable_content_types(request, queryset))


class FailureRecordAdmin(ReadOnlyAdmin):
    list_display = ['ended', 'row', 'field', 'exception_column', 'message_column', 'attempt', 'outcome', 'worker']
    list_filter = ['outcome', 'content_type', 'exception']
    search_fields = ['message', 'exception', 'object_id', 'worker']
    date_hierarchy = 'ended'
    list_select_related = ['content_type']
    fields = [
        'content_type', 'object_id', 'field', 'attempt', 'outcome', 'exception', 'message',
        'traceback_block', 'worker', 'started', 'ended', 'duration',
    ]
    readonly_fields = fields  # type: ignore[assignment]  # names alone, no groups of names

    @admin.display(description=_('row'), ordering='object_id')
    def row(self, record: FailureRecord) -> str:
        """The row, linked to its change form (and failure history) on this site."""
        label = f'{record.content_type.app_label}.{record.content_type.model} {record.object_id}'
        try:
            url = reverse(
                f'admin:{record.content_type.app_label}_{record.content_type.model}_change',
                args=[record.object_id],
                current_app=self.admin_site.name,
            )
        except NoReverseMatch:
            return label
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description=_('exception'), ordering='exception')
    def exception_column(self, record: FailureRecord) -> SafeString:
        return format_html('<span title="{}">{}</span>', record.exception, record.exception_name)

    @admin.display(description=_('message'))
    def message_column(self, record: FailureRecord) -> str:
        return Truncator(record.message).chars(100)

    @admin.display(description=_('traceback'))
    def traceback_block(self, record: FailureRecord) -> SafeString:
        return format_html('<pre class="modelqueue-traceback">{}</pre>', record.traceback or '–')


class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    list_display = [
        'name', 'queue', 'started', 'last_seen', 'state', 'object_id', 'held_since', 'tasks_done', 'failures',
    ]
    list_filter = ['content_type', 'host']
    list_select_related = ['content_type']
    readonly_fields = [field.name for field in WorkerHeartbeat._meta.fields]

    @admin.display(description=_('queue'))
    def queue(self, beat: WorkerHeartbeat) -> str:
        return f'{beat.content_type.app_label}.{beat.content_type.model}.{beat.field}'

    @admin.display(description=_('state'))
    def state(self, beat: WorkerHeartbeat) -> _StrOrPromise:
        return _('lost') if beat.is_lost(now()) else _('live')


def register_records(site: AdminSite) -> None:
    """Register both tables on `site`, unless it has them already."""
    for model, model_admin in ((FailureRecord, FailureRecordAdmin), (WorkerHeartbeat, WorkerHeartbeatAdmin)):
        if not site.is_registered(model):
            site.register(model, model_admin)
