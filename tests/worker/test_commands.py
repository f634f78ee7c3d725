"""An operator's commands reach real workers through their heartbeat row:
quiet claims nothing more within one beat, stop also exits as SIGTERM does."""

import time

import pytest

from modelqueue import State, Status
from modelqueue.models import WorkerHeartbeat
from tests.support.gates import ACTION
from tests.support.processes import finish, start_worker
from tests.support.tasks import executed, waiting_tasks
from tests.support.waits import wait_until
from tests.testapp.models import Execution, Task

BEAT = 0.5
ENV = {'MODELQUEUE_HEARTBEAT_SECONDS': str(BEAT)}
#: A command is read at the next beat; the bound allows a slow machine's beat.
WITHIN = 4 * BEAT + 2
WAIT_SECONDS = 30
#: How long a quiet worker is watched for a claim: several beats and polls.
WATCH = 4 * BEAT


def command(pid, value):
    assert WorkerHeartbeat.objects.filter(pid=pid).update(command=value) == 1


def states():
    return {pk: Status(value).state for pk, value in Task.objects.values_list('pk', 'status')}


@pytest.mark.processes
@pytest.mark.parametrize('options', [[], ['--threads=2']], ids=['one thread', 'two threads'])
def test_a_quieted_worker_finishes_its_rows_claims_nothing_more_and_reports_quiet(spawn, gate, options):
    held = 2 if options else 1
    waiting_tasks(held + 2)
    child = start_worker(spawn, '--sleep=0.1', *options, action=ACTION, env={**ENV, **gate.env})
    wait_until(executed(held), WAIT_SECONDS, 'the worker to take its rows', child=child)
    in_hand = set(Execution.objects.values_list('task_id', flat=True))
    command(child.pid, 'quiet')
    asked = time.monotonic()
    wait_until(
        lambda: WorkerHeartbeat.objects.filter(pid=child.pid, quiet=True).exists(),
        WITHIN, 'the worker to report quiet', child=child,
    )
    print(f'\nquiet reported {time.monotonic() - asked:.1f}s after the command (beat {BEAT}s)')
    gate.open()
    wait_until(
        lambda: all(states()[pk] == State.finished for pk in in_hand), WAIT_SECONDS, 'the rows in hand to finish',
        child=child,
    )
    time.sleep(WATCH)  # watched: beats and polls go by, nothing is claimed
    assert Execution.objects.count() == held
    assert [state for pk, state in states().items() if pk not in in_hand] == [State.waiting] * 2
    assert child.poll() is None  # quiet is not stopped
    assert WorkerHeartbeat.objects.get(pid=child.pid).quiet
    child.terminate()
    status, log = finish(child)
    assert status == 0, log
    assert 'told to quiet from the admin' in log


@pytest.mark.processes
@pytest.mark.parametrize('options', [[], ['--threads=2']], ids=['one thread', 'two threads'])
def test_a_stopped_worker_finishes_its_rows_then_exits_as_on_sigterm(spawn, gate, options):
    held = 2 if options else 1
    waiting_tasks(held + 1)
    child = start_worker(spawn, '--sleep=0.1', *options, action=ACTION, env={**ENV, **gate.env})
    wait_until(executed(held), WAIT_SECONDS, 'the worker to take its rows', child=child)
    command(child.pid, 'stop')
    wait_until(
        lambda: WorkerHeartbeat.objects.filter(pid=child.pid, quiet=True).exists(),
        WITHIN, 'the worker to report quiet', child=child,
    )
    assert child.poll() is None  # its rows are in hand: it waits for them
    gate.open()
    status, log = finish(child, timeout=WAIT_SECONDS)
    assert status == 0, log
    assert 'told to stop from the admin' in log
    assert sorted(states().values()) == sorted([State.finished] * held + [State.waiting])
    assert not WorkerHeartbeat.objects.exists()  # a graceful exit


@pytest.mark.processes
def test_an_idle_worker_told_to_stop_exits_within_a_beat(spawn):
    child = start_worker(spawn, '--sleep=30', action='record', env=ENV)
    wait_until(lambda: WorkerHeartbeat.objects.filter(pid=child.pid).exists(), WAIT_SECONDS, 'its heartbeat')
    command(child.pid, 'stop')
    asked = time.monotonic()
    status, log = finish(child, timeout=WITHIN)  # not the 30 s of its --sleep
    print(f'\nstopped {time.monotonic() - asked:.1f}s after the command (beat {BEAT}s)')
    assert status == 0, log
