"""How long task rows are kept: ``MODELQUEUE_TASK_RETENTION``, the pruning by
each ``--tasks`` worker's heartbeat housekeeping, and ``manage.py
modelqueue_prune``. Only finished rows (SUCCESSFUL, FAILED) are pruned;
READY and RUNNING rows never are, whatever their age.
"""

import datetime as dt
from io import StringIO

import pytest
from django.core import checks
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models.query import QuerySet
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from modelqueue import State, Status, conf
from modelqueue.status import now
from modelqueue.tasks.compat import TaskResultStatus
from modelqueue.tasks.models import QueuedTask as TaskRow
from modelqueue.tasks.models import ready_status
from modelqueue.tasks.retention import TaskPruner
from modelqueue.tasks.worker import TaskWorker, task_worker
from modelqueue.worker import housekeeping
from modelqueue.worker.loop import Worker
from tests.testapp import tasks
from tests.testapp.models import Task

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)


def row(label, status, **fields):
    return TaskRow.objects.create(
        status=status, task_path='tests.testapp.tasks.remember', queue_name='default',
        backend_name='default', args=[label], **fields,
    )


def successful(label, age):
    at = now() - age
    return row(label, Status.finished(at, 1), started_at=at, finished_at=at, return_value=label)


def failed(label, age):
    at = now() - age
    return row(label, Status.canceled(at, 1), started_at=at, finished_at=at,
               errors=[{'exception_class_path': 'builtins.ValueError', 'traceback': 'x'}])


def unfinished_rows(age):
    """A row of each unfinished kind, every date on it `age` old."""
    at = now() - age
    return [
        row('ready', ready_status(0), enqueued_at=at),
        row('deferred', Status.waiting(at, 0), enqueued_at=at, run_after=at),
        row('retried', Status.waiting(at, 2), enqueued_at=at, started_at=at, finished_at=at),
        row('created', Status.created(at, 0), enqueued_at=at),
        # Running (claimed long ago, its worker lost): for the timeout reclaim
        # to decide, never for pruning, even with finished_at set.
        row('running', Status.working(at, 1), enqueued_at=at, started_at=at, finished_at=at),
    ]


def labels():
    """The labels of the rows made here (not those of tasks enqueued)."""
    rows = TaskRow.objects.filter(task_path='tests.testapp.tasks.remember')
    return sorted(rows.values_list('args__0', flat=True))


# The setting


def test_the_default_keeps_successful_rows_7_days_and_failed_ones_30():
    assert conf.get('MODELQUEUE_TASK_RETENTION') == {'SUCCESSFUL': 7 * DAY, 'FAILED': 30 * DAY}


def test_a_state_left_out_of_the_setting_keeps_its_default():
    with override_settings(MODELQUEUE_TASK_RETENTION={'FAILED': None}):
        assert conf.get('MODELQUEUE_TASK_RETENTION') == {'SUCCESSFUL': 7 * DAY, 'FAILED': None}


@pytest.mark.parametrize(
    'value',
    [
        {'READY': DAY},
        {'RUNNING': None},
        {'successful': DAY},
        {'SUCCESSFUL': 7},
        {'FAILED': dt.timedelta(0)},
        {'FAILED': -DAY},
        [('FAILED', DAY)],
        None,
    ],
    ids=repr,
)
def test_a_bad_retention_is_refused_naming_it_and_reported_by_the_system_check(value):
    with override_settings(MODELQUEUE_TASK_RETENTION=value):
        with pytest.raises(ValueError) as refused:
            conf.get('MODELQUEUE_TASK_RETENTION')
        errors = [error for error in checks.run_checks() if error.id == 'modelqueue.E301']
    message = str(refused.value)
    assert message.startswith(f'MODELQUEUE_TASK_RETENTION = {value!r}: expected a dict of'), message
    assert 'READY and RUNNING ones are never pruned' in message
    assert [error.msg for error in errors] == [message]


def test_a_tasks_worker_and_the_command_refuse_a_bad_retention_before_they_start():
    """Not first in the worker's heartbeat thread, where it would stop the heartbeat."""
    with override_settings(MODELQUEUE_TASK_RETENTION={'SUCCESSFUL': 7}):
        with pytest.raises(ValueError, match='MODELQUEUE_TASK_RETENTION = '):
            task_worker('default', burst=True, listen=False)  # --tasks: a CommandError
        with pytest.raises(CommandError, match='MODELQUEUE_TASK_RETENTION = '):
            prune_command()


# Pruning


def test_finished_rows_past_their_age_are_pruned_and_nothing_else():
    old_success, old_failure = successful('old success', 8 * DAY), failed('old failure', 31 * DAY)
    successful('recent success', 6 * DAY)
    failed('recent failure', 29 * DAY)
    failed('failed 8 days ago', 8 * DAY)
    unfinished_rows(365 * DAY)
    assert TaskPruner().prune() == {'SUCCESSFUL': 1, 'FAILED': 1}
    assert not TaskRow.objects.filter(pk__in=[old_success.pk, old_failure.pk]).exists()
    assert labels() == sorted(
        ['recent success', 'recent failure', 'failed 8 days ago', 'ready', 'deferred', 'retried',
         'created', 'running']
    )


def test_a_row_canceled_by_an_operator_is_aged_from_its_status():
    """The admin's cancel writes the time into the status and no finished_at."""
    row('canceled by an operator', Status.canceled(now() - 31 * DAY, 0))
    row('canceled lately', Status.canceled(now() - DAY, 0))
    assert TaskPruner().prune() == {'SUCCESSFUL': 0, 'FAILED': 1}
    assert labels() == ['canceled lately']


def test_none_keeps_a_states_rows_for_ever():
    successful('ancient success', 3650 * DAY)
    failed('ancient failure', 3650 * DAY)
    with override_settings(MODELQUEUE_TASK_RETENTION={'SUCCESSFUL': None}):
        assert TaskPruner().prune() == {'SUCCESSFUL': 0, 'FAILED': 1}
    with override_settings(MODELQUEUE_TASK_RETENTION={'SUCCESSFUL': None, 'FAILED': None}):
        successful('another', 3650 * DAY)
        assert TaskPruner().prune() == {'SUCCESSFUL': 0, 'FAILED': 0}
    assert labels() == ['ancient success', 'another']


def test_an_age_longer_than_the_calendar_prunes_nothing():
    successful('ancient', 3650 * DAY)
    with override_settings(MODELQUEUE_TASK_RETENTION={'SUCCESSFUL': dt.timedelta.max}):
        assert TaskPruner().prune() == {'SUCCESSFUL': 0, 'FAILED': 0}
    assert labels() == ['ancient']


def test_even_an_age_of_zero_never_prunes_a_ready_or_running_row():
    unfinished_rows(3650 * DAY)
    successful('just now', dt.timedelta(0))
    pruner = TaskPruner()
    cutoffs = pruner.cutoffs({'SUCCESSFUL': dt.timedelta(0), 'FAILED': dt.timedelta(0)}, now() + DAY)
    assert pruner.count(cutoffs) == {'SUCCESSFUL': 1, 'FAILED': 0}
    assert pruner.prune_all(cutoffs) == {'SUCCESSFUL': 1, 'FAILED': 0}
    assert labels() == sorted(['ready', 'deferred', 'retried', 'created', 'running'])


def test_pruning_works_in_bounded_batches_oldest_first():
    for number in range(7):
        successful(f'success {number}', (30 - number) * DAY)
    pruner = TaskPruner()
    with CaptureQueriesContext(connection) as queries:
        assert pruner.prune(batches=2, batch=2) == {'SUCCESSFUL': 4, 'FAILED': 0}
    deletes = [query['sql'] for query in queries.captured_queries if query['sql'].startswith('DELETE')]
    assert len(deletes) == 2
    assert labels() == ['success 4', 'success 5', 'success 6']  # the newest kept
    assert pruner.prune(batches=2, batch=2)['SUCCESSFUL'] == 3
    assert pruner.prune(batches=2, batch=2)['SUCCESSFUL'] == 0


def test_a_row_requeued_between_the_select_and_the_delete_stays(monkeypatch):
    old = successful('requeued meanwhile', 8 * DAY)
    other = successful('old', 9 * DAY)
    delete = QuerySet.delete

    def requeue_then_delete(queryset):
        TaskRow.objects.filter(pk=old.pk).update(status=ready_status(0))  # the operator's requeue
        return delete(queryset)

    monkeypatch.setattr(QuerySet, 'delete', requeue_then_delete)
    assert TaskPruner().prune() == {'SUCCESSFUL': 1, 'FAILED': 0}
    assert not TaskRow.objects.filter(pk=other.pk).exists()
    assert Status(TaskRow.objects.get(pk=old.pk).status).state == State.waiting


# The worker's heartbeat housekeeping


def test_a_tasks_workers_housekeeping_prunes_task_rows_and_a_plain_workers_does_not():
    successful('old success', 8 * DAY)
    unfinished_rows(365 * DAY)
    plain = Worker(Task.objects.all(), 'status', print).housekeeping()
    plain.prune()
    assert 'old success' in labels()
    TaskWorker('default', burst=True, listen=False).housekeeping().prune()
    assert labels() == sorted(['ready', 'deferred', 'retried', 'created', 'running'])


def test_a_housekeeping_pass_deletes_a_bounded_number_of_rows(monkeypatch):
    for number in range(5):
        failed(f'failure {number}', 40 * DAY)
    monkeypatch.setattr('modelqueue.tasks.retention.PRUNE_BATCH', 2)
    monkeypatch.setattr('modelqueue.tasks.retention.PRUNE_BATCHES', 1)
    chores = TaskWorker('default', burst=True, listen=False).housekeeping()
    chores.prune()
    assert TaskRow.objects.count() == 3
    chores.prune()
    assert TaskRow.objects.count() == 1


@pytest.mark.django_db(transaction=True)  # the heartbeat thread has its own connection
def test_a_running_tasks_worker_prunes_from_its_heartbeat_thread(monkeypatch):
    monkeypatch.setattr(housekeeping, 'PRUNE_SECONDS', 0.01)
    successful('old success', 8 * DAY)
    failed('old failure', 31 * DAY)
    successful('recent success', DAY)
    long_ago = now() - 365 * DAY
    # Running (claimed just now: not stalled), every other date on it old.
    row('running', Status.working(now(), 1), enqueued_at=long_ago, started_at=long_ago, finished_at=long_ago)
    row('deferred', Status.waiting(now() + DAY, 0), enqueued_at=long_ago, run_after=now() + DAY)
    result = tasks.sleep_then_return.enqueue(1.5)  # the heartbeat beats while it runs
    with override_settings(MODELQUEUE_HEARTBEAT_SECONDS=0.05):
        assert TaskWorker('default', burst=True, listen=False).run() == 1
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert labels() == ['deferred', 'recent success', 'running']
    assert Status(TaskRow.objects.get(args__0='running').status).state == State.working


# manage.py modelqueue_prune


def prune_command(*arguments):
    out = StringIO()
    call_command('modelqueue_prune', *arguments, stdout=out)
    return out.getvalue()


def test_the_command_deletes_what_the_setting_says_and_says_what_it_deleted():
    successful('old success', 8 * DAY)
    failed('old failure', 31 * DAY)
    failed('older failure', 40 * DAY)
    successful('recent', DAY)
    unfinished_rows(365 * DAY)
    out = prune_command()
    lines = out.splitlines()
    assert len(lines) == 2, out
    assert lines[0].startswith('Deleted 1 SUCCESSFUL task row finished before ')
    assert lines[1].startswith('Deleted 2 FAILED task rows finished before ')
    cutoff = dt.datetime.strptime(lines[0].split('before ')[1], '%Y-%m-%d %H:%M:%S UTC.')
    assert abs(cutoff.replace(tzinfo=dt.timezone.utc) - (now() - 7 * DAY)) < dt.timedelta(minutes=1)
    assert labels() == sorted(['recent', 'ready', 'deferred', 'retried', 'created', 'running'])


def test_a_dry_run_counts_and_deletes_nothing():
    successful('old success', 8 * DAY)
    failed('old failure', 31 * DAY)
    out = prune_command('--dry-run')
    assert 'Would delete 1 SUCCESSFUL task row finished before' in out
    assert 'Would delete 1 FAILED task row finished before' in out
    assert TaskRow.objects.count() == 2


def test_the_commands_ages_override_the_setting_and_never_keeps():
    successful('two days', 2 * DAY)
    successful('four days', 4 * DAY)
    failed('a year', 365 * DAY)
    unfinished_rows(365 * DAY)
    out = prune_command('--successful=3', '--failed=never')
    assert 'Deleted 1 SUCCESSFUL task row' in out and 'Kept every FAILED task row.' in out, out
    assert labels() == sorted(['two days', 'a year', 'ready', 'deferred', 'retried', 'created', 'running'])
    prune_command('--successful=0', '--failed=0.5')
    assert labels() == sorted(['ready', 'deferred', 'retried', 'created', 'running'])


def test_the_command_deletes_in_batches_until_none_is_left(monkeypatch):
    for number in range(7):
        failed(f'failure {number}', 40 * DAY)
    monkeypatch.setattr('modelqueue.tasks.retention.PRUNE_BATCH', 2)
    with CaptureQueriesContext(connection) as queries:
        assert 'Deleted 7 FAILED task rows' in prune_command()
    deletes = [query['sql'] for query in queries.captured_queries if query['sql'].startswith('DELETE')]
    assert len(deletes) == 4
    assert not TaskRow.objects.exists()


@pytest.mark.parametrize('age', ['-1', 'abc', 'nan', 'inf', '1e309', '1e12', 'None', ''])
def test_the_command_refuses_a_bad_age_naming_it(age):
    successful('old', 8 * DAY)
    with pytest.raises(CommandError, match=f"invalid age {age!r}: expected a number of days"):
        prune_command(f'--successful={age}')
    assert TaskRow.objects.count() == 1
