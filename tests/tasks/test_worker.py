"""``modelqueue_worker --tasks``: real worker processes on the test database."""

import datetime as dt
import pathlib
import signal

import pytest
from django.core.management import CommandError, call_command

from modelqueue import Status
from modelqueue.names import host_name, worker_name
from modelqueue.tasks.compat import TaskResultStatus
from modelqueue.tasks.models import QueuedTask as TaskRow
from modelqueue.tasks.worker import TaskWorker
from tests.support.processes import finish
from tests.support.waits import wait_until
from tests.testapp import tasks
from tests.testapp.actions import POISON_ERRORS

TASKS_WORKER = ('-m', 'django', 'modelqueue_worker', '--tasks', '--verbosity=2')
ENV = {'DJANGO_SETTINGS_MODULE': 'tests.settings'}


def refreshed(results):
    for result in results:
        result.refresh()
    return results


@pytest.mark.processes
@pytest.mark.parametrize(
    'options, processes',
    [
        (['--concurrency=2'], 2),
        (['--threads=3'], 1),
        (['--concurrency=2', '--threads=2'], 2),
        (['--concurrency=2', '--batch=5'], 2),
        (['--threads=3', '--batch=5'], 1),
    ],
    ids=['processes', 'threads', 'both', 'batches', 'batches-threads'],
)
def test_concurrent_workers_run_each_task_once_and_exit_0(spawn, options, processes):
    results = [tasks.with_context.enqueue(n) for n in range(12)]
    status, log = finish(spawn(*TASKS_WORKER, '--burst', *options, env=ENV))
    assert status == 0, log
    for n, result in enumerate(refreshed(results)):
        assert result.status == TaskResultStatus.SUCCESSFUL, log
        assert result.return_value == {'id': result.id, 'attempt': 1, 'value': n}
        assert len(result.worker_ids) == 1
    assert len({r.worker_ids[0] for r in results}) <= processes
    threads = [option.split('=')[1] for option in options if option.startswith('--threads=')]
    if threads:
        assert f', {threads[0]} threads' in log, log
    # One line per task naming its path, queue and id (the result's id).
    for result in results:
        assert log.count(f'task tests.testapp.tasks.with_context (queue default, id {result.id}) finished') == 1, log
    assert 'object at 0x' not in log


@pytest.mark.processes
def test_named_queues_only_and_max_tasks(spawn):
    emails = [tasks.send_email.enqueue(f'{n}@example.com') for n in range(3)]
    other = tasks.add.enqueue(1, 2)
    status, log = finish(spawn(*TASKS_WORKER, '--burst', '--queue=emails', '--max-tasks=2', env=ENV))
    assert status == 0, log
    states = [r.status for r in refreshed([*emails, other])]
    assert states == [TaskResultStatus.SUCCESSFUL] * 2 + [TaskResultStatus.READY] * 2


@pytest.mark.processes
def test_a_signal_lets_the_task_in_hand_finish_then_exits_0(spawn):
    result = tasks.sleep_then_return.enqueue(1.5)
    child = spawn(*TASKS_WORKER, env=ENV)
    wait_until(
        lambda: refreshed([result])[0].status == TaskResultStatus.RUNNING, 20, 'the task to start', child=child
    )
    child.send_signal(signal.SIGTERM)
    status, log = finish(child)
    assert status == 0, log
    assert refreshed([result])[0].status == TaskResultStatus.SUCCESSFUL


def started(gate):
    return lambda: pathlib.Path(f'{gate.path}.started').exists()


@pytest.mark.processes
def test_a_running_tasks_worker_ids_name_its_worker(spawn, gate):
    result = tasks.first_attempt_waits_at_the_gate.enqueue()
    child = spawn(*TASKS_WORKER, '--burst', env={**ENV, **gate.env})
    wait_until(started(gate), 20, 'the task to start', child=child)
    result.refresh()
    assert result.status == TaskResultStatus.RUNNING
    assert result.worker_ids == [worker_name(host_name(), child.pid)]
    assert result.started_at is not None and result.last_attempted_at is not None
    gate.open()
    status, log = finish(child)
    assert status == 0, log
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 1
    assert result.worker_ids == [worker_name(host_name(), child.pid)]


@pytest.mark.processes
def test_a_task_whose_worker_died_runs_again_as_its_second_attempt(spawn, gate):
    result = tasks.first_attempt_waits_at_the_gate.enqueue()
    child = spawn(*TASKS_WORKER, env={**ENV, **gate.env})
    wait_until(started(gate), 20, 'the task to start', child=child)
    child.kill()
    child.wait(20)
    # Its claim, an hour and more ago: past the backend's TIMEOUT.
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    TaskRow.objects.filter(pk=result.id).update(status=Status.working(long_ago, 0))
    TaskWorker('default', burst=True, listen=False).run()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 2  # TaskContext.attempt: the lost attempt counted
    assert result.attempts == 2 and result.worker_ids[0] == worker_name(host_name(), child.pid)


@pytest.mark.processes
@pytest.mark.vendors('postgresql')
def test_an_idle_worker_wakes_on_commit(spawn):
    warm_up = tasks.add.enqueue(0, 0)
    child = spawn(*TASKS_WORKER, '--sleep=60', env=ENV)
    # The worker listens before its first claim: once it ran this, it listens.
    wait_until(lambda: refreshed([warm_up])[0].is_finished, 20, 'the worker to start', child=child)
    result = tasks.add.enqueue(2, 2)
    wait_until(
        lambda: refreshed([result])[0].status == TaskResultStatus.SUCCESSFUL,
        10,
        'the task to run well before the 60 s poll',
        child=child,
    )


@pytest.mark.processes
@pytest.mark.parametrize(
    'options',
    [[], ['--threads=2'], ['--concurrency=2'], ['--batch=4']],
    ids=['one', 'threads', 'processes', 'batch'],
)
def test_poisonous_tasks_fail_once_and_the_tasks_behind_them_run(spawn, options, tmp_path):
    """Tasks raising exceptions whose text no database stores as it is, or
    returning NaN (no database stores it): each runs once and ends FAILED;
    the worker stays up and the tasks behind them run, each once."""
    poison = [tasks.raise_poison.enqueue(kind) for kind in sorted(POISON_ERRORS)]
    poison.append(tasks.return_poison.enqueue('nan'))
    healthy = [tasks.charge_card.enqueue(str(n)) for n in range(4)]
    ran = tmp_path / 'ran.log'
    child = spawn(*TASKS_WORKER, *options, env={**ENV, 'MODELQUEUE_TEST_LOG': str(ran)})
    wait_until(
        lambda: all(r.is_finished for r in refreshed([*poison, *healthy])), 60, 'every task to end', child=child
    )
    assert child.poll() is None, 'the worker stopped'
    child.send_signal(signal.SIGTERM)
    status, log = finish(child)
    assert status == 0, log
    assert 'exited with status' not in log and 'stopped by' not in log, log
    lines = ran.read_text().splitlines()
    expected = [f'raise_poison {kind}' for kind in sorted(POISON_ERRORS)]
    expected += ['return_poison nan', *(f'charge_card {n}' for n in range(4))]
    assert sorted(lines) == sorted(expected)  # each ran once
    for result in refreshed(poison):
        assert result.status == TaskResultStatus.FAILED and len(result.errors) == 1, result.errors
    assert refreshed(poison)[-1].errors[0].exception_class_path == 'modelqueue.exceptions.OutcomeNotStored'
    for n, result in enumerate(refreshed(healthy)):
        assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == str(n)


@pytest.mark.django_db
@pytest.mark.parametrize(
    'arguments, message',
    [
        (['--tasks', '--backend=nowhere'], "invalid --backend 'nowhere'"),
        (['--tasks', '--queue=nowhere'], "invalid --queue 'nowhere': expected one of the QUEUES"),
        (['--tasks', 'testapp.Task'], "unexpected argument 'testapp.Task'"),
        (['--queue=emails'], '--queue, --backend and --no-schedules apply to --tasks only'),
        (['testapp.Task', 'status', 'tests.testapp.actions.record', '--no-schedules'], 'apply to --tasks only'),
        ([], 'expected MODEL FIELD ACTION, or --tasks'),
    ],
)
def test_bad_arguments_are_refused_naming_them(arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command('modelqueue_worker', *arguments)
