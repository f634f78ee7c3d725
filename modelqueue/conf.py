"""Every setting of ModelQueue: its name, its default and its check.

Each setting is read when it is used, through :func:`get`, so
``override_settings`` works in tests; a value of the wrong kind raises
ValueError naming the setting, the value and what was expected. Django's
system checks report the same problems at start-up (``modelqueue.E301``).

==================================  ======================  ==========================================
setting                             default                 what it is
==================================  ======================  ==========================================
``MODELQUEUE_FAILURE_RECORDS``      ``True``                run() records failed attempts
``MODELQUEUE_FAILURES_PER_ROW``     ``20``                  failure records kept per row and field
``MODELQUEUE_FAILURE_MAX_AGE``      ``timedelta(days=30)``  older failure records are pruned
``MODELQUEUE_TRACEBACK_CHARS``      ``20000``               the most characters of a traceback stored
``MODELQUEUE_HEARTBEAT_SECONDS``    ``5.0``                 seconds between a worker's heartbeats
``MODELQUEUE_TASK_MODULES``         ``()``                  modules of ``@task`` functions besides
                                                            the installed apps' ``tasks`` modules
``MODELQUEUE_TASK_RETENTION``       7 days SUCCESSFUL,      how long finished task rows are kept
                                    30 days FAILED          (``None``: for ever)
``MODELQUEUE_LISTEN_DATABASE``      ``None``                the ``DATABASES`` alias a worker LISTENs
                                                            through (``None``: the queue's own);
                                                            ``--listen-database`` overrides it
``MODELQUEUE_TIME_LIMITS``          ``{}``                  seconds an action may run, by queue:
                                                            ``'app_label.Model.field'``, or
                                                            ``'tasks:NAME'`` for a Tasks queue;
                                                            ``--time-limit`` overrides it
``MODELQUEUE_METRICS_TOKEN``        ``None``                the bearer token of the metrics page for
                                                            scrapers (``None``: that page is off)
==================================  ======================  ==========================================

``MODELQUEUE_TRACEBACK_CHARS`` caps both a failure record's traceback and
the traceback of each error of a task of the Tasks backend (at least 1000:
a traceback cut shorter would hold little more than its marker; see
:mod:`modelqueue.text`).

>>> get('MODELQUEUE_FAILURES_PER_ROW')
20
>>> get('MODELQUEUE_HEARTBEAT_SECONDS')
5.0
>>> get('MODELQUEUE_TASK_RETENTION')['FAILED']
datetime.timedelta(days=30)
>>> get('MODELQUEUE_LISTEN_DATABASE') is None
True
>>> get('MODELQUEUE_TIME_LIMITS')
{}
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, Literal, overload

from django.conf import settings
from django.core import checks

from .validation import MAX_SECONDS

__all__ = ['DEFAULTS', 'TASK_RETENTION', 'check_database_alias', 'check_settings', 'get', 'time_limit_of']


def _boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f'{name} = {value!r}: expected True or False')
    return value


def _positive_integer(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f'{name} = {value!r}: expected an integer of at least 1')
    return value


def _at_least(minimum: int) -> Callable[[str, Any], int]:
    def check(name: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f'{name} = {value!r}: expected an integer of at least {minimum}')
        return value

    return check


def _positive_timedelta(name: str, value: Any) -> dt.timedelta:
    if not isinstance(value, dt.timedelta) or value <= dt.timedelta(0):
        raise ValueError(f'{name} = {value!r}: expected a timedelta above zero')
    return value


def _positive_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f'{name} = {value!r}: expected a number of seconds above 0')
    return float(value)


_MODULE_NAME = re.compile(r'[^\W\d]\w*(\.[^\W\d]\w*)*')


def _module_names(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(module, str) and _MODULE_NAME.fullmatch(module) for module in value
    ):
        raise ValueError(
            f'{name} = {value!r}: expected a list or tuple of dotted module names'
            " (such as ['myproject.jobs'])"
        )
    return tuple(value)


def check_database_alias(name: str, value: Any) -> str | None:
    """`value`: None, or an alias of ``DATABASES``; ValueError names `name`.

    >>> check_database_alias('--database', 'default')
    'default'
    """
    if value is None:
        return None
    if not isinstance(value, str) or value not in settings.DATABASES:
        raise ValueError(
            f'{name} = {value!r}: expected None or an alias of DATABASES'
            f' ({", ".join(map(repr, settings.DATABASES))})'
        )
    return value


#: How long the Tasks backend's finished rows are kept, by state (only these
#: two: a READY or RUNNING row is never pruned).
TASK_RETENTION = {'SUCCESSFUL': dt.timedelta(days=7), 'FAILED': dt.timedelta(days=30)}


def _task_retention(name: str, value: Any) -> dict[str, dt.timedelta | None]:
    """The ages of TASK_RETENTION that `value` (a dict) does not give, then its own:
    each a timedelta above zero, or None (kept for ever)."""
    expected = (
        "expected a dict of 'SUCCESSFUL' and 'FAILED' (finished task rows; READY and"
        ' RUNNING ones are never pruned), each a timedelta above zero or None (kept for ever)'
    )
    if not isinstance(value, dict) or not set(value) <= set(TASK_RETENTION):
        raise ValueError(f'{name} = {value!r}: {expected}')
    for state, age in value.items():
        if age is not None and (not isinstance(age, dt.timedelta) or age <= dt.timedelta(0)):
            raise ValueError(f'{name} = {value!r}: {expected}; found {state!r}: {age!r}')
    return {**TASK_RETENTION, **value}


_QUEUE_KEY = re.compile(r'[^\W\d]\w*\.[^\W\d]\w*\.[^\W\d]\w*|tasks:.+')


def _time_limits(name: str, value: Any) -> dict[str, float]:
    """A dict of queue keys ('app_label.Model.field', or 'tasks:NAME' for a
    queue of the Tasks backend) to seconds above 0."""
    expected = (
        "expected a dict of queues ('app_label.Model.field', or 'tasks:NAME' for a queue"
        f' of the Tasks backend) to the seconds an action may run (above 0, at most {MAX_SECONDS})'
    )
    if not isinstance(value, dict):
        raise ValueError(f'{name} = {value!r}: {expected}')
    limits = {}
    for key, seconds in value.items():
        if (
            not isinstance(key, str)
            or not _QUEUE_KEY.fullmatch(key)
            or isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not 0 < seconds <= MAX_SECONDS
        ):
            raise ValueError(f'{name} = {value!r}: {expected}; found {key!r}: {seconds!r}')
        limits[key] = float(seconds)
    return limits


def time_limit_of(keys: list[str]) -> float | None:
    """The time limit ``MODELQUEUE_TIME_LIMITS`` sets for a worker of the
    queues `keys`: the smallest of theirs, or None when none has one.

    >>> from django.test import override_settings
    >>> with override_settings(MODELQUEUE_TIME_LIMITS={'shop.Email.status': 30, 'tasks:mail': 5}):
    ...     time_limit_of(['shop.Email.status']), time_limit_of(['tasks:mail', 'tasks:bulk'])
    (30.0, 5.0)
    >>> time_limit_of(['shop.Email.status']) is None
    True
    """
    limits = get('MODELQUEUE_TIME_LIMITS')
    found = [limits[key] for key in keys if key in limits]
    return min(found) if found else None


def _token(name: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) < 16 or value != value.strip()):
        raise ValueError(
            f'{name} = <{type(value).__name__} of {len(value) if isinstance(value, str) else "?"}'
            ' characters>: expected None or a string of at least 16 characters without'
            " surrounding spaces (secrets.token_urlsafe() makes one)"
        )
    return value


#: Each setting's default and the check its value must pass.
DEFAULTS: dict[str, tuple[Any, Callable[[str, Any], Any]]] = {
    'MODELQUEUE_FAILURE_RECORDS': (True, _boolean),
    'MODELQUEUE_FAILURES_PER_ROW': (20, _positive_integer),
    'MODELQUEUE_FAILURE_MAX_AGE': (dt.timedelta(days=30), _positive_timedelta),
    'MODELQUEUE_TRACEBACK_CHARS': (20000, _at_least(1000)),
    'MODELQUEUE_HEARTBEAT_SECONDS': (5.0, _positive_seconds),
    'MODELQUEUE_TASK_MODULES': ((), _module_names),
    'MODELQUEUE_TASK_RETENTION': (TASK_RETENTION, _task_retention),
    'MODELQUEUE_LISTEN_DATABASE': (None, check_database_alias),
    'MODELQUEUE_TIME_LIMITS': ({}, _time_limits),
    'MODELQUEUE_METRICS_TOKEN': (None, _token),
}


@overload
def get(name: Literal['MODELQUEUE_FAILURE_RECORDS']) -> bool: ...
@overload
def get(name: Literal['MODELQUEUE_FAILURES_PER_ROW', 'MODELQUEUE_TRACEBACK_CHARS']) -> int: ...
@overload
def get(name: Literal['MODELQUEUE_FAILURE_MAX_AGE']) -> dt.timedelta: ...
@overload
def get(name: Literal['MODELQUEUE_HEARTBEAT_SECONDS']) -> float: ...
@overload
def get(name: Literal['MODELQUEUE_LISTEN_DATABASE']) -> str | None: ...
@overload
def get(name: Literal['MODELQUEUE_TIME_LIMITS']) -> dict[str, float]: ...
@overload
def get(name: str) -> Any: ...
def get(name: str) -> Any:
    """The value of the setting `name`, checked; its default when unset."""
    default, check = DEFAULTS[name]
    return check(name, getattr(settings, name, default))


def check_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    """The system check of every setting (registered by the app)."""
    errors: list[checks.CheckMessage] = []
    for name in DEFAULTS:
        try:
            get(name)
        except ValueError as error:
            errors.append(checks.Error(str(error), id='modelqueue.E301'))
    return errors
