"""Claiming and completing queue rows: run() and the exceptions actions raise.

A worker claims the due waiting row with the lowest status by rewriting its
status to *working*, runs the action outside any transaction, then writes the
outcome. Every write after the claim is fenced: it happens only while the row
still holds the status this worker wrote, so an operator's cancel or requeue,
or a timeout reclaim by another worker, is never overwritten.
"""

import copy
import datetime as dt
import logging
import random
import time

from django.core.exceptions import FieldDoesNotExist
from django.db import OperationalError, connections, transaction

from .status import MAX_ATTEMPTS, ONE_HOUR, ZERO_SECS, State, Status, now

logger = logging.getLogger('modelqueue')

MAX_RETRY = 8
CANDIDATES = 8
LOCKED_BACKOFF = (0.005, 0.5)
# Longer spans would leave the datetime range when added to now().
MAX_TIMEDELTA = dt.timedelta(days=1000 * 365)


class Retry(Exception):
    """Retry processing the task.

    When raised in an `action` callable from :func:`modelqueue.run`, the
    exception is used to signal that the task should be retried.

    Retry does *not* increment the attempt count of the task.

    Optional `delay` parameter can be used to override the `delay` given in
    :func:`modelqueue.run`.

    >>> Retry(dt.timedelta(minutes=5)).delay
    datetime.timedelta(seconds=300)
    """

    def __init__(self, delay=None):
        super().__init__(delay)
        self.delay = _check_timedelta('delay', delay, allow_none=True)


class Abort(Exception):
    """Abort processing the task.

    When raised in an `action` callable from :func:`modelqueue.run`, the
    exception is used to signal that the task was aborted.

    Abort *does* increment the attempt count of the task. If the attempts
    limit is reached then the task will be canceled.

    Optional `delay` parameter can be used to override the `delay` given in
    :func:`modelqueue.run`.

    >>> Abort().delay is None
    True
    """

    def __init__(self, delay=None):
        super().__init__(delay)
        self.delay = _check_timedelta('delay', delay, allow_none=True)


class Cancel(Exception):
    """Cancel processing the task.

    When raised in an `action` callable from :func:`modelqueue.run`, the
    exception is used to signal that the task should be canceled.

    Cancel both increments the attempt count and changes the task state to
    canceled.

    >>> isinstance(Cancel(), Exception)
    True
    """


def _check_timedelta(name, value, allow_none=False):
    if value is None and allow_none:
        return value
    if not isinstance(value, dt.timedelta) or not ZERO_SECS <= value <= MAX_TIMEDELTA:
        raise ValueError(
            f'invalid {name} {value!r}: expected a datetime.timedelta of zero'
            f' or more, at most {MAX_TIMEDELTA.days} days'
        )
    return value


def _check_arguments(queryset, field, action, retry, timeout, delay):
    model = queryset.model
    try:
        model_field = model._meta.get_field(field)
    except FieldDoesNotExist:
        raise ValueError(
            f'invalid field {field!r}: {model._meta.label} has no such field'
        ) from None
    if model_field.get_internal_type() != 'BigIntegerField':
        raise ValueError(
            f'invalid field {field!r}: expected a StatusField (BigIntegerField)'
            f' of {model._meta.label}, found {type(model_field).__name__}'
        )
    if not callable(action):
        raise ValueError(f'invalid action {action!r}: expected a callable')
    if (
        isinstance(retry, bool)
        or not isinstance(retry, int)
        or not 0 <= retry <= MAX_RETRY
    ):
        raise ValueError(
            f'invalid retry {retry!r}: expected an integer from 0 through'
            f' {MAX_RETRY}'
        )
    _check_timedelta('timeout', timeout)
    _check_timedelta('delay', delay)
    return model_field.attname


def _is_locked(error):
    return 'locked' in str(error) or 'busy' in str(error)


def _write(using, attempt_write):
    """Call `attempt_write()`, retrying SQLite's "database is locked".

    Other databases wait on row locks themselves; SQLite raises instead, so a
    short randomized backoff keeps several worker processes from failing.
    """
    vendor = connections[using].vendor
    delay, longest = LOCKED_BACKOFF
    while True:
        try:
            return attempt_write()
        except OperationalError as error:
            if vendor != 'sqlite' or not _is_locked(error):
                raise
            logger.debug('SQLite database is locked; retrying in %.3fs', delay)
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, longest)


def _fenced_update(queryset, pk, attname, expected, values):
    """UPDATE the row `pk` with `values` only while it holds `expected`."""
    manager = queryset.model._base_manager.using(queryset.db)
    return manager.filter(pk=pk, **{attname: expected}).update(**values)


def _reclaim_stalled(queryset, attname, retry, timeout, delay):
    """Give back one row left working longer than `timeout`, if any.

    Its attempt counts; past `retry` attempts the row is canceled.
    """
    current = now()
    stalled = (
        queryset.filter(
            **{
                attname + '__gte': Status.minimum(State.working),
                attname + '__lte': Status.working(current - timeout, MAX_ATTEMPTS),
            }
        )
        .order_by(attname)
        .values_list('pk', attname)[:1]
    )
    for pk, value in stalled:
        status = Status(value)
        attempts = min(status.attempts + 1, MAX_ATTEMPTS)
        if status.attempts + 1 <= retry:
            new_status = Status.waiting(current + delay, attempts)
        else:
            new_status = Status.canceled(current, attempts)
        changed = _write(
            queryset.db,
            lambda: _fenced_update(queryset, pk, attname, value, {attname: new_status}),
        )
        if changed:
            logger.warning(
                'Reclaimed %s pk=%s from a worker that exceeded the timeout of %s:'
                ' now %s',
                queryset.model._meta.label,
                pk,
                timeout,
                new_status.state.name,
            )


def _due(queryset, attname):
    return queryset.filter(
        **{
            attname + '__gte': Status.minimum(State.waiting),
            attname + '__lte': Status.waiting(now(), MAX_ATTEMPTS),
        }
    ).order_by(attname)


def _claim_skip_locked(queryset, attname, lock_only_self):
    """Lock the first due row nobody else holds, and mark it working."""
    lock_of = ('self',) if lock_only_self else ()
    due = _due(queryset, attname).select_for_update(skip_locked=True, of=lock_of)
    with transaction.atomic(using=queryset.db):
        rows = list(due[:1])
        if not rows:
            return None, None
        (task,) = rows
        claimed = Status.working(now(), Status(getattr(task, attname)).attempts)
        _fenced_update(
            queryset, task.pk, attname, getattr(task, attname), {attname: claimed}
        )
    return task, claimed


def _claim_compare_and_swap(queryset, attname):
    """Claim the first due row whose status is still what we read.

    When another worker wins a candidate, the next one is tried, so a claim
    comes back empty only when no due row was left unclaimed.
    """
    while True:
        candidates = list(_due(queryset, attname)[:CANDIDATES])
        if not candidates:
            return None, None
        for task in candidates:
            expected = getattr(task, attname)
            claimed = Status.working(now(), Status(expected).attempts)
            won = _write(
                queryset.db,
                lambda: _fenced_update(
                    queryset, task.pk, attname, expected, {attname: claimed}
                ),
            )
            if won:
                return task, claimed


def _claim(queryset, attname):
    features = connections[queryset.db].features
    if features.has_select_for_update_skip_locked:
        return _claim_skip_locked(queryset, attname, features.has_select_for_update_of)
    return _claim_compare_and_swap(queryset, attname)


def _snapshot(task):
    """Copy the loaded field values of `task`, to see later what changed."""
    return {
        field.attname: copy.deepcopy(task.__dict__[field.attname])
        for field in task._meta.concrete_fields
        if field.attname in task.__dict__
    }


def _changed_values(task, before, attname):
    values = {}
    for field in task._meta.concrete_fields:
        name = field.attname
        if name == attname or name not in before or field.primary_key:
            continue
        if getattr(field, 'auto_now', False):
            values[name] = field.pre_save(task, add=False)
        elif task.__dict__.get(name) != before[name]:
            values[name] = task.__dict__.get(name)
    return values


def _outcome(error, attempts, retry, delay):
    """Return the status that ends an attempt that raised `error` (or None)."""
    current = now()
    if error is None:
        return Status.finished(current, min(attempts, MAX_ATTEMPTS))
    if isinstance(error, Retry):
        wait = delay if error.delay is None else error.delay
        return Status.waiting(current + wait, min(attempts - 1, MAX_ATTEMPTS))
    if isinstance(error, Cancel):
        return Status.canceled(current, min(attempts, MAX_ATTEMPTS))
    if isinstance(error, Abort) and error.delay is not None:
        delay = error.delay
    if attempts <= retry:
        return Status.waiting(current + delay, attempts)
    return Status.canceled(current, min(attempts, MAX_ATTEMPTS))


def run(queryset, field, action, retry=3, timeout=ONE_HOUR, delay=ZERO_SECS):
    """Run `action` on results from `queryset` in queue defined by `field`.

    For example in appname/management/commands/process_tasks.py::

        import modelqueue, time
        from django.core.management.base import BaseCommand
        from .models import Task

        class Command(BaseCommand):

            def handle(self, *args, **options):
                while True:
                    task = modelqueue.run(
                        Task.objects.all(),
                        # ^-- Queryset of models to process.
                        'status',
                        # ^-- Field name for model queue.
                        self.process,
                        # ^-- Callable to process model.
                    )
                    if task is None:
                        time.sleep(1)
                        # ^-- Bring your own parallelism/concurrency.

            def process(self, report):
                pass  # Process task models.

    The due waiting row (priority at or before now) with the lowest status is
    claimed and marked working; other workers never wait for it. After the
    action the row becomes finished, or waiting again (`Retry`, `Abort` or
    another exception within `retry` attempts, after `delay`), or canceled
    (`Cancel`, or attempts beyond `retry`). Exceptions other than `Retry`,
    `Abort` and `Cancel` are re-raised after the row is updated.

    That final write is fenced: it happens only while the row still holds the
    working status this worker wrote, so a row an operator canceled or
    requeued meanwhile, or one a timeout reclaim gave to another worker, keeps
    that decision (a warning is logged). It writes the status and the fields
    the action changed on the model, not the whole row.

    A row left working longer than `timeout` is given back (its attempt
    counts, and past `retry` it is canceled).

    :param queryset: Django queryset
    :param str field: field name
    :param function action: applied to models from `queryset`
    :param int retry: max retry count (limit 8)
    :param timedelta timeout: max runtime for `action`
    :param timedelta delay: delay time after retry
    :return: model from queryset or None if no waiting model
    :raises ValueError: when an argument is not of the kind described above

    """
    attname = _check_arguments(queryset, field, action, retry, timeout, delay)
    _reclaim_stalled(queryset, attname, retry, timeout, delay)
    task, claimed = _claim(queryset, attname)
    if task is None:
        return None

    attempts = claimed.attempts + 1
    setattr(task, attname, claimed)
    before = _snapshot(task)
    error = None
    try:
        action(task)
    except BaseException as exc:  # the row must not stay working
        error = exc
    _complete(queryset, task, attname, claimed, before, _outcome(error, attempts, retry, delay))
    if error is not None and not isinstance(error, (Retry, Abort, Cancel)):
        raise error
    return task


def _complete(queryset, task, attname, claimed, before, outcome):
    """Write `outcome` and the changed fields, fenced on the `claimed` status."""
    values = _changed_values(task, before, attname)
    values[attname] = outcome
    written = _write(
        queryset.db,
        lambda: _fenced_update(queryset, task.pk, attname, claimed, values),
    )
    if written:
        setattr(task, attname, outcome)
    else:
        logger.warning(
            '%s pk=%s changed while its action ran (canceled, requeued or'
            ' reclaimed by a timeout); leaving it as it is instead of writing %s',
            queryset.model._meta.label,
            task.pk,
            outcome.state.name,
        )
