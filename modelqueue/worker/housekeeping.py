"""What a worker does for the queue's tables besides running tasks.

A worker's heartbeat thread calls its :class:`Housekeeping` after each beat:

- at every beat, it compacts the queue's state counters, where they are
  installed (:func:`modelqueue.counters.compact_counters`);
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

from ..counters import compact_counters
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

    def __call__(self) -> None:
        """One beat's chores: compact, and prune when a minute has passed."""
        compact_counters(self.model, self.field, using=self.using)
        if time.monotonic() >= self.next_prune:
            self.next_prune = time.monotonic() + PRUNE_SECONDS
            self.prune()

    def prune(self) -> None:
        """Prune failure records, and the heartbeat rows of workers lost for a day."""
        from ..models import WorkerHeartbeat  # noqa: PLC0415 (needs the app registry)

        self.pruner.prune()
        WorkerHeartbeat.objects.using(self.using).filter(last_seen__lt=now() - LOST_KEPT).delete()
