"""ModelQueue: a task queue where any Django model becomes a queue.

Add one 64-bit integer column to a model::

    import modelqueue
    from django.db import models

    class Task(models.Model):
        data = models.TextField()
        status = modelqueue.StatusField(
            db_index=True,
            # ^-- Index for faster queries.
            default=modelqueue.Status.waiting,
            # ^-- Waiting state is ready to run.
        )

and process it with ``modelqueue.run(Task.objects.all(), 'status', action)``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from django.db.models import BigIntegerField as StatusField

from .exceptions import Abort, Cancel, OutcomeNotStored, Repeat, Retry
from .pauses import is_paused, pause, resume
from .queue import run
from .repeating import repeating
from .retries import Backoff, RetryPolicy
from .status import ONE_HOUR, ZERO_SECS, State, Status, now

if TYPE_CHECKING:  # at run time, __getattr__ below loads them when first used
    from .admin.actions import admin_actions
    from .admin.filters import admin_list_filter

__all__ = [
    'ONE_HOUR',
    'ZERO_SECS',
    'Abort',
    'Backoff',
    'Cancel',
    'OutcomeNotStored',
    'Repeat',
    'Retry',
    'RetryPolicy',
    'State',
    'Status',
    'StatusField',
    'admin_actions',
    'admin_list_filter',
    'is_paused',
    'now',
    'pause',
    'repeating',
    'resume',
    'run',
]

#: The admin helpers, loaded when first used (PEP 562), so that importing
#: modelqueue loads nothing of django.contrib.admin.
_ADMIN_NAMES = {
    'admin_actions': 'modelqueue.admin.actions',
    'admin_list_filter': 'modelqueue.admin.filters',
}


def __getattr__(name: str) -> Any:
    if name in _ADMIN_NAMES:
        return getattr(import_module(_ADMIN_NAMES[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> list[str]:
    return sorted([*globals(), *_ADMIN_NAMES])


__title__ = 'modelqueue'
__version__ = '3.0.0'
__license__ = 'Apache 2.0'
