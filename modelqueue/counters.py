"""Exact counts of a queue's states, kept by PostgreSQL triggers.

Counting the rows of a state reads one index entry per row, so on a queue
with a long history the dashboard's counts cost more every day. Once
:func:`install_counters` has run for a queue, PostgreSQL keeps them:

- statement triggers on the queue's table (after INSERT, UPDATE, DELETE and
  TRUNCATE) add rows to ``modelqueue_state_count`` with how many rows the
  statement moved into (+) or out of (-) each state, read from the
  statement's transition tables; waiting, finished and canceled rows are
  kept by minute (their status divided by :data:`MINUTE`), so the dashboard
  can read how many are scheduled after now and how many finished in each
  of the last sixty minutes;
- a count is a sum of those rows: exact, in the reader's snapshot, like a
  ``COUNT``, and as cheap at ten million rows as at ten;
- :func:`compact_counters` folds the added rows into one per state and
  minute, and minutes older than :data:`KEEP_MINUTES` into their state's
  total. The worker's heartbeat thread calls it every few seconds, and the
  admin calls it after a read that summed more than :data:`COMPACT_ABOVE`
  rows.

A status change then costs its transaction one more INSERT (into a table no
other statement locks, so workers never wait on each other for it). The
counters are therefore opt-in: install them for queues whose history makes
the dashboard slow, from a migration::

    from django.db import migrations
    from modelqueue.counters import install_counters, uninstall_counters

    def install(apps, schema_editor):
        Task = apps.get_model('shop', 'Task')
        install_counters(Task, 'status', using=schema_editor.connection.alias)

    def uninstall(apps, schema_editor):
        Task = apps.get_model('shop', 'Task')
        uninstall_counters(Task, 'status', using=schema_editor.connection.alias)

    class Migration(migrations.Migration):
        dependencies = [('shop', '0002_task_status')]
        operations = [migrations.RunPython(install, uninstall)]

Installing counts the table once, with writes to it held back meanwhile (a
second or two for ten million rows). Other databases have no statement
triggers with transition tables: there the functions do nothing and return
False, and the admin counts rows as before.

Counts that may be stale are never read, and are counted afresh:

- the triggers are enabled ``ALWAYS``, so writes under
  ``session_replication_role = replica`` (logical replication applying
  changes on a subscriber, some restore tools) are counted too, and their
  function writes to the counts table of the schema it was installed in,
  whatever the writing session's ``search_path``;
- a trigger disabled (``ALTER TABLE ... DISABLE TRIGGER``, or ``pg_restore
  --disable-triggers``) makes :func:`state_totals` answer None (the admin
  counts rows instead) until it is enabled again. Enabled again by a plain
  ``ENABLE TRIGGER``, the counters are no longer current: the next
  :func:`install_counters`, or a worker's housekeeping within a minute
  (:func:`refresh_counters`), counts the table afresh;
- every ten minutes a worker compares the counts of the states holding up
  to :data:`VERIFY_ROWS_AT_MOST` rows with a ``COUNT`` in one snapshot, and
  counts afresh if they differ, whatever the cause (:func:`verify_counters`).

What they cannot see: a write made with the triggers disabled and then
enabled ``ALWAYS`` again by hand, in a state holding more rows than
:data:`VERIFY_ROWS_AT_MOST`. Call ``install_counters(..., recount=True)``
after such maintenance.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, connections, transaction

from . import dbobjects
from .status import State, Status, now
from .validation import column_of

if TYPE_CHECKING:
    from django.db.models import Model, QuerySet

logger = logging.getLogger('modelqueue')

COUNTERS_VERSION = 2
#: The table of counts, shared by every queue with counters installed.
COUNTS_TABLE = 'modelqueue_state_count'
#: A reader that sums more rows than this for one queue compacts them.
COMPACT_ABOVE = 10_000
#: What a row in no state (a value that is not a status) is counted as.
NO_STATE = 0
#: Statuses per minute bucket: a minute of priorities, times 10 attempts.
MINUTE = 10**6
#: verify_counters compares with a COUNT the states with at most this many rows.
VERIFY_ROWS_AT_MOST = 100_000
#: Seconds between two verifications by a worker's housekeeping.
VERIFY_SECONDS = 600.0
#: Compaction folds the minutes of finished, canceled and waiting rows older
#: than this into their state's total: no figure reads them apart any more.
KEEP_MINUTES = dt.timedelta(hours=3)

_EVENTS = ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')


def queue_key(model: type[Model], field: str) -> str:
    """How ``modelqueue_state_count`` names the queue `field` of `model`.

    >>> from django.contrib.auth.models import User
    >>> queue_key(User, 'last_login')
    'auth_user.last_login'
    """
    return f'{model._meta.db_table}.{column_of(model, field)}'


def trigger_names(model: type[Model], field: str) -> tuple[str, list[str]]:
    """The names of the queue's trigger function and of its four triggers
    (INSERT, UPDATE, DELETE, TRUNCATE), at most 63 bytes each."""
    base = 'modelqueue_count_' + hashlib.sha1(queue_key(model, field).encode()).hexdigest()[:12]
    return base, [f'{base}_{event.lower()}' for event in _EVENTS]


def _state_sql(column: str) -> str:
    """SQL for the state number of `column`: 1 (created) to 5 (canceled), else 0."""
    return (
        f'CASE WHEN {column} BETWEEN {Status.minimum(State.created)} AND {Status.maximum(State.canceled)}'
        f' THEN ({column} / {Status.minimum(State.created)})::smallint ELSE {NO_STATE} END'
    )


def _bucket_sql(column: str) -> str:
    """SQL for the minute of a waiting, finished or canceled status (its
    value without seconds, milliseconds and attempts, divided by 10**6), else NULL."""
    return (
        f'CASE WHEN {column} BETWEEN {Status.minimum(State.waiting)} AND {Status.maximum(State.waiting)}'
        f' OR {column} BETWEEN {Status.minimum(State.finished)} AND {Status.maximum(State.canceled)}'
        f' THEN {column} / {MINUTE} END'
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def counter_triggers(
    model: type[Model], field: str, quote: Callable[[str], str]
) -> dbobjects.TriggerSet:
    """The function and the four statement triggers that count the queue."""
    table = quote(model._meta.db_table)
    column = quote(column_of(model, field))
    state = _state_sql(column)
    bucket = _bucket_sql(column)
    key = _literal(queue_key(model, field))
    function, triggers = trigger_names(model, field)
    insert = f'INSERT INTO {COUNTS_TABLE} (queue, state, bucket, rows)'
    body = f"""
BEGIN
    -- modelqueue state counters, version {COUNTERS_VERSION}
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM {COUNTS_TABLE} WHERE queue = {key};
    ELSIF TG_OP = 'INSERT' THEN
        {insert} SELECT {key}, {state}, {bucket}, count(*) FROM new_rows GROUP BY 2, 3;
    ELSIF TG_OP = 'DELETE' THEN
        {insert} SELECT {key}, {state}, {bucket}, -count(*) FROM old_rows GROUP BY 2, 3;
    ELSE
        {insert} SELECT {key}, state, bucket, sum(change) FROM (
            SELECT {state} AS state, {bucket} AS bucket, 1 AS change FROM new_rows
            UNION ALL SELECT {state}, {bucket}, -1 FROM old_rows
        ) AS changes GROUP BY state, bucket HAVING sum(change) <> 0;
    END IF;
    RETURN NULL;
END;
"""
    transitions = {
        'INSERT': 'REFERENCING NEW TABLE AS new_rows',
        'UPDATE': 'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows',
        'DELETE': 'REFERENCING OLD TABLE AS old_rows',
        'TRUNCATE': '',
    }
    return dbobjects.TriggerSet(
        table=model._meta.db_table,
        function=function,
        body=body,
        triggers={
            trigger: (
                f'AFTER {event} ON {table} {transitions[event]}'
                f' FOR EACH STATEMENT EXECUTE FUNCTION {quote(function)}()'
            )
            for event, trigger in zip(_EVENTS, triggers)
        },
        # A write must be counted whoever makes it: under
        # session_replication_role = replica (logical replication applying
        # changes, some restore tools) too, and from a session whose
        # search_path finds another modelqueue_state_count, or none.
        enabled='A',
        pin_schema=True,
    )


def install_counters(
    model: type[Model], field: str, using: str = 'default', recount: bool = False
) -> bool:
    """Keep exact counts of the states of `model`'s `field` queue.

    On PostgreSQL, creates ``modelqueue_state_count`` if need be (in the
    current schema, which the triggers' function then always writes to),
    and a function and four statement triggers on the table, enabled
    ``ALWAYS``, then counts the table once, holding back writes to it
    meanwhile. Returns True when it changed the database; False when the
    counters were already installed and current (`recount` counts them
    afresh even then), or the database is not PostgreSQL.

    Counters are not current, and are counted afresh by the next install,
    when a trigger was dropped, replaced, or disabled and enabled again (the
    writes in between were not counted); :func:`state_totals` does not read
    them meanwhile.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    key = queue_key(model, field)
    column = quote(column_of(model, field))
    table = quote(model._meta.db_table)

    def prepare(cursor: Any) -> None:
        # Writes wait from here to the commit, so that the count below and
        # the triggers' first rows neither miss nor repeat a change. First:
        # a write already in the table that reaches the counts table
        # through an earlier version's trigger must not find that table
        # locked by the ALTER below while it holds the queue table (a
        # deadlock).
        cursor.execute(f'LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE')
        cursor.execute(
            f'CREATE TABLE IF NOT EXISTS {COUNTS_TABLE}'
            ' (queue text NOT NULL, state smallint NOT NULL, bucket bigint, rows bigint NOT NULL)'
        )
        # A table made by an earlier version has no minutes: add them (its
        # other queues count again when their counters are installed anew).
        cursor.execute(f'ALTER TABLE {COUNTS_TABLE} ADD COLUMN IF NOT EXISTS bucket bigint')
        cursor.execute(f'CREATE INDEX IF NOT EXISTS {COUNTS_TABLE}_minutes ON {COUNTS_TABLE} (queue, state, bucket)')

    def count(cursor: Any) -> None:
        cursor.execute(f'DELETE FROM {COUNTS_TABLE} WHERE queue = %s', [key])
        cursor.execute(
            f'INSERT INTO {COUNTS_TABLE} (queue, state, bucket, rows)'
            f' SELECT %s, {_state_sql(column)}, {_bucket_sql(column)}, count(*) FROM {table} GROUP BY 2, 3',
            [key],
        )
        _fold(cursor, key)

    objects = counter_triggers(model, field, quote)
    # Installs take turns on one lock: CREATE TABLE IF NOT EXISTS is not safe against itself.
    installed = dbobjects.install(
        using, objects, lock_name=COUNTS_TABLE, prepare=prepare, then=count, force=recount
    )
    if installed:
        logger.info('Installed the state counters %s on %s', objects.function, model._meta.db_table)
    return installed


def refresh_counters(model: type[Model], field: str, using: str = 'default') -> bool:
    """Count the queue afresh if its counters are installed but no longer
    current (a trigger enabled again after it was disabled, replaced, or of
    an older version): writes may have gone uncounted. Counters that are
    absent, or disabled (an operator's choice, for a bulk load say), are
    left alone. Returns whether it counted. A worker's housekeeping calls it
    about once a minute."""
    connection = connections[using]
    if connection.vendor != 'postgresql':
        return False
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        found = counter_triggers(model, field, quote).state(cursor, quote)
    if found != dbobjects.OUTDATED:
        return False
    logger.warning(
        'The state counters of %s are installed but not current (a trigger was'
        ' disabled and enabled again, replaced, or is of an older version):'
        ' counting the table afresh',
        queue_key(model, field),
    )
    return install_counters(model, field, using=using)


def verify_counters(
    model: type[Model], field: str, using: str = 'default', rows_at_most: int = VERIFY_ROWS_AT_MOST
) -> list[str]:
    """Compare the counters with a ``COUNT`` of each state they say holds at
    most `rows_at_most` rows (cheap on the status index), in one snapshot;
    if any differs, whatever the cause, count the table afresh. Returns the
    names of the states that differed. A worker's housekeeping calls it
    every :data:`VERIFY_SECONDS`.
    """
    connection = connections[using]
    if connection.vendor != 'postgresql':
        return []
    quote = connection.ops.quote_name
    column = quote(column_of(model, field))
    table = quote(model._meta.db_table)
    owns_transaction = not connection.in_atomic_block
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if owns_transaction:  # the counts and the COUNTs in one snapshot
            cursor.execute('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ')
        if not counter_triggers(model, field, quote).is_current(cursor, quote):
            return []
        cursor.execute(
            f'SELECT state, sum(rows) FROM {COUNTS_TABLE} WHERE queue = %s AND state > 0 GROUP BY state',
            [queue_key(model, field)],
        )
        counted = {int(state): int(rows) for state, rows in cursor.fetchall()}
        differing: list[str] = []
        for state in Status.states:
            expected = counted.get(int(state), 0)
            if expected > rows_at_most:
                continue
            cursor.execute(
                f'SELECT count(*) FROM {table} WHERE {column} BETWEEN %s AND %s',
                [Status.minimum(state), Status.maximum(state)],
            )
            if cursor.fetchone()[0] != expected:
                differing.append(state.name)
    if differing:
        logger.warning(
            'The state counters of %s differ from the table (%s): counting it afresh',
            queue_key(model, field),
            ', '.join(differing),
        )
        install_counters(model, field, using=using, recount=True)
    return differing


def uninstall_counters(model: type[Model], field: str, using: str = 'default') -> bool:
    """Remove what :func:`install_counters` created for the queue, and its
    counts; False when the database is not PostgreSQL."""
    connection = connections[using]

    def forget(cursor: Any) -> None:
        cursor.execute('SELECT to_regclass(%s)', [COUNTS_TABLE])
        if cursor.fetchone()[0] is not None:
            cursor.execute(f'DELETE FROM {COUNTS_TABLE} WHERE queue = %s', [queue_key(model, field)])

    objects = counter_triggers(model, field, connection.ops.quote_name)
    return dbobjects.uninstall(using, objects, then=forget)


class StateTotals(dict[str | None, int]):
    """State name to rows; `rows_summed` is how many counter rows gave them
    (above :data:`COMPACT_ABOVE`, the reader should compact them)."""

    def __init__(self, totals: dict[str | None, int], rows_summed: int) -> None:
        super().__init__(totals)
        self.rows_summed = rows_summed


def state_totals(queryset: QuerySet[Any], field: str) -> StateTotals | None:
    """The rows of `queryset` in each state of `field`, from the counters.

    A :class:`StateTotals` from state name (and ``None`` for rows in no
    state) to rows, or None when the counters cannot answer: not PostgreSQL, not installed (or
    a trigger disabled), or `queryset` is not a whole table (they count
    tables, not filters).
    """
    query = queryset.query
    if query.where or query.distinct or query.is_sliced or query.combinator:
        return None
    connection = connections[queryset.db]
    if connection.vendor != 'postgresql':
        return None
    objects = counter_triggers(queryset.model, field, connection.ops.quote_name)
    with connection.cursor() as cursor:
        if not objects.is_current(cursor, connection.ops.quote_name):
            return None
        cursor.execute(
            f'SELECT state, sum(rows), count(*) FROM {COUNTS_TABLE} WHERE queue = %s GROUP BY state',
            [queue_key(queryset.model, field)],
        )
        found = cursor.fetchall()
    names = {int(state): state.name for state in Status.states}
    totals = StateTotals({state.name: 0 for state in Status.states}, rows_summed=0)
    totals[None] = 0
    for state, rows, summed in found:
        totals[names.get(state)] += int(rows)
        totals.rows_summed += summed
    return totals


def counters_installed(model: type[Model], field: str, using: str = 'default') -> bool:
    """Whether the queue's counters are installed and current (one query;
    False elsewhere than on PostgreSQL). A DatabaseError propagates: while
    the database does not answer, it cannot be told."""
    connection = connections[using]
    if connection.vendor != 'postgresql':
        return False
    objects = counter_triggers(model, field, connection.ops.quote_name)
    with connection.cursor() as cursor:
        return objects.is_current(cursor, connection.ops.quote_name)


def compact_counters(model: type[Model], field: str, using: str = 'default') -> int:
    """Fold the counts the triggers added for the queue into one row per
    state and minute, and the minutes older than :data:`KEEP_MINUTES` into
    their state's total; no sum that a figure reads changes. Returns the
    rows removed (0 elsewhere than on PostgreSQL, or without counters)."""
    connection = connections[using]
    if connection.vendor != 'postgresql':
        return 0
    key = queue_key(model, field)
    try:
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute('SELECT to_regclass(%s)', [COUNTS_TABLE])
            if cursor.fetchone()[0] is None:
                return 0
            return _fold(cursor, key)
    except DatabaseError as error:  # a read-only user, say: the sums stay right
        logger.warning('Could not compact the state counters of %s: %s', key, error)
        return 0


def _fold(cursor: Any, key: str) -> int:
    """Compact the queue `key`'s counts; return the rows removed.

    Rows a concurrent compaction deletes first are skipped here, and its
    sums, committed after this statement began, are not seen: each row is
    folded once.
    """
    horizon = now() - KEEP_MINUTES
    cursor.execute(
        f'WITH folded AS (DELETE FROM {COUNTS_TABLE} WHERE queue = %s RETURNING state, bucket, rows),'
        ' kept AS ('
        f'  INSERT INTO {COUNTS_TABLE} (queue, state, bucket, rows)'
        '  SELECT %s, state, CASE WHEN bucket >= CASE state WHEN %s THEN %s WHEN %s THEN %s ELSE %s END'
        '  THEN bucket END AS kept_bucket, sum(rows) FROM folded GROUP BY 2, 3 HAVING sum(rows) <> 0'
        '  RETURNING 1)'
        ' SELECT (SELECT count(*) FROM folded) - (SELECT count(*) FROM kept)',
        [
            key, key,
            int(State.waiting), int(Status.waiting(horizon)) // MINUTE,
            int(State.finished), int(Status.finished(horizon)) // MINUTE,
            int(Status.canceled(horizon)) // MINUTE,
        ],
    )
    return cursor.fetchone()[0]


def minute_sums(
    queryset: QuerySet[Any], field: str, state: State | str | int, first: int, last: int
) -> dict[int, int]:
    """Rows of `queryset` in `state` (waiting, finished or canceled) by minute
    bucket, for the buckets `first` through `last` (status // MINUTE), from
    the counters: ``{bucket: rows}``. Compaction folds the buckets older
    than :data:`KEEP_MINUTES`: ask only for later ones. Call it where
    :func:`state_totals` answered: it does not look for the triggers again."""
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(
            f'SELECT bucket, sum(rows) FROM {COUNTS_TABLE} WHERE queue = %s AND state = %s'
            ' AND bucket BETWEEN %s AND %s GROUP BY bucket',
            [queue_key(queryset.model, field), int(State.get(state)), first, last],
        )
        return {bucket: int(rows) for bucket, rows in cursor.fetchall() if rows}
