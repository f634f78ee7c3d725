"""Worker heartbeats: one row per live worker, written from a thread of its own.

A :class:`Heartbeat` inserts a :class:`modelqueue.models.WorkerHeartbeat`
row when its worker starts, updates it every ``MODELQUEUE_HEARTBEAT_SECONDS``
seconds (5 by default; never per task) with the row in hand, since when, and
the tasks done and failed, and deletes it when the worker stops gracefully.
A worker killed at once leaves its row behind: after three missed
heartbeats the admin shows it as *lost*, and the rows it held name it. Lost
rows are deleted a day after they were last seen.

The same thread prunes failure records (:class:`modelqueue.failures.Pruner`)
about once a minute, and compacts the queue's state counters
(:func:`modelqueue.counters.compact_counters`, where installed) at every
beat, so no task and no request pays for it. Database errors
in the thread are logged and never reach the worker; without the table (the
migrations not applied) the worker runs without a heartbeat and says so once.
"""

import datetime as dt
import logging
import os
import random
import socket
import threading
import time

from django.conf import settings
from django.db import DatabaseError, connections

from .counters import compact_counters
from .failures import Pruner
from .status import now

logger = logging.getLogger('modelqueue.worker')

DEFAULT_SECONDS = 5.0
#: How long the row of a lost worker is kept after it was last seen.
LOST_KEPT = dt.timedelta(days=1)
PRUNE_SECONDS = 60.0


def heartbeat_seconds():
    """``MODELQUEUE_HEARTBEAT_SECONDS``, checked (a number above 0).

    >>> heartbeat_seconds()
    5.0
    """
    value = getattr(settings, 'MODELQUEUE_HEARTBEAT_SECONDS', DEFAULT_SECONDS)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(
            f'MODELQUEUE_HEARTBEAT_SECONDS = {value!r}: expected a number of seconds above 0'
        )
    return float(value)


class Heartbeat:
    """The heartbeat of one worker on the queue `field` of `queryset`.

    ``start()`` inserts the row and starts the thread; ``took(task)`` and
    ``done(failed)`` tell it what the worker holds (no query: the thread
    writes it at its next beat); ``stop()`` ends the thread and deletes the
    row. With ``--threads`` each thread tells it of its own row, and the row
    shows the one held longest, the first to stall.
    """

    def __init__(self, queryset, field, interval=None):
        self.model = queryset.model
        self.using = queryset.db
        self.field = field
        self.interval = heartbeat_seconds() if interval is None else interval
        self.pk = None
        self.tasks_done = 0
        self.failures = 0
        self._held = {}  # thread id -> (row pk, since): each thread of --threads holds its own
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = None
        self._pruner = Pruner(self.using)

    def start(self):
        """Insert the row and start beating; return self (unchanged if the
        table is missing: the worker then runs without a heartbeat)."""
        from django.contrib.contenttypes.models import ContentType  # noqa: PLC0415

        from .models import WorkerHeartbeat  # noqa: PLC0415

        current = now()
        try:
            content_type = ContentType.objects.db_manager(self.using).get_for_model(self.model)
            row = WorkerHeartbeat.objects.using(self.using).create(
                host=socket.gethostname()[:255],
                pid=os.getpid(),
                content_type=content_type,
                field=self.field,
                started=current,
                last_seen=current,
                interval=self.interval,
            )
        except DatabaseError as error:
            logger.warning(
                'Worker %s runs without a heartbeat (are the modelqueue migrations'
                ' applied?): %s: %s',
                os.getpid(),
                type(error).__name__,
                str(error).strip(),
            )
            return self
        self.pk = row.pk
        self._thread = threading.Thread(
            target=self._beat_until_stopped, name='modelqueue-heartbeat', daemon=True
        )
        self._thread.start()
        return self

    def took(self, task):
        with self._lock:
            self._held[threading.get_ident()] = (str(task.pk), now())

    def done(self, failed):
        with self._lock:
            self._held.pop(threading.get_ident(), None)
            self.tasks_done += 1
            self.failures += bool(failed)

    def in_hand(self):
        """The row held longest by any of the worker's threads, and since
        when: ``('', None)`` when none holds a row."""
        with self._lock:
            return min(self._held.values(), key=lambda held: held[1], default=('', None))

    def stop(self):
        """Stop the thread, then delete the row (a graceful exit), on the
        caller's connection, as the row was inserted: on SQLite a write from
        another connection would wait for the caller's open transaction."""
        if self._thread is None:
            return
        self._stopped.set()
        self._thread.join()
        self._thread = None
        self._guarded(self._delete)

    def _beat_until_stopped(self):
        next_prune = time.monotonic() + PRUNE_SECONDS * random.uniform(0.2, 1.0)
        try:
            while not self._stopped.wait(self.interval):
                self._guarded(self.beat)
                compact_counters(self.model, self.field, using=self.using)
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_SECONDS
                    self._guarded(self.prune)
        finally:
            connections.close_all()  # this thread's own connections

    def _guarded(self, write):
        try:
            write()
        except DatabaseError as error:
            logger.warning(
                'Worker %s: heartbeat: database error %s: %s',
                os.getpid(),
                type(error).__name__,
                str(error).strip(),
            )
            connections[self.using].close()

    def beat(self):
        """Write the row once: last seen, the row in hand, the counts."""
        from .models import WorkerHeartbeat  # noqa: PLC0415

        object_id, held_since = self.in_hand()
        WorkerHeartbeat.objects.using(self.using).filter(pk=self.pk).update(
            last_seen=now(),
            object_id=object_id,
            held_since=held_since,
            tasks_done=self.tasks_done,
            failures=self.failures,
        )

    def prune(self):
        """Prune failure records, and rows of workers lost for a day."""
        from .models import WorkerHeartbeat  # noqa: PLC0415

        self._pruner.prune()
        WorkerHeartbeat.objects.using(self.using).filter(last_seen__lt=now() - LOST_KEPT).delete()

    def _delete(self):
        from .models import WorkerHeartbeat  # noqa: PLC0415

        WorkerHeartbeat.objects.using(self.using).filter(pk=self.pk).delete()
