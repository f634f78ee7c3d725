"""Several worker processes on one queue, on the selected database.

Real processes (tests/support/queue_worker.py) drain a queue of due rows: every task
runs exactly once, no worker crashes, and no worker's run() comes back empty
while a due row is left unclaimed.
"""

import json
import time
from collections import Counter

import pytest
from django.db import connection

from modelqueue import State, Status, now
from tests.testapp.models import Execution, Task

WORKERS = 4
TASKS = 120
TIMEOUT = 120

pytestmark = pytest.mark.django_db(transaction=True)


def drain(spawn, action, workers=WORKERS, env=None):
    started = time.monotonic()
    children = [spawn('-m', 'tests.support.queue_worker', action, env=env) for _ in range(workers)]
    reports = []
    for child in children:
        out, err = child.communicate(timeout=TIMEOUT)
        assert child.returncode == 0, err
        assert 'database is locked' not in err, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports, time.monotonic() - started


def test_every_task_runs_exactly_once(spawn, capsys):
    Task.objects.bulk_create(
        Task(data=f'task {number}', status=Status.waiting(now(), 0))
        for number in range(TASKS)
    )
    reports, seconds = drain(
        spawn,
        'tests.testapp.actions.record_slowly',
        env={'MODELQUEUE_TEST_ACTION_SECONDS': '0.01'},
    )

    runs = Counter(Execution.objects.values_list('task_id', flat=True))
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
    deadline = time.monotonic() + 30
    while not Execution.objects.filter(task=task).exists():
        assert time.monotonic() < deadline, 'the worker never started the task'
        time.sleep(0.05)
    return task, worker


def finish(worker):
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    return err


def test_operator_cancel_while_action_runs_is_kept(spawn):
    task, worker = start_on_one_task(spawn, action_seconds=2)
    assert Status(Task.objects.get(pk=task.pk).status).state == State.working
    canceled = Status.canceled(now(), 0)
    Task.objects.filter(pk=task.pk).update(status=canceled, data='edited meanwhile')

    assert 'changed while its action ran' in finish(worker)
    saved = Task.objects.get(pk=task.pk)
    assert saved.status == canceled
    assert saved.data == 'edited meanwhile'


def test_edit_while_action_runs_survives_completion(spawn):
    task, worker = start_on_one_task(spawn, action_seconds=1)
    Task.objects.filter(pk=task.pk).update(data='edited meanwhile')

    finish(worker)
    saved = Task.objects.get(pk=task.pk)
    assert Status(saved.status).state == State.finished
    assert saved.data == 'edited meanwhile'
    assert saved.note == f'done by {Execution.objects.get(task=task).pid}'
