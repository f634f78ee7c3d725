"""Poisonous rows under real worker processes: an action whose exception no
database stores as it is, or cannot be turned into text, or that set a
value the database refuses. The worker stays up, the healthy rows behind
the poisonous ones run, and each poisonous row fails as the retry rules
say, once per attempt. And a queue whose table does not exist."""

import signal
import subprocess

import pytest

from modelqueue import Abort, Cancel, Retry, State, Status
from modelqueue.models import FailureRecord
from modelqueue.text import is_cleaned
from modelqueue.worker import Worker
from tests.support.processes import ACTIONS, finish, idle, start_worker
from tests.support.tasks import executions_per_task, waiting_tasks
from tests.support.waits import wait_until
from tests.testapp.actions import POISON_ERRORS, POISON_NOTES
from tests.testapp.models import Task

WAIT_SECONDS = 60  # for every row to settle, on a loaded machine
#: Exceptions of every poison kind, and a value no database stores.
KINDS = [*sorted(POISON_ERRORS), 'note-surrogate']


def settled():
    """True once no row is waiting or working."""
    return all(
        Status(value).state in (State.finished, State.canceled)
        for value in Task.objects.values_list('status', flat=True)
    )


@pytest.mark.processes
@pytest.mark.parametrize(
    'options', [[], ['--threads=2'], ['--concurrency=2']], ids=['one', 'threads', 'processes']
)
def test_poisonous_rows_fail_by_the_retry_rules_and_the_healthy_rows_behind_them_run(spawn, options):
    poison = {kind: Task.objects.create(data=f'poison:{kind}', status=Status.waiting()) for kind in KINDS}
    healthy = waiting_tasks(6)  # claimed after the poisonous rows: their statuses are later
    child = start_worker(spawn, '--retry=1', *options, action='record_or_poison')
    wait_until(settled, WAIT_SECONDS, 'every row to end finished or canceled', child=child)
    assert child.poll() is None, 'the worker stopped'
    child.send_signal(signal.SIGTERM)
    status, log = finish(child)
    assert status == 0, log
    assert 'exited with status' not in log and 'stopped by' not in log, log
    # Two attempts each (--retry=1), then canceled; the healthy rows once.
    assert executions_per_task() == {
        **{task.pk: 2 for task in poison.values()},
        **{task.pk: 1 for task in healthy},
    }
    for kind, task in poison.items():
        assert Status(Task.objects.get(pk=task.pk).status).parse()[0::2] == (State.canceled, 2), kind
        records = FailureRecord.objects.filter(object_id=str(task.pk)).order_by('attempt')
        assert [(r.attempt, r.outcome) for r in records] == [(1, 'waiting'), (2, 'canceled')], kind
        for record in records:
            assert is_cleaned(record.message) or record.message.isprintable(), (kind, record.message)
    for task in healthy:
        assert Status(Task.objects.get(pk=task.pk).status).state == State.finished


UNMIGRATED = ('-m', 'django', 'modelqueue_worker', 'testapp.Unmigrated', 'status', ACTIONS + 'record')
ENV = {'DJANGO_SETTINGS_MODULE': 'tests.settings'}


@pytest.mark.processes
@pytest.mark.parametrize('options', [[], ['--concurrency=2'], ['--threads=2']], ids=['one', 'processes', 'threads'])
def test_a_burst_worker_on_a_table_that_does_not_exist_says_so_and_exits_non_zero(spawn, options):
    status, log = finish(spawn(*UNMIGRATED, '--burst', *options, env=ENV), timeout=30)
    assert status != 0, log
    assert "table 'testapp_never_created' of testapp.Unmigrated does not exist" in log, log
    assert 'manage.py migrate' in log, log


@pytest.mark.processes
def test_a_worker_on_a_table_that_does_not_exist_says_so_and_keeps_trying(spawn):
    child = spawn(*UNMIGRATED, '--sleep=0.2', env=ENV)
    # Backing off in its wait (its SIGTERM handler installed), however slow its start.
    wait_until(lambda: idle(child.pid), 60, 'the worker to back off', child=child)
    with pytest.raises(subprocess.TimeoutExpired):  # it keeps trying
        child.wait(timeout=3)
    assert child.poll() is None, 'the worker stopped'
    child.send_signal(signal.SIGTERM)
    status, log = finish(child)
    assert status == 0, log
    assert "table 'testapp_never_created' of testapp.Unmigrated does not exist" in log, log
    assert 'manage.py migrate' in log and 'trying again' in log, log


@pytest.mark.django_db
@pytest.mark.parametrize('raised', [Abort, Cancel, Retry])
def test_refused_values_with_abort_cancel_or_retry_are_the_rows_failure_not_the_workers(raised):
    """run() raises OutcomeNotStored though the action raised Abort, Cancel
    or Retry (which it would not re-raise): the worker logs it as the
    task's failure and goes on."""
    task = Task.objects.create(data='refused', status=Status.waiting())

    def action(row):
        row.note = POISON_NOTES['note-surrogate']
        raise raised()

    worker = Worker(Task.objects.all(), 'status', action, retry=0, burst=True, listen=False)
    assert worker.run() == 1
    row = Task.objects.get(pk=task.pk)
    assert Status(row.status).parse()[0::2] == (State.canceled, 1) and row.note == ''
    assert FailureRecord.objects.get().exception == 'modelqueue.exceptions.OutcomeNotStored'
