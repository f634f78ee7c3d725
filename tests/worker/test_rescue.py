"""Rescue: the rows of a lost worker go back to the queue at another worker's
next beat, fenced on their exact working status, recorded as WORKER_LOST."""

import datetime as dt
import signal
import time

import pytest
from django.contrib.contenttypes.models import ContentType

from modelqueue import State, Status, now
from modelqueue.models import FailureRecord, WorkerHeartbeat
from modelqueue.rescue import rescue
from modelqueue.worker.heartbeat import Heartbeat
from modelqueue.worker.rescuer import Rescuer
from tests.support.gates import ACTION
from tests.support.processes import finish, start_worker
from tests.support.waits import wait_until
from tests.testapp.models import Execution, Task

WAIT_SECONDS = 30
#: The heartbeat of the process tests: lost after three missed, 3 s.
BEAT = 1
#: How soon after a SIGKILL the row must have run again with BEAT: three
#: beats missed, one more for the rescuer's beat, and the claim; the
#: row's timeout (an hour) is far beyond.
RESCUED_WITHIN = 10


def heartbeat_row(pid=4242, held=(), last_seen=None, interval=1.0, host='lost-host'):
    """A heartbeat row of a worker `pid` on the Task queue holding `held`."""
    current = now()
    return WorkerHeartbeat.objects.create(
        host=host,
        pid=pid,
        content_type=ContentType.objects.get_for_model(Task),
        field='status',
        started=current - dt.timedelta(minutes=1),
        last_seen=current - dt.timedelta(seconds=10) if last_seen is None else last_seen,
        interval=interval,
        held=[[str(task.pk), str(status)] for task, status in held],
    )


def working(task, attempts=0, ago=dt.timedelta(seconds=20)):
    """Mark `task` working as a claim `ago` would have; return the status."""
    status = Status.working(now() - ago, attempts)
    Task.objects.filter(pk=task.pk).update(status=status)
    return int(status)


def status_of(task):
    return Status(Task.objects.get(pk=task.pk).status)


@pytest.mark.django_db
def test_a_rescue_gives_back_each_row_still_held_by_the_lost_workers_claim_and_records_it():
    held, finished, requeued = (Task.objects.create(data=str(n)) for n in range(3))
    held_status = working(held, attempts=1)
    finished_claim = working(finished)
    Task.objects.filter(pk=finished.pk).update(status=Status.finished(now(), 1))
    requeued_claim = working(requeued)
    working(requeued, ago=dt.timedelta(seconds=1))  # requeued, then claimed again by another worker
    beat = heartbeat_row(held=[(held, held_status), (finished, finished_claim), (requeued, requeued_claim)])
    given = rescue(beat, Task, 'default', retry=3, by='the test')
    assert given == 1
    rescued = status_of(held)
    assert (rescued.state, rescued.attempts) == (State.waiting, 2)
    assert status_of(finished).state == State.finished
    assert status_of(requeued).state == State.working
    assert not WorkerHeartbeat.objects.exists()
    (record,) = FailureRecord.objects.all()
    assert (record.exception, record.object_id, record.attempt, record.outcome) == (
        FailureRecord.WORKER_LOST, str(held.pk), 2, FailureRecord.WAITING,
    )
    assert record.worker == 'lost-host:4242'
    assert 'worker lost-host:4242 lost' in record.message and 'rescued by the test' in record.message
    assert record.started == Status(held_status).parse()[1]


@pytest.mark.django_db
def test_a_row_past_retry_is_canceled_by_a_workers_rescue_and_waits_again_by_an_operators():
    task = Task.objects.create(data='x')
    status = working(task, attempts=3)
    assert rescue(heartbeat_row(held=[(task, status)]), Task, 'default', retry=3) == 1
    assert (status_of(task).state, status_of(task).attempts) == (State.canceled, 4)
    status = working(task, attempts=3)
    assert rescue(heartbeat_row(held=[(task, status)]), Task, 'default') == 1  # retry None: the admin's
    assert (status_of(task).state, status_of(task).attempts) == (State.waiting, 4)


@pytest.mark.django_db
def test_a_worker_that_beat_within_three_intervals_is_not_rescued():
    task = Task.objects.create(data='x')
    status = working(task)
    beat = heartbeat_row(held=[(task, status)], last_seen=now() - dt.timedelta(seconds=2.5), interval=1.0)
    assert rescue(beat, Task, 'default') is None
    assert status_of(task) == status
    assert WorkerHeartbeat.objects.filter(pk=beat.pk).exists()
    assert not FailureRecord.objects.exists()


@pytest.mark.django_db
def test_of_two_rescuers_of_one_lost_worker_only_the_first_acts():
    task = Task.objects.create(data='x')
    beat = heartbeat_row(held=[(task, working(task))])
    assert rescue(beat, Task, 'default') == 1
    rescued = status_of(task)
    assert rescue(beat, Task, 'default') is None  # the row read before the first took it
    assert status_of(task) == rescued
    assert FailureRecord.objects.count() == 1


@pytest.mark.django_db
def test_a_rescuer_whose_own_heartbeat_row_is_gone_rescues_nothing():
    task = Task.objects.create(data='x')
    status = working(task)
    beat = heartbeat_row(held=[(task, status)])
    assert rescue(beat, Task, 'default', rescuer=beat.pk + 1000) is None
    assert status_of(task) == status
    assert WorkerHeartbeat.objects.filter(pk=beat.pk).exists()


@pytest.mark.django_db
def test_a_worker_rescues_nothing_while_its_own_heartbeat_is_stale():
    task = Task.objects.create(data='x')
    status = working(task)
    heartbeat_row(held=[(task, status)])
    own = Heartbeat(Task.objects.all(), 'status', interval=1.0)
    own.pk = heartbeat_row(pid=1, host='here', last_seen=now()).pk
    rescuer = Rescuer(Task, 'status', 'default', retry=3, delay=dt.timedelta(0))
    own.last_beat = time.monotonic() - 2  # its last beat two intervals ago: it may be the lost one
    assert rescuer(own) == 0
    assert status_of(task) == status
    own.last_beat = time.monotonic()
    assert rescuer(own) == 1
    assert status_of(task).state == State.waiting


def executions(task):
    return list(Execution.objects.filter(task=task).values_list('pid', flat=True))


@pytest.mark.processes
@pytest.mark.parametrize(
    ('beat', 'within'), [(BEAT, RESCUED_WITHIN), (5, 20)], ids=['1 s beats', "5 s beats: the issue's 20 s"]
)
def test_a_row_of_a_sigkilled_worker_runs_again_at_another_workers_beat_long_before_its_timeout(
    spawn, beat, within
):
    env = {'MODELQUEUE_HEARTBEAT_SECONDS': str(beat), 'MODELQUEUE_TEST_ACTION_SECONDS': '120'}
    lost = start_worker(spawn, '--sleep=0.5', action='record_slowly', env=env)
    task = Task.objects.create(data='held')
    wait_until(lambda: held_by(lost.pid, task), WAIT_SECONDS, 'the heartbeat to list the row in hand', child=lost)
    rescuer = start_worker(spawn, '--sleep=0.5', action='record', env=env)
    wait_until(lambda: WorkerHeartbeat.objects.filter(pid=rescuer.pid).exists(), WAIT_SECONDS, 'the rescuer')
    lost.kill()
    lost.wait(timeout=WAIT_SECONDS)
    killed = time.monotonic()
    wait_until(lambda: status_of(task).state == State.finished, within, 'the row to run again', child=rescuer)
    seconds = time.monotonic() - killed
    print(f'\nheartbeat {beat}s: the row ran again {seconds:.1f}s after the SIGKILL')
    assert executions(task) == [lost.pid, rescuer.pid]  # exactly once more, by the rescuer
    (record,) = FailureRecord.objects.all()
    assert record.exception == FailureRecord.WORKER_LOST
    assert f':{lost.pid} lost' in record.message and record.worker.endswith(f':{lost.pid}')
    assert (record.object_id, record.attempt, record.outcome) == (str(task.pk), 1, FailureRecord.WAITING)
    assert list(WorkerHeartbeat.objects.values_list('pid', flat=True)) == [rescuer.pid]
    rescuer.terminate()
    status, log = finish(rescuer)
    assert status == 0, log
    assert 'Rescued 1 row of testapp.Task from the lost worker' in log


@pytest.mark.processes
def test_every_row_a_sigkilled_worker_held_in_its_threads_is_rescued(spawn):
    env = {'MODELQUEUE_HEARTBEAT_SECONDS': str(BEAT), 'MODELQUEUE_TEST_ACTION_SECONDS': '120'}
    lost = start_worker(spawn, '--sleep=0.5', '--threads=3', action='record_slowly', env=env)
    tasks = [Task.objects.create(data=f'held {n}') for n in range(3)]
    wait_until(
        lambda: all(held_by(lost.pid, task) for task in tasks), WAIT_SECONDS, 'the heartbeat to list all three rows',
        child=lost,
    )
    rescuer = start_worker(spawn, '--sleep=0.5', action='record', env={'MODELQUEUE_HEARTBEAT_SECONDS': str(BEAT)})
    lost.kill()
    lost.wait(timeout=WAIT_SECONDS)
    wait_until(
        lambda: all(status_of(task).state == State.finished for task in tasks),
        RESCUED_WITHIN, 'the three rows to run again', child=rescuer,
    )
    assert [executions(task) for task in tasks] == [[lost.pid, rescuer.pid]] * 3
    records = FailureRecord.objects.all()
    assert sorted(record.object_id for record in records) == sorted(str(task.pk) for task in tasks)
    assert {record.exception for record in records} == {FailureRecord.WORKER_LOST}
    rescuer.terminate()
    status, log = finish(rescuer)
    assert status == 0, log
    assert 'Rescued 3 rows of testapp.Task from the lost worker' in log


@pytest.mark.processes
def test_a_worker_frozen_past_three_beats_and_rescued_has_its_late_completion_fenced_off(spawn, gate):
    env = {'MODELQUEUE_HEARTBEAT_SECONDS': str(BEAT), **gate.env}
    frozen = start_worker(spawn, '--sleep=0.5', action=ACTION, env=env)
    task = Task.objects.create(data='held')
    wait_until(lambda: held_by(frozen.pid, task), WAIT_SECONDS, 'the heartbeat to list the row', child=frozen)
    rescuer = start_worker(spawn, '--sleep=0.5', action='record', env={'MODELQUEUE_HEARTBEAT_SECONDS': str(BEAT)})
    frozen.send_signal(signal.SIGSTOP)
    try:
        wait_until(
            lambda: status_of(task).state == State.finished, WAIT_SECONDS, 'the rescued row to run', child=rescuer
        )
        finished = status_of(task)
        gate.open()
    finally:
        frozen.send_signal(signal.SIGCONT)
    # The frozen worker's action ends now; its completion is refused by its fence.
    wait_until(lambda: WorkerHeartbeat.objects.filter(pid=frozen.pid).exists(), WAIT_SECONDS, 'the thawed heartbeat')
    frozen.terminate()
    status, log = finish(frozen)
    assert status == 0, log
    assert 'changed while its action ran' in log
    assert 'its heartbeat row was gone' in log
    assert status_of(task) == finished
    assert Task.objects.get(pk=task.pk).note != f'done by {frozen.pid}'
    assert executions(task) == [frozen.pid, rescuer.pid]
    assert FailureRecord.objects.get().exception == FailureRecord.WORKER_LOST


@pytest.mark.processes
def test_a_worker_frozen_past_three_beats_and_not_rescued_writes_its_completion(spawn, gate):
    env = {'MODELQUEUE_HEARTBEAT_SECONDS': str(BEAT), **gate.env}
    frozen = start_worker(spawn, '--sleep=0.5', action=ACTION, env=env)
    task = Task.objects.create(data='held')
    wait_until(lambda: held_by(frozen.pid, task), WAIT_SECONDS, 'the heartbeat to list the row', child=frozen)
    frozen.send_signal(signal.SIGSTOP)
    try:
        wait_until(
            lambda: WorkerHeartbeat.objects.get(pid=frozen.pid).is_lost(now()), WAIT_SECONDS, 'the worker to be lost'
        )
        gate.open()
    finally:
        frozen.send_signal(signal.SIGCONT)
    wait_until(lambda: status_of(task).state == State.finished, WAIT_SECONDS, 'its completion', child=frozen)
    assert Task.objects.get(pk=task.pk).note == f'done by {frozen.pid}'
    frozen.terminate()
    status, log = finish(frozen)
    assert status == 0, log
    assert executions(task) == [frozen.pid]
    assert not FailureRecord.objects.exists()  # nobody rescued it, not even itself


def held_by(pid, task):
    """Whether the heartbeat of worker `pid` lists `task` among its rows."""
    beat = WorkerHeartbeat.objects.filter(pid=pid).first()
    return beat is not None and any(pk == str(task.pk) for pk, _ in beat.held)
