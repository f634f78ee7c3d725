"""Real workers honour a pause: a paused queue claims nothing, a resumed one drains."""

import time

import pytest
from django.db import connection

import modelqueue
from modelqueue import State, Status
from tests.support.connections import listening
from tests.support.gates import ACTION, Gate
from tests.support.processes import finish, idle, start_worker
from tests.support.tasks import executed, waiting_tasks
from tests.support.waits import wait_until
from tests.testapp.models import Execution, Task

BOUND = 10  # seconds: a functional bound on a wait
ROWS = 20
#: How long a paused queue is watched for a claim: many polls of --sleep=0.1.
WATCH = 1.5


def statuses():
    return dict(Task.objects.values_list('pk', 'status'))


@pytest.mark.processes
@pytest.mark.parametrize('options', [[], ['--threads=2']], ids=['one thread', 'two threads'])
def test_a_worker_busy_on_a_queue_claims_nothing_after_a_pause_and_drains_it_after_resume(
    spawn, tmp_path, options
):
    gate = Gate(tmp_path / 'gate')
    waiting_tasks(ROWS)
    held = 2 if options else 1
    child = start_worker(spawn, '--sleep=0.1', *options, action=ACTION, env=gate.env)
    # The worker is claiming: its action has begun on a row (each thread's),
    # with more rows due behind it.
    wait_until(executed(held), 30, 'the worker to start its rows', child=child)
    in_hand = set(Execution.objects.values_list('task_id', flat=True))
    assert modelqueue.pause(Task, 'status', by='test')
    before = statuses()
    gate.open()
    # Rows in hand finish.
    wait_until(
        lambda: all(Status(Task.objects.get(pk=pk).status).state == State.finished for pk in in_hand),
        BOUND, 'the rows in hand to finish', child=child,
    )
    wait_until(lambda: idle(child.pid, threads=held), BOUND, 'the worker to wait', child=child)
    # Watched while the worker polls every 0.1 s: nothing more is claimed.
    time.sleep(WATCH)
    after = statuses()
    changed = {pk for pk in after if after[pk] != before[pk]}
    assert changed == in_hand
    assert Execution.objects.count() == held
    assert modelqueue.resume(Task, 'status')
    wait_until(executed(ROWS), 30, 'the resumed queue to drain', child=child)
    child.terminate()
    status, log = finish(child)
    assert status == 0, log
    assert {Status(value).state for value in statuses().values()} == {State.finished}


@pytest.mark.processes
def test_a_worker_started_on_a_paused_queue_claims_nothing_until_resumed(spawn):
    """The pause is a row: a process started after it (a restart) obeys it.
    On PostgreSQL resume() wakes the listening worker (it would poll only
    after 30 s); elsewhere the worker polls."""
    waiting_tasks(ROWS)
    modelqueue.pause(Task, 'status')
    before = statuses()
    postgresql = connection.vendor == 'postgresql'
    child = start_worker(spawn, '--sleep=30' if postgresql else '--sleep=0.1')
    if postgresql:
        wait_until(lambda: listening(connection), 20, 'the worker to LISTEN', child=child)
    wait_until(lambda: idle(child.pid), 20, 'the worker to wait', child=child)
    if not postgresql:
        time.sleep(WATCH)  # many polls, none claiming
    assert statuses() == before and not Execution.objects.exists()
    modelqueue.resume(Task, 'status')
    wait_until(executed(ROWS), BOUND, 'the resumed queue to drain', child=child)
    child.terminate()
    status, log = finish(child)
    assert status == 0, log
