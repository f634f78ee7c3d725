"""Running workers in production: ``--check`` for liveness probes, and
processes replaced at ``--max-tasks-per-child`` or ``--max-memory-per-child``.

Every database. The health check's "host" is set with MODELQUEUE_HOST_NAME,
so that a test's workers are told apart from any other on the machine.
"""

import datetime as dt
import os
import signal
import subprocess
import sys

import pytest
from django.contrib.contenttypes.models import ContentType

from modelqueue.models import WorkerHeartbeat
from modelqueue.names import HOST_NAME_VARIABLE
from modelqueue.status import now
from modelqueue.worker.health import check_health
from modelqueue.worker.limits import RECYCLE_STATUS
from tests.support.processes import finish, start_worker
from tests.support.tasks import executions_per_task, waiting_tasks
from tests.support.waits import wait_until
from tests.testapp.models import Execution, Task

HOST = 'probe-host'
BEATS = {'MODELQUEUE_HEARTBEAT_SECONDS': '0.3', HOST_NAME_VARIABLE: HOST}


def heartbeat(pid, last_seen, started=None, host=HOST, interval=1.0):
    current = now()
    return WorkerHeartbeat.objects.create(
        host=host,
        pid=pid,
        content_type=ContentType.objects.get_for_model(Task),
        field='status',
        started=started or current - dt.timedelta(minutes=1),
        last_seen=last_seen,
        interval=interval,
    )


def dead_pid():
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, '-c', 'pass'])
    child.wait()
    return child.pid


def test_healthy_when_every_running_worker_of_this_host_beat_within_three_intervals(db):
    current = now()
    heartbeat(os.getpid(), current - dt.timedelta(seconds=2.5))
    heartbeat(os.getpid(), current, host='another-host')
    health = check_health('default', host=HOST, current=current)
    assert health.healthy, health.lines
    assert health.lines == [f'{HOST}:{os.getpid()} on testapp.task.status: last beat 2.5s ago (within 3s): alive']


def test_unhealthy_when_a_running_worker_missed_three_beats(db):
    current = now()
    heartbeat(os.getpid(), current - dt.timedelta(seconds=3.5))
    health = check_health('default', Task, 'status', host=HOST, current=current)
    assert not health.healthy
    assert 'NOT BEATING' in health.lines[0]


def test_rows_of_gone_processes_are_left_out_and_a_reused_pid_counts_its_newest_row(db):
    current = now()
    heartbeat(dead_pid(), current - dt.timedelta(hours=2))  # killed earlier: its row waits to be pruned
    heartbeat(os.getpid(), current - dt.timedelta(hours=1), started=current - dt.timedelta(hours=3))
    heartbeat(os.getpid(), current, started=current - dt.timedelta(minutes=5))  # this pid again, later
    health = check_health('default', host=HOST, current=current)
    assert health.healthy and len(health.lines) == 1, health.lines


def test_unhealthy_when_no_worker_of_this_host_runs(db):
    heartbeat(dead_pid(), now())
    health = check_health('default', host=HOST)
    assert not health.healthy
    assert health.lines == [f"no running worker of host '{HOST}' has a heartbeat in database 'default'"]


def check(spawn, *options):
    child = spawn('-m', 'django', 'modelqueue_worker', '--check', *options,
                  env={'DJANGO_SETTINGS_MODULE': 'tests.settings', **BEATS})
    return finish(child, timeout=60)


@pytest.mark.processes
def test_check_exits_0_while_the_worker_beats_and_1_once_it_stops_beating(spawn):
    worker = start_worker(spawn, '--sleep=0.2', env=BEATS)
    wait_until(lambda: WorkerHeartbeat.objects.filter(host=HOST, pid=worker.pid).exists(), 30,
               'the heartbeat row', child=worker)
    child = spawn('-m', 'django', 'modelqueue_worker', '--check',
                  env={'DJANGO_SETTINGS_MODULE': 'tests.settings', **BEATS})
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0, out
    assert f'{HOST}:{worker.pid} on testapp.task.status' in out and 'alive' in out
    assert check(spawn, 'testapp.Task', 'status')[0] == 0
    assert check(spawn, '--tasks')[0] == 1, 'no Tasks worker runs on this host'
    worker.send_signal(signal.SIGSTOP)  # hung: its heartbeat thread stops too
    try:
        stale = now()
        wait_until(lambda: now() - stale > dt.timedelta(seconds=1.2), 10, 'three missed beats')
        assert check(spawn)[0] == 1
    finally:
        worker.send_signal(signal.SIGCONT)
    worker.terminate()
    assert finish(worker)[0] == 0
    assert check(spawn)[0] == 1, 'no worker runs'


@pytest.mark.processes
def test_max_tasks_per_child_replaces_processes_and_each_row_runs_once(spawn):
    rows = waiting_tasks(14)
    status, log = finish(
        start_worker(spawn, '--concurrency=2', '--max-tasks-per-child=3', '--burst'), timeout=120
    )
    assert status == 0, log
    assert executions_per_task() == {row.pk: 1 for row in rows}
    per_process = list(Execution.objects.values_list('pid', flat=True))
    assert max(per_process.count(pid) for pid in set(per_process)) <= 3
    assert len(set(per_process)) >= 5, 'each process ran at most 3 of the 14'
    assert 'reached its limit; starting another' in log
    assert 'crash' not in log


@pytest.mark.processes
def test_max_tasks_keeps_counting_every_process_together(spawn):
    waiting_tasks(12)
    status, log = finish(start_worker(spawn, '--concurrency=2', '--max-tasks-per-child=2', '--max-tasks=7'),
                         timeout=120)
    assert status == 0, log
    assert Execution.objects.count() == 7


@pytest.mark.processes
def test_max_memory_per_child_replaces_a_process_after_its_task_even_without_concurrency(spawn):
    rows = waiting_tasks(4)
    status, log = finish(start_worker(spawn, '--max-memory-per-child=1K', '--burst', '--threads=2'), timeout=120)
    assert status == 0, log
    assert executions_per_task() == {row.pk: 1 for row in rows}
    assert len(set(Execution.objects.values_list('pid', flat=True))) >= 2
    assert '--max-memory-per-child 1 KiB' in log


def test_a_recycled_child_exits_with_the_status_its_parent_restarts():
    assert RECYCLE_STATUS not in (0, 1, 2) and RECYCLE_STATUS < 128


@pytest.mark.processes
@pytest.mark.parametrize(
    'option, message',
    [
        ('--max-memory-per-child=lots', "invalid --max-memory-per-child 'lots'"),
        ('--max-tasks-per-child=0', 'max-tasks-per-child'),
    ],
)
def test_limits_are_checked(spawn, option, message):
    status, log = finish(start_worker(spawn, option, '--burst'))
    assert status == 1 and message in log, log
