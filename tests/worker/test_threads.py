"""``modelqueue_worker --threads N``: threads in one process, woken by its one waiter."""

import collections
import datetime as dt
import re
import signal
import threading
import types

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from modelqueue import Status, now
from modelqueue.worker.threads import HANDED_ON, NOTIFICATION, POLLING, Sleeper, ThreadPool
from tests.support.connections import listening, server_sessions
from tests.support.fleet import Fleet
from tests.support.gates import ACTION as WAITS_AT_THE_GATE
from tests.support.processes import ACTIONS, finish, idle, start_worker
from tests.support.tasks import executed, executions_per_task, state_counts, waiting_tasks
from tests.support.waits import wait_until
from tests.testapp.models import Execution, Task

WAIT_SECONDS = 20


@pytest.mark.processes
def test_threads_of_several_processes_run_each_row_exactly_once(spawn):
    tasks = waiting_tasks(40)
    child = start_worker(
        spawn,
        '--burst',
        '--concurrency=2',
        '--threads=3',
        action='record_thread',
        env={'MODELQUEUE_TEST_ACTION_SECONDS': '0.05'},
    )
    status, log = finish(child)
    assert status == 0, log
    assert executions_per_task() == {task.pk: 1 for task in tasks}
    assert state_counts() == {'finished': 40}
    threads = collections.Counter(
        (execution.pid, execution.task.note)
        for execution in Execution.objects.select_related('task')
    )
    assert {note for _, note in threads} <= {f'modelqueue-worker-{n}' for n in (1, 2, 3)}
    assert len(threads) >= 4, threads  # several threads, in both processes
    assert len({pid for pid, _ in threads}) == 2, threads
    assert 'started on testapp.Task.status' in log and ', 3 threads)' in log


def sessions():
    """The workers' sessions on the test database (none on SQLite, which has no server)."""
    return len(server_sessions(connection))


@pytest.mark.processes
def test_sigterm_lets_busy_threads_finish_and_leaves_nothing_working_or_open(spawn, tmp_path, gate):
    """Two of four threads are mid-action (waiting at a gate) when SIGTERM
    comes: the idle ones end and close their connections while the busy
    ones work, a row due after the signal is not started, and the busy ones
    finish their tasks once the gate opens."""
    waiting_tasks(2)
    fleet = Fleet(
        spawn, tmp_path, WAITS_AT_THE_GATE, '--threads=4',
        # The heartbeat's thread connects at its first beat: none in this test,
        # so the sessions counted are the worker threads' own.
        env={**gate.env, 'MODELQUEUE_HEARTBEAT_SECONDS': '3600'},
    )
    fleet.start()
    (child,) = fleet.running
    wait_until(executed(2), WAIT_SECONDS, 'two threads to start an action')
    if connection.vendor != 'sqlite':
        # Four threads, the main thread's and, on PostgreSQL, the LISTEN connection.
        wait_until(lambda: sessions() >= 5, WAIT_SECONDS, 'every thread to connect')
    child.send_signal(signal.SIGTERM)
    wait_until(
        lambda: 'finishing the task in hand' in fleet.log(child.pid), WAIT_SECONDS, 'the worker to take the signal'
    )
    Task.objects.create(data='after the signal', status=Status.waiting())
    if connection.vendor != 'sqlite':
        main = 2 if connection.vendor == 'postgresql' else 1
        wait_until(
            lambda: sessions() == 2 + main, WAIT_SECONDS,
            'the idle threads to close their connections while the busy ones work',
        )
    assert child.poll() is None and Execution.objects.count() == 2  # still mid-action
    gate.open()
    ((status, log),) = fleet.stop(signal_first=False)
    assert status == 0, log
    assert state_counts() == {'finished': 2, 'waiting': 1}, log
    assert Execution.objects.count() == 2
    assert 'stopped after 2 tasks' in log
    if connection.vendor != 'sqlite':
        wait_until(lambda: sessions() == 0, WAIT_SECONDS, 'no session left')


@pytest.mark.processes
def test_max_tasks_counts_every_thread_of_every_process(spawn):
    waiting_tasks(8)
    child = start_worker(
        spawn, '--max-tasks=5', '--concurrency=2', '--threads=3', '--sleep=0.2'
    )
    status, log = finish(child)
    assert status == 0, log
    assert state_counts() == {'finished': 5, 'waiting': 3}
    assert Execution.objects.count() == 5


def wakeups(log):
    """The wake-up counts a threaded worker logs when it stops."""
    found = re.search(
        r'woken (\d+) times? by a notification, (\d+) by another thread,'
        r' (\d+) by polling; (\d+) found nothing',
        log,
    )
    assert found, log
    return dict(zip(('notification', 'handed on', 'polling', 'found nothing'), map(int, found.groups())))


@pytest.mark.processes
@pytest.mark.vendors('postgresql')  # LISTEN/NOTIFY
def test_one_notification_wakes_one_idle_thread(spawn):
    child = start_worker(spawn, '--threads=4', '--sleep=30')
    wait_until(lambda: listening(connection), WAIT_SECONDS, 'the worker to LISTEN', child=child)
    # Every thread has looked once and sleeps, as does the heartbeat's.
    wait_until(lambda: idle(child.pid, threads=5), WAIT_SECONDS, 'every thread to sleep', child=child)
    Task.objects.create(data='one')
    wait_until(executed(1), WAIT_SECONDS, 'the row', child=child)
    Task.objects.bulk_create(Task(data=f'burst {n}') for n in range(20))  # one NOTIFY
    wait_until(executed(21), WAIT_SECONDS, 'the burst', child=child)
    child.send_signal(signal.SIGTERM)
    status, log = finish(child)
    assert status == 0, log
    counts = wakeups(log)
    assert counts['notification'] == 2, log
    assert counts['handed on'] >= 1, 'a burst spreads over the threads'
    # The first LISTEN's look, then at most one empty look per chain of wake-ups.
    assert counts['found nothing'] <= 3, log


def test_a_thread_woken_by_another_that_claims_wakes_two_so_the_pool_fills_in_doubling_steps():
    pool = ThreadPool(worker=None, waiter=None, threads=8)
    pool.idle = [Sleeper() for _ in range(5)]
    assert pool._hand_on(None) is None  # a busy thread going on with its next row
    for cause, woken in ((NOTIFICATION, 1), (POLLING, 1), (HANDED_ON, 2)):
        idle = len(pool.idle)
        pool._hand_on(cause)()
        assert idle - len(pool.idle) == woken, cause
    assert pool.wakeups[HANDED_ON] == 4


def test_a_notification_that_finds_no_idle_thread_is_kept_for_the_next_to_go_idle():
    """Every thread is busy when the NOTIFY comes: the first to finish its
    task looks again at once instead of sleeping through the new row."""
    pool = ThreadPool(worker=None, waiter=None, threads=2)
    pool.wake(1, NOTIFICATION)  # no thread idle
    woken = []
    next_idle = threading.Thread(target=lambda: woken.append(pool._sleep()), daemon=True)
    next_idle.start()
    next_idle.join(5)
    slept_through = next_idle.is_alive()
    pool._stop()  # releases it if it went to sleep
    next_idle.join(WAIT_SECONDS)
    assert not slept_through, 'the next thread to go idle slept through the notification'
    assert woken == [NOTIFICATION]
    assert pool.wakeups[NOTIFICATION] == 1


def test_a_kept_wake_up_serves_one_thread_and_a_hand_on_is_not_kept():
    pool = ThreadPool(worker=None, waiter=None, threads=3)
    pool.wake(1, HANDED_ON)  # a chain ends where no thread is idle: nothing to keep
    pool.wake(2, POLLING)  # kept once, however many it was for
    causes = []
    for _ in range(2):
        threading.Thread(target=lambda: causes.append(pool._sleep()), daemon=True).start()
    wait_until(lambda: causes and pool.idle, WAIT_SECONDS, 'one thread to look again and one to sleep')
    pool._stop()  # wakes the sleeping one, without a cause
    wait_until(lambda: len(causes) == 2, WAIT_SECONDS, 'the sleeping thread to be released')
    assert causes == [POLLING, None]
    assert pool.wakeups == {POLLING: 1}


class PollingOnce:
    """A waiter whose wait ends with no notification (the poll is due), once;
    the pool stops after it."""

    notifications = 0

    def __init__(self):
        self.pool = None
        self.waits = 0

    def wait(self, seconds):
        self.waits += 1
        self.pool._stopped.set()  # the dispatcher stops after this poll
        return False


def test_polling_wakes_an_idle_thread():
    """Without LISTEN (SQLite, MariaDB, --no-listen) a poll is the only wake-up:
    an idle thread must look, or the pool never runs new rows."""
    waiter = PollingOnce()
    worker = types.SimpleNamespace(sleep=0.01, stopping=False, quieted=False, should_stop=lambda: False)
    pool = waiter.pool = ThreadPool(worker=worker, waiter=waiter, threads=2)
    pool._running = 2
    sleepers = [Sleeper(), Sleeper()]
    pool.idle = list(sleepers)
    pool._dispatch()
    assert waiter.waits == 1
    assert [sleeper.event.is_set() for sleeper in sleepers] == [False, True]  # the most recently idle
    assert sleepers[1].cause == POLLING and pool.wakeups == {POLLING: 1}


@pytest.mark.processes
def test_threads_without_listen_run_a_row_that_comes_due_while_they_sleep(spawn, tmp_path):
    """--threads with --no-listen: no notification ever comes, so the poll
    must wake a thread for the row that came due after every thread looked."""
    fleet = Fleet(spawn, tmp_path, 'record', '--threads=3', '--no-listen', '--sleep=0.2')
    fleet.start()  # its threads look, find nothing, and sleep
    task = Task.objects.create(data='later', status=Status.waiting(now() + dt.timedelta(seconds=1)))
    wait_until(executed(1), WAIT_SECONDS, 'a polling thread to run the row')
    ((status, log),) = fleet.stop()
    assert status == 0, log
    assert Status(Task.objects.get(pk=task.pk).status).state.name == 'finished'
    assert wakeups(log)['polling'] >= 1, log


def test_bad_thread_counts_are_rejected_with_a_clear_message():
    for value, message in (('0', 'invalid threads 0'), ('257', 'invalid threads 257')):
        with pytest.raises(CommandError, match=f'^{message}: expected a whole number from 1 through 256'):
            call_command('modelqueue_worker', 'testapp.Task', 'status', ACTIONS + 'record', f'--threads={value}')
