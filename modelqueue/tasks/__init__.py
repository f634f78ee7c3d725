"""ModelQueue as a backend of Django's Tasks framework (``django.tasks``, or
the ``django-tasks`` backport on Django 5.2).

``TASKS = {'default': {'BACKEND': 'modelqueue.tasks.ModelQueueBackend'}}``
with ``'modelqueue'`` in ``INSTALLED_APPS``; run the tasks with ``manage.py
modelqueue_worker --tasks``. The backend is loaded when first used, so that
``modelqueue.models`` can import the task model from this package without
needing Django's Tasks framework.

``modelqueue.tasks.pause('emails', backend='default')``, ``resume`` and
``is_paused`` pause a queue of a backend (:mod:`modelqueue.tasks.pauses`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .policies import retry_policy
from .unique import DuplicateTask

if TYPE_CHECKING:
    from .backend import ModelQueueBackend, enqueue_unique
    from .pauses import is_paused, pause, resume

__all__ = [
    'DuplicateTask', 'ModelQueueBackend', 'enqueue_unique', 'is_paused', 'pause', 'resume', 'retry_policy',
]


def __getattr__(name: str) -> Any:
    if name in ('is_paused', 'pause', 'resume'):  # pauses imports the models
        from . import pauses  # noqa: PLC0415 (models.py imports this package before the app registry is ready)

        return getattr(pauses, name)
    if name in ('ModelQueueBackend', 'enqueue_unique'):
        from . import backend  # noqa: PLC0415 (needs Django's Tasks framework)

        return getattr(backend, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
