"""Argument checks shared by run(), the worker, the admin and import-export.

Each check returns the value it accepts, or raises ValueError with a message
that names the argument, the value given and what was expected. Nothing here
touches the database; `check_status_field` reads only the model's metadata.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, SupportsFloat, cast, overload

from django.core.exceptions import FieldDoesNotExist

if TYPE_CHECKING:
    from django.db.models import Field, Model

#: Longest timedelta accepted: longer spans leave the datetime range when
#: added to now().
MAX_TIMEDELTA = dt.timedelta(days=1000 * 365)

#: A hundred years: within MAX_TIMEDELTA and what select() can wait.
MAX_SECONDS = 100 * 365 * 24 * 3600

#: The largest count a worker shares between its processes (a signed 64-bit
#: integer in shared memory).
MAX_COUNT = 2**63 - 1


def invalid(name: str, value: object, expected: str) -> ValueError:
    """The ValueError of every check: the argument, the value, what was expected.

    >>> invalid('retry', 9, 'an integer from 0 through 8')
    ValueError('invalid retry 9: expected an integer from 0 through 8')
    """
    return ValueError(f'invalid {name} {value!r}: expected {expected}')


def check_integer(name: str, value: object, maximum: int) -> int:
    """Return `value` if it is an integer from 0 through `maximum`.

    >>> check_integer('retry', 9, 8)
    Traceback (most recent call last):
      ...
    ValueError: invalid retry 9: expected an integer from 0 through 8
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise invalid(name, value, f'an integer from 0 through {maximum}')
    return value


@overload
def check_timedelta(
    name: str, value: object, allow_none: Literal[False] = False, above_zero: bool = False
) -> dt.timedelta: ...
@overload
def check_timedelta(
    name: str, value: object, allow_none: bool, above_zero: bool = False
) -> dt.timedelta | None: ...
def check_timedelta(
    name: str, value: object, allow_none: bool = False, above_zero: bool = False
) -> dt.timedelta | None:
    """Return `value` if it is a timedelta from zero (or above) through `MAX_TIMEDELTA`.

    >>> check_timedelta('delay', dt.timedelta(days=-1))
    Traceback (most recent call last):
      ...
    ValueError: invalid delay datetime.timedelta(days=-1): expected a datetime.timedelta
    of zero or more, at most 365000 days
    """
    if value is None and allow_none:
        return value
    if (
        not isinstance(value, dt.timedelta)
        or not dt.timedelta(0) <= value <= MAX_TIMEDELTA
        or (above_zero and not value)
    ):
        least = 'above zero' if above_zero else 'of zero or more'
        raise invalid(
            name, value, f'a datetime.timedelta {least}, at most {MAX_TIMEDELTA.days} days'
        )
    return value


def check_seconds(name: str, value: SupportsFloat | str, above_zero: bool = False) -> float:
    """Return `value` as a float of seconds.

    >>> check_seconds('delay', 2)
    2.0
    >>> check_seconds('delay', -1)
    Traceback (most recent call last):
      ...
    ValueError: invalid delay -1: expected a number of seconds of 0 or more, at most 3153600000
    """
    number = float(value)
    if (
        not math.isfinite(number)
        or number < 0
        or (above_zero and number == 0)
        or number > MAX_SECONDS
    ):
        least = 'above 0' if above_zero else 'of 0 or more'
        raise invalid(name, value, f'a number of seconds {least}, at most {MAX_SECONDS}')
    return number


@overload
def check_count(
    name: str, value: object, maximum: int = MAX_COUNT, allow_none: Literal[False] = False
) -> int: ...
@overload
def check_count(
    name: str, value: object, maximum: int = MAX_COUNT, *, allow_none: bool
) -> int | None: ...
def check_count(
    name: str, value: object, maximum: int = MAX_COUNT, allow_none: bool = False
) -> int | None:
    """Return `value` if it is a whole number from 1 through `maximum`.

    >>> check_count('concurrency', 4, 256)
    4
    >>> check_count('concurrency', 1000000, 256)
    Traceback (most recent call last):
      ...
    ValueError: invalid concurrency 1000000: expected a whole number from 1 through 256
    """
    if value is None and allow_none:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise invalid(name, value, f'a whole number from 1 through {maximum}')
    return value


def check_callable(name: str, value: object) -> Callable[..., object]:
    """Return `value` if it can be called.

    >>> check_callable('action', 'send')
    Traceback (most recent call last):
      ...
    ValueError: invalid action 'send': expected a callable
    """
    if not callable(value):
        raise invalid(name, value, 'a callable')
    return value


def status_field_problem(model: type[Model], field: str) -> str | None:
    """Return why `field` of `model` is not a status field, or None if it is.

    The admin's system checks report the same problems as `check_status_field`.
    """
    try:
        model_field = model._meta.get_field(field)
    except FieldDoesNotExist:
        return f'{model._meta.label} has no such field'
    if model_field.get_internal_type() != 'BigIntegerField':
        return (
            f'expected a StatusField (BigIntegerField) of {model._meta.label},'
            f' found {type(model_field).__name__}'
        )
    return None


def check_status_field(model: type[Model], field: str) -> str:
    """Return the attname of status field `field` of `model`.

    A status field is a ``modelqueue.StatusField`` (Django's BigIntegerField).
    """
    problem = status_field_problem(model, field)
    if problem is not None:
        raise ValueError(f'invalid field {field!r}: {problem}')
    return concrete_field(model, field).attname


def concrete_field(model: type[Model], name: str) -> Field[Any, Any]:
    """`model`'s field `name`, which has a column (it is not a reverse relation)."""
    return cast('Field[Any, Any]', model._meta.get_field(name))


def column_of(model: type[Model], name: str) -> str:
    """The database column of `model`'s field `name` (a concrete field).

    >>> from django.contrib.auth.models import User
    >>> column_of(User, 'last_login')
    'last_login'
    """
    return cast(str, concrete_field(model, name).column)
