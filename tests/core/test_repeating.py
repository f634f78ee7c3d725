"""Repeating rows of a model queue (modelqueue.repeating): waiting again at
the next slot after each run, attempts back to 0; failures handled as any."""

import datetime as dt
import signal
import time

import pytest

import modelqueue
from modelqueue import Cancel, State, Status
from modelqueue.models import FailureRecord
from modelqueue.slots import Slots
from modelqueue.status import priority_to_datetime
from tests.support.processes import WORKER_COMMAND, finish
from tests.support.waits import wait_until
from tests.testapp.models import Execution, Task

HOURLY = dt.timedelta(hours=1)


def hourly(action):
    return modelqueue.repeating(action, every=HOURLY)


def note(task):
    task.note = 'ran'


@pytest.mark.django_db
def test_after_a_run_the_row_waits_for_its_next_slot_with_its_values_and_no_failure():
    task = Task.objects.create(data='digest', status=Status.waiting(attempts=2))
    before = modelqueue.now()
    assert modelqueue.run(Task.objects.all(), 'status', hourly(note)) == task
    task.refresh_from_db()
    status = Status(task.status)
    assert status.state == State.waiting
    assert status.attempts == 0  # a success: the attempts start again
    assert priority_to_datetime(status.priority) == Slots(every=HOURLY).next_slot(before)
    assert task.note == 'ran'
    assert not FailureRecord.objects.exists()
    # Not due before its slot.
    assert modelqueue.run(Task.objects.all(), 'status', hourly(note)) is None


@pytest.mark.django_db
def test_a_failure_is_an_attempt_as_any_and_cancel_ends_the_repetition():
    def boom(task):
        raise ValueError('boom')

    def cancel(task):
        raise Cancel

    Task.objects.create(data='digest')
    with pytest.raises(ValueError):
        modelqueue.run(Task.objects.all(), 'status', hourly(boom), delay=dt.timedelta(0))
    task = Task.objects.get()
    assert (Status(task.status).state, Status(task.status).attempts) == (State.waiting, 1)
    assert FailureRecord.objects.count() == 1
    modelqueue.run(Task.objects.all(), 'status', hourly(cancel))
    assert Status(Task.objects.get().status).state == State.canceled


def test_bad_arguments_are_refused_naming_them():
    with pytest.raises(ValueError, match="invalid repeating: expected one of 'cron' and 'every', found neither"):
        modelqueue.repeating(note)
    with pytest.raises(ValueError, match="invalid action 'note': expected a callable"):
        modelqueue.repeating('note', every=HOURLY)
    with pytest.raises(ValueError, match="invalid at .*: expected an aware datetime"):
        modelqueue.Repeat(dt.datetime(2026, 12, 7))


@pytest.mark.processes
def test_a_worker_runs_a_repeating_row_once_per_slot(spawn):
    task = Task.objects.create(data='tick')
    started = time.monotonic()
    worker = spawn(*WORKER_COMMAND, 'tests.testapp.actions.repeat_every_second')
    wait_until(lambda: Execution.objects.count() >= 3, 30, 'three runs', child=worker)
    worker.send_signal(signal.SIGTERM)
    elapsed = time.monotonic() - started
    status, log = finish(worker)
    assert status == 0, log
    runs = Execution.objects.count()
    task.refresh_from_db()
    assert task.note == f'run {runs}'
    # One run per slot (each whole second), and the first at once: at most
    # two more runs than whole seconds went by.
    assert runs <= elapsed + 2, (runs, elapsed)
    assert Status(task.status).state == State.waiting and Status(task.status).attempts == 0
