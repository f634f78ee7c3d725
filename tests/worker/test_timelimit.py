"""The hard time limit: ``--time-limit`` and ``MODELQUEUE_TIME_LIMITS`` stop an
action that runs past it, in the worker's own process (SIGALRM) or, for code
that never returns to Python, by the supervising parent (SIGKILL)."""

import datetime as dt
import signal
import time

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from modelqueue import RetryPolicy, State, Status, now
from modelqueue.conf import check_settings
from modelqueue.exceptions import TimeLimitExceeded
from modelqueue.models import FailureRecord
from modelqueue.tasks.compat import TaskResultStatus
from modelqueue.worker import Worker
from modelqueue.worker.timelimit import TimeLimit
from tests.support.processes import children_of, finish, start_worker
from tests.support.tasks import executed, executions_per_task
from tests.support.waits import wait_until
from tests.testapp import tasks
from tests.testapp.actions import record
from tests.testapp.models import Execution, Task

WAIT_SECONDS = 30


def sleep_a_minute(task):
    record(task)
    time.sleep(60)


@pytest.mark.django_db(transaction=True)  # the worker closes its connection after a failure
def test_in_the_worker_s_process_the_action_is_stopped_and_the_record_names_the_time_limit():
    task = Task.objects.create(data='slow', status=Status.waiting())
    worker = Worker(Task.objects.all(), 'status', sleep_a_minute, retry=0, time_limit=0.3)
    assert worker.run_one() is True
    task.refresh_from_db()
    assert Status(task.status).state.name == 'canceled'
    record_ = FailureRecord.objects.get()
    assert record_.exception == FailureRecord.TIME_LIMIT
    assert record_.message == 'stopped by the time limit of 0.3s'
    assert record_.outcome == FailureRecord.CANCELED


@pytest.mark.django_db(transaction=True)  # the worker closes its connection after a failure
def test_under_a_retry_policy_a_task_stopped_by_the_time_limit_waits_for_another_attempt():
    # The policy retries OSError only; the time limit's exception (a
    # BaseException) is an attempt all the same, not a give-up.
    task = Task.objects.create(data='slow', status=Status.waiting())
    policy = RetryPolicy(retry_on=[OSError], backoff=dt.timedelta(seconds=60))
    worker = Worker(Task.objects.all(), 'status', sleep_a_minute, retry=3, delay=policy, time_limit=0.3)
    assert worker.run_one() is True
    task.refresh_from_db()
    state, when, attempts = Status(task.status).parse()
    assert (state.name, attempts) == ('waiting', 1)
    assert when > now() + dt.timedelta(seconds=30)  # the policy's backoff
    record_ = FailureRecord.objects.get()
    assert (record_.exception, record_.outcome) == (FailureRecord.TIME_LIMIT, FailureRecord.WAITING)


@pytest.mark.django_db(transaction=True)  # the worker closes its connection after a failure
def test_a_retry_policy_that_names_the_time_limit_in_give_up_on_cancels_at_once():
    task = Task.objects.create(data='slow', status=Status.waiting())
    policy = RetryPolicy(give_up_on=[TimeLimitExceeded])
    worker = Worker(Task.objects.all(), 'status', sleep_a_minute, retry=3, delay=policy, time_limit=0.3)
    assert worker.run_one() is True
    task.refresh_from_db()
    assert Status(task.status).parse()[0::2] == (State.canceled, 1)
    assert FailureRecord.objects.get().outcome == FailureRecord.CANCELED


def test_a_timer_set_before_the_action_is_set_again_after_it():
    saved = signal.getitimer(signal.ITIMER_REAL)  # pytest-timeout's, when it runs by SIGALRM
    handler = signal.signal(signal.SIGALRM, signal.SIG_IGN)
    try:
        signal.setitimer(signal.ITIMER_REAL, 100)
        with TimeLimit(30).applied():
            assert 29 < signal.getitimer(signal.ITIMER_REAL)[0] <= 30
        assert 90 < signal.getitimer(signal.ITIMER_REAL)[0] <= 100
        assert signal.getsignal(signal.SIGALRM) == signal.SIG_IGN
    finally:
        signal.setitimer(signal.ITIMER_REAL, *saved)
        signal.signal(signal.SIGALRM, handler)


@pytest.mark.django_db
def test_the_setting_sets_a_queue_s_time_limit_and_the_argument_overrides_it():
    with override_settings(MODELQUEUE_TIME_LIMITS={'testapp.Task.status': 30, 'testapp.Other.status': 5}):
        assert Worker(Task.objects.all(), 'status', record).time_limit.seconds == 30.0
        assert Worker(Task.objects.all(), 'status', record, time_limit=2).time_limit.seconds == 2.0
    assert Worker(Task.objects.all(), 'status', record).time_limit.seconds is None


@pytest.mark.parametrize(
    'value, found',
    [
        ({'testapp.Task': 3}, "'testapp.Task': 3"),
        ({'testapp.Task.status': 0}, "'testapp.Task.status': 0"),
        ({'tasks:emails': True}, "'tasks:emails': True"),
        ([('testapp.Task.status', 3)], None),
    ],
)
def test_bad_time_limits_are_refused_naming_the_setting_and_the_value(value, found):
    with override_settings(MODELQUEUE_TIME_LIMITS=value):
        [error] = [e for e in check_settings() if 'MODELQUEUE_TIME_LIMITS' in e.msg]
    assert error.id == 'modelqueue.E301'
    assert "expected a dict of queues ('app_label.Model.field', or 'tasks:NAME'" in error.msg
    if found:
        assert f'found {found}' in error.msg


@pytest.mark.django_db
def test_threads_refuse_a_time_limit_naming_both():
    with pytest.raises(CommandError, match=r'invalid threads 2 with --time-limit 2: a thread cannot be stopped'):
        call_command(
            'modelqueue_worker', 'testapp.Task', 'status', 'tests.testapp.actions.record',
            '--threads=2', '--time-limit=2',
        )
    with override_settings(MODELQUEUE_TIME_LIMITS={'tasks:emails': 5}):
        with pytest.raises(CommandError, match=r'MODELQUEUE_TIME_LIMITS \(5s for '):
            call_command('modelqueue_worker', '--tasks', '--queue=emails', '--threads=2')
    with pytest.raises(CommandError, match=r'invalid time_limit 0.0: expected a number of seconds above 0'):
        call_command('modelqueue_worker', 'testapp.Task', 'status', 'tests.testapp.actions.record', '--time-limit=0')


@pytest.mark.processes
def test_a_task_past_the_time_limit_leaves_the_worker_which_runs_the_next_one(spawn):
    slow = Task.objects.create(data='slow', status=Status.waiting())
    quick = Task.objects.create(data='quick', status=Status.waiting())
    status, log = finish(
        start_worker(spawn, '--burst', '--retry=0', '--time-limit=2', action='record_and_sleep_unless_quick')
    )
    assert status == 0, log
    assert executions_per_task() == {slow.pk: 1, quick.pk: 1}
    slow.refresh_from_db()
    quick.refresh_from_db()
    assert Status(slow.status).state.name == 'canceled'
    assert Status(quick.status).state.name == 'finished'
    record_ = FailureRecord.objects.get()
    assert (record_.object_id, record_.exception) == (str(slow.pk), FailureRecord.TIME_LIMIT)
    assert record_.message == 'stopped by the time limit of 2s'
    # Stopped, not slept out: the minute's sleep would have ended it at 60 s.
    assert dt_seconds(record_.duration) < 50, record_.duration
    assert ', time limit 2s)' in log  # the worker's first line says it
    assert f'testapp.Task.status pk={slow.pk} failed in ' in log
    assert 'TimeLimitExceeded: stopped by the time limit of 2s' in log


def dt_seconds(duration):
    return duration.total_seconds()


@pytest.mark.processes
def test_a_child_stuck_past_the_time_limit_is_killed_and_replaced_and_its_row_given_back(spawn):
    stuck = Task.objects.create(data='stuck', status=Status.waiting())
    child = start_worker(
        spawn, '--concurrency=1', '--retry=0', '--time-limit=1', '--timeout=3', '--sleep=0.1',
        action='record_and_hang_in_c',
    )
    wait_until(executed(1), WAIT_SECONDS, 'the stuck task to start', child=child)
    [first] = Execution.objects.values_list('pid', flat=True)
    wait_until(
        lambda: children_of(child.pid) and first not in children_of(child.pid),
        WAIT_SECONDS,
        'the stuck worker killed and another started',
        child=child,
    )
    quick = Task.objects.create(data='quick', status=Status.waiting())
    wait_until(executed(2), WAIT_SECONDS, 'the new worker to run the next task', child=child)
    # The killed worker's row is given back after the timeout (canceled: --retry=0).
    wait_until(
        lambda: Status(Task.objects.get(pk=stuck.pk).status).state.name == 'canceled',
        WAIT_SECONDS,
        'the stuck row given back by the timeout',
        child=child,
    )
    child.send_signal(signal.SIGTERM)
    status, log = finish(child)
    assert status == 0, log
    assert f'worker {first} has run its action for ' in log
    assert 'past the time limit of 1s and 2s of grace, in code that could not be interrupted; killing it' in log
    assert 'crash 1 of' not in log  # not counted as a crash
    assert Execution.objects.get(task=quick).pid != first
    assert FailureRecord.objects.get(object_id=str(stuck.pk)).exception == FailureRecord.TIMEOUT


@pytest.mark.processes
def test_the_tasks_worker_stops_a_task_past_the_time_limit_and_runs_the_next(spawn):
    slow = tasks.sleep_then_return.enqueue(60)
    quick = tasks.add.enqueue(1, 2)
    status, log = finish(
        spawn(
            '-m', 'django', 'modelqueue_worker', '--tasks', '--verbosity=2', '--burst', '--time-limit=2',
            env={'DJANGO_SETTINGS_MODULE': 'tests.settings'},
        )
    )
    assert status == 0, log
    slow.refresh()
    quick.refresh()
    assert slow.status == TaskResultStatus.FAILED, log
    assert [error.exception_class_path for error in slow.errors] == ['modelqueue.exceptions.TimeLimitExceeded']
    assert 'stopped by the time limit of 2s' in slow.errors[0].traceback
    assert quick.status == TaskResultStatus.SUCCESSFUL


@pytest.mark.processes
def test_under_on_exception_retry_a_task_stopped_by_the_time_limit_retries_within_retry_unless_given_up(spawn):
    # The 'retrying' backend: ON_EXCEPTION 'retry', RETRY 2, RETRY_ON every
    # Exception (which the time limit's is not: it retries all the same).
    retried = tasks.sleep_until_attempt.enqueue(2)  # stopped once, then through
    exhausted = tasks.sleep_until_attempt.enqueue(99)  # stopped at every attempt
    given_up = tasks.sleep_until_attempt_giving_up_on_the_time_limit.enqueue(2)
    status, log = finish(
        spawn(
            '-m', 'django', 'modelqueue_worker', '--tasks', '--backend=retrying', '--verbosity=2', '--burst',
            '--time-limit=1',
            env={'DJANGO_SETTINGS_MODULE': 'tests.settings'},
        )
    )
    assert status == 0, log
    for result in (retried, exhausted, given_up):
        result.refresh()
    stopped = 'modelqueue.exceptions.TimeLimitExceeded'
    assert retried.status == TaskResultStatus.SUCCESSFUL, log
    assert (retried.return_value, retried.attempts) == (2, 2)
    assert [error.exception_class_path for error in retried.errors] == [stopped]
    # An attempt within RETRY like any failure: FAILED after the first and RETRY more.
    assert exhausted.status == TaskResultStatus.FAILED, log
    assert exhausted.attempts == 3
    assert [error.exception_class_path for error in exhausted.errors] == [stopped] * 3
    # GIVE_UP_ON naming it (here the task's own policy): FAILED at once.
    assert given_up.status == TaskResultStatus.FAILED, log
    assert given_up.attempts == 1
    assert [error.exception_class_path for error in given_up.errors] == [stopped]
