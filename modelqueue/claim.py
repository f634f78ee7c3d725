"""A queue's claim as one SQL statement, compiled once and reused.

On PostgreSQL and SQLite (3.35 or newer) ``run()`` claims a row with one
autocommitted statement::

    UPDATE <table> SET <status> = <working since now, attempts kept>
    WHERE <pk> = (SELECT <pk> ... <due now> ORDER BY <status>[, <the queryset's order_by>] LIMIT 1
                  [FOR UPDATE SKIP LOCKED])
    RETURNING <every column>, (SELECT <pk> ... <stalled> LIMIT 1)

The last column says whether any row is stalled, so the timeout reclaim
costs no statement while none is.

On PostgreSQL a worker that runs one task after another writes a task's
outcome and claims its next row in one statement (`with_completion`): the
fenced completion as a data-modifying ``WITH``, the claim beside it. One
round trip and one commit then serve two writes, and a commit is what a
task spends most of its time on besides its action.

Compiling this through the ORM costs more than running it, so it is compiled
once per queue (model, database, status column and the queryset's filters)
and kept in a small cache. Only three parameters depend on the time of the
claim, and `claim_bounds` gives them: the working status written (before its
attempts digit), the upper bound of *due* and the upper bound of *stalled*,
exactly as :mod:`modelqueue.ranges` computes them. When the statement is
compiled, the position of each among the parameters is found by value; a
statement is cached only if each bound stands at exactly one position and no
other parameter equals it, otherwise it is compiled again for every claim.
The cache holds at most `KEPT` statements and is emptied whole when it is
full (an application has a handful of queues; this only guards against a
queryset that changes its filter values on every call).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import connections
from django.db.models.expressions import RawSQL
from django.db.models.query import ModelIterable
from django.db.models.sql.subqueries import UpdateQuery

from . import ranges
from .expressions import with_state_and_priority
from .pauses import claims_read_pauses, not_paused
from .status import State, Status

if TYPE_CHECKING:
    from django.db.models import Model, QuerySet

_M = TypeVar('_M', bound='Model')

KEPT = 64
_statements: dict[tuple[Any, ...], ClaimStatement] = {}


def claims_in_one_statement(queryset: QuerySet[Any]) -> bool:
    """Whether `queryset` can be claimed by one UPDATE ... RETURNING.

    PostgreSQL and SQLite >= 3.35 return the updated row; the model is built
    from it as the queryset would, so the queryset must load plain rows of
    one table (no select_related, annotations, deferred fields, values(),
    prefetching or multi-table inheritance).
    """
    connection = connections[queryset.db]
    query = queryset.query
    return (
        connection.vendor in ('postgresql', 'sqlite')
        and connection.features.can_return_columns_from_insert
        and queryset._iterable_class is ModelIterable
        and not queryset._prefetch_related_lookups  # type: ignore[attr-defined]  # private, not in the stubs
        and not (query.select_related or query.annotations or query.extra)
        and not (query.distinct or query.combinator or query.group_by)
        and query.deferred_loading == (frozenset(), True)
        and not queryset.model._meta.parents
    )


def claims_with_completion(queryset: QuerySet[Any]) -> bool:
    """Whether a completion and the next claim of `queryset` can be one
    statement: PostgreSQL, whose ``WITH`` may hold an ``UPDATE``, and a
    queryset claimed in one statement (:func:`claims_in_one_statement`)."""
    return connections[queryset.db].vendor == 'postgresql' and claims_in_one_statement(queryset)


def claim_bounds(at: dt.datetime, timeout: dt.timedelta) -> tuple[Status, Status, Status]:
    """The parameters of a claim statement that depend on the time `at`."""
    return (
        Status.working(at, 0),  # the claimed status, before its attempts digit
        ranges.last_due(at),
        ranges.last_stalled(at, timeout),
    )


def due_rows(queryset: QuerySet[_M], attname: str, at: dt.datetime) -> QuerySet[_M]:
    """The due rows of `queryset`, first to run first: the lowest status, and
    among equal statuses the order of the queryset's own ``order_by()``, if
    any. ``Task.objects.order_by('pk')`` runs rows made in one millisecond, or
    given one integer priority, in the order they were inserted; give such a
    queue an index on (status, pk), as the Tasks backend's table has, or the
    database sorts every row of a status to find the first. Without an
    ``order_by()`` the status index alone decides, and ties go in no
    particular order.

    A paused queue has no due rows: the condition that no pause names the
    queue (:func:`modelqueue.pauses.not_paused`) is part of the query, so
    every claim path reads it in the statement that claims."""
    return queryset.filter(ranges.due(attname, at), not_paused(queryset.model, attname, queryset.db)).order_by(
        attname, *queryset.query.order_by
    )


class ClaimStatement:
    """The SQL and parameters of one queue's claim, and how to read its row."""

    def __init__(
        self, queryset: QuerySet[Any], attname: str, timeout: dt.timedelta, at: dt.datetime
    ) -> None:
        using = queryset.db
        connection = connections[using]
        model = queryset.model
        qn = connection.ops.quote_name
        table = qn(model._meta.db_table)

        due_sql, due_params = (
            due_rows(queryset, attname, at)
            .values_list('pk')[:1]
            .query.get_compiler(using)
            .as_sql()
        )
        if connection.features.has_select_for_update_skip_locked:
            of = (table,) if connection.features.has_select_for_update_of else ()
            due_sql += ' ' + connection.ops.for_update_sql(skip_locked=True, of=of)
        stalled_sql, stalled_params = (
            model._base_manager.using(using)
            .filter(ranges.stalled(attname, at, timeout))
            .order_by()
            .values_list('pk')[:1]
            .query.get_compiler(using)
            .as_sql()
        )
        update_sql, update_params = _to_working_sql(model, using, attname, at, pk=RawSQL(due_sql, due_params))
        self.reader = RowReader(model, using)
        self.sql = f'{update_sql} RETURNING {self.reader.columns}, ({stalled_sql})'
        self.params = [*update_params, *stalled_params]
        self.positions = [
            [index for index, param in enumerate(self.params) if param == bound]
            for bound in claim_bounds(at, timeout)
        ]
        self.reusable = all(len(found) == 1 for found in self.positions)

    def params_at(self, at: dt.datetime, timeout: dt.timedelta) -> list[Any]:
        """The parameters for a claim at time `at`."""
        if not self.reusable:
            return self.params
        params = list(self.params)
        for (index,), bound in zip(self.positions, claim_bounds(at, timeout)):
            params[index] = bound
        return params

    def with_completion(
        self,
        completion_sql: str,
        completion_params: Sequence[Any],
        at: dt.datetime,
        timeout: dt.timedelta,
    ) -> tuple[str, list[Any]]:
        """This claim at time `at` after the UPDATE `completion_sql`, in one
        statement; return its SQL and parameters.

        Its one row is the number of rows the completion wrote, then the
        claim's columns, all NULL when no row was due. Both see the database
        as it was before the statement, so the row completed (working until
        then) is never the one claimed.
        """
        sql = (
            f'WITH done AS ({completion_sql} RETURNING 1), claimed AS ({self.sql})'
            ' SELECT (SELECT COUNT(*) FROM done), claimed.*'
            ' FROM (SELECT 1) AS one LEFT JOIN claimed ON TRUE'
        )
        return sql, [*completion_params, *self.params_at(at, timeout)]

    def model_from_row(self, queryset: QuerySet[_M], row: Sequence[Any]) -> _M:
        """The model instance built from the columns the statement returned."""
        return self.reader.model_from_row(queryset, row)


class RowReader:
    """A model's concrete columns, as a statement's ``RETURNING`` lists
    them, and how to build the model instance from them (Django's own
    converters, as a queryset applies them)."""

    def __init__(self, model: type[Model], using: str) -> None:
        connection = connections[using]
        qn = connection.ops.quote_name
        table = qn(model._meta.db_table)
        self.fields = model._meta.concrete_fields
        self.columns = ', '.join(f'{table}.{qn(str(field.column))}' for field in self.fields)
        self.attnames = [field.attname for field in self.fields]
        self.converters = []
        for field in self.fields:
            column = field.get_col(model._meta.db_table)
            self.converters.append(
                (connection.ops.get_db_converters(column) + field.get_db_converters(connection), column)
            )

    def model_from_row(self, queryset: QuerySet[_M], row: Sequence[Any]) -> _M:
        """The model instance built from the first columns of `row`."""
        connection = connections[queryset.db]
        values = []
        for (converters, column), value in zip(self.converters, row):
            for convert in converters:
                value = convert(value, column, connection)
            values.append(value)
        return queryset.model.from_db(queryset.db, self.attnames, values)


def claim_many_sql(
    queryset: QuerySet[Any], attname: str, limit: int, at: dt.datetime
) -> tuple[str, list[Any], RowReader]:
    """PostgreSQL's claim of up to `limit` due rows at time `at` in one
    statement: its SQL, its parameters, and how to read its rows.

    The due rows are read ``FOR UPDATE SKIP LOCKED`` in a ``WITH`` (run
    once), moved to working with their attempts kept, and returned with the
    status each had (the last column), so that the caller can run them in
    order and give back the ones it does not start::

        WITH due(claimed_pk, was) AS (SELECT <pk>, <status> ... <due now> ORDER BY ... LIMIT n
                                      FOR UPDATE OF <table> SKIP LOCKED)
        UPDATE <table> SET <status> = <working since now, attempts kept>
        WHERE <pk> IN (SELECT claimed_pk FROM due)
        RETURNING <every column>, (SELECT was FROM due WHERE claimed_pk = <pk>)
    """
    using = queryset.db
    connection = connections[using]
    model = queryset.model
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    due_sql, due_params = (
        due_rows(queryset, attname, at).values_list('pk', attname)[:limit].query.get_compiler(using).as_sql()
    )
    due_sql += ' ' + connection.ops.for_update_sql(skip_locked=True, of=(table,))
    update_sql, update_params = _to_working_sql(
        model, using, attname, at, pk__in=RawSQL('SELECT claimed_pk FROM due', ())
    )
    reader = RowReader(model, using)
    pk = f'{table}.{qn(model._meta.pk.column)}'
    sql = (
        f'WITH due(claimed_pk, was) AS ({due_sql}) {update_sql}'
        f' RETURNING {reader.columns}, (SELECT was FROM due WHERE claimed_pk = {pk})'
    )
    return sql, [*due_params, *update_params], reader


def _to_working_sql(model: Any, using: str, attname: str, at: dt.datetime, **where: Any) -> tuple[str, Any]:
    """The SQL and parameters of an ``UPDATE`` of the rows `where` selects
    (a filter on the primary key) that moves each to working since `at`,
    its attempts kept: the claim's write, of one row or of a batch."""
    update = UpdateQuery(model)
    update.add_q(model._base_manager.filter(**where).query.where)
    update.add_update_fields(
        [
            (  # type: ignore[list-item]  # the stubs take only a Case; any expression works
                model._meta.get_field(attname),
                None,
                with_state_and_priority(attname, State.working, at),
            )
        ]
    )
    return update.get_compiler(using).as_sql()


def claim_statement(
    queryset: QuerySet[Any], attname: str, timeout: dt.timedelta, at: dt.datetime
) -> ClaimStatement:
    """The compiled claim of `queryset`'s queue `attname`, from the cache if kept."""
    query = queryset.query
    try:
        key = (
            queryset.model,
            queryset.db,
            claims_read_pauses(queryset.db),  # the statement reads pauses, or not
            attname,
            tuple(query.alias_map),
            query.where,
            tuple(query.order_by),
            query.low_mark,
            query.high_mark,
        )
        statement = _statements.get(key)
    except TypeError:  # a filter value that cannot be hashed
        return ClaimStatement(queryset, attname, timeout, at)
    if statement is None:
        statement = ClaimStatement(queryset, attname, timeout, at)
        if statement.reusable:
            if len(_statements) >= KEPT:
                _statements.clear()
            _statements[key] = statement
    return statement
