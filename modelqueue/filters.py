"""The admin list filter that selects queue rows by state."""

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters

from .status import State, Status


def admin_list_filter(field):
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
    display_name = field[:-6] if field.endswith('status') else field
    display_name = display_name.replace('_', ' ').strip()

    class QueueFilter(admin.SimpleListFilter):
        """Django admin ModelQueue list filter."""

        title = f'{display_name} queue status'.strip()
        parameter_name = f'{field}_queue'

        def lookups(self, request, model_admin):
            return [(state.name, state.name.capitalize()) for state in Status.states]

        def queryset(self, request, queryset):
            value = self.value()
            if value is None:
                return queryset
            try:
                state = State.get(value)
            except ValueError as error:
                raise IncorrectLookupParameters(str(error)) from None
            return queryset.filter(**Status.filter(field, state))

    QueueFilter.__name__ = QueueFilter.__qualname__ = f'{field.title()}QueueFilter'
    return QueueFilter
