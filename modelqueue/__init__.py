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

from django.db.models import BigIntegerField as StatusField

from .actions import admin_actions
from .filters import admin_list_filter
from .queue import Abort, Cancel, Retry, run
from .status import ONE_HOUR, ZERO_SECS, State, Status, now

__all__ = [
    'ONE_HOUR',
    'ZERO_SECS',
    'Abort',
    'Cancel',
    'Retry',
    'State',
    'Status',
    'StatusField',
    'admin_actions',
    'admin_list_filter',
    'now',
    'run',
]

__title__ = 'modelqueue'
__version__ = '3.0.0'
__license__ = 'Apache 2.0'
