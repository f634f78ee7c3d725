"""How an idle worker waits for work.

``waiter_for(queryset, field)`` returns a :class:`Waiter` whose
``wait(seconds)`` returns when work may be due, or after `seconds`,
whichever comes first; ``close()`` releases what it holds. A waiter never
sleeps past the moment the next scheduled row (a waiting row with a future
priority) comes due.

On PostgreSQL the waiter also LISTENs, on a connection of its own, to the
queue's channel, which the wake-up trigger notifies
(:mod:`modelqueue.wakeup`), so an idle worker starts a row's action
milliseconds after the commit. Polling stays the fallback, and it is the
mechanism on SQLite and MariaDB.
"""

from __future__ import annotations

import logging
import select
import time
from typing import Any, Protocol

from django.db import connections
from django.db.models import QuerySet

from .. import ranges
from ..status import Status, now, priority_to_datetime
from ..wakeup import channel_name

logger = logging.getLogger('modelqueue.worker')

__all__ = ['ListeningWaiter', 'PollingWaiter', 'Waiter', 'waiter_for']


class Waiter(Protocol):
    """What a worker waits with."""

    #: How many notifications ended the last wait.
    notifications: int

    def describe(self, seconds: float) -> str:
        """How it waits, for the worker's first log line."""

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds`; return True if woken early."""

    def close(self) -> None:
        """Release the connection it holds, if any."""


class PollingWaiter:
    """Wait by sleeping, until the next scheduled row at the latest.

    `wakeup_fd`, when given, ends a wait early as soon as it is readable
    (a worker passes the file descriptor it gave ``signal.set_wakeup_fd``).
    `notifications` counts what ended the last wait (always 0 here).
    """

    notifications = 0

    def __init__(self, queryset: QuerySet[Any], field: str, wakeup_fd: int | None = None) -> None:
        self.queryset = queryset
        self.attname = queryset.model._meta.get_field(field).attname
        self.wakeup_fd = wakeup_fd

    def describe(self, seconds: float) -> str:
        return f'polling every {seconds:g}s'

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds`; return True if woken early, else False."""
        return bool(self._block([], self.until_scheduled(seconds)))

    def close(self) -> None:
        pass

    def until_scheduled(self, seconds: float) -> float:
        """Return `seconds`, or less if a scheduled row comes due sooner."""
        attname = self.attname
        upcoming = (
            self.queryset.filter(ranges.scheduled(attname, now()))
            .order_by(attname)
            .values_list(attname, flat=True)[:1]
        )
        for status in upcoming:
            due = priority_to_datetime(Status(status).priority)
            if due is not None:
                # Priorities count milliseconds: wake just after this one.
                until = (due - now()).total_seconds() + 0.001
                seconds = max(0.0, min(seconds, until))
        return seconds

    def _block(self, files: list[Any], seconds: float) -> list[Any]:
        """Wait until one of `files` (or the wakeup fd) is readable; return them."""
        if self.wakeup_fd is not None:
            files = [*files, self.wakeup_fd]
        if not files:
            time.sleep(seconds)
            return []
        readable, _, _ = select.select(files, [], [], seconds)
        return readable


class ListeningWaiter(PollingWaiter):
    """Wait for a NOTIFY on the queue's channel (PostgreSQL), polling too.

    The LISTEN connection is its own, in autocommit mode, so Django's
    connection and its transactions are untouched. When it breaks, the
    waiter polls until it connects again, and returns at once after a new
    LISTEN, since notifications may have been missed meanwhile.

    After each wait, `notifications` is how many notifications ended it, so
    that a process of several threads can wake one idle thread for each.
    """

    def __init__(self, queryset: QuerySet[Any], field: str, wakeup_fd: int | None = None) -> None:
        super().__init__(queryset, field, wakeup_fd)
        self.channel = channel_name(queryset.model, field)
        self._listener: Any = None
        self._broken = False

    def describe(self, seconds: float) -> str:
        return f'listening on {self.channel}, polling every {seconds:g}s'

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds`; return True if woken early, else False."""
        self.notifications = 0
        if self._listener is None:
            if self._listen():
                return True
            return super().wait(seconds)
        if self._drain():
            return True  # a notification came while the worker was busy
        socket = self._listener.fileno()
        readable = self._block([socket], self.until_scheduled(seconds))
        if socket in readable:
            self._drain()
        return bool(readable)

    def close(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            except Exception:  # noqa: BLE001 (a broken connection closes anyway)
                pass
            self._listener = None

    def _listen(self) -> bool:
        """Connect and LISTEN; return whether it worked."""
        connection = connections[self.queryset.db]
        try:
            params = connection.get_connection_params()
            params.setdefault('connect_timeout', 10)
            listener = connection.Database.connect(**params)  # type: ignore[attr-defined]  # the driver module
            listener.autocommit = True
            with listener.cursor() as cursor:
                cursor.execute(f'LISTEN {connection.ops.quote_name(self.channel)}')
        except Exception as error:  # noqa: BLE001 (the driver's own errors)
            if not self._broken:
                logger.warning(
                    'Cannot LISTEN on %s (%s); polling until it works',
                    self.channel,
                    str(error).strip(),
                )
            self._broken = True
            return False
        if self._broken:
            logger.info('Listening on %s again', self.channel)
        self._broken = False
        self._listener = listener
        return True

    def _drain(self) -> int:
        """Consume pending notifications; return how many there were.

        A broken connection returns True, as if notified: it is closed, and
        the next wait connects again. Both drivers raise on reading from a
        lost connection (the server's goodbye is read first, the end of the
        stream next), so an error is how a loss shows.
        """
        listener = self._listener
        found = 0
        try:
            if hasattr(listener, 'pgconn'):  # psycopg 3
                listener.pgconn.consume_input()
                while listener.pgconn.notifies() is not None:
                    found += 1
            else:  # psycopg2
                listener.poll()
                found = len(listener.notifies)
                listener.notifies.clear()
        except Exception as error:  # noqa: BLE001 (the driver's own errors)
            logger.warning('Lost the LISTEN connection on %s (%s)', self.channel, str(error).strip())
            self.close()
            self._broken = True
            return True
        self.notifications += found
        return found


def waiter_for(
    queryset: QuerySet[Any], field: str, listen: bool = True, wakeup_fd: int | None = None
) -> Waiter:
    """Return the waiter an idle worker of `queryset`'s `field` queue uses.

    A :class:`ListeningWaiter` on PostgreSQL when `listen` is true, else a
    :class:`PollingWaiter`.
    """
    if listen and connections[queryset.db].vendor == 'postgresql':
        return ListeningWaiter(queryset, field, wakeup_fd)
    return PollingWaiter(queryset, field, wakeup_fd)
