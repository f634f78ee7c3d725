"""Unique tasks: at most one READY or RUNNING task per key.

``enqueue_unique(task, key, *args, **kwargs)`` (:mod:`modelqueue.tasks.backend`)
stores the task with `key` in its row's ``unique_key``, unless a task of the
same backend with that key is READY or RUNNING: then it returns that task's
result instead (or, with ``if_exists='raise'``, raises :class:`DuplicateTask`).
Once the task is SUCCESSFUL or FAILED, the key is free again. A task waiting
for a retry is READY, and keeps its key.

The database enforces it, so that concurrent enqueues in many processes
leave one task: a unique index on (backend, key) over the rows whose status
is in :data:`ACTIVE` (states created, waiting and working: one range of the
status column), partial on PostgreSQL and SQLite; on MariaDB, which has no
partial index, over a stored generated column that holds the key only while
the status is in that range (migration ``0004_queuedtask_unique_key``).

>>> from modelqueue import State, Status
>>> ACTIVE == (Status.minimum(State.created), Status.maximum(State.working))
True
>>> check_key('')
Traceback (most recent call last):
  ...
ValueError: invalid key '': expected a string of 1 to 255 characters, without NUL
"""

from __future__ import annotations

from typing import Any

from ..ranges import between
from ..validation import invalid

#: The statuses of a READY or RUNNING task, from the first created through
#: the last working: the bounds migration 0004 writes in its index.
ACTIVE = (1000000000000000000, 3999999999999999999)
MAX_KEY = 255
IF_EXISTS = ('return', 'raise')

__all__ = ['ACTIVE', 'DuplicateTask', 'active', 'check_key']


class DuplicateTask(Exception):
    """``enqueue_unique(..., if_exists='raise')`` found a READY or RUNNING
    task with the same key: :attr:`result` is its ``TaskResult``."""

    def __init__(self, key: str, result: Any) -> None:
        super().__init__(f'a task with the key {key!r} is {result.status}: id {result.id}')
        self.key = key
        self.result = result


def check_key(key: object) -> str:
    """Return `key` if a row's ``unique_key`` may hold it."""
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY or '\x00' in key:
        raise invalid('key', key, f'a string of 1 to {MAX_KEY} characters, without NUL')
    return key


def check_if_exists(value: object) -> str:
    if value not in IF_EXISTS:
        raise invalid('if_exists', value, "'return' or 'raise'")
    return str(value)


def active(field: str = 'status') -> Any:
    """The READY or RUNNING rows, as a Q on the status `field`."""
    return between(field, *ACTIVE)
