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

if TYPE_CHECKING:
    from .backend import ModelQueueBackend

__all__ = ['ModelQueueBackend', 'retry_policy']


def __getattr__(name: str) -> Any:
    if name == 'ModelQueueBackend':
        from .backend import ModelQueueBackend  # noqa: PLC0415 (needs Django's Tasks framework)

        return ModelQueueBackend
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
