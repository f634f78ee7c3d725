"""Status arithmetic in SQL, for bulk updates that never load a row.

Each function returns a Django expression over a status column that rewrites
one part of the status (state, priority or attempts) and keeps the others, so
``queryset.update(status=with_state('status', State.canceled))`` is a single
UPDATE however many rows it touches.

Integer remainder is written with the SQL ``%`` operator, which is exact for
64-bit integers on SQLite, PostgreSQL and MariaDB/MySQL (Django's ``Mod``
goes through floating point on SQLite and would round 19-digit values).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, SupportsInt

from django.db.models import BigIntegerField, F, Func, Value

from .status import STATE_OFFSET, State, Status, check_attempts, check_priority

if TYPE_CHECKING:
    from django.db.models.expressions import CombinedExpression


class Remainder(Func):
    """``a % b`` on integers, exact on every supported database."""

    template = '(%(expressions)s)'
    arg_joiner = ' %% '
    output_field = BigIntegerField()


def integer(value: SupportsInt) -> Value:
    """`value` as a 64-bit integer parameter of an expression.

    >>> integer(2 * 10**18)
    Value(2000000000000000000)
    """
    return Value(int(value), output_field=BigIntegerField())


def with_state(field: str, state: State | str | int) -> CombinedExpression:
    """Expression: the status in `field` moved to `state`, priority and attempts kept."""
    return Remainder(F(field), integer(STATE_OFFSET)) + integer(Status.minimum(State.get(state)))


def with_priority(field: str, priority: int | dt.datetime) -> CombinedExpression:
    """Expression: the status in `field` with `priority` (int or datetime), state and attempts kept."""
    priority = check_priority(priority)
    return (
        F(field)
        - Remainder(F(field), integer(STATE_OFFSET))
        + integer(priority * 10)
        + Remainder(F(field), integer(10))
    )


def with_attempts(field: str, attempts: int) -> CombinedExpression:
    """Expression: the status in `field` with `attempts`, state and priority kept."""
    return F(field) - Remainder(F(field), integer(10)) + integer(check_attempts(attempts))


def with_state_and_priority(
    field: str, state: State | str | int, priority: int | dt.datetime
) -> CombinedExpression:
    """Expression: the status in `field` as `state` at `priority`, attempts kept."""
    base = Status.combine(state, priority, 0)
    return integer(base) + Remainder(F(field), integer(10))


def to_minute(field: str) -> CombinedExpression:
    """Expression: the status in `field` with seconds, milliseconds and attempts zeroed.

    Rows written in the same minute share it, so it groups rows by minute
    with exact integer arithmetic.
    """
    return F(field) - Remainder(F(field), integer(10**6))
