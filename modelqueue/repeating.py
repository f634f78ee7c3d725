"""Repeating rows of a model queue: after each run, waiting again at the next slot.

``repeating(action, cron='0 3 * * *', timezone='Europe/Paris')`` (or
``every=timedelta(minutes=5)``) is an action for :func:`modelqueue.run` and
the worker command: it calls `action` with the row, and when `action`
returns, puts the row back to waiting, due at its next slot after now
(:class:`modelqueue.slots.Slots`), its attempts back to 0 (by raising
:class:`modelqueue.Repeat`). A failure is handled as any failure of
``run()``: the row retries after its delay, and is canceled past `retry`,
which ends its repetition until an operator requeues it; an action that
raises ``Cancel`` ends it too. The row is one row throughout, so it runs at
most once at a time, whatever the number of workers, and each run is
fenced as any run is.

In ``shop/actions.py``::

    import modelqueue

    def _send_digest(user): ...

    send_digest = modelqueue.repeating(_send_digest, cron='0 8 * * *', timezone='Europe/Paris')

then ``manage.py modelqueue_worker shop.Digest status shop.actions.send_digest``.
A row enqueued once (``Status.waiting``) then runs every day at 8:00 in Paris.

>>> import datetime as dt
>>> action = repeating(print, every=dt.timedelta(hours=1))
>>> action.slots.when
'every 1:00:00'
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Generic, TypeVar

from .exceptions import Repeat
from .slots import Slots
from .status import now

__all__ = ['Repeating', 'repeating']

_M = TypeVar('_M')


class Repeating(Generic[_M]):
    """`action`, then the row waits for the next slot of `slots` (see the module's text)."""

    def __init__(self, action: Callable[[_M], object], slots: Slots) -> None:
        if not callable(action):
            raise ValueError(f'invalid action {action!r}: expected a callable that takes one model instance')
        self.action = action
        self.slots = slots
        self.__name__ = getattr(action, '__name__', type(action).__name__)
        self.__module__ = getattr(action, '__module__', __name__)
        self.__qualname__ = getattr(action, '__qualname__', self.__name__)

    def __call__(self, row: _M) -> None:
        self.action(row)
        raise Repeat(self.slots.next_slot(now()))

    def __repr__(self) -> str:
        return f'repeating({self.action!r}, {self.slots.when})'


def repeating(
    action: Callable[[_M], object],
    *,
    cron: str | None = None,
    every: dt.timedelta | None = None,
    timezone: str = 'UTC',
) -> Repeating[_M]:
    """`action` for a row that repeats at the slots of `cron` (in `timezone`) or of `every`."""
    return Repeating(action, Slots(cron, every, timezone, what='repeating'))
