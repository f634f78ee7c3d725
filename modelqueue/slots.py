"""The slots of a schedule: the moments a cron expression or an interval names.

:class:`Slots` is what the Tasks backend's schedules
(:mod:`modelqueue.tasks.schedules`) and a model queue's repeating rows
(:func:`modelqueue.repeating`) share. For a cron expression (five fields:
minute hour day month weekday; ``croniter``, the ``cron`` extra), the slots
are the minutes it matches in its time zone: a slot that a daylight-saving
change skips comes at the first minute after it, and one the change repeats
comes once. For an interval, they are its multiples since 1970-01-01 UTC,
so every process agrees on them.

>>> import datetime as dt
>>> five = Slots(every=dt.timedelta(minutes=5))
>>> five.next_slot(dt.datetime(2026, 12, 7, 10, 2, tzinfo=dt.timezone.utc))
datetime.datetime(2026, 12, 7, 10, 5, tzinfo=datetime.timezone.utc)
>>> five.when
'every 0:05:00'
>>> Slots()
Traceback (most recent call last):
  ...
ValueError: invalid slots: expected one of 'cron' and 'every', found neither
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import zoneinfo
from dataclasses import dataclass
from typing import Any

__all__ = ['EPOCH', 'Slots']

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class Slots:
    """The slots of `cron` in `timezone`, or of `every`; `what` names them in errors."""

    cron: str | None = None
    every: dt.timedelta | None = None
    timezone: str = 'UTC'
    what: str = 'slots'

    def __post_init__(self) -> None:
        what = self.what
        if (self.cron is None) == (self.every is None):
            found = 'both' if self.cron is not None else 'neither'
            raise ValueError(f"invalid {what}: expected one of 'cron' and 'every', found {found}")
        if self.every is not None and (
            not isinstance(self.every, dt.timedelta) or self.every < dt.timedelta(seconds=1)
        ):
            raise ValueError(f'invalid {what} every {self.every!r}: expected a timedelta of at least 1 second')
        if self.cron is not None:
            _check_cron(what, self.cron)
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f'invalid {what} timezone {self.timezone!r}: expected an IANA time zone name') from None

    @property
    def when(self) -> str:
        """For people: ``0 3 * * * (Europe/Paris)`` or ``every 0:05:00``."""
        return f'{self.cron} ({self.timezone})' if self.cron is not None else f'every {self.every}'

    @property
    def definition(self) -> str:
        """A digest of the cron expression or interval and the time zone."""
        text = json.dumps([self.cron, str(self.every), self.timezone])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def next_slot(self, after: dt.datetime) -> dt.datetime:
        """The first slot strictly after `after`, in UTC."""
        if self.every is not None:
            return EPOCH + ((after - EPOCH) // self.every + 1) * self.every
        return _cron_next(self.cron, self.timezone, after)

    def latest_slot(self, at: dt.datetime) -> dt.datetime:
        """The last slot at or before `at`, in UTC."""
        if self.every is not None:
            return EPOCH + ((at - EPOCH) // self.every) * self.every
        # Cron slots are whole minutes: the last one before the next minute.
        return _cron_previous(self.cron, self.timezone, at.replace(second=0, microsecond=0))


# Schedules that share a cron expression share its slots: a worker firing a
# thousand of them reads croniter once per slot, not once per schedule.
@functools.lru_cache(maxsize=4096)
def _cron_next(expression: str | None, timezone: str, after: dt.datetime) -> dt.datetime:
    found: dt.datetime = _croniter(expression, after.astimezone(zoneinfo.ZoneInfo(timezone))).get_next(dt.datetime)
    return found.astimezone(dt.timezone.utc)


@functools.lru_cache(maxsize=4096)
def _cron_previous(expression: str | None, timezone: str, minute: dt.datetime) -> dt.datetime:
    """The last slot before the minute after `minute` (a whole minute)."""
    start = minute.astimezone(zoneinfo.ZoneInfo(timezone)) + dt.timedelta(minutes=1)
    found: dt.datetime = _croniter(expression, start).get_prev(dt.datetime)
    return found.astimezone(dt.timezone.utc)


def _croniter(expression: str | None, start: dt.datetime) -> Any:
    try:
        from croniter import croniter  # noqa: PLC0415 (an optional extra)
    except ImportError:
        raise ImportError('cron schedules need croniter: pip install modelqueue[cron]') from None
    return croniter(expression, start)


def _check_cron(what: str, expression: object) -> None:
    if not isinstance(expression, str) or len(expression.split()) != 5:
        raise ValueError(
            f'invalid {what} cron {expression!r}: expected five fields (minute hour day month weekday)'
        )
    try:
        from croniter import croniter  # noqa: PLC0415 (an optional extra)
    except ImportError:
        raise ValueError(f'invalid {what}: cron schedules need croniter (pip install modelqueue[cron])') from None
    if not croniter.is_valid(expression):
        raise ValueError(f'invalid {what} cron {expression!r}: expected a cron expression croniter reads')
