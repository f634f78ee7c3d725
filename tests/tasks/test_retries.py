"""Retry policies of the Tasks backend: its OPTIONS BACKOFF, RETRY_ON and
GIVE_UP_ON, a task's own retry_policy, each attempt's error kept, and
TaskContext.attempt (issue 25, part 1)."""

import datetime as dt

import pytest
from django.core.exceptions import ImproperlyConfigured

from modelqueue import Backoff, State, Status, now
from modelqueue.tasks import ModelQueueBackend, retry_policy
from modelqueue.tasks.compat import TaskResultStatus, task, task_backends
from modelqueue.tasks.models import QueuedTask as TaskRow
from modelqueue.tasks.worker import TaskWorker
from tests.testapp import tasks

# The worker closes its connection after a task's exception.
pytestmark = pytest.mark.django_db(transaction=True)

SECOND = dt.timedelta(seconds=1)


def run_once(alias):
    """Run one due task of `alias` here; return when it is due again (or None)."""
    before = now()
    TaskWorker(alias, burst=True, listen=False, max_tasks=1).run()
    return before, now()


def waits(result, before, after):
    """The bounds of the wait the task was given: (at least, at most)."""
    state, when, _ = Status(TaskRow.objects.get(pk=result.id).status).parse()
    assert state == State.waiting, state
    return when - after, when - before


def due_now(result):
    row = TaskRow.objects.get(pk=result.id)
    TaskRow.objects.filter(pk=row.pk).update(status=Status.waiting(now(), Status(row.status).attempts))


def assert_waited(result, seconds, bounds):
    least, most = waits(result, *bounds)
    assert least - SECOND <= seconds * SECOND <= most + SECOND, (least, most)


def test_retry_on_retries_with_the_backoff_keeping_each_attempts_error():
    result = tasks.raise_builtin.enqueue('ConnectionError')  # an OSError
    assert_waited(result, 100, run_once('backoff'))
    due_now(result)
    assert_waited(result, 200, run_once('backoff'))
    due_now(result)
    run_once('backoff')
    result.refresh()
    assert result.status == TaskResultStatus.FAILED  # RETRY 2: three attempts
    assert result.attempts == 3
    assert [error.exception_class for error in result.errors] == [ConnectionError] * 3
    assert all('ConnectionError: ConnectionError' in error.traceback for error in result.errors)


def test_give_up_on_fails_at_once_though_retry_on_matches():
    result = tasks.raise_builtin.enqueue('FileNotFoundError')  # an OSError too
    run_once('backoff')
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1
    assert [error.exception_class for error in result.errors] == [FileNotFoundError]


def test_an_exception_outside_retry_on_fails_at_once():
    result = tasks.raise_builtin.enqueue('KeyError')
    run_once('backoff')
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1


def test_a_tasks_own_policy_replaces_the_backends():
    retried = tasks.raise_builtin_own_policy.enqueue('KeyError')
    assert_waited(retried, 7, run_once('backoff'))  # its own backoff, not the backend's 100 s
    failed = tasks.raise_builtin_own_policy.enqueue('ConnectionError')
    TaskRow.objects.filter(pk=retried.id).update(status=Status.waiting(now() + dt.timedelta(hours=1), 1))
    run_once('backoff')
    failed.refresh()
    assert failed.status == TaskResultStatus.FAILED and failed.attempts == 1


def test_a_policy_stacked_above_task_gives_up_on_its_exception():
    # fail_until_attempt has give_up_on=ValueError, on the 'retrying' backend (ON_EXCEPTION 'retry').
    result = tasks.fail_until_attempt.enqueue(3, 'ValueError')
    TaskWorker('retrying', burst=True, listen=False).run()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1


def test_task_context_attempt_counts_the_attempts_and_each_error_is_kept():
    result = tasks.fail_until_attempt.enqueue(3)
    TaskWorker('retrying', burst=True, listen=False).run()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 3 and result.attempts == 3
    assert [error.traceback.strip().splitlines()[-1] for error in result.errors] == [
        'RuntimeError: attempt 1',
        'RuntimeError: attempt 2',
    ]


def plain():
    """A task function of this module, for retry_policy."""


def test_retry_policy_decorates_a_task_or_its_function_alike():
    made = task(retry_policy(backoff='exponential')(plain))
    assert made.func.modelqueue_retry_policy == {'backoff': Backoff(1, 2, 300, 0.5)}
    again = retry_policy(give_up_on=KeyError)(made)
    assert again is made and made.func.modelqueue_retry_policy == {'give_up_on': [KeyError]}


def test_the_backends_policy_comes_from_its_options():
    policy = task_backends['backoff'].policy
    assert policy.retry_on == (OSError,) and policy.give_up_on == (FileNotFoundError,)
    assert policy.backoff == Backoff(100, 2, 1000, 0)
    assert ModelQueueBackend('x', {}).policy.retry_on == ()
    assert ModelQueueBackend('x', {'OPTIONS': {'ON_EXCEPTION': 'retry'}}).policy.retry_on == (Exception,)
    assert ModelQueueBackend('x', {'OPTIONS': {'DELAY': 5}}).policy(1) == 5 * SECOND
    backoff = Backoff(3, jitter=0)
    assert ModelQueueBackend('x', {'OPTIONS': {'BACKOFF': backoff}}).policy(2) == 6 * SECOND


@pytest.mark.parametrize(
    ('options', 'message'),
    [
        ({'BACKOFF': 'fast'}, "invalid TASKS['x']['OPTIONS']['BACKOFF'] 'fast': expected 'exponential'"),
        ({'BACKOFF': 5}, "invalid TASKS['x']['OPTIONS']['BACKOFF'] 5: expected a datetime.timedelta"),
        ({'BACKOFF': 'exponential', 'DELAY': 5}, "TASKS['x']['OPTIONS']['DELAY'] and"),
        ({'RETRY_ON': ['no.such.Error']}, "invalid TASKS['x']['OPTIONS']['RETRY_ON'] ['no.such.Error']: expected"),
        ({'GIVE_UP_ON': [int]}, "invalid TASKS['x']['OPTIONS']['GIVE_UP_ON'] [<class 'int'>]: expected"),
        ({'GIVE_UP_ON': 3}, "invalid TASKS['x']['OPTIONS']['GIVE_UP_ON'] 3: expected"),
    ],
)
def test_bad_policy_options_are_refused_naming_the_value(options, message):
    with pytest.raises(ImproperlyConfigured) as error:
        ModelQueueBackend('x', {'OPTIONS': options})
    assert str(error.value).startswith(message), error.value
