"""Claiming, completing and giving back many rows of a queue at once.

A worker started with ``--batch N`` (:mod:`modelqueue.worker.batch`) claims
up to N due rows at once, runs them one after another, and writes their
outcomes in one statement: two commits for N tasks instead of N. The
rules are run()'s, row by row:

- :func:`claim_many` takes the first due rows in run()'s order (the lowest
  status, then the queryset's ``order_by()``), ``FOR UPDATE SKIP LOCKED``
  where the database has it, so that two workers never take one row, and
  moves each to working with its attempts kept: in one statement on
  PostgreSQL (:func:`modelqueue.claim.claim_many_sql`), in one transaction
  elsewhere. SQLite has one writer: its transaction sees no other write
  between the read and the UPDATE, and the UPDATE is fenced on each row's
  status besides.
- :func:`write_rows` (and :func:`write_statuses`) write many rows in one
  statement, each fenced on the status it must still hold (a row an operator canceled, or a
  timeout gave to another worker, keeps that decision), and returns the
  rows it wrote.
- :func:`complete_many` writes outcomes, each row's status and the fields
  its action changed, in one statement (:func:`write_rows`). If the
  database refuses it (a value the action set, most likely), nothing of it
  is kept and the caller completes each row alone, as run() does, which
  handles refused values row by row.
- :func:`give_back` returns claimed rows that never started to the status
  they had, attempts unchanged: they were not tried.

>>> from modelqueue.batches import MAX_BATCH
>>> MAX_BATCH
1000
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from django.db import connections, transaction

from .claim import claim_many_sql, claims_in_one_statement, due_rows
from .queue import changed_values, reclaim_stalled, write_retrying
from .retries import Delay
from .status import Status, now

if TYPE_CHECKING:
    from django.db.models import Model, QuerySet

_M = TypeVar('_M', bound='Model')

#: The most rows one batch claims: a statement's parameters stay well under
#: every database's limit (three per row).
MAX_BATCH = 1000


class Claimed(NamedTuple):
    """A row :func:`claim_many` claimed: the model instance (its status
    field holds `claimed`), its working status, and the status it had."""

    task: Any
    claimed: Status
    was: Status


class Outcome(NamedTuple):
    """What to write for one row that ran: `outcome` fenced on `claimed`,
    with the fields the action changed since `before` (run()'s snapshot)."""

    task: Any
    claimed: Status
    before: dict[str, Any]
    outcome: Status


def claim_many(
    queryset: QuerySet[_M],
    attname: str,
    limit: int,
    timeout: dt.timedelta,
    retry: int,
    delay: Delay,
) -> list[Claimed]:
    """Claim up to `limit` due rows of `queryset`'s queue `attname`, first
    to run first; give back one stalled row first, as run() does."""
    using = queryset.db
    reclaim_stalled(queryset, attname, retry, timeout, delay)
    connection = connections[using]
    features = connection.features
    if connection.vendor == 'postgresql' and claims_in_one_statement(queryset):
        return _claim_in_one_statement(queryset, attname, limit)

    def claim() -> list[Claimed]:
        current = now()
        due = due_rows(queryset, attname, current)
        if features.has_select_for_update_skip_locked:
            of = ('self',) if features.has_select_for_update_of else ()
            due = due.select_for_update(skip_locked=True, of=of)
        with transaction.atomic(using=using):
            rows = list(due[:limit])
            if not rows:
                return []
            claims = []
            working: dict[int, Status] = {}  # by attempts: one claim time for the batch
            for task in rows:
                was = Status(getattr(task, attname))
                claimed = working.get(was.attempts)
                if claimed is None:
                    claimed = working[was.attempts] = Status.working(current, was.attempts)
                claims.append(Claimed(task, claimed, was))
            written = write_statuses(
                queryset, attname, [(claim.task.pk, claim.was, claim.claimed) for claim in claims]
            )
        kept = []
        for claim in claims:
            if claim.task.pk in written:
                setattr(claim.task, attname, claim.claimed)
                kept.append(claim)
        return kept

    return write_retrying(using, claim)


def _claim_in_one_statement(queryset: QuerySet[_M], attname: str, limit: int) -> list[Claimed]:
    """:func:`claim_many` on PostgreSQL: one autocommitted statement
    (:func:`modelqueue.claim.claim_many_sql`), its rows put back in the
    claim's order by the status each had, then by primary key."""
    sql, params, reader = claim_many_sql(queryset, attname, limit, now())
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    claims = []
    for row in rows:
        task = reader.model_from_row(queryset, row)
        claims.append(Claimed(task, Status(getattr(task, attname)), Status(row[-1])))
    claims.sort(key=lambda claim: (claim.was, claim.task.pk))
    return claims


def write_statuses(
    queryset: QuerySet[Any], attname: str, changes: Sequence[tuple[Any, int, int]]
) -> set[Any]:
    """Write each ``(pk, expected, status)`` of `changes`: `status` where
    the row `pk` still holds `expected`, in one statement; return the pks
    written (see :func:`write_rows`)."""
    return write_rows(queryset, attname, [(pk, expected, {attname: status}) for pk, expected, status in changes])


def write_rows(
    queryset: QuerySet[Any], attname: str, changes: Sequence[tuple[Any, int, dict[str, Any]]]
) -> set[Any]:
    """Write each ``(pk, expected, values)`` of `changes`: `values` (by
    attname) where the row `pk` still holds the status `expected`, in one
    statement; return the pks written.

    Each column is a ``CASE`` on the primary key that keeps the column's
    value for the rows that leave it alone. PostgreSQL and SQLite say which
    rows were written with ``RETURNING``; on MariaDB the statuses are read
    back in the same transaction (a row written holds its new status, and
    the UPDATE's lock keeps it so until the commit).
    """
    if not changes:
        return set()
    using = queryset.db
    connection = connections[using]
    model = queryset.model
    qn = connection.ops.quote_name
    fields = {field.attname: field for field in model._meta.concrete_fields}
    status_field = fields[attname]
    meta = status_field.model._meta  # the table that holds the column
    table, status, pk_column = qn(meta.db_table), qn(status_field.column), qn(meta.pk.column)
    prep = meta.pk.get_db_prep_value
    pks = [prep(pk, connection) for pk, _, _ in changes]
    names = list(dict.fromkeys(name for _, _, values in changes for name in values))
    assignments, params = [], []
    for name in names:
        column = qn(fields[name].column)
        cases = []
        for pk, (_, _, values) in zip(pks, changes):
            if name in values:
                cases.append('WHEN %s THEN %s')
                params += [pk, fields[name].get_db_prep_save(values[name], connection)]
        assignments.append(f'{column} = CASE {pk_column} {" ".join(cases)} ELSE {column} END')
    fences = ' OR '.join([f'({pk_column} = %s AND {status} = %s)'] * len(changes))
    for pk, (_, expected, _) in zip(pks, changes):
        params += [pk, int(expected)]
    sql = f'UPDATE {table} SET {", ".join(assignments)} WHERE {fences}'
    by_db_value = {db_pk: pk for db_pk, (pk, _, _) in zip(pks, changes)}
    returning = connection.features.can_return_columns_from_insert and connection.vendor != 'mysql'
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if returning:
            cursor.execute(f'{sql} RETURNING {pk_column}', params)
            return {by_db_value.get(row[0], row[0]) for row in cursor.fetchall()}
        cursor.execute(sql, params)
        if cursor.rowcount == len(changes):
            return {pk for pk, _, _ in changes}
        wanted = {db_pk: int(values[attname]) for db_pk, (_, _, values) in zip(pks, changes)}
        marks = ', '.join(['%s'] * len(pks))
        cursor.execute(f'SELECT {pk_column}, {status} FROM {table} WHERE {pk_column} IN ({marks})', pks)
        return {by_db_value.get(pk, pk) for pk, value in cursor.fetchall() if wanted.get(pk) == value}


def complete_many(queryset: QuerySet[Any], attname: str, outcomes: Sequence[Outcome]) -> set[Any]:
    """Write each of `outcomes` (its status, and the fields its action
    changed), fenced on its claimed status, in one statement; return the
    pks written. An outcome not written leaves its row as it is (it changed
    while the action ran).

    :raises Exception: when the database (or its driver) refused a value;
        nothing was written
    """
    changes = []
    for done in outcomes:
        values = changed_values(done.task, done.before, attname)
        values[attname] = done.outcome
        changes.append((done.task.pk, done.claimed, values))
    return write_retrying(queryset.db, lambda: write_rows(queryset, attname, changes))


def give_back(queryset: QuerySet[Any], attname: str, claims: Sequence[Claimed]) -> set[Any]:
    """Return `claims` that never started to the status each had before
    its claim (fenced on the claimed status); return the pks given back."""
    return write_retrying(
        queryset.db,
        lambda: write_statuses(queryset, attname, [(claim.task.pk, claim.claimed, claim.was) for claim in claims]),
    )
