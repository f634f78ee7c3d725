"""Retry policies of tasks: the backend's OPTIONS, and one task's own.

The backend's OPTIONS ``BACKOFF``, ``RETRY_ON`` and ``GIVE_UP_ON`` make the
policy of every task of the backend (:func:`backend_policy`); a task may
declare its own with :func:`retry_policy`, stacked under Django's
``@task`` (or above it), whose arguments replace the backend's::

    from django.tasks import task
    from modelqueue import Backoff
    from modelqueue.tasks import retry_policy

    @task
    @retry_policy(retry_on=[ConnectionError], backoff=Backoff(base=2, cap=600))
    def send_newsletter(address): ...

Django's ``@task`` takes no option of a backend's, so the policy is kept
on the function itself, where the worker finds it.

>>> @retry_policy(give_up_on=[KeyError])
... def lookup(key): ...
>>> policy_of(lookup)
{'give_up_on': [<class 'KeyError'>]}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.utils.module_loading import import_string

from ..retries import Backoff, RetryPolicy, check_delay
from ..validation import invalid

_F = TypeVar('_F')

#: The attribute of a task's function that holds its policy's arguments.
ATTRIBUTE = 'modelqueue_retry_policy'
ARGUMENTS = ('retry_on', 'give_up_on', 'backoff')


def retry_policy(
    *,
    retry_on: Iterable[type[BaseException]] | type[BaseException] | None = None,
    give_up_on: Iterable[type[BaseException]] | type[BaseException] | None = None,
    backoff: dt.timedelta | Callable[[int], dt.timedelta] | str | None = None,
) -> Callable[[_F], _F]:
    """Declare the retry policy of one task: which exceptions retry
    (`retry_on`), which fail it at once (`give_up_on`), and the wait
    before each retry (`backoff`: a ``Backoff``, a ``timedelta``, a
    callable given the attempts, or the text ``--backoff`` takes). What is
    not given is the backend's. The attempts are the backend's ``RETRY``.

    Decorates the task's function, or the ``Task`` ``@task`` made of it.

    >>> retry_policy(backoff='often')
    Traceback (most recent call last):
      ...
    ValueError: invalid backoff 'often': expected 'exponential' or BASE,FACTOR,CAP[,JITTER] (seconds; e.g. 1,2,300)
    """
    given: dict[str, Any] = {}
    if retry_on is not None:
        given['retry_on'] = list(RetryPolicy(retry_on=retry_on).retry_on)
    if give_up_on is not None:
        given['give_up_on'] = list(RetryPolicy(give_up_on=give_up_on).give_up_on)
    if backoff is not None:
        given['backoff'] = _backoff('backoff', backoff)

    def decorate(function: _F) -> _F:
        target = getattr(function, 'func', function)  # a Task: its function
        if not callable(target):
            raise invalid('retry_policy target', function, 'a function or a Task')
        setattr(target, ATTRIBUTE, given)
        return function

    return decorate


def policy_of(function: object) -> dict[str, Any] | None:
    """The arguments :func:`retry_policy` declared on `function`, if any."""
    declared: dict[str, Any] | None = getattr(function, ATTRIBUTE, None)
    return declared


def _backoff(name: str, value: object) -> dt.timedelta | Callable[[int], dt.timedelta]:
    if isinstance(value, str):
        return Backoff.parse(value, name)
    return check_delay(name, value)


def _classes(name: str, value: object) -> list[type[BaseException]]:
    """A list of exception classes, or of their dotted paths, imported."""
    items = [value] if isinstance(value, (str, type)) else value
    if not isinstance(items, Iterable):
        raise invalid(name, value, 'a list of exception classes or of their dotted paths')
    found = []
    for item in items:
        if isinstance(item, str):
            try:
                item = import_string(item)
            except ImportError as error:
                raise invalid(name, value, f'dotted paths of exception classes ({error})') from None
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise invalid(name, value, 'a list of exception classes or of their dotted paths')
        found.append(item)
    return found


def backend_policy(
    options: dict[str, Any], on_exception: str, delay: dt.timedelta, name: Callable[[str], str]
) -> RetryPolicy:
    """The policy of a backend, from its `options` (``BACKOFF``,
    ``RETRY_ON``, ``GIVE_UP_ON``, popped); `name` names an option in errors.
    ``RETRY_ON`` defaults to nothing under ``ON_EXCEPTION`` 'fail' and to
    every ``Exception`` under 'retry'."""
    retry_on: list[type[BaseException]] = [Exception] if on_exception == 'retry' else []
    if 'RETRY_ON' in options:
        retry_on = _classes(name('RETRY_ON'), options.pop('RETRY_ON'))
    give_up_on = _classes(name('GIVE_UP_ON'), options.pop('GIVE_UP_ON', []))
    backoff: dt.timedelta | Callable[[int], dt.timedelta] = delay
    if 'BACKOFF' in options:
        if delay:
            raise ValueError(f'{name("DELAY")} and {name("BACKOFF")} exclude each other: give one')
        backoff = _backoff(name('BACKOFF'), options.pop('BACKOFF'))
    return RetryPolicy(retry_on=retry_on, give_up_on=give_up_on, backoff=backoff)


def task_policy(backend: RetryPolicy, declared: dict[str, Any] | None) -> RetryPolicy:
    """The policy of a task that `declared` its own (see :func:`retry_policy`),
    the rest taken from its `backend`'s."""
    if not declared:
        return backend
    arguments = {
        'retry_on': backend.retry_on,
        'give_up_on': backend.give_up_on,
        'backoff': backend.backoff,
        **declared,
    }
    return RetryPolicy(**arguments)
