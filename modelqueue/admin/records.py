"""The failure records and worker heartbeats as read-only admin tables.

A queue site (:class:`modelqueue.admin.QueueAdminSiteMixin`) registers both.
Nobody may add, change or delete a row here: workers write them. A failure
record can hold secrets in its traceback and message, so a user sees only
the records of models they may view, besides the view permission on the
table itself; and of a model registered on the same site, only the records
of the rows its model admin's ``get_queryset`` gives the user, as the queue
admin's own pages. A heartbeat shows its row in hand on the same terms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.exceptions import NotRegistered
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from ..models import FailureRecord, WorkerHeartbeat
from ..status import now
from .counts import whole_table
from .failures import rows_records, shown_row_ids

if TYPE_CHECKING:
    from collections.abc import Iterable

    from django.contrib.admin import AdminSite
    from django.contrib.admin.views.main import ChangeList
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

    def rows_of(self, request: HttpRequest, content_type: ContentType) -> QuerySet[Any] | None:
        """The rows of `content_type`'s model that `request` may see here:
        its model admin's ``get_queryset`` on this site, or None when it
        has none (then the model's view permission is all there is)."""
        model = content_type.model_class()
        if model is None:
            return None
        try:
            model_admin = self.admin_site.get_model_admin(model)
        except NotRegistered:
            return None
        return model_admin.get_queryset(request)


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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        """The records of the rows the user may see (see the module's docstring)."""
        queryset = super().get_queryset(request)
        shown = Q()
        for content_type in ContentType.objects.filter(pk__in=queryset.order_by().values('content_type')):
            rows = self.rows_of(request, content_type)
            if rows is None or whole_table(rows):
                shown |= Q(content_type=content_type.pk)
            else:
                records = FailureRecord.objects.using(queryset.db).filter(content_type=content_type.pk)
                shown |= Q(pk__in=rows_records(records, rows).values('pk'))
        return queryset.filter(shown) if shown else queryset.none()

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
        'name', 'queue', 'started', 'last_seen', 'state', 'row_in_hand', 'held_since', 'tasks_done', 'failures',
    ]
    list_filter = ['content_type', 'host']
    list_select_related = ['content_type']
    # The row in hand is shown only when the user may see that row.
    fields = [
        'host', 'pid', 'content_type', 'field', 'started', 'last_seen', 'interval', 'row_in_hand',
        'held_since', 'tasks_done', 'failures',
    ]
    readonly_fields = fields  # type: ignore[assignment]  # names alone, no groups of names

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        changelist = super().get_changelist_instance(request)
        self.mark_rows_shown(request, changelist.result_list)
        return changelist

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> WorkerHeartbeat | None:
        beat = super().get_object(request, object_id, from_field)
        if beat is not None:
            self.mark_rows_shown(request, [beat])
        return beat

    def mark_rows_shown(self, request: HttpRequest, beats: Iterable[WorkerHeartbeat]) -> None:
        """Tell each of `beats` whether `request` may see its row in hand
        (``modelqueue_row_shown``): one query per model, for the page."""
        holding: dict[int, list[WorkerHeartbeat]] = {}
        for beat in beats:
            beat.modelqueue_row_shown = False  # type: ignore[attr-defined]  # read by row_in_hand
            if beat.object_id:
                holding.setdefault(beat.content_type_id, []).append(beat)
        for group in holding.values():
            rows = self.rows_of(request, group[0].content_type)
            ids = {beat.object_id for beat in group}
            shown = ids if rows is None else shown_row_ids(rows, ids)
            for beat in group:
                beat.modelqueue_row_shown = beat.object_id in shown  # type: ignore[attr-defined]

    @admin.display(description=_('queue'))
    def queue(self, beat: WorkerHeartbeat) -> str:
        return f'{beat.content_type.app_label}.{beat.content_type.model}.{beat.field}'

    @admin.display(description=_('state'))
    def state(self, beat: WorkerHeartbeat) -> _StrOrPromise:
        return _('lost') if beat.is_lost(now()) else _('live')

    @admin.display(description=_('row in hand'))
    def row_in_hand(self, beat: WorkerHeartbeat) -> _StrOrPromise:
        if not beat.object_id:
            return '–'
        if not getattr(beat, 'modelqueue_row_shown', False):
            return _('a row not shown to you')
        return beat.object_id


def register_records(site: AdminSite) -> None:
    """Register both tables on `site`, unless it has them already."""
    for model, model_admin in ((FailureRecord, FailureRecordAdmin), (WorkerHeartbeat, WorkerHeartbeatAdmin)):
        if not site.is_registered(model):
            site.register(model, model_admin)
