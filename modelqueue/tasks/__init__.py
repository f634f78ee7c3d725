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

if TYPE_CHECKING:
    from .backend import ModelQueueBackend
    from .pauses import is_paused, pause, resume

__all__ = ['ModelQueueBackend', 'is_paused', 'pause', 'resume']


def __getattr__(name: str) -> Any:
    if name in ('is_paused', 'pause', 'resume'):  # pauses imports the models
        from . import pauses  # noqa: PLC0415 (models.py imports this package before the app registry is ready)

        return getattr(pauses, name)
    if name == 'ModelQueueBackend':
        from .backend import ModelQueueBackend  # noqa: PLC0415 (needs Django's Tasks framework)

        return ModelQueueBackend
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
