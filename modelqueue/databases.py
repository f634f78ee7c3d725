"""Which database a queue is written through, and whether it takes writes.

A claim is a write, and so is every completion, failure record and
heartbeat. Under a database router that sends reads to a replica
(``db_for_read``), a queryset that names no database would read, and so
claim, through the replica; :func:`run <modelqueue.run>` and the worker
therefore pin their queryset to :func:`write_database`: the database it
names with ``.using()``, or else the router's ``db_for_write``.

A database that takes no writes (a standby, a read-only user, a session
with ``default_transaction_read_only``) cannot serve a worker, which would
otherwise retry its failing claims for ever: :func:`writable_problem` asks
the database before a worker starts, and :func:`is_read_only_error` tells
such an error from a hiccup while it runs. Either stops the worker with
:class:`DatabaseNotWritable`, whose message says what to do.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import connections, router

if TYPE_CHECKING:
    from django.db.models import Model, QuerySet

_M = TypeVar('_M', bound='Model')

__all__ = [
    'DatabaseNotWritable',
    'check_writable',
    'for_writes',
    'is_read_only_error',
    'not_writable',
    'read_only_cause',
    'writable_problem',
    'write_database',
]

#: PostgreSQL's SQLSTATE for "cannot execute ... in a read-only transaction"
#: (on a standby too).
READ_ONLY_SQLSTATE = '25006'
#: MySQL's and MariaDB's error numbers for a write refused: the server runs
#: with --read-only (1290), the transaction is read-only (1792), read-only
#: mode (1836).
READ_ONLY_MYSQL_ERRORS = frozenset({1290, 1792, 1836})


class DatabaseNotWritable(Exception):
    """The database a worker writes through takes no writes. Not a database
    error: a worker's loops retry those, and this one does not go away."""


def write_database(queryset: QuerySet[Any]) -> str:
    """The alias that `queryset`'s writes go to: the one it names with
    ``.using()``, else the router's ``db_for_write`` for its model."""
    named = getattr(queryset, '_db', None)  # set by .using() alone
    if named:
        return str(named)
    return router.db_for_write(queryset.model, **getattr(queryset, '_hints', {}))


def for_writes(queryset: QuerySet[_M]) -> QuerySet[_M]:
    """`queryset` on :func:`write_database`: its reads (a claim reads the
    row it locks) go where its writes go."""
    return queryset.using(write_database(queryset))


def is_read_only_error(error: BaseException) -> bool:
    """Whether `error` (Django's, or the driver's) says the database refused
    a write because it takes none."""
    for candidate in (error, error.__cause__):
        if candidate is None:
            continue
        sqlstate = getattr(candidate, 'sqlstate', None) or getattr(candidate, 'pgcode', None)
        if sqlstate == READ_ONLY_SQLSTATE:
            return True
        args = getattr(candidate, 'args', ())
        if args and isinstance(args[0], int) and args[0] in READ_ONLY_MYSQL_ERRORS:
            return True
    return 'readonly database' in str(error)  # SQLite: "attempt to write a readonly database"


def writable_problem(using: str) -> str | None:
    """Why the database `using` takes no writes, or None when it does (as
    far as one query can tell: a refused write says the rest)."""
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor == 'postgresql':
            cursor.execute("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')")
            recovery, read_only = cursor.fetchone()
            if recovery:
                return 'it is a standby (in recovery): a replica takes no writes'
            if read_only == 'on':
                return 'its transactions are read-only (default_transaction_read_only is on)'
        elif connection.vendor == 'mysql':
            cursor.execute('SELECT @@tx_read_only' if connection.mysql_is_mariadb else 'SELECT @@transaction_read_only')  # type: ignore[attr-defined]  # the MySQL backend's
            if cursor.fetchone()[0]:
                return 'its transactions are read-only (transaction_read_only is on)'
        elif connection.vendor == 'sqlite':
            cursor.execute('PRAGMA query_only')
            if cursor.fetchone()[0]:
                return 'it is query-only (PRAGMA query_only)'
            name = str(connection.settings_dict['NAME'])
            if os.path.exists(name) and not os.access(name, os.W_OK):
                return f'its file {name} is not writable'
    return None


def not_writable(using: str, why: str) -> DatabaseNotWritable:
    """The error that stops a worker on the database `using`, saying `why`."""
    return DatabaseNotWritable(
        f'The database {using!r} takes no writes ({why}). A worker claims and'
        f' completes rows, so it must write: give it the primary with --database'
        f' ALIAS, or make the router\'s db_for_write answer the primary for this model.'
    )


def check_writable(using: str) -> None:
    """Raise :class:`DatabaseNotWritable` when the database `using` takes no
    writes; a database error while asking propagates (the worker's own
    retries handle a database that is down)."""
    problem = writable_problem(using)
    if problem is not None:
        raise not_writable(using, problem)


def read_only_cause(error: BaseException, using: str) -> DatabaseNotWritable | None:
    """:class:`DatabaseNotWritable` for `error` when it is a refused write,
    else None."""
    if is_read_only_error(error):
        return not_writable(using, str(error).strip().splitlines()[0])
    return None
