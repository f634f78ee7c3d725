"""Worker heartbeats: one row per live worker, written from a thread of its own.

A :class:`Heartbeat` inserts a :class:`modelqueue.models.WorkerHeartbeat`
row when its worker starts, updates it every ``MODELQUEUE_HEARTBEAT_SECONDS``
seconds (5 by default; never per task) with the row in hand, since when, and
the tasks done and failed, and deletes it when the worker stops gracefully.
A worker killed at once leaves its row behind: after three missed
heartbeats the admin shows it as *lost*, and the rows it held name it.

The same thread runs the worker's `chores` after each beat
(:class:`modelqueue.worker.housekeeping.Housekeeping`: pruning and
compacting), so no task and no request pays for them. Database errors in
the thread are logged and never reach the worker; without the table (the
migrations not applied) the worker runs without a heartbeat and says so once.
A database that refuses the first row as a write it does not take (a
replica) stops the worker instead: nothing else it does would work either.

The row also says how the worker is woken (``wakeup``: the waiter's state,
:data:`modelqueue.worker.waiters.WAKEUP_STATES`), and the thread writes
through a session of its own, named ``modelqueue worker host:pid
heartbeat`` on PostgreSQL (:mod:`modelqueue.worker.sessions`).

Operator controls ride on the beat too:

- the row lists every row the worker holds with the working status of its
  claim (``held``), so the rows of a lost worker can be rescued
  (:mod:`modelqueue.rescue`); after a beat that succeeded, the thread
  calls its `rescue` (:class:`modelqueue.worker.rescuer.Rescuer`), so only
  a worker whose own heartbeat is fresh rescues another's rows;
- each beat reads the row's ``command`` (set in the admin's Workers panel)
  and hands a new one to `on_command`; once it is ``quiet`` or ``stop`` the
  row reports ``quiet``;
- a beat that finds its row gone (rescued as lost while the worker was
  frozen) inserts a new one, and says so: the rows the worker held were
  given back, and its late completions are fenced off.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.db import DatabaseError, connections
from django.db.models import QuerySet

from .. import conf
from ..databases import read_only_cause
from ..names import host_name
from ..status import now
from .sessions import named_sessions

logger = logging.getLogger('modelqueue.worker')

__all__ = ['Heartbeat']


class Heartbeat:
    """The heartbeat of one worker on the queue `field` of `queryset`.

    ``start()`` inserts the row and starts the thread; ``took(task)`` and
    ``done(failed)`` tell it what the worker holds (no query: the thread
    writes it at its next beat); ``stop()`` ends the thread and deletes the
    row. With ``--threads`` each thread tells it of its own row, and the row
    shows the one held longest, the first to stall.
    """

    def __init__(
        self,
        queryset: QuerySet[Any],
        field: str,
        interval: float | None = None,
        chores: Callable[[], object] | None = None,
        wakeup: Callable[[], str] | None = None,
        on_command: Callable[[str], object] | None = None,
        rescue: Callable[[Heartbeat], object] | None = None,
    ) -> None:
        self.model = queryset.model
        self.using = queryset.db
        self.field = field
        self.interval: float = conf.get('MODELQUEUE_HEARTBEAT_SECONDS') if interval is None else interval
        self.chores = chores
        self.wakeup = wakeup or (lambda: '')  # how the worker is woken, as its waiter says now
        self.on_command = on_command
        self.rescue = rescue
        self.pk: int | None = None
        self.tasks_done = 0
        self.failures = 0
        #: The operator's last command seen ('' for none), and whether the
        #: worker reports quiet (once told to quiet or to stop).
        self.command = ''
        self.quiet = False
        self.last_beat: float | None = None  # time.monotonic() of the last beat written
        self._held: dict[int, tuple[str, Any, int]] = {}  # thread id -> (row pk, since, status): one per thread
        self._reserved: dict[str, tuple[str, Any, int]] = {}  # row pk -> the same: claimed in a batch, not started
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        """Insert the row and start beating; return self (unchanged if the
        table is missing: the worker then runs without a heartbeat).

        :raises modelqueue.databases.DatabaseNotWritable: when the database
            refuses the row as a write it does not take
        """
        try:
            self._insert()
        except DatabaseError as error:
            refused = read_only_cause(error, self.using)
            if refused is not None:
                raise refused from error
            logger.warning(
                'Worker %s runs without a heartbeat%s: %s: %s',
                os.getpid(),
                ' (are the modelqueue migrations applied?)' if self._table_missing() else '',
                type(error).__name__,
                str(error).strip(),
            )
            return self
        self._thread = threading.Thread(
            target=self._beat_until_stopped, name='modelqueue-heartbeat', daemon=True
        )
        self._thread.start()
        return self

    def _insert(self) -> None:
        """Insert the heartbeat row; remember its pk."""
        from django.contrib.contenttypes.models import ContentType  # noqa: PLC0415 (needs the app registry)

        from ..models import WorkerHeartbeat  # noqa: PLC0415 (needs the app registry)

        current = now()
        content_type = ContentType.objects.db_manager(self.using).get_for_model(self.model)
        row = WorkerHeartbeat.objects.using(self.using).create(
            host=host_name(),
            pid=os.getpid(),
            content_type=content_type,
            field=self.field,
            started=current,
            last_seen=current,
            interval=self.interval,
            wakeup=self.wakeup(),
            held=self.held(),
            quiet=self.quiet,
        )
        self.pk = row.pk
        self.last_beat = time.monotonic()

    def _table_missing(self) -> bool:
        from ..models import WorkerHeartbeat  # noqa: PLC0415 (needs the app registry)

        try:
            return WorkerHeartbeat._meta.db_table not in connections[self.using].introspection.table_names()
        except DatabaseError:
            return False

    def took(self, task: Any) -> None:
        """This thread holds `task`, claimed with the working status it has now."""
        with self._lock:
            pk = str(task.pk)
            self._reserved.pop(pk, None)
            self._held[threading.get_ident()] = (pk, now(), int(getattr(task, self.field)))

    def reserve(self, tasks: Iterable[Any]) -> None:
        """The worker holds `tasks`, claimed in a batch with the working
        status each has now, not started yet (:mod:`modelqueue.worker.batch`)."""
        at = now()
        with self._lock:
            for task in tasks:
                self._reserved[str(task.pk)] = (str(task.pk), at, int(getattr(task, self.field)))

    def release(self, pks: Iterable[Any]) -> None:
        """The worker no longer holds the rows `pks` it reserved: given back."""
        with self._lock:
            for pk in pks:
                self._reserved.pop(str(pk), None)

    def done(self, failed: bool) -> None:
        with self._lock:
            self._held.pop(threading.get_ident(), None)
            self.tasks_done += 1
            self.failures += bool(failed)

    def in_hand(self) -> tuple[str, Any]:
        """The row held longest by any of the worker's threads, and since
        when: ``('', None)`` when none holds a row."""
        with self._lock:
            pk, since, _ = min(self._held.values(), key=lambda held: held[1], default=('', None, 0))
            return pk, since

    def held(self) -> list[list[str]]:
        """Every row the worker's threads hold, as ``[pk, working status]``
        (text, as the heartbeat row stores them)."""
        with self._lock:
            return [[pk, str(status)] for pk, _, status in [*self._held.values(), *self._reserved.values()]]

    def fresh(self) -> bool:
        """Whether the last beat was written less than one interval ago."""
        return self.last_beat is not None and time.monotonic() - self.last_beat < self.interval

    def stop(self) -> None:
        """Stop the thread, then delete the row (a graceful exit), on the
        caller's connection, as the row was inserted: on SQLite a write from
        another connection would wait for the caller's open transaction."""
        if self._thread is None:
            return
        self._stopped.set()
        self._thread.join()
        self._thread = None
        self._guarded(self._delete)

    def _beat_until_stopped(self) -> None:
        try:
            with named_sessions('heartbeat', [self.using]):
                while not self._stopped.wait(self.interval):
                    self._guarded(self.beat)
                    if self.rescue is not None and self.fresh():
                        self._guarded(self.rescue_lost)
                    if self.chores is not None:
                        self._guarded(self.chores)
        finally:
            connections.close_all()  # this thread's own connections

    def _guarded(self, write: Callable[[], object]) -> None:
        """Call `write`; an error is logged and never ends the thread (the
        worker would look lost, and its rows would be given away)."""
        try:
            write()
        except DatabaseError as error:
            logger.warning(
                'Worker %s: heartbeat: database error %s: %s',
                os.getpid(),
                type(error).__name__,
                str(error).strip(),
            )
            connections[self.using].close()
        except Exception:  # a chore's bug must not stop the heartbeat
            logger.exception('Worker %s: heartbeat: %s failed', os.getpid(), getattr(write, '__name__', write))

    def rescue_lost(self) -> None:
        """Rescue the rows of the queue's lost workers (`rescue`)."""
        if self.rescue is not None:
            self.rescue(self)

    def beat(self) -> None:
        """Write the row once: last seen, the rows in hand, the counts; then
        read the operator's command. A row found gone is inserted again."""
        from ..models import WorkerHeartbeat  # noqa: PLC0415 (needs the app registry)

        object_id, held_since = self.in_hand()
        row = WorkerHeartbeat.objects.using(self.using).filter(pk=self.pk)  # type: ignore[misc]  # set: started
        written = row.update(
            last_seen=now(),
            object_id=object_id,
            held_since=held_since,
            held=self.held(),
            tasks_done=self.tasks_done,
            failures=self.failures,
            wakeup=self.wakeup(),
            quiet=self.quiet,
        )
        if not written:
            logger.warning(
                'Worker %s: its heartbeat row was gone (it was taken for lost, and the rows'
                ' it held were given back); writing a new one',
                os.getpid(),
            )
            self._insert()
            return
        self.last_beat = time.monotonic()
        command = row.values_list('command', flat=True).first() or ''
        if command != self.command:
            self.command = command
            if self.on_command is not None:
                self.on_command(command)
            if command in (WorkerHeartbeat.QUIET, WorkerHeartbeat.STOP) and not self.quiet:
                self.quiet = True
                row.update(quiet=True)

    def _delete(self) -> None:
        from ..models import WorkerHeartbeat  # noqa: PLC0415 (needs the app registry)

        WorkerHeartbeat.objects.using(self.using).filter(pk=self.pk).delete()  # type: ignore[misc]  # set: started
