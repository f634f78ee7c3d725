"""The exceptions an action raises to tell :func:`modelqueue.run` what to do.

Any other exception counts as a failed attempt (like ``Abort``) and is
re-raised by ``run()`` once the row is written.

===========  ==============  =====================================================
exception    attempt counts  the row becomes
===========  ==============  =====================================================
``Retry``    no              waiting again, after the delay
``Repeat``   reset to 0      waiting again, due at its moment (a repeating row)
``Abort``    yes             waiting again after the delay, or canceled past ``retry``
``Cancel``   yes             canceled
===========  ==============  =====================================================

run() raises one of its own, :class:`OutcomeNotStored`, when the database
refused the values the action set on its row; a worker with a time limit
raises :class:`TimeLimitExceeded` inside an action that runs past it.
"""

from __future__ import annotations

import datetime as dt

from .validation import check_timedelta

__all__ = ['Abort', 'Cancel', 'OutcomeNotStored', 'Repeat', 'Retry', 'TimeLimitExceeded']


class Retry(Exception):
    """Retry processing the task.

    When raised in an `action` callable from :func:`modelqueue.run`, the
    exception is used to signal that the task should be retried.

    Retry does *not* increment the attempt count of the task.

    Optional `delay` parameter can be used to override the `delay` given in
    :func:`modelqueue.run`.

    >>> Retry(dt.timedelta(minutes=5)).delay
    datetime.timedelta(seconds=300)
    """

    def __init__(self, delay: dt.timedelta | None = None) -> None:
        super().__init__(delay)
        self.delay: dt.timedelta | None = check_timedelta('delay', delay, allow_none=True)


class Repeat(Retry):
    """Run the task again at `at`, its attempts back to 0: the action
    succeeded, and its row repeats (:func:`modelqueue.repeating` raises it).

    Like ``Retry``, it is no failure: no failure record, and the values the
    action set are written with the row's status.

    >>> import datetime as dt
    >>> Repeat(dt.datetime(2026, 12, 8, 3, tzinfo=dt.timezone.utc)).at.hour
    3
    """

    def __init__(self, at: dt.datetime) -> None:
        super().__init__(None)
        if not isinstance(at, dt.datetime) or at.tzinfo is None:
            raise ValueError(f'invalid at {at!r}: expected an aware datetime')
        self.at = at


class Abort(Exception):
    """Abort processing the task.

    When raised in an `action` callable from :func:`modelqueue.run`, the
    exception is used to signal that the task was aborted.

    Abort *does* increment the attempt count of the task. If the attempts
    limit is reached then the task will be canceled.

    Optional `delay` parameter can be used to override the `delay` given in
    :func:`modelqueue.run`.

    >>> Abort().delay is None
    True
    """

    def __init__(self, delay: dt.timedelta | None = None) -> None:
        super().__init__(delay)
        self.delay: dt.timedelta | None = check_timedelta('delay', delay, allow_none=True)


class Cancel(Exception):
    """Cancel processing the task.

    When raised in an `action` callable from :func:`modelqueue.run`, the
    exception is used to signal that the task should be canceled.

    Cancel both increments the attempt count and changes the task state to
    canceled.

    >>> isinstance(Cancel(), Exception)
    True
    """


class OutcomeNotStored(Exception):
    """The database refused the values the action set on its row.

    Raised by :func:`modelqueue.run`, never by an action: a value of a
    field the action changed could not be stored (a NUL on PostgreSQL, a
    lone surrogate, text longer than its column, JSON that is not JSON),
    so run() wrote the attempt's outcome without those values, as a failed
    attempt (it counts; the row waits for the next one, or is canceled past
    `retry`), and a failure record of this exception says why. The row is
    never left working to run again.

    `fields` names the fields the action changed; its ``__cause__`` is the
    database's error. When the action raised an exception of its own, run()
    raises that one instead, as it would have.

    >>> OutcomeNotStored('the values could not be stored', ['note']).fields
    ('note',)
    """

    def __init__(self, message: str, fields: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fields: tuple[str, ...] = tuple(fields)


class TimeLimitExceeded(BaseException):
    """The action ran past its worker's time limit (``--time-limit``).

    Raised inside the action by the worker (from a ``SIGALRM`` timer; see
    :mod:`modelqueue.worker.timelimit`), never by an action. It is a
    ``BaseException``, as ``KeyboardInterrupt`` is, so that an action's
    ``except Exception`` does not swallow it. run() counts it as a failed
    attempt (the row waits for the next one, or is canceled past `retry`:
    the rules of a timeout reclaim), and the failure record names it
    ``modelqueue.time_limit`` (:attr:`modelqueue.models.FailureRecord.TIME_LIMIT`).

    >>> print(TimeLimitExceeded(2.0))
    stopped by the time limit of 2s
    >>> TimeLimitExceeded(2.5).seconds
    2.5
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f'stopped by the time limit of {seconds:g}s')
        self.seconds = seconds
