"""The queue changelist: its counts stay fast on a table of millions of rows.

Django's changelist counts the filtered rows (for the paginator) and, with
``show_full_result_count``, the whole table: two ``COUNT`` that read every
row on a queue with a long history. Here, on PostgreSQL, a count the
planner expects to be at least the model admin's ``queue_estimate_above``
is an :class:`~modelqueue.admin.counts.Estimate`, shown as ``≈ 9.0 M``
wherever Django prints it ("≈ 9.0 M tasks", "Select all ≈ 9.0 M tasks",
"(≈ 10.0 M total)"). Only the pages whose rows are chosen by status ranges
alone (no search, no filter but the queue's state filters) are estimated:
the planner's statistics answer those well, and guess for anything else.

The page links follow the estimate, so the last page may be empty or the
rows past it reachable only by a narrower filter; the rows themselves are
always exact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.utils.functional import cached_property

from ..status import State
from .counts import count_rows, request_state_counts

if TYPE_CHECKING:
    from django.db.models import QuerySet
    from django.http import HttpRequest

    from .protocol import QueueModelAdmin


class EstimatingPaginator(Paginator):
    """A paginator whose count is `counter()`, which may be an estimate."""

    def __init__(
        self,
        object_list: QuerySet[Any],
        per_page: int,
        *args: Any,
        counter: Callable[[], int],
        **kwargs: Any,
    ) -> None:
        super().__init__(object_list, per_page, *args, **kwargs)
        self.counter = counter

    @cached_property
    def count(self) -> int:
        return self.counter()


def page_count(model_admin: QueueModelAdmin, request: HttpRequest, queryset: QuerySet[Any]) -> int:
    """The number of rows of the changelist `queryset` of `request`.

    Unfiltered: the sum of the queue's state counters where installed,
    else the planner's estimate of the table from ``queue_estimate_above``
    rows on. Filtered to finished or canceled by
    one queue field's state filter: that state's count as the dashboard
    gives it (:func:`~modelqueue.admin.counts.state_counts`, estimated from
    the table's size less the other states' exact counts), so both pages
    show the same figure. Anything else is counted.
    """
    above = model_admin.queue_estimate_for(request)
    if above is None:
        return queryset.count()
    filtered = [
        (field, request.GET[f'{field}_queue'])
        for field in model_admin.valid_queue_fields
        if f'{field}_queue' in request.GET
    ]
    if not filtered:
        return count_rows(queryset, above, model_admin.valid_queue_fields)
    if len(filtered) == 1 and filtered[0][1] in (State.finished.name, State.canceled.name):
        field, value = filtered[0]
        rows = model_admin.get_queryset(request)
        return request_state_counts(request, rows, field, model_admin.queue_timeout, above)[value]
    return queryset.count()


class _Counted:
    """A stand-in for the changelist's root queryset, whose count is known."""

    def __init__(self, count: int) -> None:
        self._count = count

    def count(self) -> int:
        return self._count


class QueueChangeList(ChangeList):
    """Django's changelist, with the full result count estimated like the
    paginator's (see the module's docstring). The full count is of every
    row the model admin's queryset gives, whatever the page's filters, so
    the planner always answers it well."""

    def get_results(self, request: HttpRequest) -> None:
        model_admin = cast('QueueModelAdmin', self.model_admin)  # a QueueAdminMixin's changelist
        above = model_admin.queue_estimate_above
        if above is None or not self.model_admin.show_full_result_count:
            return super().get_results(request)
        root = self.root_queryset
        # Django reads only the count of the root queryset here.
        self.root_queryset = _Counted(  # type: ignore[assignment]
            count_rows(root, above, model_admin.valid_queue_fields)
        )
        try:
            return super().get_results(request)
        finally:
            self.root_queryset = root
