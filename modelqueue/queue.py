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
from django.db.models.expressions import RawSQL
from django.db.models.query import ModelIterable
from django.db.models.sql.subqueries import UpdateQuery

from .expressions import with_state_and_priority
from .status import MAX_ATTEMPTS, ONE_HOUR, ZERO_SECS, State, Status, check_integer, now

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
    check_integer('retry', retry, MAX_RETRY)
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
    if values.keys() == {attname}:
        return _fenced_status_update(queryset, pk, attname, expected, values[attname])
    manager = queryset.model._base_manager.using(queryset.db)
    return manager.filter(pk=pk, **{attname: expected}).update(**values)


def _fenced_status_update(queryset, pk, attname, expected, status):
    """The common case of `_fenced_update`, one status written, as plain SQL:
    building it with the ORM would cost more than the round trip."""
    connection = connections[queryset.db]
    qn = connection.ops.quote_name
    field = queryset.model._meta.get_field(attname)
    meta = field.model._meta  # the table that holds the column
    column = qn(field.column)
    sql = (
        f'UPDATE {qn(meta.db_table)} SET {column} = %s'
        f' WHERE {qn(meta.pk.column)} = %s AND {column} = %s'
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql, (int(status), meta.pk.get_db_prep_value(pk, connection), int(expected))
        )
        return cursor.rowcount


def _stalled(queryset, attname, timeout, current):
    """The rows of `queryset` left working longer than `timeout`."""
    return queryset.filter(
        **{
            attname + '__gte': Status.minimum(State.working),
            attname + '__lte': Status.working(current - timeout, MAX_ATTEMPTS),
        }
    )


def _reclaim_stalled(queryset, attname, retry, timeout, delay, claimed_pk=None):
    """Give back one row left working longer than `timeout`, if any; return
    whether one was given back. `claimed_pk`, this run's own claim, is never
    taken.

    Its attempt counts; past `retry` attempts the row is canceled.
    """
    current = now()
    stalled = _stalled(queryset, attname, timeout, current)
    if claimed_pk is not None:
        stalled = stalled.exclude(pk=claimed_pk)
    stalled = stalled.order_by(attname).values_list('pk', attname)[:1]
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
        return bool(changed)
    return False


def _due(queryset, attname, current=None):
    return queryset.filter(
        **{
            attname + '__gte': Status.minimum(State.waiting),
            attname + '__lte': Status.waiting(current or now(), MAX_ATTEMPTS),
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


def _claims_in_one_statement(queryset):
    """Whether `queryset` can be claimed by one UPDATE ... RETURNING.

    PostgreSQL and SQLite >= 3.35 return the updated row; the model is built
    from it as the queryset would, so the queryset must load plain rows of
    one table (no select_related, annotations, deferred fields, values(),
    prefetching or multi-table inheritance).
    """
    connection = connections[queryset.db]
    query = queryset.query
    return (
        connection.vendor in ('postgresql', 'sqlite')
        and connection.features.can_return_columns_from_insert
        and queryset._iterable_class is ModelIterable
        and not queryset._prefetch_related_lookups
        and not (query.select_related or query.annotations or query.extra)
        and not (query.distinct or query.combinator or query.group_by)
        and query.deferred_loading == (frozenset(), True)
        and not queryset.model._meta.parents
    )


class _ClaimStatement:
    """The SQL of one queue's claim, compiled once and reused.

    Only the three status bounds that depend on the time change from one
    claim to the next; their positions among the parameters are found when
    the statement is compiled.
    """

    def __init__(self, queryset, attname, timeout, current):
        using = queryset.db
        connection = connections[using]
        model = queryset.model
        qn = connection.ops.quote_name
        table = qn(model._meta.db_table)
        bounds = _claim_bounds(current, timeout)

        due_sql, due_params = (
            _due(queryset, attname, current)
            .values_list('pk')[:1]
            .query.get_compiler(using)
            .as_sql()
        )
        if connection.features.has_select_for_update_skip_locked:
            of = (table,) if connection.features.has_select_for_update_of else ()
            due_sql += ' ' + connection.ops.for_update_sql(skip_locked=True, of=of)
        stalled_sql, stalled_params = (
            _stalled(model._base_manager.using(using), attname, timeout, current)
            .order_by()
            .values_list('pk')[:1]
            .query.get_compiler(using)
            .as_sql()
        )
        update = UpdateQuery(model)
        update.add_q(model._base_manager.filter(pk=RawSQL(due_sql, due_params)).query.where)
        update.add_update_fields(
            [
                (
                    model._meta.get_field(attname),
                    None,
                    with_state_and_priority(attname, State.working, current),
                )
            ]
        )
        update_sql, update_params = update.get_compiler(using).as_sql()
        self.fields = model._meta.concrete_fields
        columns = ', '.join(f'{table}.{qn(field.column)}' for field in self.fields)
        self.sql = f'{update_sql} RETURNING {columns}, ({stalled_sql})'
        self.params = [*update_params, *stalled_params]
        self.positions = [
            [index for index, param in enumerate(self.params) if param == bound]
            for bound in bounds
        ]
        # Reusable only if each bound is one parameter that nothing else equals.
        self.reusable = all(len(found) == 1 for found in self.positions)
        self.attnames = [field.attname for field in self.fields]
        self.converters = []
        for field in self.fields:
            column = field.get_col(model._meta.db_table)
            self.converters.append(
                (
                    connection.ops.get_db_converters(column)
                    + field.get_db_converters(connection),
                    column,
                )
            )

    def params_at(self, current, timeout):
        params = list(self.params)
        for (index,), bound in zip(self.positions, _claim_bounds(current, timeout)):
            params[index] = bound
        return params


def _claim_bounds(current, timeout):
    """The values a claim statement depends on at time `current`."""
    return (
        Status.working(current, 0),  # the claimed status, before its attempts
        Status.waiting(current, MAX_ATTEMPTS),  # due at or before now
        Status.working(current - timeout, MAX_ATTEMPTS),  # stalled
    )


_CLAIM_STATEMENTS = {}
_CLAIM_STATEMENTS_KEPT = 64


def _claim_statement(queryset, attname, timeout, current):
    query = queryset.query
    try:
        key = (
            queryset.model,
            queryset.db,
            attname,
            tuple(query.alias_map),
            query.where,
            query.low_mark,
            query.high_mark,
        )
        statement = _CLAIM_STATEMENTS.get(key)
    except TypeError:  # a filter value that cannot be hashed
        return _ClaimStatement(queryset, attname, timeout, current)
    if statement is None:
        statement = _ClaimStatement(queryset, attname, timeout, current)
        if statement.reusable:
            if len(_CLAIM_STATEMENTS) >= _CLAIM_STATEMENTS_KEPT:
                _CLAIM_STATEMENTS.clear()
            _CLAIM_STATEMENTS[key] = statement
        return statement
    return statement


def _claim_returning(queryset, attname, timeout):
    """Claim the first due row in one statement; return it, its claimed
    status and whether rows of the table were left working past `timeout`.

    The row is chosen by a subquery (``FOR UPDATE SKIP LOCKED`` on
    PostgreSQL; SQLite has one writer, so the statement is atomic there) and
    moved to working with its attempts kept, all in one autocommitted
    ``UPDATE ... RETURNING``: one round trip and one commit per claim. The
    stalled flag is a subquery of the same statement, so the timeout
    reclaim costs nothing while no row is stalled.
    """
    using = queryset.db
    connection = connections[using]
    current = now()
    statement = _claim_statement(queryset, attname, timeout, current)
    params = statement.params_at(current, timeout) if statement.reusable else statement.params

    def execute():
        with connection.cursor() as cursor:
            cursor.execute(statement.sql, params)
            return cursor.fetchone()

    row = _write(using, execute)
    if row is None:
        return None, None, False
    values = []
    for (converters, column), value in zip(statement.converters, row):
        for convert in converters:
            value = convert(value, column, connection)
        values.append(value)
    task = queryset.model.from_db(using, statement.attnames, values)
    return task, Status(getattr(task, attname)), row[-1] is not None


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
    if _claims_in_one_statement(queryset):
        task, claimed, stalled = _claim_returning(queryset, attname, timeout)
        if task is None:
            if _reclaim_stalled(queryset, attname, retry, timeout, delay):
                task, claimed, _ = _claim_returning(queryset, attname, timeout)
        elif stalled:
            _reclaim_stalled(queryset, attname, retry, timeout, delay, task.pk)
    else:
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
