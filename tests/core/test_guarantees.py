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
from tests.support.gates import ACTION as WAITS_AT_THE_GATE
from tests.support.gates import Gate
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
        assert started >= to_the_millisecond(scheduled[task.pk]), (task.data, task.note)
        assert Execution.objects.filter(task=task).count() == 1


def to_the_millisecond(when):
    """`when` as a priority keeps it: microseconds cut to milliseconds."""
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


@pytest.mark.processes
def test_rows_due_within_the_second_wait_for_their_millisecond(spawn, tmp_path):
    """A row due 100 ms from now is not run at 0 ms: schedules hold to the millisecond."""
    fleet = Fleet(spawn, tmp_path, 'record_and_stamp', '--sleep', '0.01', '--no-listen')
    fleet.start(1)  # idle and polling before the rows exist
    start = now()
    scheduled = {}
    for number in range(12):
        when = start + dt.timedelta(milliseconds=400 + 130 * number)
        task = Task.objects.create(data=f'at {number}', status=Status.waiting(when, 0))
        scheduled[task.pk] = when
    wait_until(
        lambda: Status.tally(Task.objects.all(), 'status')['finished'] == len(scheduled),
        60,
        'every scheduled row to run',
    )
    assert [code for code, _ in fleet.stop()] == [0]
    for task in Task.objects.all():
        started = dt.datetime.fromisoformat(task.note)
        assert started >= to_the_millisecond(scheduled[task.pk]), (task.data, task.note)


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
def test_reclaim_never_takes_a_row_within_its_timeout(spawn, tmp_path, gate):
    """While one worker's action runs, another's run() finds nothing to steal.

    The action waits at a gate, so every run() below happens mid-action;
    each must also happen within the timeout of the claim, or the test has
    not tested what it says and fails.
    """
    timeout = dt.timedelta(seconds=6)
    task = Task.objects.create(data='slow', status=Status.waiting(now(), 0))
    fleet = Fleet(
        spawn, tmp_path, WAITS_AT_THE_GATE, '--timeout', '6', '--sleep', '0.1', '--no-listen',
        env=gate.env,
    )
    fleet.start()
    wait_until(lambda: Execution.objects.filter(task=task).exists(), 30, 'the worker to start')
    claimed = Status(Task.objects.get(pk=task.pk).status)
    assert claimed.state == State.working
    stolen, looks = [], 0
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:  # a second of tries, all within the timeout
        assert modelqueue.run(Task.objects.all(), 'status', stolen.append, timeout=timeout) is None
        looks += 1
    assert now() < claimed.parse()[1] + timeout, 'too slow: the tries were not all within the timeout'
    assert Status(Task.objects.get(pk=task.pk).status) == claimed
    assert looks >= 2 and stolen == []
    gate.open()
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


@pytest.mark.processes
def test_a_live_worker_past_its_timeout_never_overwrites_the_worker_that_reclaimed_its_row(
    spawn, tmp_path
):
    """Worker A's action outlives A's timeout; worker B reclaims the row and runs it.

    A's completion comes while B holds the row: it must be fenced off by the
    exact status A wrote, not merely by "still working", so B's outcome and
    the field B's action wrote are what the row keeps. Each action waits at
    a gate of its own: A's opens once B's action has begun, B's once A has
    finished, so the interleaving is this one whatever the machine's load.
    """
    task = Task.objects.create(data='slow', status=Status.waiting(now(), 0))
    gates = {name: Gate(tmp_path / f'{name}.gate') for name in ('first', 'second')}

    def worker(name, *options):
        (tmp_path / name).mkdir()
        fleet = Fleet(
            spawn, tmp_path / name, WAITS_AT_THE_GATE, '--timeout', '1', '--no-listen', *options,
            env=gates[name].env,
        )
        fleet.start()
        return fleet

    try:
        first = worker('first', '--max-tasks', '1')
        wait_until(lambda: Execution.objects.filter(task=task).exists(), 30, 'worker A to start')
        claimed_by_a = Status(Task.objects.get(pk=task.pk).status)
        past_timeout = claimed_by_a.parse()[1] + dt.timedelta(seconds=1)
        wait_until(lambda: now() > past_timeout, 30, 'worker A to be past its timeout')
        second = worker('second', '--burst')
        wait_until(lambda: Execution.objects.filter(task=task).count() == 2, 30, 'worker B to reclaim it')
        held_by_b = Status(Task.objects.get(pk=task.pk).status)
        assert held_by_b.state == State.working and held_by_b != claimed_by_a
        (a_pid,) = first.pids()
        (b_pid,) = second.pids()
        gates['first'].open()  # A completes while B's action waits
        ((a_code, a_log),) = first.stop(timeout=60, signal_first=False)
        assert Status(Task.objects.get(pk=task.pk).status) == held_by_b, 'A overwrote B'
        gates['second'].open()
        ((b_code, b_log),) = second.stop(timeout=60, signal_first=False)
    finally:
        for gate in gates.values():
            gate.open()
    assert (a_code, b_code) == (0, 0), (a_log, b_log)
    assert 'changed while its action ran' in a_log, a_log
    saved = Task.objects.get(pk=task.pk)
    assert Status(saved.status).state == State.finished
    assert saved.note == f'done by {b_pid}', (saved.note, a_pid, b_pid)
    assert Status(saved.status).attempts == 2  # A's attempt counted by the reclaim


@pytest.mark.processes
@pytest.mark.parametrize('due_rows', [0, 1])
def test_each_run_gives_back_at_most_one_stalled_row(spawn, tmp_path, due_rows):
    """A worker's single run() reclaims one stalled row, not every one."""
    hour_ago = now() - dt.timedelta(hours=1)
    stalled = [
        Task.objects.create(data=f'stalled {number}', status=Status.working(hour_ago, 0))
        for number in range(3)
    ]
    due = [Task.objects.create(data='due', status=Status.waiting(now(), 0)) for _ in range(due_rows)]
    fleet = Fleet(spawn, tmp_path, 'record', '--timeout', '60', '--max-tasks', '1', '--no-listen')
    fleet.start()
    ((code, log),) = fleet.stop(timeout=60, signal_first=False)
    assert code == 0, log
    states = [Status(Task.objects.get(pk=task.pk).status).state for task in stalled]
    if due_rows:  # the due row ran; one stalled row is waiting again
        assert Status(Task.objects.get(pk=due[0].pk).status).state == State.finished
        assert sorted(states) == [State.waiting, State.working, State.working]
    else:  # no due row: the one stalled row given back is the one that ran
        assert sorted(states) == [State.working, State.working, State.finished]
