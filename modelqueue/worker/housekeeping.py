"""What a worker does for the queue's tables besides running tasks.

A worker's heartbeat thread calls its :class:`Housekeeping` after each beat:

- at every beat, it compacts the queue's state counters, where they are
  installed (:func:`modelqueue.counters.compact_counters`). Whether they
  are is asked once a minute; a queue without them is never compacted,
  nor warned about while the database does not answer;
- about once a minute (the first time at a random moment, so that workers
  started together spread out), it prunes failure records
  (:class:`modelqueue.failures.Pruner`), deletes the heartbeat rows of
  workers lost for a day (:data:`LOST_KEPT`), calls the pruners its worker
  adds (the Tasks worker's prunes finished task rows:
  :class:`modelqueue.tasks.retention.TaskPruner`), and counts the queue
  afresh if its counters are installed but no longer current
  (:func:`modelqueue.counters.refresh_counters`);
- every ten minutes or so, it compares the counters of the queue's smaller
  states with the table, and counts afresh if they differ
  (:func:`modelqueue.counters.verify_counters`).

No task and no request pays for any of it.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from django.db import DatabaseError

from ..counters import (
    VERIFY_SECONDS,
    compact_counters,
    counters_installed,
    refresh_counters,
    verify_counters,
)
from ..failures import Pruner
from ..status import now

__all__ = ['LOST_KEPT', 'PRUNE_SECONDS', 'Housekeeping']

#: How long the heartbeat row of a lost worker is kept after it was last seen.
LOST_KEPT = dt.timedelta(days=1)
#: Seconds between two pruning passes.
PRUNE_SECONDS = 60.0


class Housekeeping:
    """The chores of a worker on the queue `field` of `model`, in the database
    `using`; `prune_also` are more pruners to call with the failure records'
    (each one pass of bounded work)."""

    def __init__(
        self,
        model: Any,
        field: str,
        using: str = 'default',
        prune_also: Sequence[Callable[[], object]] = (),
    ) -> None:
        self.model = model
        self.field = field
        self.using = using
        self.pruner = Pruner(using)
        self.prune_also = list(prune_also)
        started = time.monotonic()
        self.next_prune = started + PRUNE_SECONDS * random.uniform(0.2, 1.0)
        self.next_verification = started + VERIFY_SECONDS * random.uniform(0.2, 1.0)
        self.has_counters: bool | None = None  # not known yet
        self.next_counters_check = 0.0

    def __call__(self) -> None:
        """One beat's chores, and those of every minute and every
        VERIFY_SECONDS when their time has come."""
        self.every_beat()
        if time.monotonic() >= self.next_prune:
            self.next_prune = time.monotonic() + PRUNE_SECONDS
            self.every_minute()
        if time.monotonic() >= self.next_verification:
            self.next_verification = time.monotonic() + VERIFY_SECONDS
            self.now_and_then()

    def every_beat(self) -> None:
        """Compact the state counters, where the queue has them."""
        if self.counters_installed():
            compact_counters(self.model, self.field, using=self.using)

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

    def every_minute(self) -> None:
        """Prune; count the queue afresh if its counters are no longer current."""
        self.prune()
        refresh_counters(self.model, self.field, using=self.using)

    def prune(self) -> None:
        """Prune failure records, the heartbeat rows of workers lost for a
        day, then call the pruners of `prune_also`."""
        from ..models import WorkerHeartbeat  # noqa: PLC0415 (needs the app registry)

        self.pruner.prune()
        WorkerHeartbeat.objects.using(self.using).filter(last_seen__lt=now() - LOST_KEPT).delete()
        for prune in self.prune_also:
            prune()

    def now_and_then(self) -> None:
        """Compare the counters of the smaller states with the table."""
        verify_counters(self.model, self.field, using=self.using)
