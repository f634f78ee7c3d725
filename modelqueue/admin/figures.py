"""The queries behind the queue dashboard: tally, backlog, stalled, throughput.

Every figure is a range query on the status column, so its index answers it
(no Python loop over rows). Working rows carry the time they were claimed as
their priority; finished and canceled rows carry the time ``run()`` wrote
them; waiting rows carry the time they become due. A plain integer priority
(smaller than every timestamp) counts as due, but has no age.
"""

import datetime as dt

from django.db.models import Count, Min, Q

from .expressions import to_minute
from .status import (
    MAX_ATTEMPTS,
    ONE_HOUR,
    State,
    Status,
    datetime_to_priority,
    now,
    priority_to_datetime,
)

#: The smallest timestamp priority (0001-01-01 00:00): every priority below
#: it is a plain integer and runs before every timestamped row.
FIRST_TIMESTAMP = datetime_to_priority(dt.datetime(1, 1, 1))

#: Minutes of throughput the dashboard shows.
THROUGHPUT_MINUTES = 60
# Rows written this long after the figures' `current` still count (last minute).
LATE_WRITES = dt.timedelta(minutes=1)


def _count(queryset, field, low, high):
    return queryset.filter(**{f'{field}__gte': low, f'{field}__lte': high}).count()


def backlog(queryset, field, current):
    """Return waiting rows due at `current`, and the oldest timestamped one.

    ``due`` counts rows whose priority is at or before `current` (plain
    integer priorities included); ``oldest_due`` is the earliest due
    timestamp, or None when no timestamped row is due.

    >>> from tests.testapp.models import Task
    >>> backlog(Task.objects.none(), 'status', now())
    (0, None)
    """
    due_until = Status.waiting(current, MAX_ATTEMPTS)
    due = _count(queryset, field, Status.minimum(State.waiting), due_until)
    oldest = (
        queryset.filter(
            **{
                f'{field}__gte': Status.waiting(FIRST_TIMESTAMP, 0),
                f'{field}__lte': due_until,
            }
        )
        .order_by()
        .aggregate(oldest=Min(field))['oldest']
    )
    oldest_due = None if oldest is None else priority_to_datetime(Status(oldest).priority)
    return due, oldest_due


def stalled(queryset, field, current, timeout=ONE_HOUR):
    """Count working rows claimed longer than `timeout` before `current`.

    >>> from tests.testapp.models import Task
    >>> stalled(Task.objects.none(), 'status', now())
    0
    """
    return _count(
        queryset,
        field,
        Status.minimum(State.working),
        Status.working(current - timeout, MAX_ATTEMPTS),
    )


def throughput(queryset, field, current, minutes=THROUGHPUT_MINUTES):
    """Return rows finished and canceled per minute over the last `minutes`.

    One query: the finished and canceled rows written since the start of the
    first minute, grouped by their status with seconds, milliseconds and
    attempts cut off (exact integer arithmetic, no dates in SQL). A row
    written after `current` while the figures were being read counts in the
    last minute, so throughput never lags the tally taken beside it.

    :returns: (list of minute datetimes, finished counts, canceled counts)

    >>> from tests.testapp.models import Task
    >>> current = dt.datetime(2030, 1, 1, 12, 0, 30, tzinfo=dt.timezone.utc)
    >>> minutes, finished, canceled = throughput(Task.objects.none(), 'status', current)
    >>> minutes[0].isoformat(), minutes[-1].isoformat(), sum(finished)
    ('2030-01-01T11:01:00+00:00', '2030-01-01T12:00:00+00:00', 0)
    """
    last = current.replace(second=0, microsecond=0)
    first = last - dt.timedelta(minutes=minutes - 1)
    written = Q()
    for state in (State.finished, State.canceled):
        written |= Q(
            **{
                f'{field}__gte': Status.combine(state, first, 0),
                f'{field}__lte': Status.combine(state, current + LATE_WRITES, MAX_ATTEMPTS),
            }
        )
    selection = queryset.filter(written)
    rows = (
        selection.order_by()
        .annotate(modelqueue_minute=to_minute(field))
        .values('modelqueue_minute')
        .annotate(rows=Count('pk'))
        .values_list('modelqueue_minute', 'rows')
    )
    slots = [first + dt.timedelta(minutes=index) for index in range(minutes)]
    index_of = {datetime_to_priority(slot): index for index, slot in enumerate(slots)}
    counts = {State.finished: [0] * minutes, State.canceled: [0] * minutes}
    last_priority = datetime_to_priority(last)
    for minute, number in rows:
        status = Status(minute)
        index = index_of.get(min(status.priority, last_priority))
        if index is not None:
            counts[status.state][index] += number
    return slots, counts[State.finished], counts[State.canceled]


def queue_figures(queryset, field, timeout=ONE_HOUR, current=None):
    """Return the dashboard's figures for the queue `field` of `queryset`.

    A JSON-ready mapping: ``tally`` (state name to count), ``due``,
    ``scheduled``, ``stalled``, ``oldest_due`` (ISO 8601 UTC or None),
    ``latency_seconds`` (age of the oldest due row, or None) and
    ``throughput`` (``minutes``, ``finished``, ``canceled``: one entry per
    minute of the last hour).

    >>> from tests.testapp.models import Task
    >>> figures = queue_figures(Task.objects.none(), 'status')
    >>> figures['due'], figures['stalled'], figures['oldest_due']
    (0, 0, None)
    >>> len(figures['throughput']['finished'])
    60
    """
    current = now() if current is None else current
    counts = Status.tally(queryset, field)
    due, oldest_due = backlog(queryset, field, current)
    minutes, finished, canceled = throughput(queryset, field, current)
    latency = None
    if oldest_due is not None:
        latency = max(0, int((current - oldest_due).total_seconds()))
    return {
        'field': field,
        'tally': counts,
        'due': due,
        'scheduled': counts[State.waiting.name] - due,
        'stalled': stalled(queryset, field, current, timeout),
        'oldest_due': None if oldest_due is None else _iso(oldest_due),
        'latency_seconds': latency,
        'throughput': {
            'minutes': [_iso(minute) for minute in minutes],
            'finished': finished,
            'canceled': canceled,
        },
        'finished_last_hour': sum(finished),
        'canceled_last_hour': sum(canceled),
    }


def _iso(value):
    return value.astimezone(dt.timezone.utc).isoformat().replace('+00:00', 'Z')
