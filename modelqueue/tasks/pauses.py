"""Pausing a queue of the Django Tasks backend, by its name, for one backend alias.

``modelqueue.tasks.pause('emails', backend='default')`` pauses the tasks of
the queue 'emails' that the backend 'default' enqueued: no worker claims
them until ``modelqueue.tasks.resume('emails', backend='default')``; tasks
running finish, and the backend's other queues, and the queue 'emails' of
other backends, go on. It is a :class:`modelqueue.models.QueuePause` of the
task table's status field whose queue name is ``<backend>/<queue>``; the
task table names each row's so (:meth:`QueuedTask.modelqueue_pause_name
<modelqueue.tasks.models.QueuedTask.modelqueue_pause_name>`), and the claim
reads it in its own statement, as it reads a model queue's pause (see
:mod:`modelqueue.pauses`). ``modelqueue.pause(QueuedTask, 'status')``
pauses every queue of every backend.
"""

from __future__ import annotations

from .. import pauses
from ..models import QueuePause
from .models import QueuedTask

__all__ = ['is_paused', 'pause', 'pause_name', 'resume']


def pause_name(queue_name: str, backend: str = 'default') -> str:
    """The queue name of the pause of `backend`'s queue `queue_name`:
    ``<backend>/<queue>``, after checking both.

    `backend` must be a ``TASKS`` alias whose backend is ModelQueue's, and
    `queue_name` one of its ``QUEUES`` (any name when it lists none).
    """
    from .backend import ModelQueueBackend  # noqa: PLC0415 (needs Django's Tasks framework)
    from .compat import task_backends  # noqa: PLC0415 (needs Django's Tasks framework)

    try:
        found = task_backends[backend]
    except Exception as error:  # noqa: BLE001 (InvalidTaskBackend, or its backport's name)
        raise ValueError(f'invalid backend {backend!r}: {error}') from None
    if not isinstance(found, ModelQueueBackend):
        raise ValueError(
            f'invalid backend {backend!r}: expected a TASKS alias whose BACKEND is'
            f' modelqueue.tasks.ModelQueueBackend, found {type(found).__name__}'
        )
    if not isinstance(queue_name, str) or (found.queues and queue_name not in found.queues):
        raise ValueError(
            f'invalid queue {queue_name!r}: expected one of the QUEUES of'
            f' TASKS[{backend!r}] ({", ".join(sorted(found.queues))})'
        )
    name = f'{backend}/{queue_name}'
    longest = QueuePause._meta.get_field('queue_name').max_length or 0
    if len(name) > longest:
        raise ValueError(
            f'invalid queue {queue_name!r} of backend {backend!r}: expected the two'
            f' in at most {longest - 1} characters, to name its pause'
        )
    return name


def pause(queue_name: str, backend: str = 'default', *, by: str = '', using: str | None = None) -> bool:
    """Pause `backend`'s queue `queue_name`; return False if it was paused
    already. `by` names who paused it; `using` is the task table's database
    (by default the router's ``db_for_write``, where workers claim).

    >>> pause('emails', backend='nowhere')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    ValueError: invalid backend 'nowhere': ...
    """
    name = pause_name(queue_name, backend)
    return pauses.pause(QueuedTask, 'status', by=by, using=using, queue_name=name)


def resume(queue_name: str, backend: str = 'default', *, using: str | None = None) -> bool:
    """Resume `backend`'s queue `queue_name`; return whether it was paused.
    On PostgreSQL idle task workers are woken at once."""
    name = pause_name(queue_name, backend)
    return pauses.resume(QueuedTask, 'status', using=using, queue_name=name)


def is_paused(queue_name: str, backend: str = 'default', *, using: str | None = None) -> bool:
    """Whether `backend`'s queue `queue_name` is paused (by :func:`pause`,
    or the whole task table by ``modelqueue.pause(QueuedTask, 'status')``)."""
    name = pause_name(queue_name, backend)
    return pauses.is_paused(QueuedTask, 'status', using=using, queue_name=name) or pauses.is_paused(
        QueuedTask, 'status', using=using
    )
