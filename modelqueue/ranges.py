"""Every status range as a ``Q``: a state, due, scheduled, stalled, written.

A status sorts by state, then priority, then attempts, so each range below
is one ``BETWEEN`` on the status column, which the column's index answers.
Claims, the timeout reclaim, the PostgreSQL waiter, the admin filter, the
admin actions and the dashboard all select rows through these functions; no
other module writes status bounds by hand.

>>> import datetime as dt
>>> at = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
>>> due('status', at)
<Q: (AND: ('status__gte', 2000000000000000000), ('status__lte', 2203001020304050009))>
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Q

from .status import MAX_ATTEMPTS, State, Status, datetime_to_priority

#: The smallest timestamp priority (0001-01-01 00:00): every priority below
#: it is a plain integer and runs before every timestamped row.
FIRST_TIMESTAMP = datetime_to_priority(dt.datetime(1, 1, 1))


def between(field: str, low: int, high: int) -> Q:
    """Rows whose status in `field` is from `low` through `high`."""
    return Q(**{f'{field}__gte': int(low), f'{field}__lte': int(high)})


def in_states(field: str, *states: State | str | int) -> Q:
    """Rows of `field` in `states`: one range per run of consecutive states.

    A stored value that is not a status (negative, or outside the five
    states) is in no state.

    >>> in_states('status', 'created', 'waiting', 'working')
    <Q: (AND: ('status__gte', 1000000000000000000), ('status__lte', 3999999999999999999))>
    >>> print(in_states('status', 'waiting', 'finished'))  # doctest: +NORMALIZE_WHITESPACE
    (OR: (AND: ('status__gte', 2000000000000000000), ('status__lte', 2999999999999999999)),
         (AND: ('status__gte', 4000000000000000000), ('status__lte', 4999999999999999999)))
    """
    numbers = sorted({int(State.get(state)) for state in states})
    if not numbers:
        raise ValueError('invalid states (): expected one state or more')
    runs = [[numbers[0], numbers[0]]]
    for number in numbers[1:]:
        if number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    found = Q()
    for first, last in runs:
        found |= between(field, Status.minimum(first), Status.maximum(last))
    return found


def last_due(at: dt.datetime) -> Status:
    """The highest status that is due at `at`."""
    return Status.waiting(at, MAX_ATTEMPTS)


def last_stalled(at: dt.datetime, timeout: dt.timedelta) -> Status:
    """The highest status that is stalled at `at` for `timeout`."""
    return Status.working(at - timeout, MAX_ATTEMPTS)


def due(field: str, at: dt.datetime) -> Q:
    """Waiting rows whose priority is at or before `at` (plain integers too)."""
    return between(field, Status.minimum(State.waiting), last_due(at))


def due_with_timestamp(field: str, at: dt.datetime, since: int = FIRST_TIMESTAMP) -> Q:
    """Due rows whose priority is at or after the timestamp `since` (a priority).

    Some integers in that range are not timestamps (see
    :func:`modelqueue.status.next_timestamp`); the caller skips them.
    """
    return between(field, Status.waiting(since, 0), last_due(at))


def scheduled(field: str, at: dt.datetime) -> Q:
    """Waiting rows whose priority is after `at`."""
    return between(field, last_due(at) + 1, Status.maximum(State.waiting))


def stalled(field: str, at: dt.datetime, timeout: dt.timedelta) -> Q:
    """Working rows claimed longer than `timeout` before `at`.

    ``run()`` writes the time of the claim as a working row's priority.
    """
    return between(field, Status.minimum(State.working), last_stalled(at, timeout))


def written(field: str, state: State | str | int, since: dt.datetime, until: dt.datetime) -> Q:
    """Rows moved to `state` (finished or canceled) from `since` through `until`.

    ``run()`` and the operators' actions write the time of the change as the
    priority of a finished or canceled row.
    """
    return between(
        field, Status.combine(state, since, 0), Status.combine(state, until, MAX_ATTEMPTS)
    )

