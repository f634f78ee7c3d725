"""The wake-up trigger: PostgreSQL tells idle workers that a row is waiting.

:func:`install_trigger` creates a function and two row triggers on a
queue's table that send a NOTIFY on the queue's channel (:func:`channel_name`)
whenever a row's status becomes waiting, by any path: a model save,
``bulk_create``, an admin action, raw SQL. A worker LISTENs on that channel
(:mod:`modelqueue.worker.waiters`) and starts the row's action milliseconds
after the commit. Polling stays the fallback, and it is the mechanism on
SQLite and MariaDB, where these functions do nothing and return False.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any

from django.db import connections

from . import dbobjects
from .deprecation import warn_moved
from .status import State, Status
from .validation import column_of

if TYPE_CHECKING:
    from django.db.models import Model

logger = logging.getLogger('modelqueue.worker')

__all__ = ['channel_name', 'install_trigger', 'uninstall_trigger']

TRIGGER_VERSION = 1


def channel_name(model: type[Model], field: str) -> str:
    """Return the PostgreSQL channel that `model`'s `field` queue notifies.

    ``modelqueue_<table>_<column>``, shortened with a hash past 50 characters.
    """
    column = column_of(model, field)
    name = re.sub(r'[^a-z0-9_]', '_', f'modelqueue_{model._meta.db_table}_{column}'.lower())
    if len(name) > 50:  # identifiers stop at 63 bytes; leave room for suffixes
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f'{name[:41]}_{digest}'
    return name


def wakeup_triggers(
    model: type[Model], field: str, quote: Callable[[str], str]
) -> dbobjects.TriggerSet:
    """The function and the INSERT and UPDATE triggers of `field`'s wake-up."""
    channel = channel_name(model, field)
    function = f'{channel}_notify'
    table = quote(model._meta.db_table)
    column = quote(column_of(model, field))
    waiting = (
        f'NEW.{column} BETWEEN {Status.minimum(State.waiting)}'
        f' AND {Status.maximum(State.waiting)}'
    )
    body = (
        f"\nBEGIN\n    -- modelqueue wake-up trigger, version {TRIGGER_VERSION}\n"
        f"    PERFORM pg_notify('{channel}', '');\n    RETURN NULL;\nEND;\n"
    )
    run = f'EXECUTE FUNCTION {quote(function)}()'
    return dbobjects.TriggerSet(
        table=model._meta.db_table,
        function=function,
        body=body,
        triggers={
            f'{channel}_insert': f'AFTER INSERT ON {table} FOR EACH ROW WHEN ({waiting}) {run}',
            f'{channel}_update': (
                f'AFTER UPDATE OF {column} ON {table} FOR EACH ROW'
                f' WHEN ({waiting} AND OLD.{column} IS DISTINCT FROM NEW.{column}) {run}'
            ),
        },
    )


def _triggers(model: type[Model], field: str, using: str) -> dbobjects.TriggerSet:
    return wakeup_triggers(model, field, connections[using].ops.quote_name)


def install_trigger(model: type[Model], field: str, using: str = 'default') -> bool:
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
    objects = _triggers(model, field, using)
    installed = dbobjects.install(using, objects, lock_name=objects.function)
    if installed:
        logger.info('Installed the wake-up trigger %s on %s', objects.function, model._meta.db_table)
    return installed


def uninstall_trigger(model: type[Model], field: str, using: str = 'default') -> bool:
    """Remove what :func:`install_trigger` created; False when not PostgreSQL."""
    return dbobjects.uninstall(using, _triggers(model, field, using))


#: ModelQueue 3.0.0's waiters, now in the worker package (this module is the
#: database's side of the wake-up only). The one import of the core from the
#: worker, for one release; tests/core/test_layers.py allows this edge alone.
MOVED = {name: 'modelqueue.worker.waiters' for name in ('PollingWaiter', 'ListeningWaiter', 'waiter_for')}


def __getattr__(name: str) -> Any:
    if name in MOVED:
        warn_moved(f'{__name__}.{name}', f'{MOVED[name]}.{name}')
        return getattr(import_module(MOVED[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
