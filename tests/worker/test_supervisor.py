"""The parent of ``--concurrency N`` replaces children that die, and gives up on a crash loop."""

import logging
import os
import signal
import types

import pytest

from modelqueue.worker import supervisor
from tests.support.processes import children_of, finish, start_worker
from tests.support.tasks import executed, waiting_tasks
from tests.support.waits import wait_until

WAIT_SECONDS = 20


@pytest.mark.processes
def test_a_child_killed_with_sigkill_is_replaced(spawn):
    child = start_worker(spawn, '--concurrency=2', '--threads=2', '--sleep=0.1')
    wait_until(lambda: len(children_of(child.pid)) == 2, WAIT_SECONDS, 'two workers', child=child)
    first, second = children_of(child.pid)
    os.kill(first, signal.SIGKILL)
    wait_until(
        lambda: len(set(children_of(child.pid)) - {first}) == 2,
        WAIT_SECONDS,
        'a worker in place of the killed one',
        child=child,
    )
    replacement = (set(children_of(child.pid)) - {first, second}).pop()
    waiting_tasks(4)
    wait_until(executed(4), WAIT_SECONDS, 'the workers to run the tasks', child=child)
    child.send_signal(signal.SIGTERM)
    status, log = finish(child)
    assert status == 0, log
    assert f'worker {first} was killed by SIGKILL; starting another in 0.1s' in log
    assert f'Worker {replacement} started on' in log


@pytest.mark.processes
def test_children_crashing_again_and_again_make_the_parent_give_up(spawn):
    waiting_tasks(12)
    child = start_worker(spawn, '--concurrency=2', action='crash_the_process')
    status, log = finish(child)
    assert status == 1, log
    assert 'was killed by SIGKILL; starting another in 0.8s (crash 4 of 5 within 60s)' in log
    assert 'its 5th crash within 60s; giving up' in log
    assert children_of(child.pid) == []


class Clock:
    """A stand-in for the supervisor's `time` module: a monotonic clock the test moves."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now


def test_the_supervisor_forgets_crashes_older_than_its_window(monkeypatch, caplog):
    """A child that crashes now and then, never CRASH_LIMIT times within
    CRASH_WINDOW, is restarted for ever, its pause back to the first."""
    clock = Clock()
    monkeypatch.setattr(supervisor, 'time', clock)
    parent = supervisor.Supervisor(worker=None, concurrency=1)
    child = types.SimpleNamespace(pid=4242)
    for _ in range(supervisor.CRASH_LIMIT - 1):
        parent._crashed(1, child, 'was killed by SIGKILL')
        clock.now += 1
    assert not parent.gave_up and len(parent.crashes[1]) == supervisor.CRASH_LIMIT - 1
    clock.now += supervisor.CRASH_WINDOW  # the crashes so far are older than the window
    with caplog.at_level(logging.WARNING, logger='modelqueue.worker'):
        parent._crashed(1, child, 'was killed by SIGKILL')
    assert not parent.gave_up
    assert list(parent.crashes[1]) == [clock.now]
    assert parent.restart_at == {1: clock.now + supervisor.RESTART_BACKOFF[0]}
    assert f'(crash 1 of {supervisor.CRASH_LIMIT} within 60s)' in caplog.text
    # The window still counts crashes inside it: CRASH_LIMIT in a row give up.
    for _ in range(supervisor.CRASH_LIMIT - 1):
        clock.now += 1
        parent._crashed(1, child, 'was killed by SIGKILL')
    assert parent.gave_up
