"""``modelqueue_worker --check``: are this host's workers alive?

For a container's liveness probe or a service manager's watchdog: it reads
the heartbeat rows (:class:`modelqueue.models.WorkerHeartbeat`) of this
host (:func:`modelqueue.names.host_name`: the hostname, or
``MODELQUEUE_HOST_NAME``) and is healthy only when at least one worker
process of this host runs and every one that runs beat within three of
its heartbeat intervals: a worker whose heartbeat stopped (a hung process,
a database it cannot reach) fails the check, and so does a host with no
worker at all.

A row whose process is gone (a worker killed earlier, whose row waits a
day to be pruned) is left out, so a restarted container is not failed for
its predecessor; when a pid was reused, only the newest row of that pid
counts. The check runs where the workers run (the same machine, or the
same container), or it cannot see their processes.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..names import host_name
from ..status import now

if TYPE_CHECKING:
    from django.db.models import Model

__all__ = ['MISSED_BEATS', 'Health', 'check_health']

#: Heartbeats a live worker may miss: as the admin's lost workers.
MISSED_BEATS = 3


@dataclass
class Health:
    """The check's verdict, and one line per worker that counts."""

    healthy: bool
    lines: list[str]


def process_running(pid: int) -> bool:
    """Whether a process `pid` runs on this machine (or in this container)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: it runs
        return True
    return True


def check_health(
    using: str,
    model: type[Model] | None = None,
    field: str | None = None,
    host: str | None = None,
    current: dt.datetime | None = None,
) -> Health:
    """The health of `host`'s workers (this host's by default), on every
    queue or on `model`'s `field` queue, from the heartbeat rows in the
    database `using`."""
    from django.contrib.contenttypes.models import ContentType  # noqa: PLC0415 (needs the app registry)

    from ..models import WorkerHeartbeat  # noqa: PLC0415 (needs the app registry)

    host = host_name() if host is None else host
    current = now() if current is None else current
    rows = WorkerHeartbeat.objects.using(using).filter(host=host)
    if model is not None:
        rows = rows.filter(content_type=ContentType.objects.db_manager(using).get_for_model(model))
        if field is not None:
            rows = rows.filter(field=field)
    newest: dict[int, WorkerHeartbeat] = {}
    for row in rows.order_by('started', 'pk').select_related('content_type'):
        newest[row.pid] = row  # a reused pid: the newest row
    lines, healthy = [], True
    for pid, row in sorted(newest.items()):
        if not process_running(pid):
            continue
        silent = (current - row.last_seen).total_seconds()
        limit = MISSED_BEATS * row.interval
        queue = f'{row.content_type.app_label}.{row.content_type.model}.{row.field}'
        ok = silent <= limit
        healthy = healthy and ok
        lines.append(
            f'{row.name} on {queue}: last beat {silent:.1f}s ago'
            f' ({"within" if ok else "beyond"} {limit:g}s): {"alive" if ok else "NOT BEATING"}'
        )
    if not lines:
        return Health(False, [f'no running worker of host {host!r} has a heartbeat in database {using!r}'])
    return Health(healthy, lines)
