"""Rescue: give back the rows of a lost worker without waiting for their timeout.

A worker's heartbeat row lists every row the worker holds, each with the
exact working status its claim wrote (``WorkerHeartbeat.held``, written at
each beat). A worker whose heartbeat was not updated for three of its
intervals is *lost* (killed, its host gone, or frozen). :func:`rescue`
gives its rows back, in one transaction:

1. it claims the lost worker's heartbeat row: a DELETE of that row while it
   is still lost, so of two rescuers only one acts, and a worker that beat
   again meanwhile is not rescued;
2. it moves each row the worker held back to waiting, its attempt counted
   (canceled past `retry`), fenced on the row's exact working status, as the
   timeout reclaim is: a row the worker finished meanwhile, or one an
   operator changed, is left alone, and a late completion by the lost
   worker is refused by its own fence;
3. when a rescuer's own heartbeat is given, it must still be there: the
   same transaction beats it, and a rescuer whose row is gone (rescued
   itself) rescues nothing.

Then each row given back gets a failure record whose exception is
``modelqueue.worker_lost`` (``FailureRecord.WORKER_LOST``) and whose
message says ``worker host:pid lost``.

Workers call it at each beat, for the lost workers of their own queue
(:class:`modelqueue.worker.rescuer.Rescuer`); an operator calls it from the
admin's Workers panel (*Rescue now*). A row claimed less than one beat
before its worker died is not listed yet: the timeout gives it back.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.db import transaction

from . import failures
from .retries import Delay, delay_after
from .status import MAX_ATTEMPTS, State, Status, now

if TYPE_CHECKING:
    from django.db.models import Model

    from .models import WorkerHeartbeat

logger = logging.getLogger('modelqueue')

__all__ = ['LOST_BEATS', 'held_rows', 'lost_heartbeats', 'rescue']

#: Heartbeats a worker misses before it counts as lost.
LOST_BEATS = 3


def held_rows(held: object) -> list[tuple[str, int]]:
    """The ``(pk, working status)`` pairs of a heartbeat's `held` value;
    a value that is not such a list is no row (a row of an older worker).

    >>> held_rows([['12', '3202612071120000001'], ['13', '3202612071120000000']])
    [('12', 3202612071120000001), ('13', 3202612071120000000)]
    >>> held_rows(None), held_rows([['12', 'not a status'], 'junk'])
    ([], [])
    """
    rows = []
    for item in held if isinstance(held, list) else ():
        try:
            pk, status = item
            status = Status(int(status))
        except (TypeError, ValueError):
            continue
        if status.state == State.working:
            rows.append((str(pk), int(status)))
    return rows


def lost_cutoff(heartbeat: WorkerHeartbeat, current: dt.datetime) -> dt.datetime:
    """Last seen before this, `heartbeat`'s worker is lost at `current`."""
    return current - dt.timedelta(seconds=LOST_BEATS * heartbeat.interval)


def lost_heartbeats(
    model: type[Model], attname: str, using: str, current: dt.datetime, older_than: dt.timedelta
) -> list[WorkerHeartbeat]:
    """The heartbeats of lost workers on the queue `attname` of `model`
    whose last beat is older than `older_than` (a worker passes three of its
    own intervals: one indexed query finds only stale rows)."""
    from .models import WorkerHeartbeat  # noqa: PLC0415 (models.py files import modelqueue before the app registry is ready)

    stale = WorkerHeartbeat.objects.using(using).filter(
        content_type=failures.content_type_of(model), field=attname, last_seen__lt=current - older_than
    )
    return [heartbeat for heartbeat in stale if heartbeat.is_lost(current)]


def rescue(
    heartbeat: WorkerHeartbeat,
    model: type[Model],
    using: str,
    retry: int | None = None,
    delay: Delay = dt.timedelta(0),
    rescuer: int | None = None,
    by: str = '',
    current: dt.datetime | None = None,
) -> int | None:
    """Give back the rows of the lost worker of `heartbeat` (a row of the
    queue ``heartbeat.field`` of `model`, in the database `using`); return
    how many, or None when its heartbeat row was not taken: another rescuer
    took it, the worker beat again, or the rescuer's own heartbeat (the
    `rescuer` pk, when given) is gone.

    Each row goes back to waiting after `delay` with its attempt counted;
    past `retry` attempts it is canceled (``retry`` None: never, as an
    operator's rescue). `by` names the rescuer in the records' messages.
    """
    from .models import WorkerHeartbeat  # noqa: PLC0415 (models.py files import modelqueue before the app registry is ready)

    current = now() if current is None else current
    attname = heartbeat.field
    heartbeats = WorkerHeartbeat.objects.using(using)
    rows = model._base_manager.using(using)
    given: list[tuple[str, int, Status]] = []
    with transaction.atomic(using=using):
        if rescuer is not None and not heartbeats.filter(pk=rescuer).update(last_seen=current):
            return None  # the rescuer's own row is gone: it was rescued itself
        if not heartbeats.filter(pk=heartbeat.pk, last_seen__lt=lost_cutoff(heartbeat, current)).delete()[0]:
            return None
        for pk, held in held_rows(heartbeat.held):
            outcome = _outcome(Status(held), retry, delay, current)
            if rows.filter(pk=pk, **{attname: held}).update(**{attname: outcome}):
                given.append((pk, held, outcome))
    message = (
        f'worker {heartbeat.name} lost: no heartbeat since {heartbeat.last_seen:%Y-%m-%d %H:%M:%S} UTC'
        f' ({LOST_BEATS} beats of {heartbeat.interval:g}s missed)' + (f'; rescued by {by}' if by else '')
    )
    queryset = rows.all()
    for pk, held, outcome in given:
        failures.record_rescue(queryset, pk, attname, held, outcome, current, heartbeat.name, message)
    _log(model, heartbeat, given, by)
    return len(given)


def _outcome(held: Status, retry: int | None, delay: Delay, current: dt.datetime) -> Status:
    """Waiting again with the attempt counted, or canceled past `retry`."""
    attempts = min(held.attempts + 1, MAX_ATTEMPTS)
    if retry is not None and held.attempts + 1 > retry:
        return Status.canceled(current, attempts)
    return Status.waiting(current + delay_after(delay, attempts), attempts)


def _log(model: type[Model], heartbeat: WorkerHeartbeat, given: Iterable[tuple[str, int, Status]], by: str) -> None:
    given = list(given)
    logger.warning(
        'Rescued %s row%s of %s from the lost worker %s%s: %s',
        len(given),
        '' if len(given) == 1 else 's',
        model._meta.label,
        heartbeat.name,
        f' ({by})' if by else '',
        ', '.join(f'pk={pk} now {outcome.state.name}' for pk, _, outcome in given) or 'none was still held',
    )
