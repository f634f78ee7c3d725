"""How ModelQueue names what it writes down: a worker and an exception class.

Failure records, heartbeats and the Tasks backend's ``worker_ids`` and
``errors`` all use these, so that a worker named in one place is found by
the same name in another.

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

__all__ = ['exception_path', 'host_name', 'worker_name', 'worker_name_expression']

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
    """This machine's name, as a heartbeat row stores it (at most 255 characters)."""
    return socket.gethostname()[:255]


def worker_name_expression(host: str = 'host', pid: str = 'pid') -> Concat:
    """:func:`worker_name` in SQL, of the columns `host` and `pid` of a
    heartbeat row, for a query that reads the name without loading the row."""
    return Concat(host, Value(':'), Cast(pid, CharField()), output_field=CharField())


def exception_path(error: BaseException) -> str:
    """The dotted class path of `error`'s class, as ``import_string`` takes it."""
    kind = type(error)
    return f'{kind.__module__}.{kind.__qualname__}'
