"""How an idle worker waits for work.

``waiter_for(queryset, field)`` returns a waiter whose ``wait(seconds)``
returns when work may be due, or after `seconds`, whichever comes first;
``close()`` releases what it holds. A waiter never sleeps past the moment the
next scheduled row (a waiting row with a future priority) comes due.

On PostgreSQL the waiter also LISTENs, on a connection of its own, to the
queue's channel: the trigger that :func:`install_trigger` creates sends a
NOTIFY whenever a row of the queue becomes waiting, by any path (a model
save, ``bulk_create``, an admin action, raw SQL), so an idle worker starts
the row's action milliseconds after the commit. Polling stays the fallback,
and it is the mechanism on SQLite and MariaDB.
"""

import hashlib
import logging
import re
import select
import time

from django.db import connections, transaction

from . import ranges
from .status import State, Status, now, priority_to_datetime

logger = logging.getLogger('modelqueue.worker')

TRIGGER_VERSION = 1
TRIGGER_LOCK_TIMEOUT = '5s'


def channel_name(model, field):
    """Return the PostgreSQL channel that `model`'s `field` queue notifies.

    ``modelqueue_<table>_<column>``, shortened with a hash past 50 characters.
    """
    column = model._meta.get_field(field).column
    name = re.sub(r'[^a-z0-9_]', '_', f'modelqueue_{model._meta.db_table}_{column}'.lower())
    if len(name) > 50:  # identifiers stop at 63 bytes; leave room for suffixes
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f'{name[:41]}_{digest}'
    return name


def _trigger_sql(model, field, connection):
    """Return the names and the statements of `field`'s wake-up trigger."""
    quote = connection.ops.quote_name
    channel = channel_name(model, field)
    function = f'{channel}_notify'
    table = quote(model._meta.db_table)
    column = quote(model._meta.get_field(field).column)
    waiting = (
        f'NEW.{column} BETWEEN {Status.minimum(State.waiting)}'
        f' AND {Status.maximum(State.waiting)}'
    )
    body = (
        f"\nBEGIN\n    -- modelqueue wake-up trigger, version {TRIGGER_VERSION}\n"
        f"    PERFORM pg_notify('{channel}', '');\n    RETURN NULL;\nEND;\n"
    )
    insert, update = f'{channel}_insert', f'{channel}_update'
    statements = [
        f'CREATE OR REPLACE FUNCTION {quote(function)}() RETURNS trigger'
        f' LANGUAGE plpgsql AS $modelqueue${body}$modelqueue$',
        f'CREATE OR REPLACE TRIGGER {quote(insert)} AFTER INSERT ON {table}'
        f' FOR EACH ROW WHEN ({waiting}) EXECUTE FUNCTION {quote(function)}()',
        f'CREATE OR REPLACE TRIGGER {quote(update)} AFTER UPDATE OF {column}'
        f' ON {table} FOR EACH ROW'
        f' WHEN ({waiting} AND OLD.{column} IS DISTINCT FROM NEW.{column})'
        f' EXECUTE FUNCTION {quote(function)}()',
    ]
    return function, body, (insert, update), statements


def install_trigger(model, field, using='default'):
    """Install the trigger that wakes idle workers of `model`'s `field` queue.

    On PostgreSQL, creates (or replaces) a function and two row triggers
    that NOTIFY the queue's channel when a row's status becomes waiting, by
    INSERT or UPDATE. Returns True when it changed the database, False when
    the trigger was already current or the database is not PostgreSQL (the
    call is safe everywhere). The worker command calls it when it starts; a
    migration can call it too, with the historical model::

        from django.db import migrations
        from modelqueue.wakeup import install_trigger, uninstall_trigger

        def install(apps, schema_editor):
            Task = apps.get_model('shop', 'Task')
            install_trigger(Task, 'status', using=schema_editor.connection.alias)

        def uninstall(apps, schema_editor):
            Task = apps.get_model('shop', 'Task')
            uninstall_trigger(Task, 'status', using=schema_editor.connection.alias)

        class Migration(migrations.Migration):
            dependencies = [('shop', '0001_initial')]
            operations = [migrations.RunPython(install, uninstall)]
    """
    connection = connections[using]
    if connection.vendor != 'postgresql':
        return False
    function, body, triggers, statements = _trigger_sql(model, field, connection)
    if _trigger_is_current(connection, model, function, body, triggers):
        return False
    owns_transaction = not connection.in_atomic_block
    with transaction.atomic(using=using), connection.cursor() as cursor:
        # Concurrent CREATE OR REPLACE of one function can fail; take turns.
        cursor.execute('SELECT pg_advisory_xact_lock(%s)', [_lock_key(function)])
        if owns_transaction:  # never wait long behind a busy table
            cursor.execute(f"SET LOCAL lock_timeout = '{TRIGGER_LOCK_TIMEOUT}'")
        if _trigger_is_current(connection, model, function, body, triggers):
            return False
        for statement in statements:
            cursor.execute(statement)
        _sign_triggers(cursor, connection, model, triggers)
    logger.info('Installed the wake-up trigger %s on %s', function, model._meta.db_table)
    return True


def uninstall_trigger(model, field, using='default'):
    """Remove what :func:`install_trigger` created; False when not PostgreSQL."""
    connection = connections[using]
    if connection.vendor != 'postgresql':
        return False
    quote = connection.ops.quote_name
    function, _, triggers, _ = _trigger_sql(model, field, connection)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        for trigger in triggers:
            cursor.execute(
                f'DROP TRIGGER IF EXISTS {quote(trigger)}'
                f' ON {quote(model._meta.db_table)}'
            )
        cursor.execute(f'DROP FUNCTION IF EXISTS {quote(function)}()')
    return True


# Each trigger's definition as PostgreSQL prints it (pg_get_triggerdef: its
# events, its WHEN clause, its function) is hashed into the trigger's comment
# when it is installed. A trigger is current only while its definition still
# hashes to its comment, so one replaced with another WHEN clause, or dropped
# and created again by hand, is installed anew.
_TRIGGER_DEFINITIONS = (
    'SELECT tgname, pg_get_triggerdef(oid), obj_description(oid, %s) FROM pg_trigger'
    ' WHERE NOT tgisinternal AND tgrelid = to_regclass(%s) AND tgname = ANY(%s)'
)


def _definition_digest(definition):
    return 'modelqueue ' + hashlib.sha256(definition.encode()).hexdigest()


def _trigger_definitions(cursor, connection, model, triggers):
    cursor.execute(
        _TRIGGER_DEFINITIONS,
        ['pg_trigger', connection.ops.quote_name(model._meta.db_table), list(triggers)],
    )
    return cursor.fetchall()


def _sign_triggers(cursor, connection, model, triggers):
    quote = connection.ops.quote_name
    for name, definition, _comment in _trigger_definitions(cursor, connection, model, triggers):
        cursor.execute(
            f'COMMENT ON TRIGGER {quote(name)} ON {quote(model._meta.db_table)} IS %s',
            [_definition_digest(definition)],
        )


def _trigger_is_current(connection, model, function, body, triggers):
    with connection.cursor() as cursor:
        cursor.execute(
            'SELECT prosrc FROM pg_proc WHERE proname = %s'
            ' AND pronamespace = current_schema()::regnamespace',
            [function],
        )
        source = cursor.fetchone()
        found = _trigger_definitions(cursor, connection, model, triggers)
    return (
        source is not None
        and source[0] == body
        and len(found) == len(triggers)
        and all(comment == _definition_digest(definition) for _, definition, comment in found)
    )


def _lock_key(name):
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], 'big', signed=True)


class PollingWaiter:
    """Wait by sleeping, until the next scheduled row at the latest.

    `wakeup_fd`, when given, ends a wait early as soon as it is readable
    (a worker passes the file descriptor it gave ``signal.set_wakeup_fd``).
    """

    def __init__(self, queryset, field, wakeup_fd=None):
        self.queryset = queryset
        self.attname = queryset.model._meta.get_field(field).attname
        self.wakeup_fd = wakeup_fd

    def describe(self, seconds):
        return f'polling every {seconds:g}s'

    def wait(self, seconds):
        """Wait up to `seconds`; return True if woken early, else False."""
        return bool(self._block([], self._until_scheduled(seconds)))

    def close(self):
        pass

    def _until_scheduled(self, seconds):
        """Return `seconds`, or less if a scheduled row comes due sooner."""
        attname = self.attname
        upcoming = (
            self.queryset.filter(ranges.scheduled(attname, now()))
            .order_by(attname)
            .values_list(attname, flat=True)[:1]
        )
        for status in upcoming:
            due = priority_to_datetime(Status(status).priority)
            if due is not None:
                # Priorities count milliseconds: wake just after this one.
                until = (due - now()).total_seconds() + 0.001
                seconds = max(0.0, min(seconds, until))
        return seconds

    def _block(self, files, seconds):
        """Wait until one of `files` (or the wakeup fd) is readable; return them."""
        if self.wakeup_fd is not None:
            files = [*files, self.wakeup_fd]
        if not files:
            time.sleep(seconds)
            return []
        readable, _, _ = select.select(files, [], [], seconds)
        return readable


class ListeningWaiter(PollingWaiter):
    """Wait for a NOTIFY on the queue's channel (PostgreSQL), polling too.

    The LISTEN connection is its own, in autocommit mode, so Django's
    connection and its transactions are untouched. When it breaks, the
    waiter polls until it connects again, and returns at once after a new
    LISTEN, since notifications may have been missed meanwhile.
    """

    def __init__(self, queryset, field, wakeup_fd=None):
        super().__init__(queryset, field, wakeup_fd)
        self.channel = channel_name(queryset.model, field)
        self._listener = None
        self._broken = False

    def describe(self, seconds):
        return f'listening on {self.channel}, polling every {seconds:g}s'

    def wait(self, seconds):
        """Wait up to `seconds`; return True if woken early, else False."""
        if self._listener is None:
            if self._listen():
                return True
            return super().wait(seconds)
        if self._drain():
            return True  # a notification came while the worker was busy
        socket = self._listener.fileno()
        readable = self._block([socket], self._until_scheduled(seconds))
        if socket in readable:
            self._drain()
        return bool(readable)

    def close(self):
        if self._listener is not None:
            try:
                self._listener.close()
            except Exception:  # noqa: BLE001 (a broken connection closes anyway)
                pass
            self._listener = None

    def _listen(self):
        """Connect and LISTEN; return whether it worked."""
        connection = connections[self.queryset.db]
        try:
            params = connection.get_connection_params()
            params.setdefault('connect_timeout', 10)
            listener = connection.Database.connect(**params)
            listener.autocommit = True
            with listener.cursor() as cursor:
                cursor.execute(f'LISTEN {connection.ops.quote_name(self.channel)}')
        except Exception as error:  # noqa: BLE001 (the driver's own errors)
            if not self._broken:
                logger.warning(
                    'Cannot LISTEN on %s (%s); polling until it works',
                    self.channel,
                    str(error).strip(),
                )
            self._broken = True
            return False
        if self._broken:
            logger.info('Listening on %s again', self.channel)
        self._broken = False
        self._listener = listener
        return True

    def _drain(self):
        """Consume pending notifications; return whether there were any.

        A broken connection counts as a notification: it is closed, and the
        next wait connects again. Both drivers raise on reading from a lost
        connection (the server's goodbye is read first, the end of the stream
        next), so an error is how a loss shows.
        """
        listener = self._listener
        try:
            if hasattr(listener, 'pgconn'):  # psycopg 3
                listener.pgconn.consume_input()
                found = False
                while listener.pgconn.notifies() is not None:
                    found = True
                return found
            listener.poll()  # psycopg2
            found = bool(listener.notifies)
            listener.notifies.clear()
            return found
        except Exception as error:  # noqa: BLE001 (the driver's own errors)
            logger.warning('Lost the LISTEN connection on %s (%s)', self.channel, str(error).strip())
            self.close()
            self._broken = True
            return True


def waiter_for(queryset, field, listen=True, wakeup_fd=None):
    """Return the waiter an idle worker of `queryset`'s `field` queue uses.

    A :class:`ListeningWaiter` on PostgreSQL when `listen` is true, else a
    :class:`PollingWaiter`.
    """
    if listen and connections[queryset.db].vendor == 'postgresql':
        return ListeningWaiter(queryset, field, wakeup_fd)
    return PollingWaiter(queryset, field, wakeup_fd)
