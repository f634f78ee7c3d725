"""What a worker does for the queue's tables besides running tasks.

A worker's heartbeat thread calls its :class:`Housekeeping` after each beat:

- at every beat, it compacts the queue's state counters, where they are
  installed (:func:`modelqueue.counters.compact_counters`). Whether they
  are is asked once a minute; a queue without them is never compacted,
  nor warned about while the database does not answer;
- about once a minute (the first time at a random moment, so that workers
  started together spread out), it prunes failure records
  (:class:`modelqueue.failures.Pruner`) and deletes the heartbeat rows of
  workers lost for a day (:data:`LOST_KEPT`).

No task and no request pays for any of it.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from typing import Any

from django.db import DatabaseError

from ..counters import compact_counters, counters_installed
from ..failures import Pruner
from ..status import now

__all__ = ['LOST_KEPT', 'PRUNE_SECONDS', 'Housekeeping']

#: How long the heartbeat row of a lost worker is kept after it was last seen.
LOST_KEPT = dt.timedelta(days=1)
#: Seconds between two pruning passes.
PRUNE_SECONDS = 60.0


class Housekeeping:
    """The chores of a worker on the queue `field` of `model`, in the database `using`."""

    def __init__(self, model: Any, field: str, using: str = 'default') -> None:
        self.model = model
        self.field = field
        self.using = using
        self.pruner = Pruner(using)
        self.next_prune = time.monotonic() + PRUNE_SECONDS * random.uniform(0.2, 1.0)
        self.has_counters: bool | None = None  # not known yet
        self.next_counters_check = 0.0

    def __call__(self) -> None:
        """One beat's chores: compact, and prune when a minute has passed."""
        if self.counters_installed():
            compact_counters(self.model, self.field, using=self.using)
        if time.monotonic() >= self.next_prune:
            self.next_prune = time.monotonic() + PRUNE_SECONDS
            self.prune()

    def counters_installed(self) -> bool:
        """Whether the queue has state counters, asked once a minute (they may
        be installed while the worker runs). While the database does not
        answer, the last answer holds, and none is no counters."""
        if time.monotonic() >= self.next_counters_check:
            try:
                self.has_counters = counters_installed(self.model, self.field, using=self.using)
            except DatabaseError:
                return bool(self.has_counters)
            self.next_counters_check = time.monotonic() + PRUNE_SECONDS
        return bool(self.has_counters)

    def prune(self) -> None:
        """Prune failure records, and the heartbeat rows of workers lost for a day."""
        from ..models import WorkerHeartbeat  # noqa: PLC0415 (needs the app registry)

        self.pruner.prune()
        WorkerHeartbeat.objects.using(self.using).filter(last_seen__lt=now() - LOST_KEPT).delete()
