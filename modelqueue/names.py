"""How ModelQueue names what it writes down: a worker and an exception class.

Failure records, heartbeats and the Tasks backend's ``worker_ids`` and
``errors`` all use these, so that a worker named in one place is found by
the same name in another. The database sessions of a worker carry its name
too (:func:`application_name`), so that ``pg_stat_activity`` tells them apart.

A worker's host is the machine's name, or the environment variable
``MODELQUEUE_HOST_NAME`` when it is set (:data:`HOST_NAME_VARIABLE`): a
container that should be known by its service's name rather than its
random hostname sets it, and so do the tests that run several "hosts" on
one machine.

>>> worker_name().count(':')
1
>>> exception_path(KeyError('x'))
'builtins.KeyError'
"""

from __future__ import annotations

import os
import socket

from django.db.models import CharField, Value
from django.db.models.functions import Cast, Concat

__all__ = [
    'HOST_NAME_VARIABLE',
    'application_name',
    'exception_path',
    'host_name',
    'worker_name',
    'worker_name_expression',
]

#: The environment variable that names this host, in place of its hostname.
HOST_NAME_VARIABLE = 'MODELQUEUE_HOST_NAME'
#: The longest application_name PostgreSQL keeps (NAMEDATALEN - 1 bytes).
APPLICATION_NAME_BYTES = 63

_names: dict[int, str] = {}  # pid -> 'host:pid'


def worker_name(host: str | None = None, pid: int | None = None) -> str:
    """``host:pid``: of the worker on `host` with `pid`, or of this process.

    >>> worker_name('vm', 1234)
    'vm:1234'
    """
    if host is not None and pid is not None:
        return f'{host}:{pid}'
    pid = os.getpid()
    name = _names.get(pid)
    if name is None:
        _names.clear()  # a forked child forgets its parent's name
        name = _names[pid] = worker_name(host_name(), pid)
    return name


def host_name() -> str:
    """This machine's name, as a heartbeat row stores it (at most 255
    characters): ``MODELQUEUE_HOST_NAME`` when set, else the hostname."""
    return (os.environ.get(HOST_NAME_VARIABLE) or socket.gethostname())[:255]


def application_name(role: str) -> str:
    """The ``application_name`` of a worker's database session for `role`
    (``claim``, ``listen``, ``heartbeat``...): ``modelqueue worker host:pid
    role``, the host cut short so that the whole fits PostgreSQL's 63 bytes.

    >>> application_name('listen').startswith('modelqueue worker ')
    True
    >>> len(application_name('x' * 100).encode()) <= 63
    True
    """
    host, _, pid = worker_name().rpartition(':')
    suffix = f':{pid} {role}'.encode()[: APPLICATION_NAME_BYTES - len('modelqueue worker ')]
    room = APPLICATION_NAME_BYTES - len('modelqueue worker ') - len(suffix)
    host = host.encode()[: max(room, 0)].decode(errors='ignore')
    return f'modelqueue worker {host}{suffix.decode(errors="ignore")}'


def worker_name_expression(host: str = 'host', pid: str = 'pid') -> Concat:
    """:func:`worker_name` in SQL, of the columns `host` and `pid` of a
    heartbeat row, for a query that reads the name without loading the row."""
    return Concat(host, Value(':'), Cast(pid, CharField()), output_field=CharField())


def exception_path(error: BaseException) -> str:
    """The dotted class path of `error`'s class, as ``import_string`` takes it."""
    kind = type(error)
    return f'{kind.__module__}.{kind.__qualname__}'
