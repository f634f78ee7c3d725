"""The parent of ``--concurrency N`` replaces children that die, and gives up on a crash loop."""

import os
import signal

import pytest

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
