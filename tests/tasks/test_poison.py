"""Poison inputs to the Tasks backend: what ``enqueue()`` refuses before
anything is written, the same way on every database.

Arguments are stored as JSON. JSON has no NaN or Infinity, PostgreSQL's
``jsonb`` holds no NUL character, and a surrogate code point is not a
Unicode character: such arguments are refused with ValueError naming the
value and where it is, as are ``run_after`` times a task's status cannot
hold. The caller's transaction stays usable.
"""

import datetime as dt
import math

import pytest
from django.db import transaction

from modelqueue.tasks.compat import TaskResultStatus
from modelqueue.tasks.models import QueuedTask as TaskRow
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

UTC = dt.timezone.utc
NAN, INF = float('nan'), float('inf')

# (args, kwargs, where the bad value is, what the message says of it)
POISON = [
    pytest.param((NAN,), {}, 'args[0]', 'nan: expected a finite number', id='nan'),
    pytest.param((INF,), {}, 'args[0]', 'inf: expected a finite number', id='infinity'),
    pytest.param((), {'x': [1, -INF]}, "kwargs['x'][1]", '-inf: expected a finite number', id='-infinity-nested'),
    pytest.param(({NAN: 1},), {}, 'key in args[0]', 'nan: expected a finite number', id='nan-key'),
    pytest.param(('a\x00b',), {}, 'args[0]', 'NUL character', id='nul'),
    pytest.param((), {'note': {'k': ['ok', 'x\x00']}}, "kwargs['note']['k'][1]", 'NUL character', id='nul-nested'),
    pytest.param(({'a\x00': 1},), {}, 'key in args[0]', 'NUL character', id='nul-in-a-key'),
    pytest.param((), {'label\x00': 1}, 'key in kwargs', 'NUL character', id='nul-in-a-keyword'),
    pytest.param(('\ud800',), {}, 'args[0]', 'surrogate', id='lone-surrogate'),
    pytest.param(('ok \udfff',), {}, 'args[0]', 'surrogate', id='lone-low-surrogate'),
    pytest.param(('\ud83d\ude00',), {}, 'args[0]', 'surrogate', id='surrogate-pair-as-two-code-points'),
    pytest.param(({'\udc80': 1},), {}, 'key in args[0]', 'surrogate', id='surrogate-in-a-key'),
]


@pytest.mark.parametrize(('args', 'kwargs', 'where', 'what'), POISON)
def test_poison_arguments_are_refused_with_a_value_error_naming_them_and_nothing_is_stored(args, kwargs, where, what):
    task = tasks.add if kwargs else tasks.remember
    with pytest.raises(ValueError) as refused:
        task.enqueue(*args, **kwargs)
    message = str(refused.value)
    assert where in message and what in message, message
    assert not TaskRow.objects.exists()


@pytest.mark.parametrize(('args', 'kwargs', 'where', 'what'), POISON)
def test_after_a_refusal_the_callers_transaction_is_usable(args, kwargs, where, what):
    task = tasks.add if kwargs else tasks.remember
    with transaction.atomic():
        good = tasks.add.enqueue(1, 2)
        with pytest.raises(ValueError):
            task.enqueue(*args, **kwargs)
        # On PostgreSQL a database error would have aborted the transaction:
        # every later statement would fail until the rollback.
        after = tasks.add.enqueue(3, 4)
        assert TaskRow.objects.count() == 2
    assert {row.pk for row in TaskRow.objects.all()} == {int(good.id), int(after.id)}


@pytest.mark.parametrize(
    'value',
    [
        'plain', '', 'tab\tnew line\n', '\x01\x1f control characters', '\\u0000 (the six characters)',
        'é ß 中文 😀 \U0010ffff', 1.5, -0.0, 2**63, -(2**70), True, None,
        {'nested': [1, {'deep': 'ok'}], '': 'empty key'},
    ],
    ids=repr,
)
def test_what_json_and_every_database_hold_is_accepted_and_read_back_unchanged(value):
    result = tasks.remember.enqueue(value)
    stored = tasks.remember.get_result(result.id)
    assert stored.args == [value]
    assert stored.status == TaskResultStatus.READY


def test_a_float_that_is_finite_but_large_is_not_mistaken_for_infinity():
    # (Not read back: PostgreSQL's jsonb gives 1e308 back as the integer 10**308.)
    assert math.isfinite(1e308)
    result = tasks.add.enqueue(1e308, -1e308)
    assert result.args == [1e308, -1e308]
    assert TaskRow.objects.filter(pk=result.id).exists()


# run_after: a task's status holds its due time in milliseconds of the
# years 1 through 9999, in UTC.

LAST = dt.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
FIVE_HOURS_WEST = dt.timezone(-dt.timedelta(hours=5))
FIVE_HOURS_EAST = dt.timezone(dt.timedelta(hours=5))


@pytest.mark.parametrize(
    'run_after',
    [
        dt.datetime.max.replace(tzinfo=UTC),
        LAST + dt.timedelta(microseconds=1),  # rounded up to the next millisecond: past the last
        dt.datetime(9999, 12, 31, 22, tzinfo=FIVE_HOURS_WEST),  # UTC: the year 10000
        dt.datetime.max.replace(tzinfo=FIVE_HOURS_WEST),
    ],
    ids=['max', 'max-millisecond-and-a-microsecond', 'west-of-utc', 'max-west-of-utc'],
)
def test_run_after_past_the_last_millisecond_of_9999_is_refused_naming_it(run_after):
    with pytest.raises(ValueError) as refused:
        tasks.add.using(run_after=run_after).enqueue(1, 2)
    message = str(refused.value)
    assert 'run_after' in message and repr(run_after) in message, message
    assert '9999-12-31 23:59:59.999' in message, message
    assert not TaskRow.objects.exists()


@pytest.mark.parametrize(
    'run_after',
    [dt.datetime.min.replace(tzinfo=FIVE_HOURS_EAST), dt.datetime(1, 1, 1, 4, 59, tzinfo=FIVE_HOURS_EAST)],
    ids=['min-east-of-utc', 'before-year-1-in-utc'],
)
def test_run_after_before_year_1_in_utc_is_refused_naming_it(run_after):
    with pytest.raises(ValueError) as refused:
        tasks.add.using(run_after=run_after).enqueue(1, 2)
    assert 'run_after' in str(refused.value) and repr(run_after) in str(refused.value)
    assert not TaskRow.objects.exists()


def test_the_last_millisecond_of_9999_is_accepted_and_never_due():
    result = tasks.add.using(run_after=LAST).enqueue(1, 2)
    stored = tasks.add.get_result(result.id)
    assert stored.task.run_after == LAST
    assert stored.status == TaskResultStatus.READY
    assert TaskRow.objects.get(pk=result.id).run_after == LAST


@pytest.mark.parametrize(
    'run_after',
    [
        dt.datetime(1970, 1, 1, tzinfo=UTC),
        dt.datetime(1, 1, 1, tzinfo=UTC),
        dt.datetime(1, 1, 1, 5, tzinfo=FIVE_HOURS_EAST),
    ],
    ids=['1970', 'year-1', 'year-1-east-of-utc'],
)
def test_run_after_long_past_is_due_at_once_and_read_back(run_after):
    result = tasks.add.using(run_after=run_after).enqueue(1, 2)
    stored = tasks.add.get_result(result.id)
    assert stored.status == TaskResultStatus.READY
    assert stored.task.run_after == run_after


@pytest.mark.django_db(transaction=True)
def test_after_a_refused_run_after_the_callers_transaction_is_usable():
    with transaction.atomic():
        with pytest.raises(ValueError):
            tasks.add.using(run_after=dt.datetime.max.replace(tzinfo=UTC)).enqueue(1, 2)
        tasks.add.enqueue(3, 4)
    assert TaskRow.objects.count() == 1
