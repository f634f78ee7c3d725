"""Worker heartbeats, and failure records with real worker processes."""

import datetime as dt
import logging
import signal
import threading
from unittest import mock

import pytest
from django.db import OperationalError, connection

from modelqueue import Status, now, run
from modelqueue.models import FailureRecord, WorkerHeartbeat
from modelqueue.worker.heartbeat import Heartbeat
from modelqueue.worker.housekeeping import Housekeeping
from tests.support.processes import finish, start_worker
from tests.support.waits import wait_until
from tests.testapp.actions import record
from tests.testapp.models import Task

FAST = {'MODELQUEUE_HEARTBEAT_SECONDS': '0.2'}
WAIT_SECONDS = 20


def beats():
    return list(WorkerHeartbeat.objects.all())


@pytest.mark.processes
def test_a_heartbeat_row_is_written_every_few_seconds_and_removed_on_sigterm(spawn):
    Task.objects.create(data='ok')
    Task.objects.create(data='fail')
    child = start_worker(spawn, '--retry=0', action='fail_or_follow_data', env=FAST)
    (beat,) = wait_until(beats, WAIT_SECONDS, 'a heartbeat row', child)
    assert (beat.pid, beat.field, beat.interval) == (child.pid, 'status', 0.2)
    assert beat.content_type.model_class() is Task
    done = wait_until(
        lambda: WorkerHeartbeat.objects.filter(tasks_done=2, failures=1).first(),
        WAIT_SECONDS, 'two tasks done, one failed, in the heartbeat', child,
    )
    first_seen = done.last_seen
    wait_until(
        lambda: WorkerHeartbeat.objects.filter(last_seen__gt=first_seen).exists(),
        WAIT_SECONDS, 'a later heartbeat', child,
    )
    child.send_signal(signal.SIGTERM)
    status, log = finish(child)
    assert status == 0, log
    assert beats() == []


@pytest.mark.processes
def test_a_worker_killed_mid_task_is_named_by_the_record_of_its_reclaim(spawn):
    task = Task.objects.create(data='slow')
    child = start_worker(spawn, action='record_slowly', env={**FAST, 'MODELQUEUE_TEST_ACTION_SECONDS': '60'})
    beat = wait_until(
        lambda: WorkerHeartbeat.objects.filter(object_id=str(task.pk)).first(),
        WAIT_SECONDS, 'the heartbeat naming the row in hand', child,
    )
    assert beat.held_since is not None
    child.kill()
    child.wait(timeout=30)
    claimed = Status(Task.objects.get(pk=task.pk).status)
    assert claimed.state.name == 'working'
    # The worker is gone; its heartbeat stays behind and goes stale.
    wait_until(lambda: WorkerHeartbeat.objects.get().is_lost(now()), WAIT_SECONDS, 'the worker to count as lost')
    run(Task.objects.all(), 'status', record, retry=3, timeout=dt.timedelta(milliseconds=1))
    reclaim = FailureRecord.objects.get(exception=FailureRecord.TIMEOUT)
    assert reclaim.worker == f'{beat.host}:{child.pid}'
    assert (reclaim.object_id, reclaim.attempt, reclaim.outcome) == (str(task.pk), 1, 'waiting')
    assert reclaim.started == claimed.parse()[1]


@pytest.mark.django_db
def test_with_threads_the_heartbeat_shows_the_row_held_longest():
    """Each thread of --threads tells the process's one heartbeat of its row."""
    heartbeat = Heartbeat(Task.objects.all(), 'status')
    first, second = Task.objects.create(data='1'), Task.objects.create(data='2')
    took_first, took_second, finish_first = threading.Event(), threading.Event(), threading.Event()

    def hold(task, took, wait_for=None, failed=False):
        heartbeat.took(task)
        took.set()
        if wait_for is not None:
            wait_for.wait(WAIT_SECONDS)
        heartbeat.done(failed)

    threads = [threading.Thread(target=hold, args=(first, took_first, finish_first))]
    threads[0].start()
    assert took_first.wait(WAIT_SECONDS)
    finish_second = threading.Event()
    threads.append(threading.Thread(target=hold, args=(second, took_second, finish_second, True)))
    threads[1].start()
    assert took_second.wait(WAIT_SECONDS)
    assert heartbeat.in_hand()[0] == str(first.pk)
    finish_first.set()
    threads[0].join(WAIT_SECONDS)
    assert heartbeat.in_hand()[0] == str(second.pk)
    finish_second.set()
    threads[1].join(WAIT_SECONDS)
    assert heartbeat.in_hand() == ('', None)
    assert (heartbeat.tasks_done, heartbeat.failures) == (2, 1)


@pytest.mark.django_db(transaction=True)
def test_a_chore_that_raises_is_logged_and_the_heartbeat_goes_on(caplog):
    """Not only database errors: a chore's bug (a setting out of range, say)
    must not end the thread, or the worker would look lost."""
    calls = []

    def broken_chore():
        calls.append(now())
        raise ValueError('a bug in a chore')

    heartbeat = Heartbeat(Task.objects.all(), 'status', interval=0.05, chores=broken_chore).start()
    try:
        first_seen = WorkerHeartbeat.objects.get().last_seen
        wait_until(lambda: len(calls) >= 3, WAIT_SECONDS, 'the chore called three times')
        wait_until(
            lambda: WorkerHeartbeat.objects.get().last_seen > first_seen, WAIT_SECONDS, 'a beat after the error'
        )
    finally:
        heartbeat.stop()
    assert 'broken_chore failed' in caplog.text and 'ValueError: a bug in a chore' in caplog.text


@pytest.mark.vendors('postgresql')  # state counters exist on PostgreSQL only
@pytest.mark.django_db
def test_while_the_database_is_down_the_chores_say_nothing_of_counters_the_queue_lacks(caplog):
    chores = Housekeeping(Task, 'status')
    down = OperationalError('could not connect to server: Connection refused')
    with mock.patch.object(connection, 'cursor', side_effect=down), caplog.at_level(logging.INFO):
        chores()
        chores()
    assert 'counters' not in caplog.text, caplog.text
