"""QueueAdminMixin: the operations admin of a model's queue fields.

One line in a project's admin.py::

    @admin.register(Task)
    class TaskAdmin(QueueAdminMixin, admin.ModelAdmin):
        queue_fields = ['status']      # the default

adds, for each queue field: a state filter (with due, scheduled and
stalled), decoded columns (state, when, attempts), bulk actions (requeue,
cancel, reprioritize, reset attempts), retrying every failed row matching
the changelist's filters, requeue and cancel buttons on the change form,
and a dashboard page with its JSON endpoint. Everything the
subclass declares (list_display, list_filter, actions, templates) is kept,
and ``actions = None`` turns every action off, the queue's included.

Under a router that reads the model from a replica, the pages read the
replica and say how far behind it is, falling back to the primary when it
cannot be reached; every write goes to the primary
(:mod:`modelqueue.admin.replica`).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Sequence
from functools import update_wrapper
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IS_FACETS_VAR, IS_POPUP_VAR, TO_FIELD_VAR
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import (
    ALL_VAR,
    ORDER_VAR,
    PAGE_VAR,
    SEARCH_VAR,
    ChangeList,
)
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connections, router
from django.http import (
    Http404,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.template.loader import render_to_string, select_template
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from ..databases import write_database
from ..status import DECODED_PARTS, ONE_HOUR, Status, now
from ..validation import status_field_problem
from . import checks
from .actions import queue_actions
from .changeform import OPENED, RowChangedMeanwhile, fenced_form, opened_token, save_edited
from .changelist import EstimatingPaginator, QueueChangeList, page_count
from .display import STATE_LABELS, column_name, duration_text, status_columns
from .failures import (
    attach_last_errors,
    failure_figures,
    failure_filter,
    history,
    last_error_column,
    worker_figures,
)
from .figures import THROUGHPUT_MINUTES, iso, queue_figures
from .filters import queue_list_filter
from .operations import ROW_OPERATIONS, field_label
from .pauses import pause_view, queue_pauses
from .replica import Reads, reads_for
from .retry_failed import retry_failed_url, retry_failed_view
from .templates import template_names
from .workers import may_control, worker_view

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite, ModelAdmin
    from django.core.checks import CheckMessage
    from django.db.models import Field, Model, QuerySet
    from django.forms import Field as FormField
    from django.forms import ModelForm
    from django.http import HttpRequest
    from django.urls import URLPattern

    from .actions import AdminAction
    from .operations import Leave, Operation

    # The mixin is used with ModelAdmin (its methods call ModelAdmin's);
    # type checkers see it as one, at run time it adds no base.
    _ModelAdmin = ModelAdmin[Any]
else:
    _ModelAdmin = object

#: The figures the dashboard's JSON leaves out: lists of user data (messages,
#: host names) that the activity view renders, escaped, instead.
ACTIVITY_LISTS = ('failure_groups', 'workers', 'stalled_rows')

#: The filter values of each queue field that the dashboard links to.
FILTER_VALUES = [*(state.name for state in Status.states), 'due', 'scheduled', 'stalled']


def _check_status(value: Any) -> None:
    try:
        Status(value)
    except ValueError as error:
        raise ValidationError(str(error), code='invalid_status') from None


class QueueAdminMixin(_ModelAdmin):
    """Operations admin for the queue fields of a model.

    Options:

    - ``queue_fields``: the status fields to operate (default ``['status']``)
    - ``queue_timeout``: how long a row may stay working before the
      dashboard and the filter call it stalled (default one hour, as run())
    - ``queue_refresh_seconds``: how often the dashboard refreshes (5)
    - ``queue_estimate_above``: on PostgreSQL, counts of at least this many
      rows (finished or canceled rows on the dashboard and in the filter's
      *Show counts*, the changelist's total) are estimated from the
      planner's statistics and shown as ``≈ 9.0 M``; None counts every row
      (default 1,000,000; see :mod:`modelqueue.admin.counts`)
    - ``queue_rows_to_leave(field, operation)``: rows an operation must
      leave as they are, with why (the Tasks admin: a task whose unique key
      another READY or RUNNING task holds); none by default
    - ``get_queue_changeable(request, queryset)``: define it, beside an
      overridden ``has_change_permission``, to give the rows of a
      selection the user may change as a queryset; the bulk actions then
      check a selection with one query instead of asking about each row
    - ``queue_dashboard_template``, ``queue_cancel_confirmation_template``,
      ``queue_reprioritize_template``, ``queue_retry_failed_template``: a
      template name (or list) for a page;
      by default ``modelqueue/<app>/<model>/<page>.html``, then
      ``modelqueue/<app>/<page>.html``, then ``modelqueue/<page>.html``

    Every page, panel and figure about rows (the dashboard's failures and
    workers, the last error column, the failures filter, the change form's
    history) shows only the rows ``get_queryset(request)`` gives.

    The query parameter of each state filter is ``<field>_queue``, as with
    :func:`modelqueue.admin_list_filter`. Misconfiguration is reported by
    Django's system checks (ids ``modelqueue.E001`` to ``modelqueue.E003``).
    """

    queue_fields: list[str] | tuple[str, ...] = ['status']
    queue_timeout: dt.timedelta = ONE_HOUR
    queue_refresh_seconds: float = 5
    queue_estimate_above: int | None = 1_000_000
    queue_dashboard_template: str | Sequence[str] | None = None
    queue_cancel_confirmation_template: str | Sequence[str] | None = None
    queue_reprioritize_template: str | Sequence[str] | None = None
    queue_retry_failed_template: str | Sequence[str] | None = None

    def __init__(self, model: type[Model], admin_site: AdminSite) -> None:
        super().__init__(model, admin_site)
        several = len(self.valid_queue_fields) > 1
        for field in self.valid_queue_fields:
            for name, column in status_columns(model, field, several).items():
                setattr(self, name, column)
            setattr(self, column_name(field, 'last_error'), last_error_column(field, several))
        self.queue_base_change_list_template = self.change_list_template
        # Per instance, after the subclass's own: Django's admin reads them so.
        self.change_list_template = 'modelqueue/change_list.html'  # type: ignore[misc]
        self.queue_base_change_form_template = self.change_form_template
        self.change_form_template = 'modelqueue/change_form.html'  # type: ignore[misc]

    @property
    def valid_queue_fields(self) -> list[str]:
        """The queue fields that are status fields of the model.

        The others are reported by ``check()``; they are left out here so
        that a misconfigured admin still loads and the checks can speak.
        """
        if isinstance(self.queue_fields, str):
            return []
        return [
            field
            for field in self.queue_fields or ()
            if isinstance(field, str) and status_field_problem(self.model, field) is None
        ]

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        """Django's admin checks, and those of the queue options."""
        return [*super().check(**kwargs), *checks.check_queue_admin(self)]

    # Actions.

    def queue_rows_to_leave(self, field: str, operation: Operation) -> Leave | None:
        """The rows `operation` on `field` must leave as they are although in
        its states, as a callable (see :data:`modelqueue.admin.operations.Leave`),
        or None (the default): every row in its states changes. The Tasks
        admin leaves a task whose unique key another READY task holds."""
        return None

    def get_queue_actions(self, request: HttpRequest) -> list[AdminAction]:
        """The queue actions of every queue field, before permissions."""
        several = len(self.valid_queue_fields) > 1
        return [
            action
            for field in self.valid_queue_fields
            for action in queue_actions(field, several)
        ]

    def get_actions(
        self, request: HttpRequest, action_location: Any = None
    ) -> dict[str, tuple[Callable[..., Any], str, str] | None]:
        """The declared actions, then the queue actions the user may run.

        Like Django's own, this returns no action at all when ``actions`` is
        None or the page is a popup.
        """
        location = {} if action_location is None else {'action_location': action_location}
        actions = super().get_actions(request, **location)
        if self.actions is None or IS_POPUP_VAR in request.GET:
            return actions
        for action in self.get_queue_actions(request):
            if not self._may_run(request, action):
                continue
            entry = self.get_action(action, *location.values())
            if entry is not None:
                actions.setdefault(getattr(entry, 'name', None) or entry[1], entry)
        return actions

    def _may_run(self, request: HttpRequest, action: Callable[..., Any]) -> bool:
        permissions = getattr(action, 'allowed_permissions', ())
        return not permissions or any(
            getattr(self, f'has_{permission}_permission')(request) for permission in permissions
        )

    def response_action(
        self, request: HttpRequest, queryset: QuerySet[Any], **kwargs: Any
    ) -> HttpResponse | None:
        """Refuse a selection that holds no primary keys, with a message.

        The changelist only ever posts primary keys; a forged value (not a
        key, or an integer beyond the key column's range) would otherwise
        reach ``pk__in`` and end in a server error.
        """
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        if request.POST.get('select_across') != '1' and not all(
            self.is_row_id(value) for value in selected
        ):
            self.message_user(
                request,
                _('The selection %(selection)s is not a list of row ids.')
                % {'selection': selected},
                messages.ERROR,
            )
            return None
        return super().response_action(request, queryset, **kwargs)

    def is_row_id(self, value: str) -> bool:
        """Whether `value` can be a primary key of the model: the right type,
        and within the range of an integer key column."""
        pk = self.model._meta.pk
        try:
            key = pk.to_python(value)
        except ValidationError:
            return False
        if isinstance(key, int):
            try:
                low, high = connections[router.db_for_read(self.model)].ops.integer_field_range(
                    pk.get_internal_type()
                )
            except KeyError:  # not an integer column of a known size
                return True
            return (low is None or low <= key) and (high is None or key <= high)
        return True

    # Where the pages read, and where writes go.

    def queue_reads(self, request: HttpRequest) -> Reads:
        """Where `request`'s pages read this model: the router's read
        database, or the primary when a replica cannot be reached (asked
        once per request; see :mod:`modelqueue.admin.replica`)."""
        return reads_for(request, self.model)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        """The model admin's rows, read from the primary for this request
        when the router's replica cannot be reached."""
        queryset = super().get_queryset(request)
        reads = self.queue_reads(request)
        return queryset.using(reads.alias) if reads.fell_back else queryset

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Model | None:
        """The row of the change form, its buttons, its history and its
        deletion, read where it is written: a replica behind the primary
        would show (and save from) an older copy."""
        queryset = self.get_queryset(request)
        queryset = queryset.using(write_database(queryset))
        model = queryset.model
        field = model._meta.pk if from_field is None else model._meta.get_field(from_field)
        try:
            key = field.to_python(object_id)
            return queryset.get(**{field.name: key})
        except (model.DoesNotExist, ValidationError, ValueError):
            return None

    # Columns, filters and the change form.

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        columns = [
            column_name(field, part)
            for field in self.valid_queue_fields
            for part in (*DECODED_PARTS, 'last_error')
        ]
        declared = list(super().get_list_display(request))
        return [*declared, *(column for column in columns if column not in declared)]

    def get_list_filter(self, request: HttpRequest) -> list[Any]:
        filters = list(super().get_list_filter(request))
        for field in self.valid_queue_fields:
            detailed = queue_list_filter(field, self.queue_timeout)
            for index, declared in enumerate(filters):
                if getattr(declared, 'parameter_name', None) == detailed.parameter_name:
                    filters[index] = detailed  # the same filter, with more choices
                    break
            else:
                filters.append(detailed)
            filters.append(failure_filter(field))
        return filters

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        """The changelist, its page's rows given their last failure (one
        query per queue field, whatever the page size)."""
        changelist = super().get_changelist_instance(request)
        attach_last_errors(self.model, self.valid_queue_fields, changelist.result_list)
        return changelist

    def get_ordering(self, request: HttpRequest) -> list[Any] | tuple[Any, ...]:
        """The declared ordering; without one, a changelist filtered to a
        state of a queue field is ordered by that field: the most recently
        finished or canceled rows first, the rows next to run (or working
        the longest) first for the other states. The status index then
        gives the page without reading the rows of other states, where
        Django's default (newest id first) would read past them all."""
        ordering = super().get_ordering(request)
        if ordering or self.model._meta.ordering:
            return ordering
        for field in self.valid_queue_fields:
            value = request.GET.get(f'{field}_queue')
            if value in FILTER_VALUES:
                return [f'-{field}' if value in ('finished', 'canceled') else field]
        return ordering

    def queue_estimate_for(self, request: HttpRequest) -> int | None:
        """`queue_estimate_above` when the changelist of `request` selects
        rows by the queue's state filters alone (no search, no other filter),
        which the planner's statistics answer well; otherwise None."""
        if self.queue_estimate_above is None or request.GET.get(SEARCH_VAR):
            return None
        allowed = {ORDER_VAR, PAGE_VAR, IS_FACETS_VAR, ALL_VAR, IS_POPUP_VAR, TO_FIELD_VAR}
        allowed.update(f'{field}_queue' for field in self.valid_queue_fields)
        return self.queue_estimate_above if set(request.GET) <= allowed else None

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Any],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> Paginator[Any]:
        """A paginator that estimates huge counts (see
        :func:`modelqueue.admin.changelist.page_count`)."""
        if self.paginator is not Paginator:  # the subclass chose its own
            return super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)
        return EstimatingPaginator(
            queryset, per_page, orphans, allow_empty_first_page,
            counter=lambda: page_count(self, request, queryset),
        )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        """The changelist that estimates the full result count on huge tables."""
        changelist = super().get_changelist(request, **kwargs)
        return QueueChangeList if changelist is ChangeList else changelist

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None) -> list[str]:
        declared = list(super().get_readonly_fields(request, obj))
        decoded = [column_name(field, 'decoded') for field in self.valid_queue_fields]
        return [*declared, *(name for name in decoded if name not in declared)]

    def get_fields(self, request: HttpRequest, obj: Model | None = None) -> list[Any]:
        fields = list(super().get_fields(request, obj))
        if self.fields is None:
            decoded = {column_name(field, 'decoded') for field in self.valid_queue_fields}
            fields = [name for name in fields if name not in decoded]
        return fields

    def get_fieldsets(self, request: HttpRequest, obj: Model | None = None) -> list[Any]:
        fieldsets = copy.deepcopy(list(super().get_fieldsets(request, obj)))
        present: set[str] = set()
        for _name, options in fieldsets:
            for entry in options.get('fields', ()):
                present.update(entry if isinstance(entry, (list, tuple)) else [entry])
        for _name, options in fieldsets:
            fields = list(options.get('fields', ()))
            for field in self.valid_queue_fields:
                decoded = column_name(field, 'decoded')
                if field in fields and decoded not in present:
                    fields.insert(fields.index(field) + 1, decoded)
                    present.add(decoded)
            options['fields'] = fields
        return fieldsets

    def formfield_for_dbfield(
        self, db_field: Field[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> FormField | None:
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name in self.valid_queue_fields and formfield is not None:
            formfield.validators.append(_check_status)
            formfield.widget.attrs['class'] = 'modelqueue-status-input'
            formfield.help_text = _(
                '19 digits: the state (1 created, 2 waiting, 3 working, 4 finished,'
                ' 5 canceled), the priority (a UTC timestamp yyyymmddHHMMSSmmm or an'
                ' integer) and the attempts digit.'
            )
        return formfield

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial: dict[str, Any] = super().get_changeform_initial_data(request)
        for field in self.valid_queue_fields:
            if field not in initial and not self.model._meta.get_field(field).has_default():
                initial[field] = Status.waiting()
        return initial

    @property
    def media(self) -> forms.Media:
        return super().media + forms.Media(css={'all': ['modelqueue/admin.css']})

    # The changelist and change form: ours extend what the subclass (or
    # Django) would use.

    def _base_template(self, declared: Any, page: str) -> Any:
        if declared:
            return select_template([declared] if isinstance(declared, str) else declared)
        opts = self.model._meta
        return select_template(
            [
                f'admin/{opts.app_label}/{opts.model_name}/{page}.html',
                f'admin/{opts.app_label}/{page}.html',
                f'admin/{page}.html',
            ]
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {
            'modelqueue_base_template': self._base_template(
                self.queue_base_change_list_template, 'change_list'
            ),
            'modelqueue_dashboard_url': self.queue_url('dashboard'),
            'modelqueue_reads': self.queue_reads(request),
            'modelqueue_pauses': queue_pauses(self, request),
            'modelqueue_retry_failed': [
                {'label': field_label(self.model, field), 'url': url}
                for field in self.valid_queue_fields
                if (url := retry_failed_url(self, request, field)) is not None
            ],
            'modelqueue_several_fields': len(self.valid_queue_fields) > 1,
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)

    def get_form(
        self, request: HttpRequest, obj: Model | None = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[Any]]:
        """The model form; for an existing row, one that saves only what the
        operator changed (see :mod:`modelqueue.admin.changeform`)."""
        form = super().get_form(request, obj, change=change, **kwargs)
        return fenced_form(form) if obj is not None else form

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = '',
        obj: Model | None = None,
    ) -> HttpResponse:
        adminform = context.get('adminform')
        if obj is not None and obj.pk is not None and adminform is not None:
            posted = request.POST.get(OPENED) if request.method == 'POST' else None
            context['modelqueue_opened'] = posted or opened_token(obj, adminform.form)
        if obj is not None and obj.pk is not None:
            # The row came through get_object(), so through get_queryset().
            reads = self.queue_reads(request).alias
            context['modelqueue_failure_history'] = [
                {'label': field_label(self.model, field), 'records': history(self.model, field, obj.pk, reads)}
                for field in self.valid_queue_fields
            ]
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request: HttpRequest, obj: Model, form: Any, change: Any) -> None:
        if change and hasattr(form, 'modelqueue_opened'):
            save_edited(obj, form)
        else:
            super().save_model(request, obj, form, change)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = '',
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return self._queue_changeform_view(request, object_id, form_url, extra_context)
        except RowChangedMeanwhile as error:  # rolled back: nothing was saved or logged
            self.message_user(request, str(error), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def _queue_changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None,
        form_url: str,
        extra_context: dict[str, Any] | None,
    ) -> HttpResponse:
        context = {
            'modelqueue_base_template': self._base_template(
                self.queue_base_change_form_template, 'change_form'
            ),
            **(extra_context or {}),
        }
        if object_id is not None:
            context['modelqueue_row_actions'] = [
                {
                    'label': field_label(self.model, field),
                    'requeue_url': self.queue_url('queue_row', object_id, field, 'requeue'),
                    'cancel_url': self.queue_url('queue_row', object_id, field, 'cancel'),
                }
                for field in self.valid_queue_fields
            ]

        return super().changeform_view(request, object_id, form_url, context)

    # Pages of our own.

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        name = f'{opts.app_label}_{opts.model_name}'

        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            def wrapper(*args: Any, **kwargs: Any) -> HttpResponse:
                return self.admin_site.admin_view(view)(*args, **kwargs)

            wrapper.model_admin = self  # type: ignore[attr-defined]  # as Django's own wrap()
            return update_wrapper(wrapper, view)

        urls = [
            path('dashboard/', wrap(self.dashboard_view), name=f'{name}_dashboard'),
            path(
                'dashboard/data/',
                wrap(self.dashboard_data_view),
                name=f'{name}_dashboard_data',
            ),
            path(
                'dashboard/activity/',
                wrap(self.dashboard_activity_view),
                name=f'{name}_dashboard_activity',
            ),
            path('pause/<str:field>/', wrap(self.queue_pause_view), name=f'{name}_queue_pause'),
            path('resume/<str:field>/', wrap(self.queue_resume_view), name=f'{name}_queue_resume'),
            path(
                'retry-failed/<str:field>/',
                wrap(self.queue_retry_failed_view),
                name=f'{name}_queue_retry_failed',
            ),
            path(
                'workers/<str:field>/<int:pk>/<str:operation>/',
                wrap(self.queue_worker_view),
                name=f'{name}_queue_worker',
            ),
            path(
                '<path:object_id>/queue/<str:field>/<str:operation>/',
                wrap(self.queue_row_view),
                name=f'{name}_queue_row',
            ),
        ]
        return urls + super().get_urls()

    def queue_url(self, page: str, *args: Any) -> str:
        """The URL of this model admin's `page` (changelist, dashboard, ...)."""
        opts = self.model._meta
        return reverse(
            f'admin:{opts.app_label}_{opts.model_name}_{page}',
            args=args,
            current_app=self.admin_site.name,
        )

    def get_queue_figures(
        self, request: HttpRequest, current: dt.datetime | None = None
    ) -> list[dict[str, Any]]:
        """The figures of every queue field, over the rows `request` may see."""
        queryset = self.get_queryset(request)
        current = now() if current is None else current
        changelist = self.queue_url('changelist')
        lag = self.queue_reads(request).lag
        queues = []
        for field in self.valid_queue_fields:
            figures = queue_figures(
                queryset, field, self.queue_timeout, current, self.queue_estimate_above
            )
            failures = failure_figures(queryset, field, current, changelist)
            figures['throughput']['failed'] = failures.pop('failed')
            figures.update(failures)
            figures.update(
                worker_figures(self, queryset, field, current, self.queue_timeout, lag, may_control(self, request))
            )
            figures['label'] = field_label(self.model, field)
            figures['filter_urls'] = {
                value: f'{changelist}?{field}_queue={value}' for value in FILTER_VALUES
            }
            figures['filter_urls']['failed_last_hour'] = f'{changelist}?{field}_failures=last_hour'
            queues.append(figures)
        return queues

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """The queue dashboard of this model: figures, charts, live refresh."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method not in ('GET', 'HEAD'):
            return HttpResponseNotAllowed(['GET', 'HEAD'])
        opts = self.model._meta
        queues = self.get_queue_figures(request)
        paused = queue_pauses(self, request)
        config = {
            'dataUrl': self.queue_url('dashboard_data'),
            'activityUrl': self.queue_url('dashboard_activity'),
            'refreshSeconds': self.queue_refresh_seconds,
            'queues': queues,
            'stateLabels': {name: str(label) for name, label in STATE_LABELS.items()},
            'texts': {
                'finished': str(_('finished')),
                'canceled': str(_('canceled')),
                'failedSeries': str(_('failed attempts')),
                'rows': str(_('rows')),
                'none': str(_('none')),
                'updated': str(_('Updated')),
                'failed': str(_('Refresh failed; retrying')),
            },
        }
        context = {
            **self.admin_site.each_context(request),
            'title': _('Queue dashboard: %(name)s') % {'name': capfirst(opts.verbose_name_plural)},
            'subtitle': None,
            'opts': opts,
            'queues': [
                {
                    **figures,
                    'tally_rows': [
                        {
                            'name': name,
                            'label': STATE_LABELS[name],
                            'count': count,
                            'url': figures['filter_urls'][name],
                        }
                        for name, count in figures['tally'].items()
                    ],
                    'pause': pause,
                }
                for figures, pause in zip(queues, paused)
            ],
            'modelqueue_pauses': paused,
            'config': config,
            'minutes': THROUGHPUT_MINUTES,
            'timeout': duration_text(self.queue_timeout),
            'changelist_url': self.queue_url('changelist'),
            'reads': self.queue_reads(request),
        }
        request.current_app = self.admin_site.name
        templates = template_names(opts, self.queue_dashboard_template, 'dashboard')
        return TemplateResponse(request, templates, context)

    def dashboard_data_view(self, request: HttpRequest) -> HttpResponse:
        """The dashboard's figures as JSON; query parameters are ignored."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method not in ('GET', 'HEAD'):
            return HttpResponseNotAllowed(['GET', 'HEAD'])
        current = now()
        queues = self.get_queue_figures(request, current)
        for figures in queues:  # these come as HTML, from dashboard_activity_view
            for name in ACTIVITY_LISTS:
                figures.pop(name)
        reads = self.queue_reads(request).as_json()
        return JsonResponse({'generated': iso(current), 'queues': queues, 'reads': reads})

    def dashboard_activity_view(self, request: HttpRequest) -> HttpResponse:
        """The dashboard's failures, workers and stalled rows as HTML, one
        ``[data-activity]`` element per queue field, which the dashboard's
        script swaps in on each refresh (rendered, so escaped, here)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method not in ('GET', 'HEAD'):
            return HttpResponseNotAllowed(['GET', 'HEAD'])
        current = now()
        queryset = self.get_queryset(request)
        changelist = self.queue_url('changelist')
        lag = self.queue_reads(request).lag
        fragments = []
        for field in self.valid_queue_fields:
            queue = {
                'field': field,
                **failure_figures(queryset, field, current, changelist),
                **worker_figures(
                    self, queryset, field, current, self.queue_timeout, lag, may_control(self, request)
                ),
            }
            fragments.append(
                render_to_string('modelqueue/includes/queue_activity.html', {'queue': queue}, request)
            )
        return HttpResponse(''.join(fragments))

    def queue_pause_view(self, request: HttpRequest, field: str) -> HttpResponse:
        """Pause the queue `field`: its confirmation (GET) and the pause (POST);
        see :mod:`modelqueue.admin.pauses`."""
        return pause_view(self, request, field, 'pause')

    def queue_resume_view(self, request: HttpRequest, field: str) -> HttpResponse:
        """Resume the queue `field`, as :meth:`queue_pause_view` pauses it."""
        return pause_view(self, request, field, 'resume')

    def queue_retry_failed_view(self, request: HttpRequest, field: str) -> HttpResponse:
        """Retry every failed row of the queue `field` that matches the
        changelist's filters: its confirmation (GET) and the retry (POST);
        see :mod:`modelqueue.admin.retry_failed`."""
        return retry_failed_view(self, request, field)

    def queue_worker_view(self, request: HttpRequest, field: str, pk: int, operation: str) -> HttpResponse:
        """Quiet or stop a live worker of the queue `field`, or rescue a lost
        one's rows: its confirmation (GET) and the operation (POST); see
        :mod:`modelqueue.admin.workers`."""
        return worker_view(self, request, field, pk, operation)

    def queue_row_view(
        self, request: HttpRequest, object_id: str, field: str, operation: str
    ) -> HttpResponse:
        """Requeue or cancel one row from its change form (POST only).

        The change permission is checked before the row is looked up, so a
        user without it cannot tell which ids exist (403 for every id).
        """
        if request.method != 'POST':
            return HttpResponseNotAllowed(['POST'])
        if not self.has_change_permission(request):
            raise PermissionDenied
        if field not in self.valid_queue_fields or operation not in ROW_OPERATIONS:
            raise Http404(f'no queue operation {operation!r} on field {field!r}')
        object_id = unquote(object_id)
        obj = self.get_object(request, object_id) if self.is_row_id(object_id) else None
        if obj is None:
            raise Http404(f'no {self.model._meta.verbose_name} with id {object_id!r}')
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        row = self.get_queryset(request).filter(pk=obj.pk)
        ROW_OPERATIONS[operation].run(self, request, row, field)
        return HttpResponseRedirect(self.queue_url('change', obj.pk))
