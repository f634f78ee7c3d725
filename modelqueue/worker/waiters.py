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

The LISTEN connection needs a session of its own on the server. Through a
transaction pooler (PgBouncer, Supavisor, RDS Proxy in transaction mode)
the LISTEN lands on a server session that other clients are handed next,
and no notification comes back: the waiter would poll without saying so.
So it proves its wake-up: after each LISTEN (the first, and after every
reconnect) it sends a NOTIFY through the queue's database and waits, at
most :data:`PROBE_SECONDS`, for it to arrive. If it does not, it says so
(a warning, and its :attr:`ListeningWaiter.wakeup` of :data:`UNREACHABLE`,
which the worker's heartbeat shows in the admin), closes the LISTEN and
polls, trying again every :data:`RETRY_SECONDS`. The LISTEN can go to
another ``DATABASES`` alias than the queue's, one that reaches PostgreSQL
directly or through a session pool: the worker's ``--listen-database``,
or the ``MODELQUEUE_LISTEN_DATABASE`` setting.
"""

from __future__ import annotations

import logging
import os
import select
import time
import uuid
from typing import Any, Protocol

from django.db import DatabaseError, connections
from django.db.models import QuerySet

from .. import ranges
from ..names import application_name
from ..status import Status, now, priority_to_datetime
from ..wakeup import channel_name

logger = logging.getLogger('modelqueue.worker')

__all__ = [
    'BROKEN',
    'CONNECTING',
    'LISTENING',
    'POLLING',
    'PROBE_SECONDS',
    'RETRY_SECONDS',
    'UNREACHABLE',
    'WAKEUP_STATES',
    'ListeningWaiter',
    'PollingWaiter',
    'Waiter',
    'waiter_for',
]

#: How a waiter is woken (its ``wakeup``, which the heartbeat row stores):
#: it polls by design (not PostgreSQL, or ``--no-listen``); it has not
#: listened yet; a NOTIFY reached its LISTEN; a NOTIFY did not (a transaction
#: pooler), so it polls; it cannot LISTEN (the connection fails), so it polls.
POLLING, CONNECTING, LISTENING, UNREACHABLE, BROKEN = 'polling', 'connecting', 'listening', 'unreachable', 'broken'
WAKEUP_STATES = (POLLING, CONNECTING, LISTENING, UNREACHABLE, BROKEN)
#: Seconds a new LISTEN waits for its own probe NOTIFY.
PROBE_SECONDS = 3.0
#: Seconds between two tries of a LISTEN that notifications did not reach.
RETRY_SECONDS = 60.0
#: The payload of a probe starts so; every waiter ignores such notifications.
PROBE_PREFIX = 'modelqueue-probe:'


class Waiter(Protocol):
    """What a worker waits with."""

    #: How many notifications ended the last wait.
    notifications: int
    #: How it is woken: one of WAKEUP_STATES.
    wakeup: str

    def start(self) -> None:
        """Get ready to wait (connect and LISTEN), before the first wait."""

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
    wakeup = POLLING

    def __init__(self, queryset: QuerySet[Any], field: str, wakeup_fd: int | None = None) -> None:
        self.queryset = queryset
        self.attname = queryset.model._meta.get_field(field).attname
        self.wakeup_fd = wakeup_fd

    def start(self) -> None:
        pass

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
    connection and its transactions are untouched; it connects with the
    parameters of the ``DATABASES`` alias `listen_using` (the queue's own
    by default), named ``modelqueue worker host:pid listen``. When it
    breaks, the waiter polls until it connects again, and returns at once
    after a new LISTEN, since notifications may have been missed meanwhile.
    Each new LISTEN is proven by a probe (see the module's text).

    After each wait, `notifications` is how many notifications ended it, so
    that a process of several threads can wake one idle thread for each.
    """

    def __init__(
        self,
        queryset: QuerySet[Any],
        field: str,
        wakeup_fd: int | None = None,
        listen_using: str | None = None,
    ) -> None:
        super().__init__(queryset, field, wakeup_fd)
        self.channel = channel_name(queryset.model, field)
        self.listen_using = listen_using or queryset.db
        self.wakeup = CONNECTING
        self._listener: Any = None
        self._broken = False
        self._retry_at = 0.0  # time.monotonic() of the next LISTEN when UNREACHABLE
        self._awaited: str | None = None  # the payload of the probe in flight
        self._arrived = False  # whether it came

    def describe(self, seconds: float) -> str:
        via = '' if self.listen_using == self.queryset.db else f' through database {self.listen_using!r}'
        if self.wakeup == UNREACHABLE:
            return (
                f'polling every {seconds:g}s: notifications do not reach this worker'
                f' (LISTEN on {self.channel}{via}); set --listen-database'
            )
        if self.wakeup == BROKEN:
            return f'polling every {seconds:g}s until it can LISTEN on {self.channel}{via}'
        return f'listening on {self.channel}{via}, polling every {seconds:g}s'

    def start(self) -> None:
        """LISTEN and prove it now, so that the worker's first log line and
        heartbeat say how it is woken; a database error leaves it to the
        first wait."""
        if self._listener is None:
            try:
                self._listen()
            except DatabaseError as error:
                logger.warning('Cannot prove the LISTEN on %s yet (%s)', self.channel, str(error).strip())

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds`; return True if woken early, else False."""
        self.notifications = 0
        if self._listener is None:
            if time.monotonic() >= self._retry_at and self._listen():
                return True
            return super().wait(seconds)
        if self._drain():
            return True  # a notification came while the worker was busy
        # The query first: the time it takes must not come off the wait, or
        # it ends before the next scheduled row is due, and the claim then
        # made finds nothing while the next wait finds nothing scheduled.
        until = self.until_scheduled(seconds)
        deadline = time.monotonic() + until
        while True:
            socket = self._listener.fileno()
            readable = self._block([socket], max(0.0, deadline - time.monotonic()))
            if socket in readable and (self._drain() or self._listener is None):
                return True
            if not readable:
                return False
            if socket not in readable:
                return True  # the wakeup fd: a signal or a nudge
            # Only probes (another worker proving its LISTEN): wait on.

    def close(self) -> None:
        if self._listener is not None:
            try:
                self._listener.close()
            except Exception:  # noqa: BLE001 (a broken connection closes anyway)
                pass
            self._listener = None

    def _listen(self) -> bool:
        """Connect, LISTEN and prove it; return whether notifications reach
        this worker now (a database error of the probe propagates)."""
        connection = connections[self.listen_using]
        try:
            params = connection.get_connection_params()
            params.setdefault('connect_timeout', 10)
            params['application_name'] = application_name('listen')
            if getattr(connection.Database, '__name__', '') == 'psycopg':  # type: ignore[attr-defined]  # the driver module
                params['prepare_threshold'] = None  # nothing prepared: a pooler may stand between
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
            self.wakeup = BROKEN
            return False
        self._listener = listener
        try:
            reached = self._probe()
        except BaseException:
            self.close()
            raise
        if reached is None:  # a signal came first: the worker is stopping
            return True
        if not reached:
            self._unreachable()
            return False
        if self._broken:
            logger.info('Listening on %s again', self.channel)
        self._broken = False
        self.wakeup = LISTENING
        return True

    def _probe(self) -> bool | None:
        """Send a NOTIFY through the queue's database and wait for it on the
        LISTEN: True when it came, False when it did not within
        PROBE_SECONDS, None when a signal came first."""
        token = f'{PROBE_PREFIX}{os.getpid()}:{uuid.uuid4().hex}'
        with connections[self.queryset.db].cursor() as cursor:
            cursor.execute('SELECT pg_notify(%s, %s)', [self.channel, token])
        deadline = time.monotonic() + PROBE_SECONDS
        self._awaited, self._arrived = token, False
        try:
            while not self._arrived:
                socket = self._listener.fileno()
                readable = self._block([socket], max(0.0, deadline - time.monotonic()))
                if not readable:
                    return False
                if socket not in readable:
                    return None
                self._drain()
                if self._listener is None:  # lost meanwhile: the next wait connects again
                    return False
            return True
        finally:
            self._awaited = None

    def _unreachable(self) -> None:
        """The probe did not come back: stop listening, poll, say so (once)."""
        try:
            with self._listener.cursor() as cursor:
                cursor.execute('UNLISTEN *')  # through a pooler, maybe another session's: best effort
        except Exception:  # noqa: BLE001 (the driver's own errors)
            pass
        self.close()
        self._retry_at = time.monotonic() + RETRY_SECONDS
        if self.wakeup != UNREACHABLE:
            logger.warning(
                'Worker %s: polling: notifications do not reach this worker. A NOTIFY sent'
                ' through database %r did not reach its LISTEN on %s through database %r'
                ' within %gs (a transaction pooler, such as PgBouncer in transaction mode,'
                ' hands the LISTEN\'s session to other clients). Set --listen-database (or'
                ' MODELQUEUE_LISTEN_DATABASE) to an alias that reaches PostgreSQL directly,'
                ' or through a session pool. Trying again in %gs.',
                os.getpid(),
                self.queryset.db,
                self.channel,
                self.listen_using,
                PROBE_SECONDS,
                RETRY_SECONDS,
            )
        self.wakeup = UNREACHABLE

    def _payloads(self) -> list[str]:
        """Consume the pending notifications; return their payloads."""
        listener = self._listener
        if hasattr(listener, 'pgconn'):  # psycopg 3
            listener.pgconn.consume_input()
            payloads = []
            while (notify := listener.pgconn.notifies()) is not None:
                payloads.append(notify.extra.decode(errors='replace'))
            return payloads
        listener.poll()  # psycopg2
        payloads = [notify.payload for notify in listener.notifies]
        listener.notifies.clear()
        return payloads

    def _drain(self) -> int:
        """Consume pending notifications; return how many there were (probes
        not counted: they announce no row).

        A broken connection returns True, as if notified: it is closed, and
        the next wait connects again. Both drivers raise on reading from a
        lost connection (the server's goodbye is read first, the end of the
        stream next), so an error is how a loss shows.
        """
        try:
            payloads = self._payloads()
        except Exception as error:  # noqa: BLE001 (the driver's own errors)
            logger.warning('Lost the LISTEN connection on %s (%s)', self.channel, str(error).strip())
            self.close()
            self._broken = True
            self.wakeup = BROKEN
            return True
        found = 0
        for payload in payloads:
            if payload.startswith(PROBE_PREFIX):
                self._arrived = self._arrived or payload == self._awaited
            else:
                found += 1
        self.notifications += found
        return found


def waiter_for(
    queryset: QuerySet[Any],
    field: str,
    listen: bool = True,
    wakeup_fd: int | None = None,
    listen_using: str | None = None,
) -> Waiter:
    """Return the waiter an idle worker of `queryset`'s `field` queue uses.

    A :class:`ListeningWaiter` on PostgreSQL when `listen` is true (its
    LISTEN through the alias `listen_using`, by default the queue's), else
    a :class:`PollingWaiter`.
    """
    if listen and connections[queryset.db].vendor == 'postgresql':
        return ListeningWaiter(queryset, field, wakeup_fd, listen_using)
    return PollingWaiter(queryset, field, wakeup_fd)
