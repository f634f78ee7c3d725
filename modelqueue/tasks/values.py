"""What the task table holds the same way on every database, checked before
anything is written.

A task's arguments are stored as JSON. JSON has no NaN or Infinity (SQLite's
and MariaDB's ``JSON_VALID`` checks refuse them, PostgreSQL's ``json`` input
too), PostgreSQL's ``jsonb`` cannot hold the NUL character, and a surrogate
code point is not a Unicode character (PostgreSQL refuses one alone; a pair
of them would come back as another string). :func:`check_json` refuses all
of these, on every database, so that SQLite in development lets through
nothing that PostgreSQL in production would refuse, and refuses them with
ValueError before the INSERT, so that the caller's transaction stays usable
(on PostgreSQL a failed statement aborts it).

A task's due time is held in its status, in milliseconds, UTC, years 1
through 9999: :func:`check_run_after` refuses a ``run_after`` outside that.

>>> check_json({'to': ['a@example.com'], 'retries': 2.5}, 'kwargs')
>>> check_json([1, float('nan')], 'args')
Traceback (most recent call last):
  ...
ValueError: invalid args[1] nan: expected a finite number (JSON has no NaN or Infinity)
>>> check_json({'name': 'a\\x00b'}, 'kwargs')
Traceback (most recent call last):
  ...
ValueError: invalid kwargs['name'] 'a\\x00b': expected text without the NUL character
(found at index 1), which PostgreSQL cannot store in JSON
"""

import datetime as dt
import math

__all__ = ['LAST_RUN_AFTER', 'check_json', 'check_run_after']

#: The latest ``run_after`` a task's status can hold (it keeps milliseconds).
LAST_RUN_AFTER = dt.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=dt.timezone.utc)

SHOWN = 80  # characters of a value's repr shown in a message


def check_json(value: object, where: str) -> None:
    """Raise ValueError if `value`, normalized JSON (lists, dicts, str, int,
    float, bool, None), holds what some database cannot store: NaN or
    Infinity, a NUL character, a surrogate code point. `where` names it
    (``args``, ``kwargs``) in the message, with the path to the bad part."""
    if isinstance(value, str):
        _check_text(value, where)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f'invalid {where} {value!r}: expected a finite number (JSON has no NaN or Infinity)')
    elif isinstance(value, dict):
        for key, item in value.items():
            check_json(key, f'key in {where}')
            check_json(item, f'{where}[{_short(key)}]')
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json(item, f'{where}[{index}]')


def _check_text(text: str, where: str) -> None:
    index = text.find('\x00')
    if index >= 0:
        raise ValueError(
            f'invalid {where} {_short(text)}: expected text without the NUL character'
            f' (found at index {index}), which PostgreSQL cannot store in JSON'
        )
    try:
        text.encode('utf-8')
    except UnicodeEncodeError as error:
        raise ValueError(
            f'invalid {where} {_short(text)}: expected text of Unicode characters, found the'
            f' surrogate code point {text[error.start]!r} at index {error.start}, which is not one'
        ) from None


def _short(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= SHOWN else f'{shown[: SHOWN - 4]}...{shown[-1]}'


def check_run_after(run_after: dt.datetime) -> None:
    """Raise ValueError if the aware datetime `run_after` is outside what a
    status holds: UTC years 1 through 9999, up to :data:`LAST_RUN_AFTER`
    (a time is rounded up to its next millisecond)."""
    try:
        utc = run_after.astimezone(dt.timezone.utc)
    except OverflowError:
        utc = None
    if utc is None or utc > LAST_RUN_AFTER:
        raise ValueError(
            f'invalid run_after {run_after!r}: expected a time from 0001-01-01 00:00 through'
            ' 9999-12-31 23:59:59.999 UTC (a task\'s status holds its due time in milliseconds'
            ' of those years)'
        )
