"""The status ranges: each bound is the first or last status it must include.

Pure: a range is a ``Q`` of two bounds, read here without a database.
"""

import datetime as dt

import pytest

from modelqueue import ranges
from modelqueue.status import MAX_ATTEMPTS, State, Status

AT = dt.datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone.utc)
TIMEOUT = dt.timedelta(minutes=10)


def bounds(q):
    """(low, high) of a range made by ranges.between."""
    found = dict(q.children)
    assert set(found) == {'status__gte', 'status__lte'}, q
    return found['status__gte'], found['status__lte']


def contains(q, status):
    low, high = bounds(q)
    return low <= int(status) <= high


def test_due_and_scheduled_split_the_waiting_state_at_the_time_with_no_gap_or_overlap():
    due_low, due_high = bounds(ranges.due('status', AT))
    scheduled_low, scheduled_high = bounds(ranges.scheduled('status', AT))
    assert due_low == Status.minimum(State.waiting)
    assert due_high == Status.waiting(AT, MAX_ATTEMPTS)
    assert scheduled_low == due_high + 1 == Status.waiting(AT + dt.timedelta(milliseconds=1), 0)
    assert scheduled_high == Status.maximum(State.waiting)


def test_a_row_waiting_until_exactly_the_time_is_due_not_scheduled():
    at_the_time = Status.waiting(AT, MAX_ATTEMPTS)
    assert contains(ranges.due('status', AT), at_the_time)
    assert not contains(ranges.scheduled('status', AT), at_the_time)


def test_scheduled_is_relative_to_the_time_given_not_to_now():
    later = AT + dt.timedelta(days=3650)
    assert bounds(ranges.scheduled('status', later))[0] == Status.waiting(later, MAX_ATTEMPTS) + 1


def test_due_with_timestamp_starts_at_the_first_status_of_since():
    since = ranges.FIRST_TIMESTAMP
    low, high = bounds(ranges.due_with_timestamp('status', AT))
    assert low == Status.waiting(since, 0)
    assert high == Status.waiting(AT, MAX_ATTEMPTS)
    assert contains(ranges.due_with_timestamp('status', AT), Status.waiting(since, 0))


def test_a_row_claimed_exactly_timeout_ago_is_stalled_whatever_its_attempts():
    stalled = ranges.stalled('status', AT, TIMEOUT)
    for attempts in (0, 5, MAX_ATTEMPTS):
        assert contains(stalled, Status.working(AT - TIMEOUT, attempts))
    later = AT - TIMEOUT + dt.timedelta(milliseconds=1)
    assert not contains(stalled, Status.working(later, 0))
    assert bounds(stalled) == (Status.minimum(State.working), ranges.last_stalled(AT, TIMEOUT))
    assert ranges.last_stalled(AT, TIMEOUT) == Status.working(AT - TIMEOUT, MAX_ATTEMPTS)


@pytest.mark.parametrize('state', [State.finished, State.canceled])
def test_written_includes_both_ends_with_any_attempts(state):
    until = AT + dt.timedelta(hours=1)
    written = ranges.written('status', state, AT, until)
    assert bounds(written) == (Status.combine(state, AT, 0), Status.combine(state, until, MAX_ATTEMPTS))
    assert contains(written, Status.combine(state, AT, 0))
    assert contains(written, Status.combine(state, until, MAX_ATTEMPTS))


def test_in_states_without_a_state_says_what_it_expected():
    with pytest.raises(ValueError) as raised:
        ranges.in_states('status')
    assert str(raised.value) == 'invalid states (): expected one state or more'
