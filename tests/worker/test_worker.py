"""The modelqueue_worker command, run as real processes against the test database."""

import datetime as dt
import os
import signal
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from modelqueue import State, Status, now
from modelqueue.worker import Worker
from tests.support.connections import cut_sessions
from tests.support.fleet import Fleet
from tests.support.processes import ACTIONS, children_of, finish, idle, start_worker
from tests.support.tasks import executed, executions_per_task, state_counts, waiting_tasks
from tests.support.waits import wait_until
from tests.testapp.models import Execution, Task

WAIT_SECONDS = 20  # for a worker to get somewhere


@pytest.mark.processes
def test_burst_processes_the_queue_and_exits_0(spawn):
    tasks = waiting_tasks(5)
    status, log = finish(start_worker(spawn, '--burst'))
    assert status == 0, log
    assert state_counts() == {'finished': 5}
    assert executions_per_task() == {task.pk: 1 for task in tasks}
    for task in tasks:
        assert f'testapp.Task.status pk={task.pk} finished in ' in log


@pytest.mark.processes
def test_backoff_gives_each_failed_row_the_wait_of_its_attempts(spawn):
    first = Task.objects.create(data='fail', status=Status.waiting())
    third = Task.objects.create(data='fail', status=Status.waiting(now(), 2))  # two attempts made
    before = now()
    child = start_worker(spawn, '--burst', '--retry=5', '--backoff=100,2,1000,0', action='fail_or_follow_data')
    status, log = finish(child)
    after = now()
    assert status == 0, log
    for task, attempts, seconds in ((first, 1, 100), (third, 3, 400)):
        state, when, made = Status(Task.objects.get(pk=task.pk).status).parse()
        assert (state, made) == (State.waiting, attempts)
        assert before + dt.timedelta(seconds=seconds - 1) <= when <= after + dt.timedelta(seconds=seconds + 1)


@pytest.mark.processes
def test_each_outcome_is_logged_once_per_task(spawn):
    tasks = {
        data: Task.objects.create(data=data, status=Status.waiting())
        for data in ('ok', 'retry', 'abort', 'cancel', 'fail')
    }
    child = start_worker(
        spawn, '--burst', '--retry=1', '--delay=600', action='fail_or_follow_data'
    )
    status, log = finish(child)
    assert status == 0, log
    expected = {
        'ok': 'finished in ',
        'retry': 'retry in ',
        'abort': 'aborted in ',
        'cancel': 'canceled in ',
        'fail': 'failed in ',
    }
    for data, outcome in expected.items():
        lines = [line for line in log.splitlines() if f'pk={tasks[data].pk} ' in line]
        assert len(lines) == 1 and outcome in lines[0], (data, log)
    assert f"RuntimeError: task {tasks['fail'].pk} failed on purpose" in log
    assert Status(Task.objects.get(pk=tasks['abort'].pk).status).state == State.waiting
    assert Status(Task.objects.get(pk=tasks['fail'].pk).status).state == State.waiting
    assert Status(Task.objects.get(pk=tasks['cancel'].pk).status).state == State.canceled


@pytest.mark.processes
def test_concurrency_processes_each_row_exactly_once(spawn):
    tasks = waiting_tasks(30)
    child = start_worker(
        spawn,
        '--burst',
        '--concurrency=3',
        action='record_slowly',
        env={'MODELQUEUE_TEST_ACTION_SECONDS': '0.05'},
    )
    status, log = finish(child)
    assert status == 0, log
    assert executions_per_task() == {task.pk: 1 for task in tasks}
    assert state_counts() == {'finished': 30}
    pids = set(Execution.objects.values_list('pid', flat=True))
    assert child.pid not in pids
    assert 2 <= len(pids) <= 3, pids


@pytest.mark.processes
def test_max_tasks_stops_after_that_many(spawn):
    waiting_tasks(5)
    status, log = finish(start_worker(spawn, '--max-tasks=2'))
    assert status == 0, log
    assert state_counts() == {'finished': 2, 'waiting': 3}


@pytest.mark.processes
def test_max_tasks_counts_all_processes_together(spawn):
    waiting_tasks(8)
    status, log = finish(start_worker(spawn, '--max-tasks=3', '--concurrency=2'))
    assert status == 0, log
    assert state_counts() == {'finished': 3, 'waiting': 5}
    assert Execution.objects.count() == 3


@pytest.mark.processes
def test_max_tasks_counts_tasks_not_looks_that_found_nothing(spawn):
    # On PostgreSQL the first task's outcome is written with a claim that
    # finds nothing; that claim must not use up a task of the budget.
    waiting_tasks(1)
    child = start_worker(spawn, '--max-tasks=2', '--sleep=0.2')
    wait_until(executed(1), WAIT_SECONDS, 'the first task', child=child)
    # It has looked again, found nothing, and waits.
    wait_until(lambda: idle(child.pid), WAIT_SECONDS, 'the worker to wait', child=child)
    waiting_tasks(1)
    status, log = finish(child)
    assert status == 0, log
    assert state_counts() == {'finished': 2}, log


LONG_ACTION = {'MODELQUEUE_TEST_ACTION_SECONDS': '2'}


@pytest.mark.processes
@pytest.mark.parametrize('sent', [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_the_task_in_hand_and_exits_0(spawn, sent):
    first, second = waiting_tasks(2)
    child = start_worker(spawn, action='record_slowly', env=LONG_ACTION)
    wait_until(executed(1), WAIT_SECONDS, 'the first action to start', child=child)
    child.send_signal(sent)
    status, log = finish(child)
    assert status == 0, log
    assert state_counts() == {'finished': 1, 'waiting': 1}, log
    assert Execution.objects.count() == 1
    assert 'finishing the task in hand' in log


@pytest.mark.processes
def test_signal_wakes_an_idle_worker_at_once(spawn):
    waiting_tasks(1)
    child = start_worker(spawn, '--sleep=30')
    wait_until(executed(1), WAIT_SECONDS, 'the worker to run a task', child=child)
    wait_until(lambda: idle(child.pid), WAIT_SECONDS, 'the worker to be in its 30 s wait', child=child)
    child.send_signal(signal.SIGTERM)
    status, log = finish(child, timeout=10)
    assert status == 0, log
    assert 'stopped after 1 task' in log


@pytest.mark.processes
def test_second_signal_stops_at_once(spawn, tmp_path):
    waiting_tasks(1)
    fleet = Fleet(spawn, tmp_path, 'record_slowly', env={'MODELQUEUE_TEST_ACTION_SECONDS': '60'})
    fleet.start()
    (child,) = fleet.running
    wait_until(executed(1), WAIT_SECONDS, 'the action to start')
    child.send_signal(signal.SIGTERM)
    # Two signals sent close together may be handled as one: send the
    # second once the worker has said it took the first.
    wait_until(lambda: 'finishing the task in hand' in fleet.log(child.pid), WAIT_SECONDS, 'the first signal')
    child.send_signal(signal.SIGTERM)
    status, log = child.wait(timeout=10), fleet.log(child.pid)
    assert status == 128 + signal.SIGTERM, log
    assert state_counts() == {'working': 1}, 'the row stays held until the timeout'
    assert 'stopping now' in log


@pytest.mark.processes
def test_concurrent_workers_finish_their_tasks_on_a_signal_to_the_group(spawn):
    waiting_tasks(3)
    child = start_worker(
        spawn,
        '--concurrency=2',
        action='record_slowly',
        env=LONG_ACTION,
        start_new_session=True,
    )
    wait_until(executed(2), WAIT_SECONDS, 'both workers to start an action', child=child)
    # As a terminal's Ctrl-C does: every process of the group gets SIGINT.
    os.killpg(child.pid, signal.SIGINT)
    status, log = finish(child)
    assert status == 0, log
    assert state_counts() == {'finished': 2, 'waiting': 1}, log
    assert Execution.objects.count() == 2


@pytest.mark.processes
def test_second_signal_to_the_parent_kills_the_workers(spawn, tmp_path):
    waiting_tasks(2)
    fleet = Fleet(
        spawn, tmp_path, 'record_slowly', '--concurrency=2', env={'MODELQUEUE_TEST_ACTION_SECONDS': '60'}
    )
    fleet.start()
    (child,) = fleet.running
    wait_until(executed(2), WAIT_SECONDS, 'both workers to start an action')
    child.send_signal(signal.SIGTERM)
    wait_until(
        lambda: 'letting 2 workers finish their tasks' in fleet.log(child.pid), WAIT_SECONDS, 'the first signal'
    )
    child.send_signal(signal.SIGTERM)
    status, log = child.wait(timeout=10), fleet.log(child.pid)
    assert status == 128 + signal.SIGTERM, log
    assert state_counts() == {'working': 2}
    for pid in Execution.objects.values_list('pid', flat=True):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def alive(pid):
    """Whether process `pid` runs (a zombie nobody reaped does not count)."""
    try:
        with open(f'/proc/{pid}/stat') as stat:
            return stat.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


@pytest.mark.processes
def test_workers_stop_when_their_parent_dies(spawn):
    child = start_worker(spawn, '--concurrency=2', '--sleep=0.1')
    wait_until(
        lambda: len(children_of(child.pid)) == 2, WAIT_SECONDS, 'two workers', child=child
    )
    workers = children_of(child.pid)
    child.kill()
    child.wait(timeout=10)
    wait_until(lambda: not any(map(alive, workers)), WAIT_SECONDS, 'the orphaned workers to stop')


@pytest.mark.processes
@pytest.mark.vendors('postgresql', 'mysql')  # SQLite has no server sessions to end
def test_worker_survives_its_connection_being_terminated(spawn):
    first = waiting_tasks(1)[0]
    child = start_worker(spawn, '--sleep=0.1')
    wait_until(lambda: state_counts() == {'finished': 1}, WAIT_SECONDS, 'the first task', child=child)
    assert cut_sessions(connection) >= 1  # as a database restart would
    second = waiting_tasks(1)[0]
    wait_until(lambda: state_counts() == {'finished': 2}, WAIT_SECONDS, 'the second task', child=child)
    assert child.poll() is None
    child.send_signal(signal.SIGTERM)
    status, log = finish(child)
    assert status == 0, log
    assert executions_per_task() == {first.pk: 1, second.pk: 1}
    assert 'database error' in log


def worker_waiting_on_a_lock():
    with connection.cursor() as cursor:
        cursor.execute('SELECT pg_stat_clear_snapshot()')  # fresh inside a transaction
        cursor.execute(
            'SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()'
            " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.processes
@pytest.mark.vendors('postgresql')
def test_worker_survives_lock_timeouts(spawn):
    task = waiting_tasks(1)[0]
    database = connection.ops.quote_name(connection.settings_dict['NAME'])
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER DATABASE {database} SET lock_timeout = '100ms'")
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute('LOCK TABLE testapp_task IN ACCESS EXCLUSIVE MODE')
            child = start_worker(spawn, '--sleep=0.1', '--no-listen')
            wait_until(
                worker_waiting_on_a_lock, WAIT_SECONDS, 'the worker to wait on the lock',
                child=child,
            )
            time.sleep(0.3)  # past its lock timeout
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'ALTER DATABASE {database} RESET lock_timeout')
    wait_until(lambda: state_counts() == {'finished': 1}, WAIT_SECONDS, 'the task', child=child)
    child.send_signal(signal.SIGTERM)
    status, log = finish(child)
    assert status == 0, log
    assert executions_per_task() == {task.pk: 1}
    assert 'database error' in log and 'lock timeout' in log


BAD_ARGUMENTS = [
    (['testapp.Nothing', 'status', ACTIONS + 'record'], "unknown model 'testapp.Nothing'"),
    (['Task', 'status', ACTIONS + 'record'], "unknown model 'Task'"),
    (['testapp.Task', 'missing', ACTIONS + 'record'], "invalid field 'missing'"),
    (['testapp.Task', 'data', ACTIONS + 'record'], "invalid field 'data'"),
    (['testapp.Task', 'status', ACTIONS + 'nowhere'], "invalid action 'tests.testapp.actions.nowhere'"),
    (['testapp.Task', 'status', 'nowhere'], "invalid action 'nowhere'"),
    (
        ['testapp.Task', 'status', 'tests.settings.SECRET_KEY'],
        "invalid action 'tests.settings.SECRET_KEY': expected a callable, found str",
    ),
    (['testapp.Task', 'status', ACTIONS + 'record', '--retry=9'], 'invalid retry 9'),
    (['testapp.Task', 'status', ACTIONS + 'record', '--timeout=-1'], 'invalid timeout -1'),
    (['testapp.Task', 'status', ACTIONS + 'record', '--delay=-1'], 'invalid delay -1'),
    (['testapp.Task', 'status', ACTIONS + 'record', '--backoff=fast'], "invalid backoff 'fast'"),
    (['testapp.Task', 'status', ACTIONS + 'record', '--backoff=1,0.5,9'], 'invalid factor 0.5'),
    (['testapp.Task', 'status', ACTIONS + 'record', '--backoff=1,2,3,4'], 'invalid jitter 4.0'),
    (
        ['testapp.Task', 'status', ACTIONS + 'record', '--delay=5', '--backoff=exponential'],
        '--delay and --backoff exclude each other',
    ),
    (['--tasks', '--backoff=exponential'], '--backoff applies to a model'),
    (['testapp.Task', 'status', ACTIONS + 'record', '--sleep=-1'], 'invalid sleep -1'),
    (['testapp.Task', 'status', ACTIONS + 'record', '--sleep=0'], 'invalid sleep 0'),
    (['testapp.Task', 'status', ACTIONS + 'record', '--concurrency=0'], 'invalid concurrency 0'),
    (['testapp.Task', 'status', ACTIONS + 'record', '--max-tasks=-2'], 'invalid max-tasks -2'),
]


@pytest.mark.parametrize(('arguments', 'message'), BAD_ARGUMENTS)
def test_bad_arguments_are_rejected_with_a_clear_message(arguments, message):
    with pytest.raises(CommandError, match='^' + message.replace('.', r'\.')):
        call_command('modelqueue_worker', *arguments)


@pytest.mark.processes
def test_bad_arguments_exit_with_the_message_and_change_nothing(spawn):
    task = waiting_tasks(1)[0]
    child = start_worker(spawn, '--delay=-5')
    status, log = finish(child)
    assert status == 1
    assert 'CommandError: invalid delay -5' in log
    assert Task.objects.get(pk=task.pk).status == task.status


def test_worker_defaults_and_a_sleep_of_zero_is_refused():
    worker = Worker(Task.objects.all(), 'status', print, burst=True)
    assert (worker.sleep, worker.processed) == (1.0, 0)
    message = 'invalid sleep -1: expected a number of seconds above 0, at most 3153600000'
    with pytest.raises(ValueError, match=message):
        Worker(Task.objects.all(), 'status', print, sleep=-1)
