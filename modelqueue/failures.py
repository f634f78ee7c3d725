"""Failure records: what run() writes when an attempt fails, and their pruning.

run() calls :func:`record_attempt` when an action raises ``Abort``,
``Cancel`` or another exception, and :func:`record_reclaim` when it gives
back a row left working past the timeout (:func:`record_rescue` when a
row of a lost worker is given back: :mod:`modelqueue.rescue`). Each is one INSERT into
:class:`modelqueue.models.FailureRecord`, on the queue's database; a
finished task writes nothing here.

Recording never fails run(): the message and the traceback are made text
that every database stores (:mod:`modelqueue.text`: NULs and lone
surrogates escaped, the length capped, marked when changed), and a record
that cannot be written anyway is logged and skipped; run() writes the same
outcome and raises the same exception either way. Only a missing table
(the modelqueue migrations not applied) turns recording off: the reason is
logged once, and recording is tried again a minute later.

Its settings (``MODELQUEUE_FAILURE_RECORDS``, ``MODELQUEUE_FAILURES_PER_ROW``,
``MODELQUEUE_FAILURE_MAX_AGE``, ``MODELQUEUE_TRACEBACK_CHARS``) are
described in :mod:`modelqueue.conf`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import traceback as tracebacks
from typing import TYPE_CHECKING, Any, cast

from django.db import DatabaseError, connections, transaction
from django.db.models import Subquery, Value
from django.db.models.functions import Coalesce

from . import conf
from .exceptions import Abort, Retry, TimeLimitExceeded
from .names import exception_path, worker_name, worker_name_expression
from .schema import missing_tables
from .status import Status, now, priority_to_datetime
from .text import name_of, storable, text_of
from .validation import column_of, concrete_field

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models import Model, QuerySet

logger = logging.getLogger('modelqueue')

#: The most characters a record's message keeps (its marker included).
MESSAGE_CHARS = 2000
#: The most characters of an exception's class path.
EXCEPTION_CHARS = 255
#: Seconds before recording is tried again after the table was missing.
RETRY_SECONDS = 60.0
#: Records deleted per statement when pruning, and statements per pass.
PRUNE_BATCH = 500
PRUNE_BATCHES = 10

_off_until: dict[str, float] = {}  # database alias -> time.monotonic() when to try again


def message_of(error: BaseException) -> str:
    """`error`'s message, with the exception it was raised from, as text
    every database stores, in at most MESSAGE_CHARS characters (see
    :func:`modelqueue.text.storable`: it keeps its start, and ends with a
    marker when it was changed).

    ``Abort`` and ``Retry`` carry a delay, not a message: raise them *from*
    the error that made the action give up, and that error is the reason.

    >>> from modelqueue import Abort
    >>> try:
    ...     raise Abort() from TimeoutError('smtp.example did not answer')
    ... except Abort as error:
    ...     print(message_of(error))
    TimeoutError: smtp.example did not answer

    A message that cannot be read says so instead of raising:

    >>> class Unreadable(Exception):
    ...     def __str__(self):
    ...         raise RuntimeError('no')
    >>> print(message_of(Unreadable()))
     [modelqueue: its text could not be read: str() raised RuntimeError]
    """
    notes: list[str]
    if isinstance(error, (Abort, Retry)):
        text, notes = ('' if error.delay is None else f'delay {error.delay}'), []
    else:
        text, notes = text_of(error)
    cause = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    if cause is not None:
        reason, more = text_of(cause)
        text = f'{text}; ' if text else ''
        text += f'{name_of(cause)}: {reason}'
        notes += [note.replace('its text', 'the text of its cause') for note in more]
    return storable(text, MESSAGE_CHARS, notes=notes)


def traceback_of(error: BaseException) -> str:
    """`error`'s traceback as text every database stores, in at most
    MODELQUEUE_TRACEBACK_CHARS characters: a longer one keeps its first
    third (the first frames) and its end (the last frames and the
    exception), and ends with a marker (see :func:`modelqueue.text.storable`).

    Failure records and the errors of the Tasks backend's tasks both store
    this text, under the one cap."""
    try:
        text = ''.join(tracebacks.format_exception(type(error), error, error.__traceback__))
        notes: list[str] = []
    except Exception as problem:  # noqa: BLE001 (an exception may break its own formatting)
        text = f'{exception_path(error)} (no traceback)'
        notes = [f'its traceback could not be formatted: {name_of(problem)}']
    return storable(text, conf.get('MODELQUEUE_TRACEBACK_CHARS'), keep='ends', notes=notes)


def exception_name_of(error: BaseException) -> str:
    """`error`'s class path (see :func:`modelqueue.names.exception_path`) as
    text every database stores, in at most EXCEPTION_CHARS characters."""
    return storable(exception_path(error), EXCEPTION_CHARS)


def record_name_of(error: BaseException) -> str:
    """The exception a failure record names for `error`: its class path, or
    ``modelqueue.time_limit`` (``FailureRecord.TIME_LIMIT``) for an action
    its worker's time limit stopped, as ``modelqueue.timeout`` names a
    timeout reclaim.

    >>> record_name_of(ValueError('no'))
    'builtins.ValueError'
    >>> record_name_of(TimeLimitExceeded(2))
    'modelqueue.time_limit'
    """
    if isinstance(error, TimeLimitExceeded):
        from .models import FailureRecord  # noqa: PLC0415 (models.py files import modelqueue before the app registry is ready)

        return FailureRecord.TIME_LIMIT
    return exception_name_of(error)


def outcome_name(outcome: int | None) -> str:
    """The record's outcome for the status run() wrote (None: fenced off)."""
    from .models import FailureRecord  # noqa: PLC0415 (models.py files import modelqueue before the app registry is ready)

    if outcome is None:
        return FailureRecord.SUPERSEDED
    if Status(outcome).state.name == 'canceled':
        return FailureRecord.CANCELED
    return FailureRecord.WAITING


def record_attempt(
    queryset: QuerySet[Any],
    task: Model,
    attname: str,
    attempt: int,
    error: BaseException,
    outcome: int | None,
    claimed: int,
) -> None:
    """Record the failed `attempt` of `task`, which run() claimed with the
    working status `claimed` (its time is when the attempt started):
    `error` was raised, `outcome` (a Status, or None when the completion was
    fenced off) was written.

    Never raises: a record that cannot be made or written is logged."""
    try:
        ended = now()
        started = priority_to_datetime(Status(claimed).priority) or ended
        _record(
            queryset,
            object_id=task.pk,
            field=attname,
            attempt=attempt,
            outcome=outcome_name(outcome),
            exception=record_name_of(error),
            message=message_of(error),
            traceback=traceback_of(error),
            worker=worker_name(),
            started=started,
            ended=ended,
        )
    except Exception as problem:  # noqa: BLE001 (what run() writes about a failure never fails)
        _not_written(queryset, task.pk, problem)


def record_reclaim(
    queryset: QuerySet[Any],
    pk: Any,
    attname: str,
    held: int,
    outcome: int | None,
    current: dt.datetime,
    timeout: dt.timedelta,
) -> None:
    """Record the timeout reclaim of row `pk`, which held the working status
    `held` and was given `outcome`. The worker named is the one whose
    heartbeat still holds the row, read by a subquery of the same INSERT."""
    from .models import FailureRecord, WorkerHeartbeat  # noqa: PLC0415 (models.py files import modelqueue before the app registry is ready)

    try:
        held = Status(held)
        claimed = priority_to_datetime(held.priority) or current
        holder = (  # the annotation `name` shadows the model's property, as Django allows
            WorkerHeartbeat.objects.using(queryset.db)  # type: ignore[misc, no-redef]
            .filter(content_type=content_type_of(queryset.model), field=attname, object_id=str(pk))
            .order_by('-last_seen')
            .annotate(name=worker_name_expression())
            .values('name')[:1]
        )
        _record(
            queryset,
            object_id=pk,
            field=attname,
            attempt=held.attempts + 1,
            outcome=outcome_name(outcome),
            exception=FailureRecord.TIMEOUT,
            message=f'no outcome within the timeout of {timeout}: the worker died or hung',
            traceback='',
            worker=Coalesce(Subquery(holder), Value('')),
            started=claimed,
            ended=current,
        )
    except Exception as problem:  # noqa: BLE001 (what run() writes about a failure never fails)
        _not_written(queryset, pk, problem)


def record_rescue(
    queryset: QuerySet[Any],
    pk: Any,
    attname: str,
    held: int,
    outcome: int,
    current: dt.datetime,
    worker: str,
    message: str,
) -> None:
    """Record the rescue of row `pk`, which the lost `worker` (``host:pid``)
    held with the working status `held`, and which was given `outcome`
    (see :mod:`modelqueue.rescue`)."""
    from .models import FailureRecord  # noqa: PLC0415 (models.py files import modelqueue before the app registry is ready)

    try:
        held = Status(held)
        _record(
            queryset,
            object_id=pk,
            field=attname,
            attempt=held.attempts + 1,
            outcome=outcome_name(outcome),
            exception=FailureRecord.WORKER_LOST,
            message=storable(message, MESSAGE_CHARS),
            traceback='',
            worker=worker,
            started=priority_to_datetime(held.priority) or current,
            ended=current,
        )
    except Exception as problem:  # noqa: BLE001 (what a rescue writes about a failure never fails it)
        _not_written(queryset, pk, problem)


def content_type_of(model: type[Model]) -> Subquery:
    """The ContentType id of `model` as a subquery: no query of its own."""
    from django.contrib.contenttypes.models import ContentType  # noqa: PLC0415 (models.py files import modelqueue before the app registry is ready)

    opts = model._meta.concrete_model._meta  # type: ignore[union-attr]  # None only while the class is built
    return Subquery(
        ContentType.objects.filter(app_label=opts.app_label, model=opts.model_name).values('pk')[:1]
    )


#: The columns of the INSERT, after the content type.
COLUMNS = [
    'object_id', 'field', 'attempt', 'outcome', 'exception', 'message', 'traceback', 'worker',
    'started', 'ended', 'duration',
]
_statements: dict[tuple[str, str], str] = {}  # (database alias, table) -> the INSERT's SQL


def insert_sql(connection: BaseDatabaseWrapper) -> str:
    """The INSERT of one record, its content type looked up by a subquery.

    Written once per database as plain SQL, as run()'s status update is:
    building it with the ORM for every failure would cost more than the
    round trip.
    """
    from django.contrib.contenttypes.models import ContentType  # noqa: PLC0415 (models.py files import modelqueue before the app registry is ready)

    from .models import FailureRecord  # noqa: PLC0415 (models.py files import modelqueue before the app registry is ready)

    key = (connection.alias, FailureRecord._meta.db_table)
    sql = _statements.get(key)
    if sql is None:
        qn = connection.ops.quote_name
        meta, types = FailureRecord._meta, ContentType._meta
        columns = [column_of(FailureRecord, name) for name in ['content_type', *COLUMNS]]
        content_type = (
            f'(SELECT {qn(cast(str, types.pk.column))} FROM {qn(types.db_table)}'
            f' WHERE {qn("app_label")} = %s AND {qn("model")} = %s)'
        )
        sql = _statements[key] = (
            f'INSERT INTO {qn(meta.db_table)} ({", ".join(map(qn, columns))})'
            f' VALUES ({content_type}, {", ".join(["%s"] * len(COLUMNS))})'
        )
    return sql


def _record(queryset: QuerySet[Any], **values: Any) -> None:
    if not conf.get('MODELQUEUE_FAILURE_RECORDS'):
        return
    using = queryset.db
    if _off_until.get(using, 0) > time.monotonic():
        return
    values['object_id'] = str(values['object_id'])
    values['duration'] = max(values['ended'] - values['started'], dt.timedelta(0))
    connection = connections[using]
    try:
        if connection.in_atomic_block:  # the caller's transaction survives a failed INSERT
            with transaction.atomic(using=using):
                _insert(connection, queryset.model, values)
        else:
            _insert(connection, queryset.model, values)
    except Exception as error:  # noqa: BLE001 (recording never stops run())
        if not (isinstance(error, DatabaseError) and _table_missing(using)):
            _not_written(queryset, values['object_id'], error)
            return
        if using not in _off_until:
            logger.warning(
                'Failure records are off on database %r (are the modelqueue migrations'
                ' applied? run manage.py migrate modelqueue): %s: %s. run() goes on;'
                ' recording is tried again every %d seconds.',
                using,
                type(error).__name__,
                _described(error),
                RETRY_SECONDS,
            )
        _off_until[using] = time.monotonic() + RETRY_SECONDS
    else:
        _off_until.pop(using, None)


def _table_missing(using: str) -> bool:
    """Whether the failure records' table is missing from the database
    `using` (False when that cannot be told: the connection is lost, say)."""
    from .models import FailureRecord  # noqa: PLC0415 (models.py files import modelqueue before the app registry is ready)

    return bool(missing_tables(using, [FailureRecord._meta.db_table]))


def _not_written(queryset: QuerySet[Any], pk: Any, error: BaseException) -> None:
    """Log a failure record that was not written: one value the database
    refused, or a connection lost. Recording stays on."""
    try:
        logger.warning(
            'Could not write the failure record of %s pk=%s: %s: %s. run() goes on.',
            queryset.model._meta.label,
            pk,
            type(error).__name__,
            _described(error),
        )
    except Exception:  # noqa: BLE001 (a broken logging set-up must not stop run() either)
        pass


def _described(error: BaseException) -> str:
    """The text of `error` for a log line: one line, safe, short."""
    return storable(text_of(error)[0].strip(), MESSAGE_CHARS)


def _insert(connection: BaseDatabaseWrapper, model: type[Model], values: dict[str, Any]) -> None:
    """One INSERT: plain SQL, or the ORM when a value is an expression (the
    reclaim's worker, read from the heartbeat table)."""
    from .models import FailureRecord  # noqa: PLC0415 (models.py files import modelqueue before the app registry is ready)

    if not isinstance(values['worker'], str):
        record = FailureRecord(content_type_id=content_type_of(model), **values)
        record.save(using=connection.alias, force_insert=True)
        return
    opts = model._meta.concrete_model._meta  # type: ignore[union-attr]  # None only while the class is built
    params = [opts.app_label, opts.model_name]
    params += [
        concrete_field(FailureRecord, name).get_db_prep_save(values[name], connection)
        for name in COLUMNS
    ]
    with connection.cursor() as cursor:
        cursor.execute(insert_sql(connection), params)


class Pruner:
    """Deletes old records and records beyond the per-row limit, in bounded batches.

    A worker calls :meth:`prune` now and then (from its heartbeat thread),
    so no request and no task pays for it. Each pass deletes at most
    PRUNE_BATCHES batches of PRUNE_BATCH records past the maximum age, and
    trims the rows of up to PRUNE_BATCH records written since its last pass
    to ``MODELQUEUE_FAILURES_PER_ROW`` records each (the newest kept).
    """

    def __init__(self, using: str = 'default') -> None:
        self.using = using
        self.checked_id = 0  # records up to this id had their rows trimmed

    def prune(self, current: dt.datetime | None = None) -> int:
        """One pass; return the number of records deleted."""
        from .models import FailureRecord  # noqa: PLC0415 (models.py files import modelqueue before the app registry is ready)

        current = now() if current is None else current
        records = FailureRecord.objects.using(self.using)
        deleted = 0
        cutoff = current - conf.get('MODELQUEUE_FAILURE_MAX_AGE')
        for _ in range(PRUNE_BATCHES):
            old = list(records.filter(ended__lt=cutoff).order_by('ended').values_list('pk', flat=True)[:PRUNE_BATCH])
            if not old:
                break
            deleted += records.filter(pk__in=old).delete()[0]
        keep = conf.get('MODELQUEUE_FAILURES_PER_ROW')
        new = list(
            records.filter(pk__gt=self.checked_id)
            .order_by('pk')
            .values_list('pk', 'content_type_id', 'field', 'object_id')[:PRUNE_BATCH]
        )
        for content_type, field, object_id in sorted({row[1:] for row in new}):
            row = records.filter(content_type_id=content_type, field=field, object_id=object_id)
            extra = list(row.order_by('-pk').values_list('pk', flat=True)[keep : keep + PRUNE_BATCH])
            if extra:
                deleted += records.filter(pk__in=extra).delete()[0]
        if new:
            self.checked_id = new[-1][0]
        return deleted
