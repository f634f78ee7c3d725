"""Several worker processes on one queue, on the selected database.

Real processes (tests/support/queue_worker.py) drain a queue of due rows: every task
runs exactly once, no worker crashes, and no worker's run() comes back empty
while a due row is left unclaimed.
"""

import time

import pytest
from django.db import connection

from modelqueue import State, Status, now
from tests.support.processes import finish, json_report
from tests.support.tasks import executions_per_task, waiting_tasks
from tests.support.waits import wait_until
from tests.testapp.models import Execution, Task

WORKERS = 4
TASKS = 120
TIMEOUT = 120

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]


def drain(spawn, action, workers=WORKERS, env=None):
    started = time.monotonic()
    children = [spawn('-m', 'tests.support.queue_worker', action, env=env) for _ in range(workers)]
    reports = []
    for child in children:
        report, log = json_report(child, timeout=TIMEOUT)
        assert 'database is locked' not in log, log
        reports.append(report)
    return reports, time.monotonic() - started


def test_every_task_runs_exactly_once(spawn, capsys):
    waiting_tasks(TASKS)
    reports, seconds = drain(
        spawn,
        'tests.testapp.actions.record_slowly',
        env={'MODELQUEUE_TEST_ACTION_SECONDS': '0.01'},
    )

    runs = executions_per_task()
    assert len(runs) == TASKS
    assert set(runs.values()) == {1}
    assert Status.tally(Task.objects.all(), 'status')['finished'] == TASKS
    assert sum(report['processed'] for report in reports) == TASKS
    assert [report['unclaimed'] for report in reports] == [0] * WORKERS
    assert len(set(Execution.objects.values_list('pid', flat=True))) > 1
    with capsys.disabled():
        print(
            f'\n[{connection.vendor}] {TASKS} tasks, {WORKERS} worker processes:'
            f' {TASKS / seconds:.0f} tasks/s including process start-up'
        )


def start_on_one_task(spawn, action_seconds):
    """Start a worker on a new task; return both once its action is running."""
    task = Task.objects.create(data='original', status=Status.waiting(now(), 0))
    worker = spawn(
        '-m',
        'tests.support.queue_worker',
        'tests.testapp.actions.record_and_note',
        env={'MODELQUEUE_TEST_ACTION_SECONDS': str(action_seconds)},
    )
    wait_until(
        lambda: Execution.objects.filter(task=task).exists(),
        30,
        'the worker to start the task',
        child=worker,
    )
    return task, worker


def test_operator_cancel_while_action_runs_is_kept(spawn):
    task, worker = start_on_one_task(spawn, action_seconds=2)
    assert Status(Task.objects.get(pk=task.pk).status).state == State.working
    canceled = Status.canceled(now(), 0)
    Task.objects.filter(pk=task.pk).update(status=canceled, data='edited meanwhile')

    status, log = finish(worker)
    assert status == 0, log
    assert 'changed while its action ran' in log
    saved = Task.objects.get(pk=task.pk)
    assert saved.status == canceled
    assert saved.data == 'edited meanwhile'


def test_edit_while_action_runs_survives_completion(spawn):
    task, worker = start_on_one_task(spawn, action_seconds=1)
    Task.objects.filter(pk=task.pk).update(data='edited meanwhile')

    status, log = finish(worker)
    assert status == 0, log
    saved = Task.objects.get(pk=task.pk)
    assert Status(saved.status).state == State.finished
    assert saved.data == 'edited meanwhile'
    assert saved.note == f'done by {Execution.objects.get(task=task).pid}'
