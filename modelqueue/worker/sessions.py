"""The database sessions of a worker process, each named for what it does.

On PostgreSQL a worker process opens:

======================  ==========================================================
``claim``               one per thread that claims and completes rows (the main
                        thread without ``--threads``)
``main``                with ``--threads``, the main thread's: when the next
                        scheduled row is due, the trigger's install
``heartbeat``           the heartbeat thread's: its beats and the housekeeping
``listen``              the LISTEN connection (:mod:`modelqueue.worker.waiters`),
                        one per process, through ``--listen-database``
======================  ==========================================================

Each session's ``application_name`` is ``modelqueue worker host:pid role``
(:func:`modelqueue.names.application_name`), so ``pg_stat_activity`` tells
them apart. It is a connection parameter, never a ``SET``: through a
transaction pooler a ``SET`` would stay on a server session that other
clients get next (PgBouncer passes ``application_name`` on as a startup
parameter it tracks).

Django's connections belong to the thread that opened them: a thread's
``connections[alias]`` is an object of its own, holding the alias's
settings. :func:`named_sessions` gives this thread's object a copy of those
settings with the name added to ``OPTIONS``, and puts the original back
when it ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import connections

from ..names import application_name

__all__ = ['name_sessions', 'named_sessions']


def name_sessions(role: str, aliases: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Name this thread's sessions of `aliases` (PostgreSQL ones) for `role`;
    return the settings they had, by alias, for :func:`named_sessions` to
    put back. A session already open under another name is closed (outside
    a transaction) so that the next query connects with the name."""
    replaced: dict[str, dict[str, Any]] = {}
    name = application_name(role)
    for alias in dict.fromkeys(aliases):
        connection = connections[alias]
        if connection.vendor != 'postgresql':
            continue
        options = connection.settings_dict.get('OPTIONS') or {}
        if options.get('application_name') == name or 'pool' in options:  # a pool connects with its own
            continue
        if connection.connection is not None and not connection.in_atomic_block:
            connection.close()
        replaced[alias] = connection.settings_dict
        connection.settings_dict = {**connection.settings_dict, 'OPTIONS': {**options, 'application_name': name}}
    return replaced


@contextlib.contextmanager
def named_sessions(role: str, aliases: Iterable[str]) -> Iterator[None]:
    """Within the block, this thread's sessions of `aliases` are named for
    `role`; after it, they are closed (outside a transaction) and have their
    settings back."""
    replaced = name_sessions(role, aliases)
    try:
        yield
    finally:
        for alias, settings_dict in replaced.items():
            connection = connections[alias]
            if connection.connection is not None and not connection.in_atomic_block:
                connection.close()
            connection.settings_dict = settings_dict
