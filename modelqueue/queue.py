"""Claiming and completing queue rows: run().

A worker claims the due waiting row with the lowest status by rewriting its
status to *working*, runs the action outside any transaction, then writes the
outcome. Every write after the claim is fenced: it happens only while the row
still holds the status this worker wrote, so an operator's cancel or requeue,
or a timeout reclaim by another worker, is never overwritten.

If the database refuses a value the action set on the row, the outcome is
written without the action's values, as a failed attempt, and run() raises
OutcomeNotStored: the row is never left working to run again. A lost
connection is not the values' fault: the row stays working until the
timeout gives it back, and the error goes to the caller (a worker backs
off).
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from django.db import InterfaceError, OperationalError, connections, router, transaction
from django.db.models.sql.subqueries import UpdateQuery

from . import failures, ranges
from .claim import claim_statement, claims_in_one_statement, claims_with_completion, due_rows
from .databases import for_writes
from .exceptions import Abort, Cancel, OutcomeNotStored, Repeat, Retry
from .retries import Delay, check_delay, delay_after, gives_up
from .status import MAX_ATTEMPTS, ONE_HOUR, ZERO_SECS, Status, now
from .text import name_of, storable, text_of
from .validation import (
    check_callable,
    check_integer,
    check_status_field,
    check_timedelta,
)

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Model, QuerySet

_M = TypeVar('_M', bound='Model')
_T = TypeVar('_T')

logger = logging.getLogger('modelqueue')

MAX_RETRY = 8
CANDIDATES = 8
LOCKED_BACKOFF = (0.005, 0.5)
#: Errors of the connection, not of the values written (a lost connection,
#: a lock timeout, a deadlock): a completion that meets one is not written
#: without the action's values, but left to the timeout.
CONNECTION_ERRORS = (OperationalError, InterfaceError)
#: MariaDB's "packet bigger than max_allowed_packet": a value too large to
#: send, though an OperationalError (the server then drops the connection).
MYSQL_PACKET_TOO_LARGE = 1153


def check_run_arguments(
    queryset: QuerySet[Any],
    field: str,
    action: object,
    retry: object,
    timeout: object,
    delay: object,
) -> str:
    """Check the arguments of :func:`run`; return the attname of `field`."""
    attname = check_status_field(queryset.model, field)
    check_callable('action', action)
    check_integer('retry', retry, MAX_RETRY)
    check_timedelta('timeout', timeout)
    check_delay('delay', delay)
    return attname


def _is_locked(error: BaseException) -> bool:
    return 'locked' in str(error) or 'busy' in str(error)


def write_retrying(using: str, attempt_write: Callable[[], _T]) -> _T:
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


def _fenced_update(
    queryset: QuerySet[Any], pk: Any, attname: str, expected: int, values: dict[str, Any]
) -> int:
    """UPDATE the row `pk` with `values` only while it holds `expected`."""
    if values.keys() == {attname}:
        return _fenced_status_update(queryset, pk, attname, expected, values[attname])
    manager = queryset.model._base_manager.using(queryset.db)
    return manager.filter(pk=pk, **{attname: expected}).update(**values)


def _fenced_status_update(
    queryset: QuerySet[Any], pk: Any, attname: str, expected: int, status: int
) -> int:
    """The common case of `_fenced_update`, one status written, as plain SQL:
    building it with the ORM would cost more than the round trip."""
    connection = connections[queryset.db]
    sql, params = _fenced_status_update_sql(connection, queryset.model, pk, attname, expected, status)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _fenced_status_update_sql(
    connection: BaseDatabaseWrapper,
    model: type[Model],
    pk: Any,
    attname: str,
    expected: int,
    status: int,
) -> tuple[str, tuple[int, Any, int]]:
    qn = connection.ops.quote_name
    field: Any = model._meta.get_field(attname)  # a concrete field: its column is set
    meta = field.model._meta  # the table that holds the column
    column = qn(field.column)
    sql = (
        f'UPDATE {qn(meta.db_table)} SET {column} = %s'
        f' WHERE {qn(meta.pk.column)} = %s AND {column} = %s'
    )
    return sql, (int(status), meta.pk.get_db_prep_value(pk, connection), int(expected))


def _fenced_update_sql(
    queryset: QuerySet[Any], pk: Any, attname: str, expected: int, values: dict[str, Any]
) -> tuple[str, Sequence[Any]]:
    """The SQL and parameters of `_fenced_update`'s UPDATE, for a model of
    one table (claims_in_one_statement)."""
    if values.keys() == {attname}:
        connection = connections[queryset.db]
        return _fenced_status_update_sql(
            connection, queryset.model, pk, attname, expected, values[attname]
        )
    manager = queryset.model._base_manager.using(queryset.db)
    query = manager.filter(pk=pk, **{attname: expected}).query.chain(UpdateQuery)
    query.add_update_values(values)
    return query.get_compiler(queryset.db).as_sql()


def save_fields_fenced(obj: Model, attnames: Iterable[str], expected: dict[str, Any]) -> bool:
    """UPDATE the fields `attnames` of `obj`'s row, only while it holds `expected`.

    `expected` maps attnames to the values the row must still hold (the
    fence); the fields are written as a save would (``pre_save``). Return
    whether the row was written. The operator's paths use it, as run() fences
    its own writes, so that none overwrites what changed in the row meanwhile.
    """
    model = type(obj)
    fields = {field.attname: field for field in model._meta.concrete_fields}
    values = {name: fields[name].pre_save(obj, add=False) for name in attnames}
    using = router.db_for_write(model, instance=obj)
    return bool(model._base_manager.using(using).filter(pk=obj.pk, **expected).update(**values))


def reclaim_stalled(
    queryset: QuerySet[Any],
    attname: str,
    retry: int,
    timeout: dt.timedelta,
    delay: Delay,
    claimed_pk: Any = None,
) -> bool:
    """Give back one row left working longer than `timeout`, if any; return
    whether one was given back. `claimed_pk`, this run's own claim, is never
    taken.

    Its attempt counts; past `retry` attempts the row is canceled.
    """
    current = now()
    stalled = queryset.filter(ranges.stalled(attname, current, timeout))
    if claimed_pk is not None:
        stalled = stalled.exclude(pk=claimed_pk)
    stalled = stalled.order_by(attname).values_list('pk', attname)[:1]
    for pk, value in stalled:
        status = Status(value)
        attempts = min(status.attempts + 1, MAX_ATTEMPTS)
        if status.attempts + 1 <= retry:
            new_status = Status.waiting(current + delay_after(delay, attempts), attempts)
        else:
            new_status = Status.canceled(current, attempts)
        changed = write_retrying(
            queryset.db,
            lambda: _fenced_update(queryset, pk, attname, value, {attname: new_status}),
        )
        if changed:
            failures.record_reclaim(queryset, pk, attname, value, new_status, current, timeout)
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


def _claim_skip_locked(
    queryset: QuerySet[_M], attname: str, lock_only_self: bool
) -> tuple[_M, Status] | tuple[None, None]:
    """Lock the first due row nobody else holds, and mark it working."""
    lock_of = ('self',) if lock_only_self else ()
    due = due_rows(queryset, attname, now()).select_for_update(skip_locked=True, of=lock_of)
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


def _claim_compare_and_swap(
    queryset: QuerySet[_M], attname: str
) -> tuple[_M, Status] | tuple[None, None]:
    """Claim the first due row whose status is still what we read.

    When another worker wins a candidate, the next one is tried, so a claim
    comes back empty only when no due row was left unclaimed.
    """
    while True:
        candidates = list(due_rows(queryset, attname, now())[:CANDIDATES])
        if not candidates:
            return None, None
        for task in candidates:
            expected = getattr(task, attname)
            claimed = Status.working(now(), Status(expected).attempts)
            won = write_retrying(
                queryset.db,
                lambda: _fenced_update(
                    queryset, task.pk, attname, expected, {attname: claimed}
                ),
            )
            if won:
                return task, claimed


def _claim_returning(
    queryset: QuerySet[_M], attname: str, timeout: dt.timedelta
) -> tuple[_M, Status, bool] | tuple[None, None, bool]:
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
    statement = claim_statement(queryset, attname, timeout, current)
    params = statement.params_at(current, timeout)

    def execute() -> tuple[Any, ...] | None:
        with connection.cursor() as cursor:
            cursor.execute(statement.sql, params)
            return cursor.fetchone()

    row = write_retrying(using, execute)
    if row is None:
        return None, None, False
    task = statement.model_from_row(queryset, row)
    return task, Status(getattr(task, attname)), row[-1] is not None


def _claim(queryset: QuerySet[_M], attname: str) -> tuple[_M, Status] | tuple[None, None]:
    features = connections[queryset.db].features
    if features.has_select_for_update_skip_locked:
        return _claim_skip_locked(queryset, attname, features.has_select_for_update_of)
    return _claim_compare_and_swap(queryset, attname)


def claim_one(
    queryset: QuerySet[_M], attname: str, retry: int, timeout: dt.timedelta, delay: Delay
) -> tuple[_M, Status] | tuple[None, None]:
    """Claim run()'s next row of the queue `attname`, and give back a row
    left working past `timeout` (one statement where the database can:
    :func:`modelqueue.claim.claims_in_one_statement`); return the row and
    its claimed status, or (None, None) when none is due."""
    task: _M | None
    claimed: Status | None
    if claims_in_one_statement(queryset):
        task, claimed, stalled = _claim_returning(queryset, attname, timeout)
        if task is None:
            if reclaim_stalled(queryset, attname, retry, timeout, delay):
                task, claimed, _ = _claim_returning(queryset, attname, timeout)
        elif stalled:
            reclaim_stalled(queryset, attname, retry, timeout, delay, task.pk)
    else:
        reclaim_stalled(queryset, attname, retry, timeout, delay)
        task, claimed = _claim(queryset, attname)
    if task is None or claimed is None:
        return None, None
    return task, claimed


#: Values that cannot change in place: a snapshot keeps them, uncopied.
IMMUTABLE = (
    str, int, float, bool, bytes, Decimal, UUID, dt.datetime, dt.date, dt.time, dt.timedelta, type(None)
)


def snapshot(task: Model) -> dict[str, Any]:
    """Copy the loaded field values of `task`, to see later what changed
    (a list or a dict the action may change in place is copied deeply)."""
    values = task.__dict__
    return {
        field.attname: value if type(value) in IMMUTABLE else copy.deepcopy(value)
        for field in task._meta.concrete_fields
        if (value := values.get(field.attname, _ABSENT)) is not _ABSENT
    }


_ABSENT = object()


def changed_values(task: Model, before: dict[str, Any], attname: str) -> dict[str, Any]:
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


def outcome_of(
    error: BaseException | None, attempts: int, retry: int, delay: Delay
) -> Status:
    """Return the status that ends an attempt that raised `error` (or None).

    `delay` is run()'s: a timedelta, or a callable given `attempts` (a
    RetryPolicy may also give up on `error` at once).
    """
    current = now()
    if error is None:
        return Status.finished(current, min(attempts, MAX_ATTEMPTS))
    if isinstance(error, Repeat):  # the action succeeded, and its row repeats
        return Status.waiting(error.at, 0)
    if isinstance(error, Retry):
        wait = delay_after(delay, attempts) if error.delay is None else error.delay
        return Status.waiting(current + wait, min(attempts - 1, MAX_ATTEMPTS))
    if isinstance(error, Cancel) or gives_up(delay, error):
        return Status.canceled(current, min(attempts, MAX_ATTEMPTS))
    if attempts <= retry:
        wait = error.delay if isinstance(error, Abort) and error.delay is not None else delay_after(delay, attempts)
        return Status.waiting(current + wait, attempts)
    return Status.canceled(current, min(attempts, MAX_ATTEMPTS))


def run(
    queryset: QuerySet[_M],
    field: str,
    action: Callable[[_M], object],
    retry: int = 3,
    timeout: dt.timedelta = ONE_HOUR,
    delay: Delay = ZERO_SECS,
) -> _M | None:
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

    `delay` may also be a callable given the attempts made so far (1 after
    the first failure) that returns the wait, such as
    :class:`modelqueue.Backoff` for exponential backoff with a cap and
    jitter, or a :class:`modelqueue.RetryPolicy`, which also names the
    exceptions that retry and those that cancel the row at once (see
    :mod:`modelqueue.retries`).

    If the database refuses a value the action set (a NUL on PostgreSQL, a
    lone surrogate, text too long for its column), the outcome is written
    without the action's values, as a failed attempt (waiting again, or
    canceled past `retry`; a ``Cancel`` still cancels), and
    :class:`OutcomeNotStored` is raised (the action's own exception instead,
    if it raised one). A failed attempt's failure record is written after
    the outcome, and never fails run() (see :mod:`modelqueue.failures`).

    Every query goes to the database `queryset` names with ``.using()``, or
    else to the router's ``db_for_write``: the claim is a write, so a router
    that sends reads to a replica does not send claims there.

    :param queryset: Django queryset
    :param str field: field name
    :param function action: applied to models from `queryset`
    :param int retry: max retry count (limit 8)
    :param timedelta timeout: max runtime for `action`
    :param timedelta delay: delay time after retry (or a callable given the
        attempts that returns it, or a RetryPolicy)
    :return: model from queryset or None if no waiting model
    :raises ValueError: when an argument is not of the kind described above

    """
    attname = check_run_arguments(queryset, field, action, retry, timeout, delay)
    task, _ = run_chained(for_writes(queryset), attname, action, retry, timeout, delay)
    return task


def run_chained(
    queryset: QuerySet[_M],
    attname: str,
    action: Callable[[_M], object],
    retry: int,
    timeout: dt.timedelta,
    delay: Delay,
    held: tuple[_M, Status] | None = None,
    claim_next: Callable[[], bool] | None = None,
    on_not_stored: Callable[[_M, OutcomeNotStored], object] | None = None,
) -> tuple[_M | None, tuple[_M, Status] | None]:
    """:func:`run` for a worker that runs one task after another, with the
    arguments checked (`attname` from check_run_arguments); return the task
    (or None) and `following`, the next row claimed with its completion.

    `held` is a ``following`` of the previous call, run instead of claiming a
    row. `claim_next` is called once the action has returned when the
    outcome can be written together with the next claim (the action
    succeeded, on PostgreSQL: :func:`modelqueue.claim.claims_with_completion`);
    when it returns true, the fenced completion also claims the next due row
    in the same statement, one commit instead of two, and `following` is that
    row (None if none was due). The caller runs it next; until then it is
    working, held as any claimed row is (a timeout reclaims it).

    `on_not_stored`, if given, is called with the task and the
    OutcomeNotStored when the database refused the action's values, before
    the outcome is written without them: it may set values it knows the
    database takes, and raise ``Cancel`` or ``Abort`` to choose the outcome
    (the Tasks worker makes such a task FAILED, saying why).
    """
    task: _M | None
    claimed: Status | None
    if held is not None:
        task, claimed = held
    else:
        task, claimed = claim_one(queryset, attname, retry, timeout, delay)
    if task is None or claimed is None:  # claimed is None exactly when task is
        return None, None

    attempts = claimed.attempts + 1
    setattr(task, attname, claimed)
    before = snapshot(task)
    error = None
    try:
        action(task)
    except BaseException as exc:  # noqa: BLE001 (the row must not stay working)
        error = exc
    outcome = outcome_of(error, attempts, retry, delay)
    following: tuple[_M, Status] | None = None

    def write(outcome: Status) -> bool:
        nonlocal following
        if (
            error is None
            and claim_next is not None
            and claims_with_completion(queryset)
            and claim_next()
        ):
            following = _complete_and_claim(
                queryset, task, attname, claimed, before, outcome, retry, timeout, delay
            )
            return True  # the completion's own warning said if it was fenced off
        return complete(queryset, task, attname, claimed, before, outcome)

    raised = finish_attempt(
        queryset, task, attname, claimed, before, error, outcome, retry, delay, on_not_stored, write
    )
    if raised is not None:
        raise raised
    return task, following


def finish_attempt(
    queryset: QuerySet[_M],
    task: _M,
    attname: str,
    claimed: Status,
    before: dict[str, Any],
    error: BaseException | None,
    outcome: Status,
    retry: int,
    delay: Delay,
    on_not_stored: Callable[[_M, OutcomeNotStored], object] | None,
    write: Callable[[Status], bool],
) -> BaseException | None:
    """Write the `outcome` of the attempt at `task` (claimed with the
    working status `claimed`; `error` is what the action raised, or None)
    with ``write(outcome)``, which returns whether it was written; if the
    database refused the values the action set, write the outcome without
    them, as a failed attempt. Record a failure. Return the exception
    run() raises after that, if any."""
    attempts = claimed.attempts + 1
    recorded = error  # what the failure record names
    try:
        written = write(outcome)
    except Exception as refused:
        if not _values_refused(queryset, refused, task, before, attname):
            raise
        recorded, outcome, written = _complete_without_values(
            queryset, task, attname, claimed, before, refused, error, attempts, retry, delay, on_not_stored
        )
    if recorded is not None and not isinstance(recorded, Retry):  # a failure: one INSERT
        failures.record_attempt(
            queryset, task, attname, attempts, recorded, outcome if written else None, claimed
        )
    if error is not None and not isinstance(error, (Retry, Abort, Cancel)):
        return error
    if recorded is not None and recorded is not error:
        return recorded
    return None


def _values_refused(
    queryset: QuerySet[Any], error: BaseException, task: Model, before: dict[str, Any], attname: str
) -> bool:
    """Whether the completion's `error` may be the fault of the values the
    action set: it set some, and the error is not the connection's."""
    if isinstance(error, CONNECTION_ERRORS) and not _packet_too_large(queryset, error):
        return False
    return any(name != attname for name in changed_values(task, before, attname))


def _packet_too_large(queryset: QuerySet[Any], error: BaseException) -> bool:
    cause = error.__cause__
    return (
        connections[queryset.db].vendor == 'mysql'
        and cause is not None
        and bool(cause.args)
        and cause.args[0] == MYSQL_PACKET_TOO_LARGE
    )


def _complete_without_values(
    queryset: QuerySet[_M],
    task: _M,
    attname: str,
    claimed: Status,
    before: dict[str, Any],
    refused: BaseException,
    error: BaseException | None,
    attempts: int,
    retry: int,
    delay: Delay,
    on_not_stored: Callable[[_M, OutcomeNotStored], object] | None,
) -> tuple[OutcomeNotStored, Status, bool]:
    """The completion failed on the values the action set (`refused`):
    write the outcome as a failed attempt without them. Return the
    OutcomeNotStored, the outcome, and whether it was written."""
    fields = sorted(name for name in changed_values(task, before, attname) if name != attname)
    message = f'the values the action set could not be stored ({", ".join(fields)})'
    if error is not None and not isinstance(error, (Retry, Abort, Cancel)):
        text, notes = text_of(error)
        message += f'; the action raised {name_of(error)}' + (f': {text}' if text or not notes else '')
    not_stored = OutcomeNotStored(storable(message, failures.MESSAGE_CHARS), fields)
    not_stored.__cause__ = refused
    logger.warning(
        '%s pk=%s: %s; writing its outcome without them, as a failed attempt (%s: %s)',
        queryset.model._meta.label,
        task.pk,
        not_stored,
        type(refused).__name__,
        storable(text_of(refused)[0].strip(), failures.MESSAGE_CHARS),
    )
    if _packet_too_large(queryset, refused) and not connections[queryset.db].in_atomic_block:
        connections[queryset.db].close()  # MariaDB dropped it; the next query reconnects
    chosen: BaseException = not_stored if error is None or isinstance(error, Retry) else error
    if on_not_stored is None:
        _restore(task, before, attname)
    else:
        try:
            on_not_stored(task, not_stored)
        except (Abort, Cancel) as decided:
            chosen = decided
        except Exception:
            logger.exception('%s pk=%s: on_not_stored failed', queryset.model._meta.label, task.pk)
            _restore(task, before, attname)
    outcome = outcome_of(chosen, attempts, retry, delay)
    try:
        written = complete(queryset, task, attname, claimed, before, outcome)
    except Exception as again:
        if not _values_refused(queryset, again, task, before, attname):
            raise
        _restore(task, before, attname)
        written = complete(queryset, task, attname, claimed, before, outcome, with_values=False)
    return not_stored, outcome, written


def _restore(task: Model, before: dict[str, Any], attname: str) -> None:
    """Give `task` back the loaded values of the fields the action changed."""
    for name, value in before.items():
        if name != attname:
            task.__dict__[name] = value


def _complete_and_claim(
    queryset: QuerySet[_M],
    task: _M,
    attname: str,
    claimed: Status,
    before: dict[str, Any],
    outcome: Status,
    retry: int,
    timeout: dt.timedelta,
    delay: Delay,
) -> tuple[_M, Status] | None:
    """`complete`, and the next claim in the same statement; return the row
    claimed, as (task, status), or None."""
    values = changed_values(task, before, attname)
    values[attname] = outcome
    completion_sql, completion_params = _fenced_update_sql(
        queryset, task.pk, attname, claimed, values
    )
    current = now()
    statement = claim_statement(queryset, attname, timeout, current)
    sql, params = statement.with_completion(completion_sql, completion_params, current, timeout)

    def execute() -> Any:
        with connections[queryset.db].cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()

    row = _in_savepoint_if_needed(queryset, values, execute)
    completed(queryset, task, attname, outcome, bool(row[0]))
    if row[1] is None:  # the claim's columns are NULL: no row was due
        return None
    following = statement.model_from_row(queryset, row[1:])
    if row[-1] is not None:
        reclaim_stalled(queryset, attname, retry, timeout, delay, following.pk)
    return following, Status(getattr(following, attname))


def complete(
    queryset: QuerySet[Any],
    task: Model,
    attname: str,
    claimed: Status,
    before: dict[str, Any],
    outcome: Status,
    with_values: bool = True,
) -> bool:
    """Write `outcome` and (`with_values`) the changed fields, fenced on the
    `claimed` status; return whether it was written."""
    values = changed_values(task, before, attname) if with_values else {}
    values[attname] = outcome
    written = write_retrying(
        queryset.db,
        lambda: _in_savepoint_if_needed(
            queryset,
            values,
            lambda: _fenced_update(queryset, task.pk, attname, claimed, values),
        ),
    )
    completed(queryset, task, attname, outcome, written)
    return bool(written)


def _in_savepoint_if_needed(queryset: QuerySet[Any], values: dict[str, Any], write: Callable[[], _T]) -> _T:
    """Call `write()`; in a savepoint if it writes the action's values
    within the caller's transaction, which a refused value would otherwise
    break (on PostgreSQL) before run() writes the outcome without them."""
    if len(values) > 1 and connections[queryset.db].in_atomic_block:
        with transaction.atomic(using=queryset.db):
            return write()
    return write()


def completed(
    queryset: QuerySet[Any], task: Model, attname: str, outcome: Status, written: bool | int
) -> None:
    """Set the outcome `written` on `task`, or warn that it was not."""
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
