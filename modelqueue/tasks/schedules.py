"""Periodic schedules of tasks, run by the workers: exactly once per slot.

A schedule is declared in the settings, by name: a ``@task`` (its dotted
path), its arguments, and when it runs, a cron expression in a time zone or
a fixed interval::

    MODELQUEUE_SCHEDULES = {
        'nightly-report': {
            'task': 'reports.tasks.build_report',
            'cron': '0 3 * * *',            # minute hour day month weekday
            'timezone': 'Europe/Paris',     # default: TIME_ZONE, else UTC
            'kwargs': {'kind': 'daily'},
            'missed': 'once',               # or 'skip' (the default)
        },
        'heartbeat-email': {'task': 'ops.tasks.ping', 'every': timedelta(minutes=5)},
    }

Each slot is a moment (:class:`modelqueue.slots.Slots`): for a cron
expression, the minutes it matches in its time zone (a slot that a
daylight-saving change skips runs at the first minute after it; one the
change repeats runs once); for an interval, the multiples of it since
1970-01-01 UTC, so that every process agrees on them. Cron expressions need
``croniter`` (``pip install modelqueue[cron]``).

Every ``modelqueue_worker --tasks`` of the schedule's backend runs a
:class:`Scheduler` thread (``--no-schedules`` turns it off), which each
second reads the schedules whose next slot has come (one indexed query) and
enqueues them. Each schedule's row (:class:`~modelqueue.tasks.models.ScheduleState`)
holds its next slot, and a worker enqueues a slot only if its UPDATE moves
that next slot on, in the transaction that enqueues the task: whatever the
number of workers, one of them wins each slot, and if the enqueue fails,
nobody does and the next pass tries again.

A slot is *missed* when no worker enqueued it within its ``grace`` (60
seconds by default; workers were down, or the schedule disabled): with
``missed`` ``'skip'`` missed slots never run, and with ``'once'`` the latest
of them runs once, when a worker is back. The admin's *Schedules* page
shows each schedule's next run, its last run and its outcome, and enables,
disables or runs one now.

>>> from datetime import datetime, timedelta, timezone
>>> every = Schedule('tick', 'app.tasks.tick', every=timedelta(minutes=5))
>>> every.next_slot(datetime(2026, 12, 7, 10, 2, tzinfo=timezone.utc))
datetime.datetime(2026, 12, 7, 10, 5, tzinfo=datetime.timezone.utc)
>>> Schedule('tick', 'app.tasks.tick')
Traceback (most recent call last):
  ...
ValueError: invalid schedule 'tick': expected one of 'cron' and 'every', found neither
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections, router, transaction
from django.db.models import QuerySet

from ..slots import Slots
from ..status import now

logger = logging.getLogger('modelqueue.worker')

__all__ = ['MISSED', 'Schedule', 'Scheduler', 'declared', 'fire_due', 'run_now', 'sync']

#: What happens to slots that no worker enqueued within their grace.
MISSED = ('skip', 'once')
#: How long after its moment a slot may still be enqueued with ``missed`` 'skip'.
GRACE = dt.timedelta(seconds=60)
#: Seconds between two passes of a worker's scheduler.
PASS_SECONDS = 1.0
#: Due schedules taken per transaction.
CHUNK = 50
_KEYS = {'task', 'cron', 'every', 'timezone', 'args', 'kwargs', 'missed', 'grace', 'backend'}


@dataclass(frozen=True)
class Schedule:
    """One declared schedule: `task` (a dotted path) with `args` and
    `kwargs`, at the slots of `cron` in `timezone` or every `every`."""

    name: str
    task: str
    cron: str | None = None
    every: dt.timedelta | None = None
    timezone: str = 'UTC'
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    missed: str = 'skip'
    grace: dt.timedelta = GRACE
    backend: str = 'default'
    slots: Slots = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        what = f'schedule {self.name!r}'
        if not isinstance(self.name, str) or not 0 < len(self.name) <= 100:
            raise ValueError(f'invalid schedule name {self.name!r}: expected a string of 1 to 100 characters')
        if not isinstance(self.task, str) or '.' not in self.task:
            raise ValueError(f'invalid {what} task {self.task!r}: expected the dotted path of a @task')
        object.__setattr__(self, 'slots', Slots(self.cron, self.every, self.timezone, what))
        if self.missed not in MISSED:
            raise ValueError(f"invalid {what} missed {self.missed!r}: expected 'skip' or 'once'")
        if not isinstance(self.grace, dt.timedelta) or self.grace <= dt.timedelta(0):
            raise ValueError(f'invalid {what} grace {self.grace!r}: expected a timedelta above 0')
        if not isinstance(self.args, (list, tuple)) or not isinstance(self.kwargs, dict):
            raise ValueError(f'invalid {what} arguments {self.args!r}, {self.kwargs!r}: expected a list and a dict')
        try:
            json.dumps([list(self.args), self.kwargs], allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f'invalid {what} arguments: expected JSON values ({error})') from None

    @property
    def when(self) -> str:
        """When it runs, for people: ``0 3 * * * (Europe/Paris)`` or ``every 0:05:00``."""
        return self.slots.when

    @property
    def definition(self) -> str:
        """A digest of what decides its slots, so that a changed declaration
        (another cron, interval or time zone) moves its next slot."""
        return self.slots.definition

    def next_slot(self, after: dt.datetime) -> dt.datetime:
        """The first slot strictly after `after`, in UTC."""
        return self.slots.next_slot(after)

    def latest_slot(self, at: dt.datetime) -> dt.datetime:
        """The last slot at or before `at`, in UTC."""
        return self.slots.latest_slot(at)


def declared(backend: str | None = None) -> list[Schedule]:
    """The schedules of ``MODELQUEUE_SCHEDULES`` (of `backend`, if given), checked."""
    value = getattr(settings, 'MODELQUEUE_SCHEDULES', {})
    if not isinstance(value, dict):
        raise ValueError(f'invalid MODELQUEUE_SCHEDULES {value!r}: expected a dict of schedules by name')
    found = []
    default_zone = getattr(settings, 'TIME_ZONE', None) or 'UTC'
    for name, options in value.items():
        if not isinstance(options, dict):
            raise ValueError(f'invalid schedule {name!r} {options!r}: expected a dict of its options')
        unknown = sorted(set(options) - _KEYS)
        if unknown:
            raise ValueError(
                f'invalid schedule {name!r} option {unknown[0]!r}: expected one of {", ".join(sorted(_KEYS))}'
            )
        options = {'timezone': default_zone, **options}
        options['args'] = tuple(options.get('args', ()))
        schedule = Schedule(name, **options)
        if backend is None or schedule.backend == backend:
            found.append(schedule)
    return found


def _states(using: str) -> QuerySet[Any]:
    from .models import ScheduleState  # noqa: PLC0415 (needs the app registry)

    return ScheduleState.objects.using(using)


def sync(schedules: Iterable[Schedule], using: str, at: dt.datetime | None = None) -> None:
    """Give each schedule its row, and a declaration changed since its row
    was written its next slot after `at`: idempotent, and safe in many
    processes at once (rows are inserted ignoring conflicts, and moved on
    only from the definition they were read with)."""
    from .models import ScheduleState  # noqa: PLC0415 (needs the app registry)

    at = now() if at is None else at
    schedules = list(schedules)
    ScheduleState.objects.using(using).bulk_create(
        [ScheduleState(name=s.name, definition=s.definition, next_slot=s.next_slot(at)) for s in schedules],
        ignore_conflicts=True,
    )
    by_name = {s.name: s for s in schedules}
    for name, definition in _states(using).filter(name__in=by_name).values_list('name', 'definition'):
        schedule = by_name[name]
        if definition != schedule.definition:
            _states(using).filter(name=name, definition=definition).update(
                definition=schedule.definition, next_slot=schedule.next_slot(at)
            )


def fire_due(schedules: Iterable[Schedule], using: str, at: dt.datetime | None = None) -> list[str]:
    """Enqueue each enabled schedule whose next slot has come, unless
    another process did; return the names this call enqueued.

    The due schedules are taken in chunks of :data:`CHUNK`, one transaction
    each, locked with ``FOR UPDATE SKIP LOCKED`` where the database has it
    (PostgreSQL, MariaDB), so that several workers share the work instead of
    waiting on each other. For each schedule, the task's enqueue and the
    UPDATE that moves the next slot on *from the value read* (:func:`_fire`):
    when another process moved it first, the UPDATE changes no row and the
    task is deleted before anyone sees it. A task that cannot be enqueued
    (its path names no task, its arguments are refused) still moves the
    slot on, with the error kept on the schedule's row: a poison
    declaration never blocks a worker's scheduler. The schedules' table and
    the task table must be on one database, so that both writes commit
    together."""
    at = now() if at is None else at
    by_name = {s.name: s for s in schedules}
    skip_locked = connections[using].features.has_select_for_update_skip_locked
    # Due rows this call leaves: no longer declared (or not for this
    # backend), or declared anew (sync() moves their slot first). Read
    # without a list of the declared names, which would be a thousand
    # parameters a second in every worker.
    left: set[str] = set()
    fired = []
    while True:
        with transaction.atomic(using=using):
            due = list(
                _states(using)
                .select_for_update(skip_locked=skip_locked)
                .filter(enabled=True, next_slot__lte=at)
                .exclude(name__in=sorted(left))
                .order_by('next_slot', 'name')
                .values_list('name', 'next_slot', 'definition')[:CHUNK]
            )
            chosen: list[tuple[Schedule, dt.datetime, dt.datetime]] = []
            for name, next_slot, definition in due:
                schedule = by_name.get(name)
                if schedule is None or definition != schedule.definition:
                    left.add(name)
                    continue
                slot = schedule.latest_slot(at)
                if schedule.missed == 'skip' and at - slot > schedule.grace:
                    # Every slot since next_slot is missed: skip them all.
                    _states(using).filter(name=name, next_slot=next_slot).update(next_slot=schedule.next_slot(at))
                    continue
                chosen.append((schedule, next_slot, slot))
            fired.extend(_fire(chosen, using, at))
        if len(due) < CHUNK:
            return fired


def _fire(
    chosen: list[tuple[Schedule, dt.datetime, dt.datetime]], using: str, at: dt.datetime
) -> list[str]:
    """Enqueue each (schedule, seen, slot) of `chosen` whose next slot is
    still `seen`; return their names. The tasks' rows are inserted in one
    statement, then each schedule's UPDATE moves its slot on and names its
    task: when the UPDATE finds the slot moved by another process, that
    task is deleted again, unseen (it is in this transaction). A task that
    cannot be enqueued (ValueError and the like, raised before any INSERT)
    moves the slot on with the error kept; a database error rolls the
    caller's transaction back, and the next pass tries again."""
    from .models import QueuedTask  # noqa: PLC0415 (needs the app registry)

    prepared = []
    for schedule, seen, slot in chosen:
        try:
            backend, row, result = _new_row(schedule)
            prepared.append((schedule, seen, slot, backend, row, result, ''))
        except (ValueError, TypeError, ImportError, LookupError) as problem:
            prepared.append((schedule, seen, slot, None, None, None, f'{type(problem).__name__}: {problem}'))
    rows = [row for *_, row, _result, _error in prepared if row is not None]
    tasks_database = router.db_for_write(QueuedTask)
    if connections[tasks_database].features.can_return_rows_from_bulk_insert:
        QueuedTask.objects.using(tasks_database).bulk_create(rows)
    else:
        for row in rows:
            row.save(force_insert=True, using=tasks_database)
    fired, lost, enqueued = [], [], []
    for schedule, seen, slot, backend, row, result, error in prepared:
        task_id = '' if row is None else str(row.pk)
        moved = (
            _states(using)
            .filter(name=schedule.name, next_slot=seen, enabled=True)
            .update(
                next_slot=schedule.next_slot(slot), last_slot=slot, last_enqueued_at=at,
                last_task_id=task_id, last_error=error[:2000],
            )
        )
        if not moved:
            if row is not None:
                lost.append(row.pk)
            continue
        fired.append(schedule.name)
        if error:
            logger.error('Schedule %s: slot %s not enqueued: %s', schedule.name, slot.isoformat(), error)
        else:
            enqueued.append((backend, row, result))
    if lost:
        QueuedTask.objects.using(tasks_database).filter(pk__in=lost).delete()
    for backend, row, result in enqueued:
        backend.enqueued(row, result)
    return fired


def _task(schedule: Schedule) -> Any:
    """`schedule`'s task, on its backend; ValueError when it names none."""
    from ..validation import invalid  # noqa: PLC0415
    from .compat import InvalidTask  # noqa: PLC0415 (needs Django's Tasks framework)
    from .paths import find_task  # noqa: PLC0415 (needs Django's Tasks framework)

    try:
        task = find_task(schedule.task)
    except InvalidTask as error:
        raise ValueError(str(error)) from None
    if task.backend != schedule.backend:
        task = task.using(backend=schedule.backend)
    if task.takes_context:
        raise invalid(f'schedule {schedule.name!r} task', schedule.task, 'a task that takes no context')
    return task


def _new_row(schedule: Schedule) -> tuple[Any, Any, Any]:
    """The backend, the unsaved task row and the result of `schedule`'s task."""
    from .backend import ModelQueueBackend  # noqa: PLC0415 (needs Django's Tasks framework)

    task = _task(schedule)
    backend = task.get_backend()
    if not isinstance(backend, ModelQueueBackend):
        raise ValueError(
            f'invalid schedule {schedule.name!r} backend {schedule.backend!r}: expected a TASKS alias'
            f' whose BACKEND is ModelQueueBackend, found a {type(backend).__name__}'
        )
    row_and_result: tuple[Any, Any] = backend.new_row(task, list(schedule.args), dict(schedule.kwargs))
    return backend, *row_and_result


def _enqueue(schedule: Schedule) -> str:
    """Enqueue `schedule`'s task now; return its result's id."""
    return str(_task(schedule).enqueue(*schedule.args, **schedule.kwargs).id)


def run_now(schedule: Schedule, using: str) -> str:
    """Enqueue `schedule`'s task now, outside its slots (the admin's *Run
    now*); return the task's id. Its next slot is unchanged."""
    task_id = _enqueue(schedule)
    _states(using).filter(name=schedule.name).update(last_task_id=task_id, last_enqueued_at=now(), last_error='')
    return task_id


class Scheduler:
    """The thread of a worker that fires `schedules` each second on the
    database `using`, until :meth:`stop`."""

    def __init__(self, schedules: Iterable[Schedule], using: str | None = None) -> None:
        from .models import ScheduleState  # noqa: PLC0415 (needs the app registry)

        self.schedules = list(schedules)
        self.using = using or router.db_for_write(ScheduleState)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name='modelqueue-scheduler', daemon=True)

    def start(self) -> Scheduler:
        if self.schedules:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        synced = False
        try:
            while not self._stopped.is_set():
                try:
                    if not synced:
                        sync(self.schedules, self.using)
                        synced = True
                    fire_due(self.schedules, self.using)
                except DatabaseError as error:
                    logger.warning('Schedules not fired: %s', error)
                    connections[self.using].close()
                except Exception:  # the thread outlives any error: it is the schedules' only runner
                    logger.exception('Schedules not fired')
                self._stopped.wait(PASS_SECONDS - (now().timestamp() % PASS_SECONDS) + 0.005)
        finally:
            connections[self.using].close()
