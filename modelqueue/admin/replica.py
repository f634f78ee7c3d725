"""Where the queue admin reads: a replica the router names, and how far behind.

With a database router whose ``db_for_read`` answers a replica for a queue's
model, the dashboard, the overview, the changelist and the counts read the
replica, taking their load off the primary; every write goes to the
router's ``db_for_write``: the bulk actions and the change form's buttons
(:mod:`modelqueue.admin.operations` counts, locks and writes the rows there,
in one transaction), the change form (the row is read where it will be
saved), imports, the compaction of state counters.

Once per request, :func:`reads_for` asks the replica how far behind it is
(``pg_last_xact_replay_timestamp()``; none while it has replayed all it
received) and the pages say so. A replica that cannot be reached (stopped,
refused, its connection lost) is left alone for that request: the pages
read the primary instead, with a note saying why, so that a replica's
outage costs no page. Give the replica's ``OPTIONS`` a ``connect_timeout``
so that an address that does not answer costs seconds, not minutes.

>>> Reads('default', 'default').note() is None
True
>>> print(Reads('replica', 'default', replica='replica', lag=5.2).note())
Read from the replica "replica", 5.2 s behind the primary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, connections, router
from django.utils.translation import gettext

if TYPE_CHECKING:
    from django.db.models import Model
    from django.http import HttpRequest

__all__ = ['Reads', 'reads_for', 'replica_lag']

#: A lag under this many seconds is shown as none.
NEGLIGIBLE_LAG = 0.5


@dataclass
class Reads:
    """Where one request's pages read a model: `alias`. `primary` is where
    its writes go; `replica` the router's read alias when it differs;
    `lag` its delay in seconds (None when unknown, or not a standby);
    `unreachable` why the replica was not read (then `alias` is the primary)."""

    alias: str
    primary: str
    replica: str | None = None
    lag: float | None = None
    unreachable: str | None = None

    @property
    def fell_back(self) -> bool:
        return self.unreachable is not None

    def note(self) -> str | None:
        """What the pages say about where they read, or None: the primary, no router."""
        if self.replica is None:
            return None
        if self.unreachable is not None:
            return gettext(
                'The replica "%(replica)s" cannot be reached (%(error)s): read from the'
                ' primary "%(primary)s" instead.'
            ) % {'replica': self.replica, 'error': self.unreachable, 'primary': self.primary}
        if self.lag is None:
            return gettext('Read from "%(replica)s".') % {'replica': self.replica}
        if self.lag < NEGLIGIBLE_LAG:
            return gettext('Read from the replica "%(replica)s", which is up to date.') % {'replica': self.replica}
        return gettext('Read from the replica "%(replica)s", %(lag)s s behind the primary.') % {
            'replica': self.replica,
            'lag': f'{self.lag:.1f}',
        }

    def as_json(self) -> dict[str, Any]:
        return {
            'alias': self.alias,
            'replica': self.replica,
            'lag_seconds': self.lag,
            'fell_back': self.fell_back,
            'note': self.note(),
        }


def replica_lag(alias: str) -> float | None:
    """Seconds the database `alias` is behind its primary: 0 when it has
    replayed all it received, else the age of the last transaction it
    replayed; None when it is not a PostgreSQL standby. A database error
    (the replica is down) propagates."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor != 'postgresql':
            cursor.execute('SELECT 1')
            return None
        cursor.execute(
            'SELECT pg_is_in_recovery(), CASE'
            ' WHEN pg_last_wal_receive_lsn() IS NOT NULL'
            ' AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0'
            ' ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) END'
        )
        recovery, lag = cursor.fetchone()
    if not recovery or lag is None:
        return None
    return max(0.0, float(lag))


def reads_for(request: HttpRequest | None, model: type[Model]) -> Reads:
    """Where `request`'s pages read `model`, asked once per request and pair
    of databases (None: asked now, not kept)."""
    read = router.db_for_read(model)
    primary = router.db_for_write(model)
    if read == primary:
        return Reads(read, primary)
    cache: dict[tuple[str, str], Reads] = {}
    if request is not None:
        cache = request.__dict__.setdefault('modelqueue_reads', {})
    key = (read, primary)
    if key not in cache:
        cache[key] = _ask(read, primary)
    return cache[key]


def _ask(read: str, primary: str) -> Reads:
    try:
        lag = replica_lag(read)
    except DatabaseError as error:
        try:
            connections[read].close()
        except DatabaseError:
            pass
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return Reads(primary, primary, replica=read, unreachable=reason)
    return Reads(read, primary, replica=read, lag=lag)
