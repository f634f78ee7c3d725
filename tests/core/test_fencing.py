"""The completion fence, in one process: a worker's last write needs the exact
status that worker wrote, not any working status.

Two workers are two threads, each with its own database connection, so the
test is fast and decides the interleaving itself: worker 1 claims a row and
stalls past the timeout; worker 2 reclaims the row, claims it again, and
while worker 2 holds it, worker 1 finishes. mutation/critical.py checks that
these tests catch a fence on the working state only, and no fence at all.
"""

import datetime as dt
import logging
import threading
import time

import pytest
from django.db import connection

from modelqueue import State, Status, now, queue, run
from tests.testapp.models import Delivery, Recipient, Task

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = dt.timedelta(milliseconds=20)
WAIT = 10  # seconds: a bound on every wait, so a broken fence fails, not hangs


def status_of(task):
    return Status(Task.objects.values_list('status', flat=True).get(pk=task.pk))


class StalledWorker(threading.Thread):
    """Worker 1: claims a row with run(), then waits inside its action until told to finish."""

    def __init__(self):
        super().__init__(daemon=True)
        self.claimed = threading.Event()
        self.finish = threading.Event()
        self.error = None

    def action(self, task):
        self.claimed.set()
        assert self.finish.wait(WAIT), 'worker 1 was never told to finish'
        task.note = 'worker 1'

    def run(self):
        try:
            run(Task.objects.all(), 'status', self.action, timeout=TIMEOUT)
        except BaseException as error:  # noqa: BLE001 (reported by the test)
            self.error = error
        finally:
            connection.close()


def test_a_stalled_workers_completion_never_overwrites_the_worker_that_reclaimed_it(caplog):
    task = Task.objects.create(data='task', status=Status.waiting())
    worker_1 = StalledWorker()
    worker_1.start()
    assert worker_1.claimed.wait(WAIT), 'worker 1 never claimed the row'
    first_claim = status_of(task)
    time.sleep(3 * TIMEOUT.total_seconds())  # worker 1 is now past its timeout
    seen_by_worker_2 = []

    def worker_2_action(model):
        second_claim = status_of(model)
        assert second_claim.state == State.working
        assert second_claim != first_claim  # reclaimed and claimed again
        worker_1.finish.set()
        worker_1.join(WAIT)
        # Worker 1 has finished; the row must still be worker 2's.
        seen_by_worker_2.append((status_of(model), Task.objects.get(pk=model.pk).note))
        assert second_claim == seen_by_worker_2[0][0]
        model.note = 'worker 2'

    with caplog.at_level(logging.WARNING, logger='modelqueue'):
        assert run(Task.objects.all(), 'status', worker_2_action, timeout=TIMEOUT) is not None
    assert not worker_1.is_alive() and worker_1.error is None
    assert seen_by_worker_2[0][1] == ''
    saved = Task.objects.get(pk=task.pk)
    assert saved.note == 'worker 2'
    # Reclaimed (one attempt), claimed again, finished by worker 2 (two).
    assert Status(saved.status).parse()[0::2] == (State.finished, 2)
    assert 'changed while its action ran' in caplog.text


def test_a_completion_is_fenced_on_the_claimed_status_not_on_the_working_state():
    # No threads: the action itself rewrites its row to another working
    # status, as a second worker's claim would, and the completion must not land.
    task = Task.objects.create(data='task', status=Status.waiting())
    other_claim = Status.working(dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc), 1)

    def action(model):
        Task.objects.filter(pk=model.pk).update(status=other_claim)
        model.note = 'from the first claim'

    run(Task.objects.all(), 'status', action)
    assert status_of(task) == other_claim
    assert Task.objects.get(pk=task.pk).note == ''


def test_a_status_only_completion_is_fenced_on_the_claimed_status_too():
    # An action that changes no field takes the plain-SQL path of the fence.
    task = Task.objects.create(data='task', status=Status.waiting())
    other_claim = Status.working(dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc), 1)

    def action(model):
        Task.objects.filter(pk=model.pk).update(status=other_claim)

    run(Task.objects.all(), 'status', action)
    assert status_of(task) == other_claim


def test_a_reclaim_never_overwrites_a_row_that_finished_after_it_was_read(monkeypatch):
    # The stalled worker finishes between the reclaim's read of its row and
    # the reclaim's write: the write must not turn the finished row back to
    # waiting (it would run twice). A queryset that defers a field takes the
    # path where the reclaim's write is run()'s first write.
    task = Task.objects.create(data='task', status=Status.working(now() - 10 * TIMEOUT, 0))
    finished = Status.finished(now(), 1)
    write = queue.write_retrying
    writes = []

    def finish_first(using, attempt_write):
        if not writes:
            Task.objects.filter(pk=task.pk).update(status=finished)
        writes.append(attempt_write)
        return write(using, attempt_write)

    def run_again(model):
        raise AssertionError(f'the finished row {model.pk} ran again')

    monkeypatch.setattr(queue, 'write_retrying', finish_first)
    assert run(Task.objects.defer('note'), 'status', run_again, timeout=TIMEOUT) is None
    assert writes, 'the reclaim did not write'
    assert status_of(task) == finished


class RecordingRouter:
    """A database router that notes each question about writes and sends them to the default."""

    asked = []

    def db_for_write(self, model, **hints):
        self.asked.append((model, hints.get('instance')))
        return 'default'


def test_a_fenced_save_writes_as_a_save_would_and_asks_the_router_about_the_row(settings):
    """The operator's paths save through save_fields_fenced: auto_now fields
    are stamped, an auto_now_add field keeps its value, and the database is
    the one the routers choose for this instance."""
    row = Delivery.objects.create(recipient=Recipient.objects.create(address='a@example.com'))
    created, modified = row.created, row.modified
    settings.DATABASE_ROUTERS = [RecordingRouter()]
    RecordingRouter.asked.clear()
    row.note = 'edited'
    assert queue.save_fields_fenced(row, ['note', 'created', 'modified'], {'status': row.status})
    assert RecordingRouter.asked == [(Delivery, row)]
    saved = Delivery.objects.get(pk=row.pk)
    assert (saved.note, saved.created) == ('edited', created)
    assert saved.modified > modified
    row.note = 'fenced out'
    assert not queue.save_fields_fenced(row, ['note'], {'status': row.status + 1})
    assert Delivery.objects.get(pk=row.pk).note == 'edited'
