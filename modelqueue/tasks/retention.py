"""Pruning the task table: finished rows past their age, in bounded batches.

A task row keeps its arguments, return value and tracebacks, so the table
grows with every task unless rows are deleted. ``MODELQUEUE_TASK_RETENTION``
says how long the finished ones are kept, by state: SUCCESSFUL rows 7 days,
FAILED rows 30 days by default, ``None`` for ever. READY and RUNNING rows are
never pruned, whatever their age.

A row's age is read from its status: a finished or canceled status holds the
time it was written as its priority (``run()``, the timeout reclaim and the
admin's cancel all write the time), so the rows of one state finished before
a cutoff are one range of the status column, which the task table's index
on ``(status, id)`` serves, and no READY or RUNNING status is in that range.
(A finished status holding a plain integer in place of a time, which only
an edit by hand can write, counts as finished long ago.)

:class:`TaskPruner` deletes them in batches: each batch selects at most
``PRUNE_BATCH`` ids, then deletes those ids *still* in the range, so a row
an operator requeued meanwhile stays. The worker's heartbeat thread calls
:meth:`TaskPruner.prune` about once a minute with at most ``PRUNE_BATCHES``
batches per state (see :mod:`modelqueue.worker.housekeeping`); ``manage.py
modelqueue_prune`` runs batches until none is left.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping

from django.db.models import Q

from .. import conf
from ..status import State, Status, now
from .models import QueuedTask

__all__ = ['PRUNE_BATCH', 'PRUNE_BATCHES', 'PRUNED_STATES', 'TaskPruner', 'finished_before']

#: Rows one batch deletes at most.
PRUNE_BATCH = 500
#: Batches per state one pass of a worker's housekeeping runs at most.
PRUNE_BATCHES = 10
#: The states that are pruned, as ``TaskResultStatus`` names, and the queue
#: state each reads from. Only these: never READY (created, waiting) nor RUNNING.
PRUNED_STATES = {'SUCCESSFUL': State.finished, 'FAILED': State.canceled}


def finished_before(state: str, cutoff: dt.datetime, field: str = 'status') -> Q:
    """The rows of the finished `state` (SUCCESSFUL or FAILED) whose status
    was written before `cutoff`: one range of the status column.

    >>> import datetime as dt
    >>> finished_before('SUCCESSFUL', dt.datetime(2030, 1, 2, tzinfo=dt.timezone.utc))
    <Q: (AND: ('status__gte', 4000000000000000000), ('status__lt', 4203001020000000000))>
    """
    queue_state = PRUNED_STATES[state]
    return Q(
        **{
            f'{field}__gte': Status.minimum(queue_state),
            f'{field}__lt': int(Status.combine(queue_state, cutoff, 0)),
        }
    )


class TaskPruner:
    """Deletes the finished task rows of the database `using` past their age."""

    def __init__(self, using: str = 'default') -> None:
        self.using = using

    def cutoffs(
        self,
        ages: Mapping[str, dt.timedelta | None] | None = None,
        current: dt.datetime | None = None,
    ) -> dict[str, dt.datetime | None]:
        """{state: the time before which its rows are pruned, or None (kept)}.

        `ages` ({state: timedelta or None}) overrides the setting's, state
        by state; `current` is now by default."""
        at = now() if current is None else current
        kept: dict[str, dt.timedelta | None] = {**conf.get('MODELQUEUE_TASK_RETENTION'), **(ages or {})}
        cutoffs: dict[str, dt.datetime | None] = {}
        for state in PRUNED_STATES:
            age = kept[state]
            try:
                cutoffs[state] = None if age is None else at - age
            except OverflowError:  # an age longer than the calendar: nothing is that old
                cutoffs[state] = None
        return cutoffs

    def count(self, cutoffs: Mapping[str, dt.datetime | None]) -> dict[str, int]:
        """{state: how many rows :meth:`prune` would delete} (a dry run)."""
        rows = QueuedTask.objects.using(self.using)
        return {
            state: 0 if cutoff is None else rows.filter(finished_before(state, cutoff)).count()
            for state, cutoff in cutoffs.items()
        }

    def prune(
        self,
        cutoffs: Mapping[str, dt.datetime | None] | None = None,
        batches: int | None = None,
        batch: int | None = None,
    ) -> dict[str, int]:
        """One pass: delete up to `batches` (``PRUNE_BATCHES``) batches of
        `batch` (``PRUNE_BATCH``) rows of each state finished before its
        cutoff; return {state: rows deleted}. `cutoffs` defaults to
        :meth:`cutoffs`."""
        most = PRUNE_BATCHES if batches is None else batches
        return self._prune(cutoffs, lambda done: done < most, batch)

    def prune_all(
        self, cutoffs: Mapping[str, dt.datetime | None] | None = None, batch: int | None = None
    ) -> dict[str, int]:
        """As :meth:`prune`, in batches until none is left."""
        return self._prune(cutoffs, lambda done: True, batch)

    def _prune(
        self,
        cutoffs: Mapping[str, dt.datetime | None] | None,
        more: Callable[[int], bool],
        batch: int | None,
    ) -> dict[str, int]:
        found = self.cutoffs() if cutoffs is None else cutoffs
        size = PRUNE_BATCH if batch is None else batch
        rows = QueuedTask.objects.using(self.using)
        deleted: dict[str, int] = {}
        for state, cutoff in found.items():
            deleted[state] = 0
            if cutoff is None:
                continue
            old = finished_before(state, cutoff)
            done = 0
            while more(done):
                done += 1
                ids = list(rows.filter(old).order_by('status').values_list('pk', flat=True)[:size])
                if not ids:
                    break
                # The range again: a row requeued since it was selected stays.
                deleted[state] += rows.filter(old, pk__in=ids).delete()[0]
                if len(ids) < size:
                    break
        return deleted
