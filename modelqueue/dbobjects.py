"""Installing PostgreSQL functions and triggers, and knowing they are current.

The wake-up trigger (:mod:`modelqueue.wakeup`) and the state counters
(:mod:`modelqueue.counters`) are each a :class:`TriggerSet`: one PL/pgSQL
function, whose source carries a version line, and the triggers on one
table that run it. :func:`install` creates them when they are not current,
and only then:

- the function's source must be exactly this version's;
- each trigger must exist and be enabled, and its definition, as PostgreSQL
  prints it (events, ``WHEN`` clause, function), must still hash to the
  comment it was signed with when it was installed. A trigger replaced by
  hand with another ``WHEN`` clause, or dropped and created again, is
  therefore installed anew.

Installs take turns on a transaction-level advisory lock (``CREATE OR
REPLACE`` of one function is not safe against itself) and, when they own the
transaction, wait at most :data:`LOCK_TIMEOUT` for a busy table. Nothing
here holds a session: the lock, the timeout and the objects all belong to
one transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connections, transaction

__all__ = ['LOCK_TIMEOUT', 'TriggerSet', 'install', 'uninstall']

LOCK_TIMEOUT = '5s'

#: One query reads everything that decides whether a set is current.
_DEFINITIONS = (
    'SELECT tgname, tgenabled, pg_get_triggerdef(pg_trigger.oid),'
    ' obj_description(pg_trigger.oid, %s), prosrc'
    ' FROM pg_trigger JOIN pg_proc ON pg_proc.oid = tgfoid'
    ' WHERE NOT tgisinternal AND tgrelid = to_regclass(%s) AND tgname = ANY(%s)'
)


def definition_digest(definition: str) -> str:
    """The comment a trigger is signed with: a digest of its definition.

    >>> definition_digest('CREATE TRIGGER t AFTER INSERT ON x')[:18]
    'modelqueue aded3d2'
    """
    return 'modelqueue ' + hashlib.sha256(definition.encode()).hexdigest()


@dataclass(frozen=True)
class TriggerSet:
    """A function and the triggers on `table` that run it.

    `triggers` maps each trigger's name to what follows ``CREATE OR REPLACE
    TRIGGER <name>`` (``AFTER INSERT ON ... EXECUTE FUNCTION ...``).
    """

    table: str
    function: str
    body: str
    triggers: dict[str, str]

    def statements(self, quote: Callable[[str], str]) -> list[str]:
        """The statements that create (or replace) the function and triggers."""
        return [
            f'CREATE OR REPLACE FUNCTION {quote(self.function)}() RETURNS trigger'
            f' LANGUAGE plpgsql AS $modelqueue${self.body}$modelqueue$',
            *(
                f'CREATE OR REPLACE TRIGGER {quote(name)} {clause}'
                for name, clause in self.triggers.items()
            ),
        ]

    def definitions(self, cursor: Any, quote: Callable[[str], str]) -> list[tuple[Any, ...]]:
        cursor.execute(_DEFINITIONS, ['pg_trigger', quote(self.table), list(self.triggers)])
        return cursor.fetchall()

    def is_current(self, cursor: Any, quote: Callable[[str], str]) -> bool:
        """Whether every trigger is there, enabled, signed with its own
        definition, and runs this version of the function (one query)."""
        found = self.definitions(cursor, quote)
        return len(found) == len(self.triggers) and all(
            enabled != 'D' and source == self.body and comment == definition_digest(definition)
            for _name, enabled, definition, comment, source in found
        )

    def create(self, cursor: Any, quote: Callable[[str], str]) -> None:
        """Create the function and the triggers, and sign each trigger."""
        for statement in self.statements(quote):
            cursor.execute(statement)
        for name, _enabled, definition, _comment, _source in self.definitions(cursor, quote):
            cursor.execute(
                f'COMMENT ON TRIGGER {quote(name)} ON {quote(self.table)} IS %s',
                [definition_digest(definition)],
            )

    def drop(self, cursor: Any, quote: Callable[[str], str]) -> None:
        for name in self.triggers:
            cursor.execute(f'DROP TRIGGER IF EXISTS {quote(name)} ON {quote(self.table)}')
        cursor.execute(f'DROP FUNCTION IF EXISTS {quote(self.function)}()')


def install(
    using: str,
    objects: TriggerSet,
    lock_name: str,
    prepare: Callable[[Any], None] | None = None,
    then: Callable[[Any], None] | None = None,
) -> bool:
    """Create `objects` on the PostgreSQL database `using` unless current;
    return whether it changed the database (False elsewhere than PostgreSQL).

    Installs of one `lock_name` take turns. `prepare(cursor)` runs first in
    the install's transaction (tables the function writes, locks), and
    `then(cursor)` after the objects are created (a first count).
    """
    connection = connections[using]
    if connection.vendor != 'postgresql':
        return False
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if objects.is_current(cursor, quote):
            return False
    owns_transaction = not connection.in_atomic_block
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute('SELECT pg_advisory_xact_lock(hashtext(%s))', [lock_name])
        if owns_transaction:  # never wait long behind a busy table
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        if objects.is_current(cursor, quote):
            return False
        if prepare is not None:
            prepare(cursor)
        objects.create(cursor, quote)
        if then is not None:
            then(cursor)
    return True


def uninstall(
    using: str, objects: TriggerSet, then: Callable[[Any], None] | None = None
) -> bool:
    """Drop `objects`, then call `then(cursor)`, in one transaction; False
    elsewhere than PostgreSQL."""
    connection = connections[using]
    if connection.vendor != 'postgresql':
        return False
    with transaction.atomic(using=using), connection.cursor() as cursor:
        objects.drop(cursor, connection.ops.quote_name)
        if then is not None:
            then(cursor)
    return True

