"""The admin list filters that select queue rows by state.

Both filters take the query parameter ``<field>_queue`` with a state name as
its value, as in modelqueue 2.2.1 (``?status_queue=waiting``), and take
their title from the field's ``verbose_name``.

Their *Show counts* (Django's facets) are range counts on the status index,
one per choice (see :func:`modelqueue.admin.counts.state_counts`), not
Django's generic ``COUNT(...) FILTER (WHERE id IN (...))`` per choice, which
reads the whole table once for each. With a queue admin's
``queue_estimate_above``, the largest of finished and canceled may be an
estimate, shown as ``≈ 9.0 M``.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.utils.translation import gettext_lazy as _

from .. import ranges
from ..status import ONE_HOUR, State, Status, now
from ..validation import concrete_field
from .counts import request_state_counts
from .display import STATE_LABELS

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin
    from django.contrib.admin.views.main import ChangeList
    from django.db.models import Model, QuerySet
    from django.http import HttpRequest
    from django.utils.functional import _StrOrPromise


def admin_list_filter(field: str) -> type[admin.SimpleListFilter]:
    """Return Django admin list filter for `field` describing model queue.

    For example in appname/admin.py::

        class TaskAdmin(admin.ModelAdmin):
            list_filter = [
                modelqueue.admin_list_filter('status'),
                # ^-- Filter tasks in admin by queue state.
            ]

    The query parameter is ``<field>_queue`` with a state name as its value,
    as in modelqueue 2.2.1: ``?status_queue=waiting``.

    >>> admin_list_filter('status').parameter_name
    'status_queue'

    :param str field: field name
    :returns: Django admin model queue list filter

    """

    class QueueFilter(admin.SimpleListFilter):
        """Django admin ModelQueue list filter."""

        title: _StrOrPromise = field.replace('_', ' ')
        parameter_name = f'{field}_queue'

        #: How long a row may stay working before it counts as stalled.
        timeout = ONE_HOUR

        def __init__(
            self,
            request: HttpRequest,
            params: dict[str, list[str]],
            model: type[Model],
            model_admin: ModelAdmin[Any],
        ) -> None:
            super().__init__(request, params, model, model_admin)
            self.title = concrete_field(model, field).verbose_name
            self.model_admin = model_admin

        def get_facet_queryset(self, changelist: ChangeList) -> dict[str, int]:
            """The count of each choice, by range counts on the status index,
            over the changelist's rows without this filter (as Django's)."""
            rows = changelist.get_queryset(self.request, exclude_parameters=self.expected_parameters())
            estimate_for = getattr(self.model_admin, 'queue_estimate_for', None)
            above = estimate_for(self.request) if estimate_for is not None else None
            counts = request_state_counts(self.request, rows, field, self.timeout, above)
            return {
                f'{index}__c': counts[value]
                for index, (value, _title) in enumerate(self.lookup_choices)
                if value in counts
            }

        def lookups(
            self, request: HttpRequest, model_admin: ModelAdmin[Any]
        ) -> list[tuple[str, _StrOrPromise]]:
            return [(state.name, state.name.capitalize()) for state in Status.states]

        def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
            value = self.value()
            if value is None:
                return queryset
            try:
                state = State.get(value)
            except ValueError as error:
                raise IncorrectLookupParameters(str(error)) from None
            return queryset.filter(ranges.in_states(field, state))

    QueueFilter.__name__ = QueueFilter.__qualname__ = f'{field.title()}QueueFilter'
    return QueueFilter


def queue_list_filter(
    field: str, timeout: dt.timedelta = ONE_HOUR
) -> type[admin.SimpleListFilter]:
    """Return the state filter of `field` with due, scheduled and stalled rows.

    The filter of :func:`admin_list_filter` (same query parameter, same
    values) plus three more: ``due`` (waiting, priority at or before now),
    ``scheduled`` (waiting, priority in the future) and ``stalled``
    (working for longer than `timeout`).

    >>> QueueFilter = queue_list_filter('status')
    >>> QueueFilter.parameter_name
    'status_queue'
    >>> [value for value, label in QueueFilter.lookups(None, None, None)]
    ['created', 'waiting', 'due', 'scheduled', 'working', 'stalled', 'finished', 'canceled']

    :param str field: field name
    :param timedelta timeout: how long a row may stay working
    :returns: Django admin list filter
    """
    extra = {
        'due': (_('– due now'), lambda: ranges.due(field, now())),
        'scheduled': (_('– scheduled'), lambda: ranges.scheduled(field, now())),
        'stalled': (_('– stalled'), lambda: ranges.stalled(field, now(), timeout)),
    }
    after = {'waiting': ['due', 'scheduled'], 'working': ['stalled']}

    class DetailedQueueFilter(admin_list_filter(field)):  # type: ignore[misc]  # a class made above
        def lookups(
            self, request: HttpRequest, model_admin: ModelAdmin[Any]
        ) -> list[tuple[str, _StrOrPromise]]:
            choices: list[tuple[str, _StrOrPromise]] = []
            for state in Status.states:
                choices.append((state.name, STATE_LABELS[state.name].capitalize()))
                choices.extend((name, extra[name][0]) for name in after.get(state.name, ()))
            return choices

        def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
            if self.value() in extra:
                return queryset.filter(extra[self.value()][1]())
            return super().queryset(request, queryset)

    DetailedQueueFilter.timeout = timeout
    DetailedQueueFilter.__name__ = DetailedQueueFilter.__qualname__ = (
        f'{field.title()}DetailedQueueFilter'
    )
    return DetailedQueueFilter
