"""The queries behind the queue dashboard: tally, backlog, stalled, throughput.

Every figure is a range count on the status column (see
:mod:`modelqueue.ranges`), so its index answers it, with no Python loop over
rows. Working rows carry the time they were claimed as their priority;
finished and canceled rows carry the time they were written; waiting rows
carry the time they become due. A plain integer priority (smaller than every
timestamp) counts as due, but has no age.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from django.db.models import Count, Min, Q

from .. import counters, ranges
from ..expressions import to_minute
from ..status import (
    ONE_HOUR,
    State,
    Status,
    datetime_to_priority,
    next_timestamp,
    now,
    priority_to_datetime,
)
from .counts import is_estimate, state_counts

if TYPE_CHECKING:
    from collections.abc import Iterable

    from django.db.models import QuerySet

#: Minutes of throughput the dashboard shows.
THROUGHPUT_MINUTES = 60
# Rows written this long after the figures' `current` still count (last minute).
LATE_WRITES = dt.timedelta(minutes=1)


def backlog(queryset: QuerySet[Any], field: str, current: dt.datetime) -> tuple[int, dt.datetime | None]:
    """Return the number of waiting rows due at `current`, and the oldest one.

    The count includes plain integer priorities; the oldest is the earliest
    due timestamp (an aware datetime), or None when no timestamped row is due.
    """
    due = queryset.filter(ranges.due(field, current)).count()
    return due, oldest_due(queryset, field, current)


#: How many integer priorities that look like timestamps the oldest due row
#: may skip before the dashboard gives up on its age.
SKIPS = 16


def oldest_due(queryset: QuerySet[Any], field: str, current: dt.datetime) -> dt.datetime | None:
    """The earliest due timestamp (an aware datetime), or None.

    An integer priority may fall inside the range of timestamps without
    being one (``20260000000000000``); each such value is skipped by asking
    again from the next real timestamp, one indexed MIN at a time.
    """
    since = ranges.FIRST_TIMESTAMP
    for _ in range(SKIPS):
        oldest = (
            queryset.filter(ranges.due_with_timestamp(field, current, since))
            .order_by()
            .aggregate(oldest=Min(field))['oldest']
        )
        if oldest is None:
            return None
        priority = Status(oldest).priority
        when = priority_to_datetime(priority)
        if when is not None:
            return when
        following = next_timestamp(priority)
        if following is None:
            return None
        since = following
    return None


def stalled(
    queryset: QuerySet[Any], field: str, current: dt.datetime, timeout: dt.timedelta = ONE_HOUR
) -> int:
    """Count working rows claimed longer than `timeout` before `current`."""
    return queryset.filter(ranges.stalled(field, current, timeout)).count()


def throughput(
    queryset: QuerySet[Any],
    field: str,
    current: dt.datetime,
    minutes: int = THROUGHPUT_MINUTES,
    from_counters: bool = False,
) -> tuple[list[dt.datetime], list[int], list[int]]:
    """Return rows finished and canceled per minute over the last `minutes`.

    One query: the finished and canceled rows written since the start of the
    first minute, grouped by their status with seconds, milliseconds and
    attempts cut off (exact integer arithmetic, no dates in SQL). A row
    written after `current` while the figures were being read, up to the end
    of the minute after it, counts in the last minute, so throughput never
    lags the tally taken beside it. With `from_counters` (the queue's state
    counters are installed and answer for `queryset`), the same figures come
    from the counters' minutes (:func:`modelqueue.counters.minute_sums`).

    :returns: (list of minute datetimes, finished counts, canceled counts)
    """
    last = current.replace(second=0, microsecond=0)
    first = last - dt.timedelta(minutes=minutes - 1)
    until = last + LATE_WRITES + dt.timedelta(seconds=59, microseconds=999_000)
    rows: Iterable[tuple[int, int]]
    if from_counters:
        rows = [
            (bucket * counters.MINUTE, number)
            for state in (State.finished, State.canceled)
            for bucket, number in counters.minute_sums(
                queryset, field, state,
                int(Status.combine(state, first, 0)) // counters.MINUTE,
                int(Status.combine(state, until, 0)) // counters.MINUTE,
            ).items()
        ]
    else:
        written = Q()
        for state in (State.finished, State.canceled):
            written |= ranges.written(field, state, first, until)
        rows = (
            queryset.filter(written)
            .order_by()
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


def queue_figures(
    queryset: QuerySet[Any],
    field: str,
    timeout: dt.timedelta = ONE_HOUR,
    current: dt.datetime | None = None,
    estimate_above: int | None = None,
) -> dict[str, Any]:
    """Return the dashboard's figures for the queue `field` of `queryset`.

    A JSON-ready mapping: ``tally`` (state name to count), ``tally_text``
    (state name to the count as shown: ``≈ 9.0 M`` when estimated),
    ``estimated`` (the names of the estimated states; see
    :func:`modelqueue.admin.counts.state_counts` and `estimate_above`), ``due``,
    ``scheduled``, ``stalled``, ``oldest_due`` (ISO 8601 UTC or None),
    ``latency_seconds`` (age of the oldest due row, or None),
    ``throughput`` (``minutes``, ``finished``, ``canceled``: one entry per
    minute of the last hour), ``finished_last_hour`` and
    ``canceled_last_hour``.
    """
    current = now() if current is None else current
    counted = state_counts(queryset, field, current, timeout, estimate_above)
    counts = {state.name: counted[state.name] for state in Status.states}
    oldest = oldest_due(queryset, field, current)
    minutes, finished, canceled = throughput(queryset, field, current, from_counters=counted.from_counters)
    latency = None
    if oldest is not None:
        latency = max(0, int((current - oldest).total_seconds()))
    return {
        'field': field,
        'tally': counts,
        'tally_text': {name: str(count) for name, count in counts.items()},
        'estimated': [name for name, count in counts.items() if is_estimate(count)],
        'due': counted['due'],
        'scheduled': counted['scheduled'],
        'stalled': counted['stalled'],
        'oldest_due': None if oldest is None else iso(oldest),
        'latency_seconds': latency,
        'throughput': {
            'minutes': [iso(minute) for minute in minutes],
            'finished': finished,
            'canceled': canceled,
        },
        'finished_last_hour': sum(finished),
        'canceled_last_hour': sum(canceled),
    }


def iso(value: dt.datetime) -> str:
    """`value` as ISO 8601 in UTC, with a ``Z``.

    >>> iso(dt.datetime(2030, 1, 1, 12, tzinfo=dt.timezone.utc))
    '2030-01-01T12:00:00Z'
    """
    return value.astimezone(dt.timezone.utc).isoformat().replace('+00:00', 'Z')
