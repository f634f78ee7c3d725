"""Backoff and RetryPolicy (modelqueue/retries.py), and run() with a delay
that is a callable or a policy (issue 25, part 1)."""

import datetime as dt

import pytest

from modelqueue import Abort, Backoff, Retry, RetryPolicy, State, Status, now, run
from modelqueue.exceptions import TimeLimitExceeded
from modelqueue.retries import gives_up
from tests.testapp.models import Task

pytestmark = pytest.mark.django_db

SECOND = dt.timedelta(seconds=1)


def make(status=None):
    return Task.objects.create(data='task', status=Status.waiting() if status is None else status)


def status_of(task):
    return Status(Task.objects.values_list('status', flat=True).get(pk=task.pk))


def wait_of(task, before, after):
    """The wait the row was given, as bounds: (at least, at most)."""
    _, when, _ = status_of(task).parse()
    return when - after, when - before


def fail_with(error):
    def action(task):
        raise error

    return action


# Backoff


def test_backoff_grows_by_its_factor_up_to_its_cap_without_jitter():
    backoff = Backoff(base=0.5, factor=3, cap=10, jitter=0)
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4, 9)] == [0.5, 1.5, 4.5, 10, 10]


def test_backoff_jitter_takes_at_most_its_share_off_and_varies():
    backoff = Backoff(base=100, factor=1, cap=100, jitter=0.5)
    waits = {backoff(1).total_seconds() for _ in range(50)}
    assert all(50 <= wait <= 100 for wait in waits)
    assert len(waits) > 1


def test_backoff_never_overflows_on_many_attempts():
    assert Backoff(base=1, factor=1e300, cap=60, jitter=0)(10**6) == 60 * SECOND


@pytest.mark.parametrize(
    ('arguments', 'message'),
    [
        ({'base': -1}, 'invalid base -1: expected a number of seconds from 0'),
        ({'base': 'soon'}, "invalid base 'soon': expected a number of seconds"),
        ({'factor': 0.5}, 'invalid factor 0.5: expected a number of 1 or more'),
        ({'factor': float('inf')}, 'invalid factor inf: expected a number of 1 or more'),
        ({'base': 10, 'cap': 5}, 'invalid cap 5: expected a number of seconds of at least base (10)'),
        ({'jitter': 2}, 'invalid jitter 2: expected a number from 0 through 1'),
        ({'cap': float('nan')}, 'invalid cap nan: expected a number of seconds'),
    ],
)
def test_backoff_refuses_bad_values_naming_them(arguments, message):
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
        Backoff(**arguments)


def test_backoff_parses_the_worker_option():
    assert Backoff.parse('exponential') == Backoff(1, 2, 300, 0.5)
    assert Backoff.parse('2,3,60') == Backoff(2, 3, 60)
    assert Backoff.parse('2,3,60,0') == Backoff(2, 3, 60, 0)
    for text in ('2,3', '1,2,3,4,5', 'a,b,c', ''):
        with pytest.raises(ValueError, match=f"invalid backoff '{text}': expected 'exponential' or BASE"):
            Backoff.parse(text)


# RetryPolicy


def test_policy_retries_retry_on_less_give_up_on_and_always_retry_and_abort():
    policy = RetryPolicy(retry_on=[OSError, ValueError], give_up_on=FileNotFoundError)
    assert policy.retries(ConnectionError()) and policy.retries(ValueError())
    assert not policy.retries(FileNotFoundError()) and not policy.retries(KeyError())
    assert policy.retries(Abort()) and policy.retries(Retry())


@pytest.mark.parametrize(
    ('arguments', 'message'),
    [
        ({'retry_on': 'ValueError'}, "invalid retry_on 'ValueError': expected an exception class"),
        ({'give_up_on': [ValueError, 3]}, 'invalid give_up_on .*: expected an exception class or a list'),
        ({'backoff': 5}, 'invalid backoff 5: expected a datetime.timedelta of zero or more, or a callable'),
        ({'backoff': lambda attempts: 5}, r'invalid backoff\(1\) 5: expected a datetime.timedelta'),
    ],
)
def test_policy_refuses_bad_values_naming_them(arguments, message):
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**arguments)


# run() with a callable delay


def test_run_gives_a_failed_row_the_wait_its_callable_delay_returns_for_its_attempts():
    task = make()
    seen = []

    def delay(attempts):
        seen.append(attempts)
        return attempts * 100 * SECOND

    for attempt in (1, 2):
        before = now()
        with pytest.raises(ValueError):
            run(Task.objects.all(), 'status', fail_with(ValueError('no')), delay=delay)
        least, most = wait_of(task, before, now())
        assert least - SECOND <= attempt * 100 * SECOND <= most + SECOND
        # Due again at once, for the next attempt.
        Task.objects.filter(pk=task.pk).update(status=Status.waiting(now(), status_of(task).attempts))
    # Each run() checks it up front with 1, then asks it for the attempts made.
    assert seen == [1, 1, 1, 2]


def test_run_with_a_backoff_doubles_the_wait_for_abort_too():
    task = make(Status.waiting(now(), 2))  # two attempts made: this is the third
    before = now()
    run(Task.objects.all(), 'status', fail_with(Abort()), delay=Backoff(10, 2, 1000, jitter=0))
    least, most = wait_of(task, before, now())
    assert least - SECOND <= 40 * SECOND <= most + SECOND
    assert status_of(task).attempts == 3


def test_run_keeps_an_aborts_own_delay_over_the_backoff():
    task = make()
    before = now()
    run(Task.objects.all(), 'status', fail_with(Abort(delay=5 * SECOND)), delay=Backoff(1000, cap=1000, jitter=0))
    least, most = wait_of(task, before, now())
    assert least - SECOND <= 5 * SECOND <= most + SECOND


def test_run_with_a_timedelta_delay_keeps_the_reference_behaviour():
    task = make()
    before = now()
    with pytest.raises(ValueError):
        run(Task.objects.all(), 'status', fail_with(ValueError()), delay=30 * SECOND)
    least, most = wait_of(task, before, now())
    assert least - SECOND <= 30 * SECOND <= most + SECOND


def test_run_refuses_a_delay_that_is_neither_naming_it():
    with pytest.raises(ValueError, match="invalid delay 'soon': expected a datetime.timedelta"):
        run(Task.objects.all(), 'status', print, delay='soon')
    with pytest.raises(ValueError, match=r'invalid delay\(1\) -1: expected a datetime.timedelta'):
        run(Task.objects.all(), 'status', print, delay=lambda attempts: -1)


def test_a_delay_that_fails_later_is_logged_and_the_row_still_leaves_working(caplog):
    task = make()
    calls = []

    def flaky(attempts):
        calls.append(attempts)
        if len(calls) > 1:
            raise RuntimeError('broken delay')
        return SECOND

    with pytest.raises(ValueError):
        run(Task.objects.all(), 'status', fail_with(ValueError()), delay=flaky)
    assert status_of(task).state == State.waiting and status_of(task).attempts == 1
    assert 'the delay' in caplog.text and 'broken delay' in caplog.text


# run() with a RetryPolicy


def test_a_policy_gives_up_at_once_on_give_up_on_counting_the_attempt():
    task = make()
    policy = RetryPolicy(give_up_on=[KeyError], backoff=Backoff(1, jitter=0))
    with pytest.raises(KeyError):
        run(Task.objects.all(), 'status', fail_with(KeyError('gone')), retry=5, delay=policy)
    assert status_of(task).state == State.canceled and status_of(task).attempts == 1


def test_a_policy_gives_up_on_what_retry_on_leaves_out():
    task = make()
    with pytest.raises(KeyError):
        run(Task.objects.all(), 'status', fail_with(KeyError()), retry=5, delay=RetryPolicy(retry_on=OSError))
    assert status_of(task).state == State.canceled


def test_a_policy_retries_retry_on_with_its_backoff_until_retry_runs_out():
    task = make()
    policy = RetryPolicy(retry_on=[OSError], backoff=Backoff(60, jitter=0))
    before = now()
    with pytest.raises(ConnectionError):
        run(Task.objects.all(), 'status', fail_with(ConnectionError()), retry=1, delay=policy)
    least, most = wait_of(task, before, now())
    assert status_of(task).state == State.waiting
    assert least - SECOND <= 60 * SECOND <= most + SECOND
    Task.objects.filter(pk=task.pk).update(status=Status.waiting(now(), 1))
    with pytest.raises(ConnectionError):
        run(Task.objects.all(), 'status', fail_with(ConnectionError()), retry=1, delay=policy)
    assert status_of(task).state == State.canceled and status_of(task).attempts == 2


# A BaseException that is not an Exception (the time limit's TimeLimitExceeded,
# a KeyboardInterrupt stopping the worker) says nothing about the row: under a
# policy it is an attempt like any failure, unless give_up_on names it. The
# worker's time limit itself: tests/worker/test_timelimit.py.


@pytest.mark.parametrize('error', [KeyboardInterrupt(), TimeLimitExceeded(1.0)], ids=type)
def test_a_policy_counts_a_base_exception_as_an_attempt_with_its_backoff_not_a_give_up(error):
    task = make()
    # retry_on is every Exception, which neither is: still not a give-up.
    policy = RetryPolicy(backoff=Backoff(60, jitter=0))
    assert not gives_up(policy, error)
    before = now()
    with pytest.raises(type(error)):
        run(Task.objects.all(), 'status', fail_with(error), retry=1, delay=policy)
    least, most = wait_of(task, before, now())
    assert status_of(task).state == State.waiting and status_of(task).attempts == 1
    assert least - SECOND <= 60 * SECOND <= most + SECOND
    # Within run()'s retry like any failure: the next one past it cancels.
    Task.objects.filter(pk=task.pk).update(status=Status.waiting(now(), 1))
    with pytest.raises(type(error)):
        run(Task.objects.all(), 'status', fail_with(error), retry=1, delay=policy)
    assert status_of(task).state == State.canceled and status_of(task).attempts == 2


@pytest.mark.parametrize('error', [KeyboardInterrupt(), TimeLimitExceeded(1.0)], ids=type)
def test_a_policy_whose_retry_on_leaves_a_base_exception_out_still_counts_it_as_an_attempt(error):
    task = make()
    with pytest.raises(type(error)):
        run(Task.objects.all(), 'status', fail_with(error), retry=5, delay=RetryPolicy(retry_on=OSError))
    assert status_of(task).state == State.waiting and status_of(task).attempts == 1


@pytest.mark.parametrize('error', [KeyboardInterrupt(), TimeLimitExceeded(1.0)], ids=type)
def test_a_policy_gives_up_at_once_on_a_base_exception_its_give_up_on_names(error):
    task = make()
    policy = RetryPolicy(give_up_on=[type(error)])
    assert gives_up(policy, error)
    assert not gives_up(RetryPolicy(give_up_on=[ValueError]), error)
    with pytest.raises(type(error)):
        run(Task.objects.all(), 'status', fail_with(error), retry=5, delay=policy)
    assert status_of(task).state == State.canceled and status_of(task).attempts == 1


def test_a_policy_never_gives_up_on_abort_or_retry():
    task = make()
    policy = RetryPolicy(retry_on=[OSError])
    run(Task.objects.all(), 'status', fail_with(Abort()), retry=3, delay=policy)
    assert status_of(task).state == State.waiting and status_of(task).attempts == 1
    run(Task.objects.all(), 'status', fail_with(Retry()), retry=3, delay=policy)
    assert status_of(task).state == State.waiting and status_of(task).attempts == 1
