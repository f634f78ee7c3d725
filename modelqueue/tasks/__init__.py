"""ModelQueue as a backend of Django's Tasks framework (``django.tasks``, or
the ``django-tasks`` backport on Django 5.2).

``TASKS = {'default': {'BACKEND': 'modelqueue.tasks.ModelQueueBackend'}}``
with ``'modelqueue'`` in ``INSTALLED_APPS``; run the tasks with ``manage.py
modelqueue_worker --tasks``. The backend is loaded when first used, so that
``modelqueue.models`` can import the task model from this package without
needing Django's Tasks framework.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .policies import retry_policy
from .unique import DuplicateTask

if TYPE_CHECKING:
    from .backend import ModelQueueBackend, enqueue_unique

__all__ = ['DuplicateTask', 'ModelQueueBackend', 'enqueue_unique', 'retry_policy']


def __getattr__(name: str) -> Any:
    if name in ('ModelQueueBackend', 'enqueue_unique'):
        from . import backend  # noqa: PLC0415 (needs Django's Tasks framework)

        return getattr(backend, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
