"""The worker: ``manage.py modelqueue_worker`` and what it runs.

======================  =========================================================
module                  what it holds
======================  =========================================================
``loop``                :class:`Worker`, one queue's loop; :func:`serve`
``threads``             ``--threads``: a pool of threads in one process
``supervisor``          ``--concurrency``: the parent of several processes
``heartbeat``           the worker's row in the heartbeat table, written by a thread
``housekeeping``        pruning and compacting, done from the heartbeat's thread
``waiters``             how an idle worker waits: polling, or LISTEN on PostgreSQL
``backoff``             the pause after a database error
``signals``             SIGTERM and SIGINT, and the pipe that wakes the main thread
``protocol``            what the pool and the supervisor ask of a worker
======================  =========================================================

Imports go one way: ``loop`` uses the others, and none of them uses
``loop``. For example, to process every due task of a queue, then return::

    from modelqueue.worker import Worker

    Worker(Task.objects.all(), 'status', send, burst=True).run()
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ..deprecation import warn_moved
from .loop import Worker, serve

__all__ = ['Worker', 'serve']

#: Names of the former module ``modelqueue.worker`` now in a submodule.
MOVED = {
    'ActionCall': 'modelqueue.worker.loop',
    'TaskBudget': 'modelqueue.worker.loop',
    'MAX_CONCURRENCY': 'modelqueue.worker.loop',
    'MAX_THREADS': 'modelqueue.worker.loop',
    'BACKOFF': 'modelqueue.worker.backoff',
    'database_error_pause': 'modelqueue.worker.backoff',
    'SIGNALS': 'modelqueue.worker.signals',
    # ModelQueue 3.0.0 had the worker's argument checks here.
    'check_count': 'modelqueue.validation',
    'check_seconds': 'modelqueue.validation',
    'MAX_SECONDS': 'modelqueue.validation',
}


def __getattr__(name: str) -> Any:
    if name in MOVED:
        warn_moved(f'{__name__}.{name}', f'{MOVED[name]}.{name}')
        return getattr(import_module(MOVED[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
