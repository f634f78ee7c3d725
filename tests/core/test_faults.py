"""Faults that production brings, done for real to worker processes.

- Killed workers: SIGKILL workers in the middle of their tasks, again and
  again: nothing is lost, nothing stays working, and only the rows of killed
  workers run more than once (at-least-once execution).
- Lost connections: the database ends the workers' sessions (PostgreSQL
  pg_terminate_backend, MariaDB KILL CONNECTION): workers log, reconnect and
  finish everything; none exits.
- SQLite with several processes: "database is locked" never reaches the
  code that calls run(), nor stops a worker.
"""

import time
from collections import Counter, defaultdict

import pytest
from django.db import connection

from modelqueue import State, Status, now
from tests.support.connections import cut_sessions
from tests.support.fleet import Fleet, kill_workers_mid_task
from tests.support.processes import json_report
from tests.support.tasks import executions_per_task, waiting_tasks
from tests.support.waits import wait_until
from tests.testapp.models import Execution, Task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]

RETRY = 3


def report(capsys, text):
    with capsys.disabled():
        print(f'\n[{connection.vendor}] {text}')


def unsettled():
    """Rows still waiting or working."""
    tally = Status.tally(Task.objects.all(), 'status')
    return tally['waiting'] + tally['working']


def test_killed_workers_lose_nothing_and_only_their_rows_rerun(spawn, tmp_path, capsys):
    rows, workers, kills = 50, 3, 5
    waiting_tasks(rows)
    fleet = Fleet(
        spawn,
        tmp_path,
        'record_slowly',
        '--timeout', '3', '--retry', RETRY, '--sleep', '0.2', '--no-listen',
        env={'MODELQUEUE_TEST_ACTION_SECONDS': '0.4'},
    )
    fleet.start(workers)
    victims = kill_workers_mid_task(fleet, kills, pause=0.3, timeout=60)
    assert len(victims) >= 2, 'the queue drained before workers could be killed'
    wait_until(lambda: unsettled() == 0, 120, 'every row to be finished or canceled')
    assert fleet.exited() == []
    results = fleet.stop()
    assert [code for code, _ in results] == [0] * workers, results

    executions = defaultdict(list)
    for task_id, pid in Execution.objects.order_by('pk').values_list('task_id', 'pid'):
        executions[task_id].append(pid)
    assert len(executions) == rows  # every row ran
    reruns = {task: pids for task, pids in executions.items() if len(pids) > 1}
    for task in Task.objects.all():
        status = Status(task.status)
        pids = executions[task.pk]
        # Every run but the last was cut short by a kill.
        assert set(pids[:-1]) <= fleet.killed, (task.pk, pids, fleet.killed)
        if status.state == State.canceled:
            # Only the attempt rules cancel: every run was killed.
            assert set(pids) <= fleet.killed and status.attempts == RETRY + 1
        else:
            assert status.state == State.finished, (task.pk, status)
    assert len(reruns) <= len(victims)
    tally = Status.tally(Task.objects.all(), 'status')
    report(
        capsys,
        f'killed {len(victims)} of {workers + len(victims)} workers mid-task on'
        f' {rows} rows: {tally["finished"]} finished, {tally["canceled"]} canceled,'
        f' {len(reruns)} rows ran more than once'
        f' ({sum(len(p) for p in executions.values())} executions)',
    )


@pytest.mark.vendors('postgresql', 'mysql')  # SQLite has no server sessions to cut
def test_lost_connections_workers_reconnect_and_finish(spawn, tmp_path, capsys):
    rows, workers, cuts = 60, 3, 3
    waiting_tasks(rows)
    fleet = Fleet(
        spawn,
        tmp_path,
        'record_slowly',
        '--timeout', '3', '--retry', 8, '--sleep', '0.2',
        env={'MODELQUEUE_TEST_ACTION_SECONDS': '0.1'},
    )
    fleet.start(workers)
    cut = 0
    for _ in range(cuts):
        wait_until(lambda: Execution.objects.exists(), 60, 'the workers to start')
        time.sleep(0.5)
        cut += cut_sessions(connection)
        assert fleet.exited() == []
    wait_until(lambda: unsettled() == 0, 120, 'every row to be finished')
    assert fleet.exited() == [], 'a worker exited after its connection was cut'
    results = fleet.stop()
    assert [code for code, _ in results] == [0] * workers, results
    logged = sum(err.count('database error') for _, err in results)
    assert logged >= 1, 'no worker logged a lost connection'
    tally = Status.tally(Task.objects.all(), 'status')
    assert tally['finished'] == rows, tally
    runs = executions_per_task()
    assert len(runs) == rows
    report(
        capsys,
        f'cut {cut} worker sessions in {cuts} rounds: {logged} database errors logged,'
        f' all {rows} rows finished, {sum(1 for n in runs.values() if n > 1)} ran twice',
    )


sqlite_only = pytest.mark.vendors('sqlite')  # about SQLite's single writer


@sqlite_only
def test_sqlite_workers_and_user_loops_never_see_database_is_locked(spawn, tmp_path):
    """Worker commands and plain run() loops side by side, with the recommended settings."""
    rows = 150
    waiting_tasks(rows)
    env = {'MODELQUEUE_TEST_ACTION_SECONDS': '0.005'}
    fleet = Fleet(spawn, tmp_path, 'record_slowly', '--sleep', '0.1', env=env)
    fleet.start(3)
    loops = [
        spawn('-m', 'tests.support.run_loop', 'tests.testapp.actions.record_slowly', '4', env=env)
        for _ in range(3)
    ]
    # An operator writing at the same time, as the admin's bulk actions do.
    edited = list(Task.objects.order_by('pk').values_list('pk', flat=True)[:3])
    deadline = time.monotonic() + 60  # the loops run 4 s each
    while any(loop.poll() is None for loop in loops):
        assert time.monotonic() < deadline, 'a run() loop did not end'
        assert Task.objects.filter(pk__in=edited).update(note=str(now())) == 3
        time.sleep(0.02)
    reports = []
    for loop in loops:
        report, log = json_report(loop)
        assert 'locked' not in log, log
        reports.append(report)
    assert [report['errors'] for report in reports] == [[], [], []]
    assert fleet.exited() == []
    for code, err in fleet.stop():
        assert code == 0, err
        assert 'locked' not in err, err
    assert Status.tally(Task.objects.all(), 'status')['finished'] == rows
    assert set(executions_per_task().values()) == {1}


@sqlite_only
def test_sqlite_lock_contention_never_reaches_run_callers(spawn, tmp_path):
    """With a busy timeout of 1 ms, run() itself absorbs every lock error.

    The action does not touch the database (it logs to a file), so any
    "database is locked" seen by the loops came from run().
    """
    rows = 200
    waiting_tasks(rows)
    log = tmp_path / 'executions.log'
    env = {'MODELQUEUE_TEST_LOG': str(log), 'MODELQUEUE_TEST_SQLITE_TIMEOUT': '0.001'}
    loops = [
        spawn('-m', 'tests.support.run_loop', 'tests.testapp.actions.append_to_log', '4', env=env)
        for _ in range(4)
    ]
    reports = [json_report(loop)[0] for loop in loops]
    assert [report['errors'] for report in reports] == [[]] * 4
    runs = Counter(line.split()[0] for line in log.read_text().splitlines())
    assert len(runs) == rows and set(runs.values()) == {1}
    assert Status.tally(Task.objects.all(), 'status')['finished'] == rows
