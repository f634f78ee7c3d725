"""Whether the tables a queue needs exist: told apart from other database errors.

A worker whose queue's table does not exist, or run() without the failure
records' table, meets the same errors as one whose connection was lost or
one of whose values was refused. Only a missing table is a reason to stop
(a ``--burst`` worker), or to stop trying for a while (failure records):
:func:`missing_tables` asks the database, once an error has happened.
"""

from __future__ import annotations

from typing import Any

from django.db import connections

__all__ = ['missing_tables', 'queue_tables']


def queue_tables(model: Any) -> list[str]:
    """The tables of `model`'s rows: its own and, with multi-table
    inheritance, its parents'."""
    opts = model._meta.concrete_model._meta
    return [opts.db_table, *(parent._meta.db_table for parent in opts.get_parent_list())]


def missing_tables(using: str, tables: list[str]) -> list[str] | None:
    """Those of `tables` that the database `using` does not hold, or None
    when it cannot be told (the database does not answer)."""
    connection = connections[using]
    try:
        with connection.cursor() as cursor:
            present = set(connection.introspection.table_names(cursor))
    except Exception:  # noqa: BLE001 (no answer is not an answer that a table is missing)
        return None
    # Some databases fold the case of unquoted names; a name is found either way.
    folded = {name.lower() for name in present}
    return [table for table in tables if table not in present and table.lower() not in folded]
