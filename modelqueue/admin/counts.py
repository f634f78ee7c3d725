"""Row counts that stay fast on huge tables: exact, or estimated and labelled.

Counting N rows reads N index entries, so the count of a queue's history
(millions of finished rows) costs more the longer the queue runs. On
PostgreSQL, a count that the planner expects to be at least `estimate_above`
rows is taken from the planner's statistics instead (``EXPLAIN``: the
table's size from ``pg_class`` times the selectivity of the status range
from the column's histogram in ``pg_stats``), which costs the same at any
size. It is an :class:`Estimate`: an ``int`` that prints itself as ``≈ 9.0 M``,
so every page that shows it labels it. Estimates are as fresh as the last
``ANALYZE`` (autovacuum runs one after a tenth of the table changed).

Other databases have no such statistics for a range, and always count.

>>> Estimate(9_012_345)
Estimate(9012345)
>>> print(Estimate(9_012_345), Estimate(123_456_789), Estimate(48_000))
≈ 9.0 M ≈ 123.5 M ≈ 48 k
>>> Estimate(9_012_345) + 1
9012346
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.db import connections, transaction
from django.utils.translation import gettext

from .. import counters, ranges
from ..databases import write_database
from ..status import ONE_HOUR, State, Status, now

if TYPE_CHECKING:
    from django.db.models import Q, QuerySet
    from django.http import HttpRequest

    from ..counters import StateTotals


class Estimate(int):
    """A row count read from the database's statistics, not counted."""

    estimated = True

    def __str__(self) -> str:
        if self >= 1_000_000:
            return gettext('≈ %(count)s M') % {'count': f'{self / 1_000_000:.1f}'}
        if self >= 1_000:
            return gettext('≈ %(count)s k') % {'count': f'{self / 1_000:.0f}'}
        return gettext('≈ %(count)s') % {'count': int(self)}

    def __format__(self, spec: str) -> str:
        return format(str(self), spec) if not spec else int.__format__(self, spec)

    def __repr__(self) -> str:
        return f'Estimate({int(self)})'


def is_estimate(count: object) -> bool:
    """Whether `count` came from statistics rather than a COUNT."""
    return getattr(count, 'estimated', False)


def can_estimate(queryset: QuerySet[Any]) -> bool:
    """Whether the database of `queryset` has a planner to ask (PostgreSQL)."""
    return connections[queryset.db].vendor == 'postgresql'


def planner_rows(queryset: QuerySet[Any]) -> int:
    """The rows PostgreSQL's planner expects `queryset` to return."""
    plan = json.loads(queryset.order_by().values('pk').explain(format='json'))
    return int(plan[0]['Plan']['Plan Rows'])


def whole_table(queryset: QuerySet[Any]) -> bool:
    """Whether `queryset` selects every row of its table: no filter, no
    DISTINCT, no slice, no UNION (its ordering does not matter)."""
    query = queryset.query
    return not (query.where or query.distinct or query.is_sliced or query.combinator)


def estimated_rows(queryset: QuerySet[Any]) -> int:
    """The rows of `queryset` as PostgreSQL's statistics put them.

    For a whole table, ``pg_class.reltuples`` as the last ``ANALYZE`` (or
    autovacuum) left it: updates do not move it, where the planner's own
    estimate grows with the pages that dead row versions fill until the next
    vacuum (measured: +34% after six million updates of a 10,000,000-row
    queue), and a queue updates each row twice. New rows are missing from it
    until autovacuum's next ``ANALYZE``. Anything else: the planner's rows.
    """
    if not whole_table(queryset):
        return planner_rows(queryset)
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(
            'SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)',
            [connections[queryset.db].ops.quote_name(queryset.model._meta.db_table)],
        )
        row = cursor.fetchone()
    if row is None or row[0] < 0:  # never analyzed
        return planner_rows(queryset)
    return int(row[0])


def count_rows(
    queryset: QuerySet[Any], estimate_above: int | None = None, fields: Iterable[str] = ()
) -> int:
    """The number of rows of `queryset`: exact from the state counters of
    one of the queue `fields` when installed (:mod:`modelqueue.counters`;
    every row is in some state or in none); else an
    :class:`Estimate` when `estimate_above` is a number, the database is
    PostgreSQL and its planner expects at least that many rows; otherwise
    an exact ``COUNT``."""
    for field in fields:
        totals = counters.state_totals(queryset, field)
        if totals is not None:
            return sum(totals.values())
    if estimate_above is not None and can_estimate(queryset):
        rows = estimated_rows(queryset)
        if rows >= estimate_above:
            return Estimate(rows)
    return queryset.count()


#: What :func:`state_counts` counts: the states, then parts of two of them.
COUNTED = [*(state.name for state in Status.states), 'due', 'scheduled', 'stalled']


def state_counts(
    queryset: QuerySet[Any],
    field: str,
    current: dt.datetime,
    timeout: dt.timedelta = ONE_HOUR,
    estimate_above: int | None = None,
) -> StateCounts:
    """Rows of `queryset` in each state of `field`, and due, scheduled, stalled.

    Where the queue's state counters are installed (PostgreSQL, see
    :mod:`modelqueue.counters`) and `queryset` is a whole table, the five
    states are read from them, exact, and only scheduled and stalled are
    counted: due is waiting less scheduled.

    Otherwise each is a range count on the status index, in the order of
    :data:`COUNTED`; waiting is due plus scheduled, counted once. Created,
    waiting, working, due, scheduled and stalled are always exact. Of
    finished and canceled, the one PostgreSQL's planner expects to be larger
    is an :class:`Estimate` when the planner expects at least
    `estimate_above` rows in it: the size of `queryset` from the statistics
    (:func:`estimated_rows`) less the exact counts of every other state.
    Only that size comes from statistics, so the estimate is as close as the
    table's size, where the planner's guess for a range of the column's
    histogram could miss by a bucket at each end. The smaller of the two is
    counted.
    """
    queryset = queryset.order_by()
    if connections[queryset.db].vendor != 'postgresql':
        return _state_counts(queryset, field, current, timeout, estimate_above)
    owns_transaction = not connections[queryset.db].in_atomic_block
    with transaction.atomic(using=queryset.db):
        short_counts(queryset.db, snapshot=owns_transaction)
        totals = counters.state_totals(queryset, field)
        counted = _state_counts(queryset, field, current, timeout, estimate_above, totals)
    if totals is not None and totals.rows_summed > counters.COMPACT_ABOVE:
        # A write: on the primary, even when the counts were read from a replica.
        counters.compact_counters(queryset.model, field, using=write_database(queryset))
    return counted


def short_counts(using: str, snapshot: bool = False) -> None:
    """Plan this PostgreSQL transaction's counts as the short queries they
    are: without JIT compilation or parallel workers, whose start-up
    (measured at 10 to 50 ms a count on 2 cores) costs more than reading a
    million index entries in one process saves. ``SET LOCAL`` ends with the
    transaction. With `snapshot` (this must be the transaction's first
    statement), every count of the transaction sees the same rows, so that
    counts derived from others (due: waiting less scheduled) add up."""
    with connections[using].cursor() as cursor:
        if snapshot:
            cursor.execute('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ')
        cursor.execute('SET LOCAL jit = off')
        cursor.execute('SET LOCAL max_parallel_workers_per_gather = 0')


class StateCounts(dict[str, int]):
    """:func:`state_counts`' figures; `from_counters` says whether the
    queue's state counters gave them."""

    from_counters = False


def _state_counts(
    queryset: QuerySet[Any],
    field: str,
    current: dt.datetime,
    timeout: dt.timedelta,
    estimate_above: int | None,
    totals: StateTotals | None = None,
) -> StateCounts:
    def count(where: Q) -> int:
        return queryset.filter(where).count()

    if totals is not None:
        scheduled = scheduled_from_counters(queryset, field, current)
        counted = StateCounts({
            **{state.name: totals[state.name] for state in Status.states},
            'due': totals[State.waiting.name] - scheduled,
            'scheduled': scheduled,
            'stalled': count(ranges.stalled(field, current, timeout)),
        })
        counted.from_counters = True
        return counted
    due = count(ranges.due(field, current))
    scheduled = count(ranges.scheduled(field, current))
    counts = {
        State.created.name: count(ranges.in_states(field, State.created)),
        State.waiting.name: due + scheduled,
        State.working.name: count(ranges.in_states(field, State.working)),
    }
    large, small = State.finished, State.canceled
    estimate = None
    if estimate_above is not None and can_estimate(queryset):
        expected = {
            state: planner_rows(queryset.filter(ranges.in_states(field, state))) for state in (large, small)
        }
        if expected[small] > expected[large]:
            large, small = small, large
        if expected[large] >= estimate_above:
            estimate = large
    counts[small.name] = count(ranges.in_states(field, small))
    if estimate is not None and estimate_above is not None:  # set together
        rest = estimated_rows(queryset) - sum(counts.values())
        # Statistics older than the rows counted can leave too little: count.
        counts[large.name] = Estimate(rest) if rest >= estimate_above else count(ranges.in_states(field, large))
    else:
        counts[large.name] = count(ranges.in_states(field, large))
    return StateCounts({
        **{state.name: counts[state.name] for state in Status.states},
        'due': due,
        'scheduled': scheduled,
        'stalled': count(ranges.stalled(field, current, timeout)),
    })


def scheduled_from_counters(queryset: QuerySet[Any], field: str, current: dt.datetime) -> int:
    """Waiting rows due after `current`: the counters' later minutes, and a
    range count of the rest of `current`'s own minute."""
    first = ranges.last_due(current) + 1
    minute = first // counters.MINUTE
    rest_of_minute = queryset.filter(ranges.between(field, first, (minute + 1) * counters.MINUTE - 1)).count()
    last = Status.maximum(State.waiting) // counters.MINUTE
    later = counters.minute_sums(queryset, field, State.waiting, minute + 1, last)
    return rest_of_minute + sum(later.values())


def request_state_counts(
    request: HttpRequest,
    queryset: QuerySet[Any],
    field: str,
    timeout: dt.timedelta = ONE_HOUR,
    estimate_above: int | None = None,
) -> StateCounts:
    """:func:`state_counts` at the current time, once per `request` for the
    same rows: a changelist filtered to finished with *Show counts* needs
    them for its paginator and for its filter's counts."""
    cache = request.__dict__.setdefault('modelqueue_state_counts', {})
    key = (field, str(queryset.order_by().query), timeout, estimate_above)
    if key not in cache:
        cache[key] = state_counts(queryset, field, now(), timeout, estimate_above)
    return cache[key]
