"""How long a failed attempt waits, and which failures are worth another.

:func:`modelqueue.run` takes as its `delay` a ``timedelta`` (the same wait
after every failure, as the API reference has it), a callable given the
attempts made so far and returning a ``timedelta`` (:class:`Backoff` is one),
or a :class:`RetryPolicy`, which also declares which exceptions retry and
which give up at once::

    modelqueue.run(
        Report.objects.all(), 'status', make_report, retry=5,
        delay=RetryPolicy(backoff=Backoff(base=1, factor=2, cap=300), give_up_on=[ValueError]),
    )

The wait after the `n`-th failed attempt is ``min(cap, base * factor ** (n - 1))``
seconds, less a random share of at most `jitter` of it, so that rows that
failed together do not come due together:

>>> backoff = Backoff(base=1, factor=2, cap=10, jitter=0)
>>> [backoff(n).total_seconds() for n in range(1, 7)]
[1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
>>> dt.timedelta(seconds=75) <= Backoff(100, jitter=0.25)(1) <= dt.timedelta(seconds=100)
True

This module is core: it knows nothing of the worker or the Tasks backend,
which build on it (``modelqueue_worker --backoff``, the backend's
``BACKOFF``, ``RETRY_ON`` and ``GIVE_UP_ON``).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import random
from collections.abc import Callable, Iterable
from typing import Union

from .exceptions import Abort, Cancel, Retry
from .validation import MAX_TIMEDELTA, check_timedelta, invalid

logger = logging.getLogger('modelqueue')

__all__ = ['Backoff', 'Delay', 'RetryPolicy', 'check_delay', 'delay_after']

#: What run() takes as its `delay`.
Delay = Union[dt.timedelta, Callable[[int], dt.timedelta], 'RetryPolicy']

#: ``--backoff exponential``: 1 s, doubling, at most 5 minutes, half jittered.
EXPONENTIAL = (1.0, 2.0, 300.0, 0.5)


def _seconds(name: str, value: object) -> float:
    """`value` (a number of seconds or a timedelta) as seconds, 0 or more."""
    if isinstance(value, dt.timedelta):
        value = check_timedelta(name, value).total_seconds()
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 <= value <= MAX_TIMEDELTA.total_seconds()
    ):
        raise invalid(name, value, f'a number of seconds from 0 through {MAX_TIMEDELTA.days} days, or a timedelta')
    return float(value)


class Backoff:
    """Exponential backoff with a cap and jitter: called with the attempts
    made so far (1 after the first failure), returns the wait before the
    next one.

    `base` and `cap` are seconds (or timedeltas); `factor` multiplies the
    wait after each failure (1 keeps it constant); `jitter` (0 through 1) is
    the largest share of the wait taken off at random (1: anywhere from
    zero to the full wait).

    >>> Backoff(base=2, factor=3, cap=60, jitter=0)(3)
    datetime.timedelta(seconds=18)
    >>> Backoff(factor=0.5)
    Traceback (most recent call last):
      ...
    ValueError: invalid factor 0.5: expected a number of 1 or more
    """

    def __init__(
        self,
        base: float | dt.timedelta = 1.0,
        factor: float = 2.0,
        cap: float | dt.timedelta = 300.0,
        jitter: float = 0.5,
    ) -> None:
        self.base = _seconds('base', base)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 1 <= factor < math.inf:
            raise invalid('factor', factor, 'a number of 1 or more')
        self.factor = float(factor)
        self.cap = _seconds('cap', cap)
        if self.cap < self.base:
            raise invalid('cap', cap, f'a number of seconds of at least base ({self.base:g})')
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter <= 1:
            raise invalid('jitter', jitter, 'a number from 0 through 1')
        self.jitter = float(jitter)

    def __call__(self, attempts: int) -> dt.timedelta:
        exponent = max(attempts - 1, 0)
        # The cap is reached within a few thousand doublings; never overflow.
        try:
            seconds = min(self.cap, self.base * self.factor**exponent)
        except OverflowError:
            seconds = self.cap
        seconds *= 1 - self.jitter * random.random()
        return dt.timedelta(seconds=seconds)

    def __repr__(self) -> str:
        return f'Backoff(base={self.base:g}, factor={self.factor:g}, cap={self.cap:g}, jitter={self.jitter:g})'

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Backoff) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    @classmethod
    def parse(cls, text: str, name: str = 'backoff') -> Backoff:
        """The backoff `text` names: ``exponential`` (1 s doubling up to 300 s,
        jitter 0.5) or ``BASE,FACTOR,CAP[,JITTER]`` in seconds.

        >>> Backoff.parse('exponential')
        Backoff(base=1, factor=2, cap=300, jitter=0.5)
        >>> Backoff.parse('0.5,3,60,0')
        Backoff(base=0.5, factor=3, cap=60, jitter=0)
        >>> Backoff.parse('fast')
        Traceback (most recent call last):
          ...
        ValueError: invalid backoff 'fast': expected 'exponential' or BASE,FACTOR,CAP[,JITTER] (seconds; e.g. 1,2,300)
        """
        if text.strip() == 'exponential':
            return cls(*EXPONENTIAL)
        parts = text.split(',')
        try:
            if len(parts) not in (3, 4):
                raise ValueError(text)
            numbers = [float(part) for part in parts]
        except ValueError:
            raise invalid(
                name, text, "'exponential' or BASE,FACTOR,CAP[,JITTER] (seconds; e.g. 1,2,300)"
            ) from None
        return cls(*numbers)


def _exception_classes(name: str, value: object) -> tuple[type[BaseException], ...]:
    classes = (value,) if isinstance(value, type) else tuple(value) if isinstance(value, Iterable) else None
    if classes is None or not all(
        isinstance(cls, type) and issubclass(cls, BaseException) for cls in classes
    ):
        raise invalid(name, value, 'an exception class or a list of them')
    return classes


class RetryPolicy:
    """Which failures retry, and how long each waits.

    An exception an attempt raises (other than ``Retry``, ``Abort`` and
    ``Cancel``, which say it themselves) retries if it is an instance of
    one of `retry_on` (default: every ``Exception``) and of none of
    `give_up_on`; otherwise it gives up at once: the row is canceled
    (the Tasks backend: the task is FAILED), its attempt counted, whatever
    `retry` allows. `backoff` is the wait, a ``timedelta`` or a callable
    given the attempts made (default: no wait).

    A RetryPolicy is run()'s `delay` as well as the policy: called with the
    attempts, it returns its backoff's wait.

    >>> policy = RetryPolicy(give_up_on=[KeyError], backoff=dt.timedelta(seconds=5))
    >>> policy.retries(ValueError()), policy.retries(KeyError()), policy.retries(Abort())
    (True, False, True)
    >>> policy(1)
    datetime.timedelta(seconds=5)
    >>> policy
    RetryPolicy(retry_on=[Exception], give_up_on=[KeyError], backoff=datetime.timedelta(seconds=5))
    """

    def __init__(
        self,
        retry_on: type[BaseException] | Iterable[type[BaseException]] = (Exception,),
        give_up_on: type[BaseException] | Iterable[type[BaseException]] = (),
        backoff: dt.timedelta | Callable[[int], dt.timedelta] = dt.timedelta(0),
    ) -> None:
        self.retry_on = _exception_classes('retry_on', retry_on)
        self.give_up_on = _exception_classes('give_up_on', give_up_on)
        check_delay('backoff', backoff)
        self.backoff = backoff

    def retries(self, error: BaseException) -> bool:
        """Whether an attempt that raised `error` may be tried again (within
        the attempts `retry` allows). ``Retry`` and ``Abort`` always may,
        ``Cancel`` never."""
        if isinstance(error, (Retry, Abort)):
            return True
        if isinstance(error, Cancel):
            return False
        return isinstance(error, self.retry_on) and not isinstance(error, self.give_up_on)

    def __call__(self, attempts: int) -> dt.timedelta:
        return delay_after(self.backoff, attempts)

    def __repr__(self) -> str:
        return (
            f'RetryPolicy(retry_on={_names(self.retry_on)}, give_up_on={_names(self.give_up_on)},'
            f' backoff={self.backoff!r})'
        )


def _names(classes: tuple[type[BaseException], ...]) -> str:
    return '[' + ', '.join(cls.__name__ for cls in classes) + ']'


def check_delay(name: str, value: object) -> Delay:
    """Return `value` if it is a delay run() takes: a timedelta from zero, or
    a callable that returns one when given the attempts (it is called once
    here, with 1, to see that it does).

    >>> check_delay('delay', 5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    ValueError: invalid delay 5: expected a datetime.timedelta of zero or more, or a callable ...
    """
    if isinstance(value, dt.timedelta):
        return check_timedelta(name, value)
    if not callable(value):
        raise invalid(
            name,
            value,
            'a datetime.timedelta of zero or more, or a callable given the attempts that'
            ' returns one (such as modelqueue.Backoff)',
        )
    check_timedelta(f'{name}(1)', value(1))
    return value


def delay_after(delay: Delay, attempts: int) -> dt.timedelta:
    """The wait `delay` gives after `attempts` attempts. A callable that
    fails or returns something else than a timedelta from zero is logged,
    and the wait is zero: the row must not stay working for it."""
    if isinstance(delay, dt.timedelta):
        return delay
    try:
        return check_timedelta(f'delay({attempts})', delay(attempts))
    except Exception:
        logger.exception('the delay %r failed after %s attempts; retrying without a wait', delay, attempts)
        return dt.timedelta(0)


def gives_up(delay: Delay, error: BaseException) -> bool:
    """Whether `delay`, if it is a RetryPolicy, gives up at once on `error`.

    A BaseException that is not an Exception (the time limit's
    TimeLimitExceeded, a KeyboardInterrupt or SystemExit stopping the worker)
    ends the attempt like any failure, within run()'s `retry`, unless the
    policy's `give_up_on` names it: it says nothing about the row.
    """
    if not isinstance(delay, RetryPolicy):
        return False
    if not isinstance(error, Exception):
        return isinstance(error, delay.give_up_on)
    return not delay.retries(error)
