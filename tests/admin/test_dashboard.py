"""The dashboard's queries: tally, backlog, stalled and throughput on real rows."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from modelqueue import Status
from modelqueue.admin import figures
from modelqueue.admin.figures import THROUGHPUT_MINUTES, queue_figures
from tests.testapp.models import Task

pytestmark = pytest.mark.django_db

CURRENT = dt.datetime(2030, 6, 15, 12, 30, 45, 500000, tzinfo=dt.timezone.utc)


def ago(**delta):
    return CURRENT - dt.timedelta(**delta)


def add(*statuses):
    Task.objects.bulk_create(Task(data=str(status), status=status) for status in statuses)


def test_backlog_splits_due_and_scheduled_and_ignores_integer_priorities_for_age():
    add(
        Status.waiting(7),  # integer priority: due, but has no age
        Status.waiting(ago(minutes=10), 2),
        Status.waiting(ago(seconds=1)),
        Status.waiting(CURRENT + dt.timedelta(seconds=1)),
        Status.waiting(CURRENT + dt.timedelta(days=3)),
        Status.created(ago(days=1)),
    )
    figures = queue_figures(Task.objects.all(), 'status', current=CURRENT)
    assert figures['tally'] == {
        'created': 1, 'waiting': 5, 'working': 0, 'finished': 0, 'canceled': 0
    }
    assert (figures['due'], figures['scheduled']) == (3, 2)
    assert figures['oldest_due'] == '2030-06-15T12:20:45.500000Z'
    assert figures['latency_seconds'] == 600


def test_only_integer_priorities_due_means_no_age():
    add(Status.waiting(0), Status.waiting(9999999999999))
    figures = queue_figures(Task.objects.all(), 'status', current=CURRENT)
    assert figures['due'] == 2
    assert figures['oldest_due'] is None and figures['latency_seconds'] is None


def test_stalled_counts_working_rows_older_than_the_timeout():
    add(
        Status.working(ago(minutes=61)),
        Status.working(ago(hours=5), 3),
        Status.working(ago(minutes=59)),
        Status.working(CURRENT),
    )
    figures = queue_figures(Task.objects.all(), 'status', current=CURRENT)
    assert figures['stalled'] == 2
    short = queue_figures(Task.objects.all(), 'status', dt.timedelta(minutes=30), CURRENT)
    assert short['stalled'] == 3


def test_throughput_per_minute_of_the_last_hour():
    add(
        Status.finished(CURRENT, 1),  # this minute: the last slot
        Status.finished(ago(seconds=40), 9),  # 12:30:05, the same minute
        Status.finished(ago(minutes=1)),  # 12:29
        Status.canceled(ago(minutes=1), 4),
        Status.finished(ago(minutes=59)),  # 11:31: the first slot
        Status.finished(ago(minutes=61)),  # 11:29: too old
        Status.canceled(ago(hours=3)),  # too old
        Status.finished(CURRENT + dt.timedelta(minutes=5)),  # future: not counted
        Status.waiting(ago(minutes=1)),  # not written by run()
        Status.working(ago(minutes=1)),
    )
    throughput = queue_figures(Task.objects.all(), 'status', current=CURRENT)['throughput']
    assert len(throughput['minutes']) == THROUGHPUT_MINUTES
    assert throughput['minutes'][0] == '2030-06-15T11:31:00Z'
    assert throughput['minutes'][-1] == '2030-06-15T12:30:00Z'
    finished = dict(zip(throughput['minutes'], throughput['finished']))
    canceled = dict(zip(throughput['minutes'], throughput['canceled']))
    assert {minute: n for minute, n in finished.items() if n} == {
        '2030-06-15T11:31:00Z': 1,
        '2030-06-15T12:29:00Z': 1,
        '2030-06-15T12:30:00Z': 2,
    }
    assert {minute: n for minute, n in canceled.items() if n} == {'2030-06-15T12:29:00Z': 1}


def test_figures_follow_the_queryset():
    add(Status.waiting(ago(minutes=1)), Status.finished(ago(minutes=1)))
    figures = queue_figures(
        Task.objects.filter(status__gte=Status.minimum('finished')), 'status', current=CURRENT
    )
    assert figures['tally']['waiting'] == 0 and figures['tally']['finished'] == 1
    assert figures['due'] == 0


def test_query_count_does_not_grow_with_rows():
    def queries():
        with CaptureQueriesContext(connection) as captured:
            queue_figures(Task.objects.all(), 'status', current=CURRENT)
        # Reads only: PostgreSQL's counts also SET LOCAL their plan settings,
        # and ask once whether the queue has state counters.
        return len([query for query in captured if query['sql'].startswith('SELECT')])

    empty = queries()
    add(*(Status.finished(ago(minutes=minute % 90)) for minute in range(300)))
    add(*(Status.waiting(ago(minutes=minute)) for minute in range(50)))
    assert queries() == empty <= (10 if connection.vendor == 'postgresql' else 9)


def test_rows_written_while_the_figures_are_read_count_in_the_last_minute():
    """A worker finishing rows between `current` and the queries: the tally
    counts them, and so must the throughput beside it."""
    add(
        Status.finished(CURRENT + dt.timedelta(seconds=20)),
        Status.canceled(CURRENT + dt.timedelta(seconds=50)),
        Status.finished(CURRENT + dt.timedelta(hours=2)),  # not a late write
    )
    figures = queue_figures(Task.objects.all(), 'status', current=CURRENT)
    assert figures['throughput']['finished'][-1] == 1
    assert figures['throughput']['canceled'][-1] == 1
    assert figures['finished_last_hour'] == 1


def test_an_empty_queue_has_no_backlog_no_stall_and_sixty_empty_minutes():
    current = dt.datetime(2030, 1, 1, 12, 0, 30, tzinfo=dt.timezone.utc)
    nothing = Task.objects.none()
    assert figures.backlog(nothing, 'status', current) == (0, None)
    assert figures.stalled(nothing, 'status', current) == 0
    minutes, finished, canceled = figures.throughput(nothing, 'status', current)
    assert (minutes[0].isoformat(), minutes[-1].isoformat()) == (
        '2030-01-01T11:01:00+00:00',
        '2030-01-01T12:00:00+00:00',
    )
    assert finished == canceled == [0] * 60
    empty = queue_figures(nothing, 'status', current=current)
    assert (empty['due'], empty['stalled'], empty['oldest_due']) == (0, 0, None)
