"""The encoding: State and Status, pure and exact."""

import datetime as dt
import pickle
import time

import pytest
import pytz
from hypothesis import given
from hypothesis import strategies as st

from modelqueue import ONE_HOUR, ZERO_SECS, State, Status, now
from modelqueue.ranges import FIRST_TIMESTAMP
from modelqueue.status import datetime_to_priority, next_timestamp, priority_to_datetime
from tests.testapp.models import Task

VALID_DATETIMES = st.datetimes(
    min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59)
)


def test_states_are_ordered_and_named():
    assert [int(state) for state in Status.states] == [1, 2, 3, 4, 5]
    assert [str(state) for state in Status.states] == [
        'created',
        'waiting',
        'working',
        'finished',
        'canceled',
    ]
    assert all(getattr(State, state.name) is state for state in Status.states)


def test_constants():
    assert ONE_HOUR == dt.timedelta(hours=1)
    assert ZERO_SECS == dt.timedelta(0)


def test_now_is_aware_utc():
    value = now()
    assert value.tzinfo is pytz.utc
    assert abs(value - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(seconds=5)


def test_constructors_default_to_now():
    before = Status.waiting(now(), 0)
    status = Status.waiting()
    after = Status.waiting(now(), 0)
    assert before <= status <= after
    assert status.state == State.waiting
    assert status.attempts == 0


def test_aware_datetimes_are_converted_to_utc():
    tokyo = pytz.timezone('Asia/Tokyo').localize(dt.datetime(2018, 1, 2, 12, 0))
    utc = dt.datetime(2018, 1, 2, 3, 0, tzinfo=pytz.utc)
    assert Status.waiting(tokyo) == Status.waiting(utc)
    offset = dt.datetime(2018, 1, 2, 4, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert Status.waiting(offset) == Status.waiting(utc)


def test_naive_datetimes_are_taken_as_utc():
    naive = dt.datetime(2018, 1, 2, 3, 0)
    assert Status.waiting(naive) == Status.waiting(naive.replace(tzinfo=pytz.utc))


def test_parse_keeps_integer_priorities():
    assert Status.waiting(123, 4).parse() == (State.waiting, 123, 4)
    month_13 = 20181302030456789
    assert Status.waiting(month_13).parse()[1] == month_13


def test_str_is_the_plain_number():
    # Forms and templates render the number, as for any integer field.
    assert str(Status(2000000000000000001)) == '2000000000000000001'


@pytest.mark.parametrize(
    'value',
    [
        0,
        -1,
        999999999999999999,
        6000000000000000000,
        9223372036854775807,
        2**64,
        'waiting',
        '',
        None,
        2.5,
        True,
    ],
)
def test_invalid_status_names_the_value(value):
    with pytest.raises(ValueError, match='invalid status') as info:
        Status(value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize('attempts', [-1, 10, 1.0, '1', None, True])
def test_invalid_attempts(attempts):
    with pytest.raises(ValueError, match=r'invalid attempts .*0 through 9'):
        Status.combine('waiting', 0, attempts)


@pytest.mark.parametrize('priority', [-1, 10**17, 2.5, '1', True])
def test_invalid_priority(priority):
    with pytest.raises(ValueError, match=r'invalid priority .*17 digits'):
        Status.combine('waiting', priority, 0)


@pytest.mark.parametrize('state', ['paused', '', 0, 6, None, 2.0])
def test_invalid_state(state):
    with pytest.raises(ValueError, match=r'unknown state .*expected one of created'):
        Status.combine(state, 0, 0)
    with pytest.raises(ValueError, match='unknown state'):
        Status.filter('status', state)


def test_minimum_and_maximum_bound_each_state():
    for state in Status.states:
        assert Status.minimum(state) == Status.combine(state, 0, 0)
        assert Status.maximum(state) == Status.combine(state, 10**17 - 1, 9)
        assert Status(Status.minimum(state)).state == state
        assert Status(Status.maximum(state)).state == state


def test_states_and_statuses_pickle():
    assert pickle.loads(pickle.dumps(State.working)) == State.working
    assert pickle.loads(pickle.dumps(State.working)).name == 'working'
    status = Status(3201801020304567896)
    assert pickle.loads(pickle.dumps(status)) == status


@given(
    state=st.sampled_from(Status.states),
    priority=st.integers(min_value=0, max_value=10**17 - 1),
    attempts=st.integers(min_value=0, max_value=9),
)
def test_integer_priorities_round_trip(state, priority, attempts):
    status = Status.combine(state, priority, attempts)
    assert Status(int(status)) == status
    assert status.parse(datetime=False) == (state, priority, attempts)
    assert status.state == state and status.priority == priority
    assert status.attempts == attempts
    assert Status.minimum(state) <= status <= Status.maximum(state)
    assert status < 2**63


@given(
    state=st.sampled_from([state.name for state in Status.states]),
    when=VALID_DATETIMES,
    zone=st.sampled_from([None, pytz.utc, pytz.timezone('America/Los_Angeles')]),
    attempts=st.integers(min_value=0, max_value=9),
)
def test_datetime_priorities_round_trip(state, when, zone, attempts):
    if zone is not None:
        try:
            when = zone.localize(when) if hasattr(zone, 'localize') else when
            when.astimezone(pytz.utc)
        except (OverflowError, ValueError):
            return  # the instant is not representable in UTC
    status = Status.combine(state, when, attempts)
    parsed_state, parsed_when, parsed_attempts = status.parse()
    expected = when if when.tzinfo else when.replace(tzinfo=pytz.utc)
    expected = expected.astimezone(pytz.utc)
    assert parsed_state.name == state
    assert parsed_attempts == attempts
    assert parsed_when == expected.replace(microsecond=expected.microsecond // 1000 * 1000)
    assert parsed_when.tzinfo is pytz.utc


@given(st.datetimes(), st.datetimes())
def test_datetime_order_is_priority_order(first, second):
    if first < second:
        assert Status.waiting(first) <= Status.waiting(second)


@given(st.one_of(st.integers(), st.text(), st.floats(), st.none(), st.binary()))
def test_arbitrary_values_are_statuses_or_value_errors(value):
    try:
        status = Status(value)
    except ValueError as error:
        assert repr(value)[:50] in str(error) or len(repr(value)) > 50
    else:
        assert Status.combine(*status.parse(datetime=False)) == status


@given(st.integers(min_value=0, max_value=10**17 - 1))
def test_next_timestamp_is_the_first_real_timestamp_at_or_after(priority):
    found = next_timestamp(priority)
    if found is None:
        assert priority >= 99991231235959000
        return
    assert found >= priority and priority_to_datetime(found) is not None
    # Nothing real lies between: the millisecond before is no timestamp, or before `priority`.
    if found > priority and found > FIRST_TIMESTAMP:
        before = priority_to_datetime(found) - dt.timedelta(milliseconds=1)
        assert datetime_to_priority(before) < priority


@pytest.mark.parametrize(
    ('priority', 'expected'),
    [
        (20261232000000000, 20270101000000000),  # December 32: next year
        (20261300000000000, 20270101000000000),  # month 13
        (20260000000000000, 20260101000000000),  # month 0: January
        (20260100000000000, 20260101000000000),  # day 0: the first
        (20260230123456789, 20260301000000000),  # February 30
        (20260101240000000, 20260102000000000),  # hour 24 on the first day: the next day
        (20260131106000000, 20260131110000000),  # minute 60 on the last day: the next hour
        (20260131231060000, 20260131231100000),  # second 60 at 23:10: the next minute
        (20260115101060123, 20260115101100000),  # second 60: the next minute
        (20261231235960000, 20270101000000000),  # second 60 at the year's end
        (11300000000000, 20101000000000),  # year 1, month 13: year 2
    ],
)
def test_next_timestamp_rolls_over_the_first_impossible_part(priority, expected):
    assert next_timestamp(priority) == expected
    assert priority_to_datetime(expected) is not None


def test_priorities_of_aware_datetimes_are_utc_whatever_the_local_zone(monkeypatch):
    tokyo = pytz.timezone('Asia/Tokyo').localize(dt.datetime(2026, 1, 2, 12, 0))
    monkeypatch.setenv('TZ', 'America/New_York')
    time.tzset()
    try:
        assert datetime_to_priority(tokyo) == 20260102030000000
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_datetime_whose_utc_time_is_before_year_1_says_so():
    early = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    with pytest.raises(ValueError) as raised:
        datetime_to_priority(early)
    assert str(raised.value) == (
        f'invalid priority {early!r}: its UTC time is outside years 1 through 9999'
    )


@pytest.mark.django_db
def test_status_tally_counts_rows_by_state():
    for status in (Status.waiting(), Status.waiting(), Status.finished(), Status.canceled()):
        Task.objects.create(data='task', status=status)
    assert Status.tally(Task.objects.all(), 'status') == {
        'created': 0, 'waiting': 2, 'working': 0, 'finished': 1, 'canceled': 1,
    }
