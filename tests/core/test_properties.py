"""Property-based tests: any input is either a valid status or a ValueError.

Hypothesis throws arbitrary integers, strings, datetimes in any time zone
and odd objects at Status, combine, parse and the arguments of run(). Each
result is either a status that round-trips exactly or a ValueError whose
message names the offending value; nothing else escapes (no OverflowError,
TypeError or silently wrong status). The bulk-update expressions are checked
against the pure encoding on the selected database.
"""

import datetime as dt
import zoneinfo

import pytest
import pytz
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import modelqueue
from modelqueue import State, Status
from modelqueue.expressions import (
    with_attempts,
    with_priority,
    with_state,
    with_state_and_priority,
)
from modelqueue.status import MAX_PRIORITY, datetime_to_priority
from tests.testapp.models import Task

FIRST_STATUS = 10**18
LAST_STATUS = 6 * 10**18 - 1
STATE_NAMES = [state.name for state in Status.states]

ZONES = st.one_of(
    st.none(),
    st.timezones(),  # zoneinfo zones
    st.sampled_from([pytz.utc, pytz.timezone('Asia/Kolkata'), pytz.timezone('US/Eastern')]),
    st.integers(min_value=-24 * 60 + 1, max_value=24 * 60 - 1).map(
        lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
    ),
)


def with_zone(when, zone):
    if zone is None:
        return when
    if hasattr(zone, 'localize'):
        return zone.localize(when)
    return when.replace(tzinfo=zone)


ANY_DATETIME = st.builds(with_zone, st.datetimes(), ZONES)
# The edges of the datetime range, where converting to UTC leaves it.
EARLIEST_EAST = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5)))
LATEST_WEST = dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.binary(max_size=10),
    st.dates(),
    st.timedeltas(),
    st.decimals(allow_nan=False, allow_infinity=False, places=0),
    st.lists(st.integers(), max_size=2),
)


def utc_milliseconds(when):
    """The UTC instant of `when`, truncated to milliseconds (naive is UTC)."""
    if when.tzinfo is None or when.utcoffset() is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    epoch = dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)
    delta = when - epoch  # exact: subtraction of aware datetimes never overflows
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def representable_in_utc(when):
    """Whether the UTC instant of `when` is a datetime (years 1 through 9999)."""
    if when.tzinfo is None or when.utcoffset() is None:
        return True
    first = utc_milliseconds(dt.datetime(1, 1, 1))
    last = utc_milliseconds(dt.datetime(9999, 12, 31, 23, 59, 59, 999999))
    return first <= utc_milliseconds(when) <= last


def assert_names(error, *values):
    message = str(error)
    assert any(repr(value) in message for value in values), (message, values)


@given(st.integers())
def test_integers_are_statuses_exactly_in_the_19_digit_range(value):
    if FIRST_STATUS <= value <= LAST_STATUS:
        status = Status(value)
        assert status == value
        assert Status.combine(*status.parse(datetime=False)) == status
        assert status.state == value // 10**18
        assert status.attempts == value % 10
        assert status.priority == value % 10**18 // 10
        assert status < 2**63  # fits a signed 64-bit column
    else:
        with pytest.raises(ValueError) as info:
            Status(value)
        assert_names(info.value, value)


@given(
    st.one_of(
        st.text(max_size=40),
        st.from_regex(r'\A\s*[+-]?[0-9_]{1,22}\s*\Z'),
        st.integers(min_value=FIRST_STATUS, max_value=LAST_STATUS).map(str),
    )
)
def test_strings_are_statuses_or_value_errors_naming_them(value):
    try:
        status = Status(value)
    except ValueError as error:
        assert_names(error, value)
    else:
        assert status == int(value)
        assert Status(str(status)) == status
        assert Status.combine(*status.parse(datetime=False)) == status


@given(ODD_VALUES)
def test_other_objects_are_refused_by_name(value):
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return  # covered above
    try:
        status = Status(value)
    except ValueError as error:
        assert_names(error, value)
    else:  # an integral Decimal (or bytes of digits) in range, taken exactly
        assert status == int(value)


@given(st.integers(min_value=FIRST_STATUS, max_value=LAST_STATUS))
def test_parse_then_combine_round_trips_with_datetimes(value):
    status = Status(value)
    state, priority, attempts = status.parse()
    if isinstance(priority, dt.datetime):
        assert priority.tzinfo is pytz.utc
        assert datetime_to_priority(priority) == status.priority
    else:
        assert priority == status.priority
    assert Status.combine(state, priority, attempts) == status
    assert Status.combine(state.name, priority, attempts) == status
    assert Status.combine(int(state), priority, attempts) == status


@given(
    state=st.one_of(
        st.sampled_from(Status.states),
        st.sampled_from(STATE_NAMES),
        st.integers(min_value=-2, max_value=7),
        st.text(max_size=10),
        ODD_VALUES,
    ),
    priority=st.one_of(st.integers(), ANY_DATETIME, ODD_VALUES),
    attempts=st.one_of(st.integers(min_value=-3, max_value=12), st.integers(), ODD_VALUES),
)
@example(state='waiting', priority=EARLIEST_EAST, attempts=0)
@example(state=2, priority=LATEST_WEST, attempts=10)
def test_combine_is_exact_or_names_the_bad_field(state, priority, attempts):
    state_ok = (
        isinstance(state, int) and not isinstance(state, bool) and 1 <= state <= 5
    ) or (isinstance(state, str) and state in STATE_NAMES)
    if isinstance(priority, dt.datetime):
        priority_ok = representable_in_utc(priority)
    else:
        priority_ok = (
            isinstance(priority, int)
            and not isinstance(priority, bool)
            and 0 <= priority <= MAX_PRIORITY
        )
    attempts_ok = (
        isinstance(attempts, int) and not isinstance(attempts, bool) and 0 <= attempts <= 9
    )
    try:
        status = Status.combine(state, priority, attempts)
    except ValueError as error:
        assert not (state_ok and priority_ok and attempts_ok), error
        bad = [
            value
            for value, ok in ((state, state_ok), (priority, priority_ok), (attempts, attempts_ok))
            if not ok
        ]
        assert_names(error, *bad)
        return
    assert state_ok and priority_ok and attempts_ok
    expected_priority = (
        datetime_to_priority(priority) if isinstance(priority, dt.datetime) else priority
    )
    assert status.parse(datetime=False) == (State.get(state), expected_priority, attempts)
    assert Status(int(status)) == status


@given(ANY_DATETIME, ANY_DATETIME)
def test_statuses_sort_by_utc_instant_in_any_time_zone(first, second):
    if not (representable_in_utc(first) and representable_in_utc(second)):
        return
    a, b = Status.waiting(first, 0), Status.waiting(second, 0)
    assert (a < b) == (utc_milliseconds(first) < utc_milliseconds(second))
    assert (a == b) == (utc_milliseconds(first) == utc_milliseconds(second))


@given(ANY_DATETIME)
@example(EARLIEST_EAST)
@example(LATEST_WEST)
@example(dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=pytz.utc))
def test_every_datetime_is_a_status_or_a_value_error_naming_it(when):
    try:
        status = Status.waiting(when, 0)
    except ValueError as error:
        assert not representable_in_utc(when)
        assert_names(error, when)
    else:
        parsed = status.parse()[1]
        assert parsed.tzinfo is pytz.utc
        assert utc_milliseconds(parsed) == utc_milliseconds(when)


def timedelta_ok(value):
    # Spans whose sum with now() stays within the datetime range (1000 years).
    return isinstance(value, dt.timedelta) and (
        dt.timedelta(0) <= value <= dt.timedelta(days=365_000)
    )


@given(
    delay=st.one_of(st.timedeltas(), ODD_VALUES, st.integers()),
)
@example(delay=dt.timedelta.max)
def test_retry_and_abort_delays(delay):
    for exception in (modelqueue.Retry, modelqueue.Abort):
        if timedelta_ok(delay):
            assert exception(delay).delay == delay
        elif delay is None:
            assert exception(delay).delay is None
        else:
            with pytest.raises(ValueError) as info:
                exception(delay)
            assert_names(info.value, delay)


@pytest.mark.django_db
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    retry=st.one_of(st.integers(min_value=-5, max_value=20), ODD_VALUES),
    timeout=st.one_of(st.timedeltas(), ODD_VALUES),
    delay=st.one_of(st.timedeltas(), ODD_VALUES),
)
@example(retry=0, timeout=dt.timedelta.max, delay=dt.timedelta(0))
@example(retry=0, timeout=dt.timedelta(0), delay=dt.timedelta.max)
def test_run_arguments_are_checked_before_anything_changes(retry, timeout, delay):
    Task.objects.all().delete()
    task = Task.objects.create(data='x', status=Status.waiting(0, 0))
    retry_ok = isinstance(retry, int) and not isinstance(retry, bool) and 0 <= retry <= 8
    checks = ((retry, retry_ok), (timeout, timedelta_ok(timeout)), (delay, timedelta_ok(delay)))
    ran = []

    def abort(task):
        ran.append(task)
        raise modelqueue.Abort  # the delay is used to schedule the next attempt

    try:
        modelqueue.run(
            Task.objects.all(), 'status', abort, retry=retry, timeout=timeout, delay=delay
        )
    except ValueError as error:
        assert not all(ok for _, ok in checks)
        assert_names(error, *[value for value, ok in checks if not ok])
        assert ran == []
        assert Task.objects.get(pk=task.pk).status == Status.waiting(0, 0)
    else:
        assert all(ok for _, ok in checks)
        assert [t.pk for t in ran] == [task.pk]
        assert Status(Task.objects.get(pk=task.pk).status).state in (
            State.waiting,
            State.canceled,
        )


STATUSES = st.integers(min_value=FIRST_STATUS, max_value=LAST_STATUS)
TARGET_PRIORITIES = st.one_of(
    st.integers(min_value=0, max_value=MAX_PRIORITY),
    st.builds(with_zone, st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 1, 1)), ZONES),
)


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=STATUSES,
    state=st.sampled_from(Status.states),
    priority=TARGET_PRIORITIES,
    attempts=st.integers(min_value=0, max_value=9),
)
def test_bulk_expressions_match_the_encoding_on_the_database(value, state, priority, attempts):
    """The SQL arithmetic of admin actions agrees with Status, digit for digit."""
    status = Status(value)
    pk = Task.objects.create(data='x', status=status).pk
    row = Task.objects.filter(pk=pk)

    def stored():
        return Status(row.values_list('status', flat=True).get())

    row.update(status=with_state('status', state))
    assert stored() == Status.combine(state, status.priority, status.attempts)
    row.update(status=with_priority('status', priority))
    assert stored() == Status.combine(state, priority, status.attempts)
    row.update(status=with_attempts('status', attempts))
    assert stored() == Status.combine(state, priority, attempts)
    row.update(status=status)
    row.update(status=with_state_and_priority('status', state, priority))
    assert stored() == Status.combine(state, priority, status.attempts)
    for each in Status.states:
        selected = row.filter(**Status.filter('status', each)).exists()
        assert selected == (each == state)
    row.delete()


def test_zoneinfo_and_pytz_agree():
    """The same wall-clock time in the same zone gives the same status."""
    wall = dt.datetime(2026, 3, 8, 12, 30)
    assert Status.waiting(wall.replace(tzinfo=zoneinfo.ZoneInfo('US/Eastern'))) == (
        Status.waiting(pytz.timezone('US/Eastern').localize(wall))
    )
