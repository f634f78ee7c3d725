"""A worker's batches (``modelqueue_worker --batch N``).

A worker with a batch size above 1 claims up to N due rows at once
(:func:`modelqueue.batches.claim_many`), runs them one after
another (or, with ``--threads``, each thread takes the next row of the
batch in hand), and writes their outcomes together
(:func:`modelqueue.batches.complete_many`): a transaction when the batch in
hand is used up, and whenever the outcomes waiting to be written reach N.
Tiny tasks then cost two commits per batch instead of one per task.

No row waits behind a long task, and none is lost:

- a row claimed but not started goes back to the status it had (fenced on
  its claim, its attempts unchanged) once it has waited `wait` seconds
  (``--batch-wait``, default :data:`WAIT`), and at once when the worker is
  told to stop or to quiet;
- an outcome is written at most :data:`FLUSH_AFTER` seconds after its
  action returned, even while the next action runs: the keeper thread
  writes it;
- the rows a batch holds are listed on the worker's heartbeat, as the rows
  in hand are: when a worker is killed, another rescues them
  (:mod:`modelqueue.worker.rescuer`), or run()'s timeout gives them back.

So a worker killed by SIGKILL leaves its batch to the rescue: the rows it
had not started run once, elsewhere; a row whose action had returned less
than :data:`FLUSH_AFTER` seconds before the kill runs again, as a row whose
action returned just before its commit does without batches.

When the database refuses a batch's outcomes (a value an action set that
it does not store), each row is completed alone, as run() does, so that a
refused value fails only its own row (see :class:`modelqueue.OutcomeNotStored`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db import Error as DatabaseError
from django.db import connections

from ..batches import Claimed, Outcome, claim_many, complete_many, give_back
from ..exceptions import TimeLimitExceeded
from ..queue import (
    CONNECTION_ERRORS,
    claim_one,
    complete,
    completed,
    finish_attempt,
    outcome_of,
    snapshot,
)
from ..status import Status

if TYPE_CHECKING:
    from .protocol import BatchedWorker

logger = logging.getLogger('modelqueue.worker')

__all__ = ['FLUSH_AFTER', 'WAIT', 'Batch']

#: Seconds a claimed row may wait for its turn before it is given back.
WAIT = 5.0
#: Seconds at most between an action's return and the write of its outcome.
FLUSH_AFTER = 0.25
#: How often the keeper thread looks (seconds).
TICK = 0.02


class Ran(NamedTuple):
    """A row whose action returned, its outcome not written yet."""

    done: Outcome
    error: BaseException | None
    call: Any  # the worker's ActionCall
    at: float  # time.monotonic() when the action returned
    then: Callable[[], object] | None  # called once the outcome is written


class Batch:
    """The batch in hand of one worker process (shared by its threads)."""

    def __init__(self, worker: BatchedWorker, size: int, wait: float = WAIT) -> None:
        self.worker = worker
        self.size = size
        self.wait = wait
        self._lock = threading.Lock()  # guards the two lists below
        self._claim_lock = threading.Lock()  # one thread claims at a time
        self._unstarted: deque[Claimed] = deque()
        self._claimed_at = 0.0
        self._ran: list[Ran] = []
        self._idle = True  # the last claim found nothing (or none was made)
        self._stopped = threading.Event()
        self._keeper: threading.Thread | None = None

    # The worker's threads.

    def start(self) -> Batch:
        self._keeper = threading.Thread(target=self._keep, name='modelqueue-batch', daemon=True)
        self._keeper.start()
        return self

    def stop(self) -> None:
        """Write the outcomes in hand, give back the rows not started, and
        end the keeper thread."""
        self._stopped.set()
        if self._keeper is not None:
            self._keeper.join()
        try:
            self.flush()
        finally:
            self.give_back_unstarted('the worker stops')

    def run_one(self, on_claim: Callable[[], None] | None = None) -> bool:
        """Run the next row of the batch in hand, claiming a batch when it
        is used up; return whether there was a row."""
        claim = self._next()
        if claim is None:
            return False
        self._run(claim, on_claim)
        return True

    def _next(self) -> Claimed | None:
        with self._lock:
            if self._unstarted:
                return self._unstarted.popleft()
        with self._claim_lock:
            with self._lock:  # another thread may have claimed meanwhile
                if self._unstarted:
                    return self._unstarted.popleft()
            self.flush()  # the batch's outcomes, before the next claim
            worker = self.worker
            if worker.should_stop() or worker.quieted:
                return None
            left = worker.budget.left()  # beyond the one this row took
            limit = self.size if left is None else max(1, min(self.size, left + 1))
            if self._idle or limit == 1:
                # Woken after finding nothing: the first row at once, by run()'s own
                # claim (one statement where it can), the next ones in batches.
                task, claimed = claim_one(worker.queryset, worker.attname, worker.retry, worker.timeout, worker.delay)
                claims = [] if task is None or claimed is None else [Claimed(task, claimed, claimed)]
            else:
                claims = claim_many(worker.queryset, worker.attname, limit, worker.timeout, worker.retry, worker.delay)
            self._idle = not claims
            if not claims:
                return None
            if worker.heartbeat is not None:
                worker.heartbeat.reserve(claim.task for claim in claims[1:])
            with self._lock:
                self._unstarted.extend(claims[1:])
                self._claimed_at = time.monotonic()
            return claims[0]

    def _run(self, claim: Claimed, on_claim: Callable[[], None] | None) -> None:
        worker = self.worker
        task, claimed = claim.task, claim.claimed
        call = worker.action_call(on_claim)
        before = snapshot(task)
        error: BaseException | None = None
        try:
            call(task)
        except BaseException as raised:  # noqa: BLE001 (the row must not stay working)
            error = raised
        outcome = outcome_of(error, claimed.attempts + 1, worker.retry, worker.delay)
        worker.count_for_limits()
        then = worker.after_action(task)
        ran = Ran(Outcome(task, claimed, before, outcome), error, call, time.monotonic(), then)
        stops = error is not None and not isinstance(error, (Exception, TimeLimitExceeded))
        with self._lock:
            self._ran.append(ran)
            full = len(self._ran) >= self.size
        if stops:  # SystemExit, KeyboardInterrupt: write what ran, give the rest back, stop
            try:
                self.flush()
            finally:
                self.give_back_unstarted(f'the worker stops ({type(error).__name__})')
            raise error  # type: ignore[misc]  # not None: stops says so
        if full:
            self.flush()

    # Writing outcomes, giving rows back.

    def flush(self) -> None:
        """Write the outcomes of the rows that ran, in one statement;
        each row alone if the database refuses it.

        :raises django.db.Error: a connection's error: the outcomes stay in
            hand, to be written on the next flush
        """
        with self._lock:
            ran, self._ran = self._ran, []
        if not ran:
            return
        worker = self.worker
        try:
            written = complete_many(worker.queryset, worker.attname, [each.done for each in ran])
        except Exception as error:  # a value the driver cannot even send is refused too
            if isinstance(error, DatabaseError) and _connection_lost(error, worker.queryset.db):
                with self._lock:
                    self._ran[:0] = ran
                raise
            logger.warning(
                'Worker %s: the outcomes of %s rows could not be written together (%s: %s);'
                ' writing each alone',
                os.getpid(),
                len(ran),
                type(error).__name__,
                str(error).strip(),
            )
            for each in ran:
                self._finish(each, None)
            return
        for each in ran:
            self._finish(each, each.done.task.pk in written)

    def _finish(self, ran: Ran, written: bool | None) -> None:
        """The rest of run()'s completion for one row: its failure record,
        its log line; written alone when `written` is None."""
        worker = self.worker
        done, call = ran.done, ran.call
        task = done.task

        def write(outcome: Status) -> bool:
            if written is None:
                return complete(worker.queryset, task, worker.attname, done.claimed, done.before, outcome)
            completed(worker.queryset, task, worker.attname, outcome, written)
            return written

        try:
            raised = finish_attempt(
                worker.queryset,
                task,
                worker.attname,
                done.claimed,
                done.before,
                ran.error,
                done.outcome,
                worker.retry,
                worker.delay,
                worker.on_not_stored,
                write,
            )
        except Exception as error:  # noqa: BLE001 (a row's write must not stop the others)
            logger.error(
                'Worker %s: the outcome of %s was not written (%s: %s); the timeout or a rescue gives it back',
                os.getpid(),
                worker.describe_task(task),
                type(error).__name__,
                str(error).strip(),
            )
            return
        if raised is not None and raised is not ran.error:
            call.not_stored = raised  # an OutcomeNotStored
        call.log(worker.attname)
        if ran.then is not None:
            try:
                ran.then()
            except Exception:  # a receiver's error must not stop the worker
                logger.exception('Worker %s: after %s', os.getpid(), worker.describe_task(task))

    def give_back_unstarted(self, why: str) -> None:
        """Return every row of the batch not started yet to the status it had."""
        with self._lock:
            claims, self._unstarted = list(self._unstarted), deque()
        if not claims:
            return
        worker = self.worker
        try:
            returned = give_back(worker.queryset, worker.attname, claims)
        except DatabaseError as error:
            logger.warning(
                'Worker %s: could not give back %s unstarted rows (%s: %s); trying again while it'
                ' runs, else the timeout gives them back',
                os.getpid(),
                len(claims),
                type(error).__name__,
                str(error).strip(),
            )
            with self._lock:
                self._unstarted.extendleft(reversed(claims))
            return
        if worker.heartbeat is not None:
            worker.heartbeat.release(claim.task.pk for claim in claims)
        logger.info(
            'Worker %s: gave back %s unstarted row%s of its batch: %s',
            os.getpid(),
            len(returned),
            '' if len(returned) == 1 else 's',
            why,
        )

    def _keep(self) -> None:
        """The keeper thread: give back rows that waited too long (or all,
        when the worker stops or quiets), and write outcomes that waited
        :data:`FLUSH_AFTER` while the next action runs."""
        try:
            while not self._stopped.wait(TICK):
                try:
                    self._look()
                except DatabaseError as error:
                    logger.warning('Worker %s: batch keeper: %s: %s', os.getpid(), type(error).__name__, error)
                    connections[self.worker.queryset.db].close()
        finally:
            connections.close_all()  # this thread's own

    def _look(self) -> None:
        worker = self.worker
        current = time.monotonic()
        with self._lock:
            unstarted = bool(self._unstarted)
            overdue = unstarted and current - self._claimed_at >= self.wait
            stale = bool(self._ran) and current - self._ran[0].at >= FLUSH_AFTER
        if unstarted and (worker.stopping or worker.quieted):
            self.give_back_unstarted('the worker was told to stop' if worker.stopping else 'the worker was quieted')
        elif overdue:
            self.give_back_unstarted(f'they waited {self.wait:g}s behind a long task')
        if stale:
            self.flush()


def _connection_lost(error: BaseException, using: str) -> bool:
    """Whether `error` is the connection's (the outcomes may be written on a new one)."""
    return isinstance(error, CONNECTION_ERRORS) or connections[using].connection is None
