"""Installing PostgreSQL functions and triggers, and knowing they are current.

The wake-up trigger (:mod:`modelqueue.wakeup`) and the state counters
(:mod:`modelqueue.counters`) are each a :class:`TriggerSet`: one PL/pgSQL
function, whose source carries a version line, and the triggers on one
table that run it. :func:`install` creates them when they are not current,
and only then:

- the function's source must be exactly this version's, and a function
  whose tables must be found whatever the writer's ``search_path``
  (`pin_schema`) runs with its schema pinned;
- each trigger must exist, be enabled as the set says (``ENABLE ALWAYS``
  for `enabled` ``'A'``: such triggers fire under ``session_replication_role
  = replica`` too), and its definition, as PostgreSQL prints it (events,
  ``WHEN`` clause, function), must still hash to the comment it was signed
  with when it was installed. A trigger replaced by hand with another
  ``WHEN`` clause, dropped and created again, or disabled and enabled
  again, is therefore installed anew.

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

__all__ = ['ABSENT', 'CURRENT', 'DISABLED', 'LOCK_TIMEOUT', 'OUTDATED', 'TriggerSet', 'install', 'uninstall']

LOCK_TIMEOUT = '5s'

#: What :meth:`TriggerSet.state` finds.
CURRENT, ABSENT, DISABLED, OUTDATED = 'current', 'absent', 'disabled', 'outdated'

#: One query reads everything that decides whether a set is current: each
#: trigger, how it is enabled, its definition and signature, the function's
#: source, and whether the function's search_path is pinned to this schema.
_DEFINITIONS = (
    'SELECT tgname, tgenabled, pg_get_triggerdef(pg_trigger.oid),'
    ' obj_description(pg_trigger.oid, %s), prosrc,'
    " coalesce(proconfig = ARRAY['search_path=' || quote_ident(current_schema())], false)"
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
    `enabled` is how the triggers fire: ``'O'`` (PostgreSQL's default: not
    under ``session_replication_role = replica``) or ``'A'`` (always).
    With `pin_schema`, the function runs with ``search_path`` set to the
    schema it was installed in, so the tables its body names unqualified are
    that schema's, whatever the writing session's ``search_path``.
    """

    table: str
    function: str
    body: str
    triggers: dict[str, str]
    enabled: str = 'O'
    pin_schema: bool = False

    def statements(self, quote: Callable[[str], str], schema: str | None = None) -> list[str]:
        """The statements that create (or replace) the function and the
        triggers; `schema`, quoted, is the one to pin (with `pin_schema`)."""
        pinned = f' SET search_path = {schema}' if self.pin_schema and schema else ''
        statements = [
            f'CREATE OR REPLACE FUNCTION {quote(self.function)}() RETURNS trigger'
            f' LANGUAGE plpgsql{pinned} AS $modelqueue${self.body}$modelqueue$',
            *(
                f'CREATE OR REPLACE TRIGGER {quote(name)} {clause}'
                for name, clause in self.triggers.items()
            ),
        ]
        if self.enabled == 'A':
            statements += [
                f'ALTER TABLE {quote(self.table)} ENABLE ALWAYS TRIGGER {quote(name)}'
                for name in self.triggers
            ]
        return statements

    def definitions(self, cursor: Any, quote: Callable[[str], str]) -> list[tuple[Any, ...]]:
        cursor.execute(_DEFINITIONS, ['pg_trigger', quote(self.table), list(self.triggers)])
        return cursor.fetchall()

    def state(self, cursor: Any, quote: Callable[[str], str]) -> str:
        """:data:`CURRENT` when every trigger is there, enabled as the set
        says, signed with its own definition, and runs this version of the
        function (pinned where it must be); :data:`ABSENT` when none of the
        triggers is there; :data:`DISABLED` when one is disabled (an
        operator's choice, which an install would undo); else
        :data:`OUTDATED`. One query."""
        found = self.definitions(cursor, quote)
        if not found:
            return ABSENT
        if any(enabled == 'D' for _name, enabled, *_rest in found):
            return DISABLED
        if len(found) == len(self.triggers) and all(
            enabled == self.enabled
            and source == self.body
            and comment == definition_digest(definition)
            and (pinned or not self.pin_schema)
            for _name, enabled, definition, comment, source, pinned in found
        ):
            return CURRENT
        return OUTDATED

    def is_current(self, cursor: Any, quote: Callable[[str], str]) -> bool:
        return self.state(cursor, quote) == CURRENT

    def create(self, cursor: Any, quote: Callable[[str], str]) -> None:
        """Create the function and the triggers, and sign each trigger."""
        cursor.execute('SELECT quote_ident(current_schema())')
        (schema,) = cursor.fetchone()
        for statement in self.statements(quote, schema):
            cursor.execute(statement)
        for name, _enabled, definition, *_rest in self.definitions(cursor, quote):
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
    force: bool = False,
) -> bool:
    """Create `objects` on the PostgreSQL database `using` unless current
    (with `force`, even then); return whether it changed the database
    (False elsewhere than PostgreSQL).

    Installs of one `lock_name` take turns. `prepare(cursor)` runs first in
    the install's transaction (tables the function writes, locks), and
    `then(cursor)` after the objects are created (a first count).
    """
    connection = connections[using]
    if connection.vendor != 'postgresql':
        return False
    quote = connection.ops.quote_name
    if not force:
        with connection.cursor() as cursor:
            if objects.is_current(cursor, quote):
                return False
    owns_transaction = not connection.in_atomic_block
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute('SELECT pg_advisory_xact_lock(hashtext(%s))', [lock_name])
        if owns_transaction:  # never wait long behind a busy table
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        if not force and objects.is_current(cursor, quote):
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
