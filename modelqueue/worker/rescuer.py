"""A worker rescues the rows of its queue's lost workers, after each beat.

The heartbeat thread calls a :class:`Rescuer` once a beat was written
(its worker's own heartbeat is fresh): one indexed query looks for the
heartbeat rows of the queue that were not updated for three of this
worker's intervals, and each whose worker is lost by its own interval is
rescued (:func:`modelqueue.rescue.rescue`) with the worker's `retry` and
`delay`, as the timeout reclaim would give its rows back. The rescue beats
the rescuer's own row in its transaction, so a worker whose row is gone
(itself taken for lost) rescues nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..names import worker_name
from ..rescue import LOST_BEATS, lost_heartbeats, rescue
from ..retries import Delay
from ..status import now

if TYPE_CHECKING:
    from .heartbeat import Heartbeat

__all__ = ['Rescuer']


class Rescuer:
    """Rescues the lost workers of the queue `attname` of `model` in `using`."""

    def __init__(
        self,
        model: Any,
        attname: str,
        using: str,
        retry: int,
        delay: Delay,
        on_given: Callable[[], object] | None = None,
    ) -> None:
        self.on_given = on_given  # called when rows were given back: the worker looks at once
        self.model = model
        self.attname = attname
        self.using = using
        self.retry = retry
        self.delay = delay
        self.rescued = 0

    def __call__(self, heartbeat: Heartbeat) -> int:
        """One pass for the worker of `heartbeat`; return the rows given back."""
        if heartbeat.pk is None or not heartbeat.fresh():
            return 0  # never on a stale heartbeat: this worker may be the lost one
        current = now()
        given = 0
        older_than = dt.timedelta(seconds=LOST_BEATS * heartbeat.interval)
        for lost in lost_heartbeats(self.model, self.attname, self.using, current, older_than):
            if lost.pk == heartbeat.pk:
                continue
            count = rescue(
                lost, self.model, self.using, self.retry, self.delay,
                rescuer=heartbeat.pk, by=f'worker {worker_name()}', current=current,
            )
            given += count or 0  # None: another rescuer took it, or it beat again
        self.rescued += given
        if given and self.on_given is not None:
            self.on_given()
        return given
