"""Clock and schedule guarantees, with real worker processes.

- A row scheduled in the future is not run before its time, in whatever
  time zone its datetime was written.
- The timeout reclaim never takes a row from a worker still within its
  timeout, and gives back a dead worker's row only once the timeout passed.
- A status written from a non-UTC aware datetime sorts, and runs, where its
  UTC instant belongs.
"""

import datetime as dt
import time
import zoneinfo

import pytest
import pytz

import modelqueue
from modelqueue import State, Status, now
from tests.support.fleet import Fleet
from tests.support.waits import wait_until
from tests.testapp.models import Execution, Task

pytestmark = pytest.mark.django_db(transaction=True)

ZONES = [
    pytz.utc,
    pytz.timezone('Asia/Tokyo'),  # UTC+9: read as UTC it would run 9 hours late
    pytz.timezone('US/Eastern'),  # UTC-5/-4: read as UTC it would run hours early
    zoneinfo.ZoneInfo('America/St_Johns'),  # a half-hour offset
    dt.timezone(dt.timedelta(hours=-11)),
]


@pytest.mark.processes
def test_scheduled_rows_are_not_run_early_in_any_time_zone(spawn, tmp_path):
    start = now()
    scheduled = {}
    for number, zone in enumerate(ZONES * 2):
        when = (start + dt.timedelta(seconds=1 + number * 0.25)).astimezone(zone)
        task = Task.objects.create(data=f'scheduled {zone}', status=Status.waiting(when, 0))
        scheduled[task.pk] = when
    early = Task.objects.create(data='due now', status=Status.waiting(start, 0))
    fleet = Fleet(spawn, tmp_path, 'record_and_stamp', '--sleep', '0.1', '--no-listen')
    fleet.start(2)

    wait_until(
        lambda: Status.tally(Task.objects.all(), 'status')['finished'] == len(scheduled) + 1,
        60,
        'every scheduled row to run',
    )
    assert [code for code, _ in fleet.stop()] == [0, 0]
    assert Execution.objects.filter(task=early).count() == 1
    for task in Task.objects.exclude(pk=early.pk):
        started = dt.datetime.fromisoformat(task.note)
        assert started >= scheduled[task.pk].replace(microsecond=0), (task.data, task.note)
        assert Execution.objects.filter(task=task).count() == 1


def test_a_future_row_in_a_western_zone_is_not_due_yet():
    """Eastern wall-clock time read as UTC would be hours in the past."""
    soon = (now() + dt.timedelta(seconds=30)).astimezone(pytz.timezone('US/Eastern'))
    Task.objects.create(data='later', status=Status.waiting(soon, 0))
    assert modelqueue.run(Task.objects.all(), 'status', lambda task: None) is None
    assert Status(Task.objects.get().status).state == State.waiting


def test_statuses_from_any_time_zone_sort_and_run_by_utc_instant():
    base = dt.datetime(2024, 3, 10, 6, 30, tzinfo=pytz.utc)  # a DST change in the US
    instants = [base + dt.timedelta(minutes=minutes) for minutes in (50, -70, 0, 125, 5, -1)]
    zones = ZONES + [pytz.timezone('Australia/Lord_Howe')]
    for index, instant in enumerate(instants):
        zone = zones[index % len(zones)]
        Task.objects.create(data=instant.isoformat(), status=Status.waiting(instant.astimezone(zone), 0))
    by_instant = sorted(instants)

    stored = [task.data for task in Task.objects.order_by('status')]
    assert stored == [instant.isoformat() for instant in by_instant]
    ran = []
    while modelqueue.run(Task.objects.all(), 'status', lambda task: ran.append(task.data)):
        pass
    assert ran == [instant.isoformat() for instant in by_instant]


@pytest.mark.processes
def test_reclaim_never_takes_a_row_within_its_timeout(spawn, tmp_path):
    """While one worker's action runs, another's run() finds nothing to steal."""
    task = Task.objects.create(data='slow', status=Status.waiting(now(), 0))
    fleet = Fleet(
        spawn,
        tmp_path,
        'record_and_stamp',
        '--timeout', '6', '--sleep', '0.1', '--no-listen',
        env={'MODELQUEUE_TEST_ACTION_SECONDS': '2'},
    )
    fleet.start()
    wait_until(lambda: Execution.objects.filter(task=task).exists(), 30, 'the worker to start')
    stolen = []
    while Status(Task.objects.get(pk=task.pk).status).state == State.working:
        found = modelqueue.run(
            Task.objects.all(), 'status', stolen.append, timeout=dt.timedelta(seconds=6)
        )
        assert found is None
    assert stolen == []
    assert [code for code, _ in fleet.stop()] == [0]
    saved = Task.objects.get(pk=task.pk)
    assert Status(saved.status).state == State.finished
    assert Status(saved.status).attempts == 1
    assert Execution.objects.filter(task=task).count() == 1


@pytest.mark.processes
def test_a_dead_workers_row_comes_back_only_after_its_timeout(spawn, tmp_path):
    task = Task.objects.create(data='orphan', status=Status.waiting(now(), 0))
    fleet = Fleet(
        spawn,
        tmp_path,
        'record_and_stamp',
        '--timeout', '2', '--no-listen',
        env={'MODELQUEUE_TEST_ACTION_SECONDS': '30'},
    )
    fleet.start()
    (pid,) = fleet.pids()
    wait_until(lambda: Execution.objects.filter(task=task).exists(), 30, 'the worker to start')
    claimed = Status(Task.objects.get(pk=task.pk).status)
    assert claimed.state == State.working
    fleet.running[0].kill()
    fleet.running[0].wait(timeout=30)
    fleet.running.clear()

    timeout = dt.timedelta(seconds=2)
    ran = []
    while not ran:
        checked = now()
        modelqueue.run(Task.objects.all(), 'status', ran.append, timeout=timeout)
        if not ran:  # bounded: fails 30 s after the timeout
            assert Status(Task.objects.get(pk=task.pk).status) == claimed
            assert checked < claimed.parse()[1] + timeout + dt.timedelta(seconds=30), (
                'the stalled row was never reclaimed'
            )
            time.sleep(0.05)
    assert now() >= claimed.parse()[1] + timeout
    saved = Status(Task.objects.get(pk=task.pk).status)
    assert saved.state == State.finished
    assert saved.attempts == 2  # the dead worker's attempt counted
    assert list(Execution.objects.filter(task=task).values_list('pid', flat=True)) == [pid]
