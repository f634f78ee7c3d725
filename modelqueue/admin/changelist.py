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

from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.utils.functional import cached_property

from .counts import count_rows


class EstimatingPaginator(Paginator):
    """A paginator whose count is estimated from `estimate_above` rows on
    (see :func:`modelqueue.admin.counts.count_rows`); None counts exactly."""

    def __init__(self, object_list, per_page, *args, estimate_above=None, **kwargs):
        super().__init__(object_list, per_page, *args, **kwargs)
        self.estimate_above = estimate_above

    @cached_property
    def count(self):
        return count_rows(self.object_list, self.estimate_above)


class _Counted:
    """A stand-in for the changelist's root queryset, whose count is known."""

    def __init__(self, count):
        self._count = count

    def count(self):
        return self._count


class QueueChangeList(ChangeList):
    """Django's changelist, with the full result count estimated like the
    paginator's (see the module's docstring). The full count is of every
    row the model admin's queryset gives, whatever the page's filters, so
    the planner always answers it well."""

    def get_results(self, request):
        above = self.model_admin.queue_estimate_above
        if above is None or not self.model_admin.show_full_result_count:
            return super().get_results(request)
        root = self.root_queryset
        self.root_queryset = _Counted(count_rows(root, above))
        try:
            return super().get_results(request)
        finally:
            self.root_queryset = root
