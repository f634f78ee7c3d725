"""Argument checks shared by run(), the worker, the admin and import-export.

Each check returns the value it accepts, or raises ValueError with a message
that names the argument, the value given and what was expected. Nothing here
touches the database; `check_status_field` reads only the model's metadata.
"""

import datetime as dt
import math

from django.core.exceptions import FieldDoesNotExist

#: Longest timedelta accepted: longer spans leave the datetime range when
#: added to now().
MAX_TIMEDELTA = dt.timedelta(days=1000 * 365)

#: A hundred years: within MAX_TIMEDELTA and what select() can wait.
MAX_SECONDS = 100 * 365 * 24 * 3600

#: The largest count a worker shares between its processes (a signed 64-bit
#: integer in shared memory).
MAX_COUNT = 2**63 - 1


def invalid(name, value, expected):
    """The ValueError of every check: the argument, the value, what was expected.

    >>> invalid('retry', 9, 'an integer from 0 through 8')
    ValueError('invalid retry 9: expected an integer from 0 through 8')
    """
    return ValueError(f'invalid {name} {value!r}: expected {expected}')


def check_integer(name, value, maximum):
    """Return `value` if it is an integer from 0 through `maximum`.

    >>> check_integer('retry', 9, 8)
    Traceback (most recent call last):
      ...
    ValueError: invalid retry 9: expected an integer from 0 through 8
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise invalid(name, value, f'an integer from 0 through {maximum}')
    return value


def check_timedelta(name, value, allow_none=False, above_zero=False):
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


def check_seconds(name, value, above_zero=False):
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


def check_count(name, value, maximum=MAX_COUNT, allow_none=False):
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


def check_callable(name, value):
    """Return `value` if it can be called.

    >>> check_callable('action', 'send')
    Traceback (most recent call last):
      ...
    ValueError: invalid action 'send': expected a callable
    """
    if not callable(value):
        raise invalid(name, value, 'a callable')
    return value


def status_field_problem(model, field):
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


def check_status_field(model, field):
    """Return the attname of status field `field` of `model`.

    A status field is a ``modelqueue.StatusField`` (Django's BigIntegerField).
    """
    problem = status_field_problem(model, field)
    if problem is not None:
        raise ValueError(f'invalid field {field!r}: {problem}')
    return model._meta.get_field(field).attname
