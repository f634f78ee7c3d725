"""Batches (``modelqueue_worker --batch N``): many rows claimed in one
transaction and completed in one, with run()'s rules row by row; no row
held behind a long task; none lost or run twice when the worker is killed."""

import datetime as dt
import signal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from modelqueue import State, Status, now
from modelqueue.batches import Outcome, claim_many, complete_many, give_back, write_statuses
from modelqueue.models import FailureRecord, WorkerHeartbeat
from modelqueue.queue import snapshot
from modelqueue.status import ONE_HOUR, ZERO_SECS
from modelqueue.worker import Worker
from tests.support.processes import finish, start_worker
from tests.support.tasks import executions_per_task, state_counts
from tests.support.waits import wait_until
from tests.testapp import actions
from tests.testapp.models import Task

WAIT_SECONDS = 30
#: The heartbeat of the kill test: a worker is lost after three missed beats.
BEAT = 1


def waiting_rows(*data):
    """One waiting row per item of `data`, each due a millisecond after the
    one before: the order a claim must keep."""
    start = now() - dt.timedelta(seconds=1)
    return [
        Task.objects.create(data=item, status=Status.waiting(start + dt.timedelta(milliseconds=index), 0))
        for index, item in enumerate(data)
    ]


def status_of(task):
    return Status(Task.objects.get(pk=task.pk).status)


def task_updates(queries):
    return [query for query in queries if query['sql'].startswith('UPDATE') and 'testapp_task' in query['sql']]


# -- the statements -----------------------------------------------------------


@pytest.mark.django_db
def test_a_batch_claim_takes_the_first_due_rows_in_order_and_leaves_the_rest():
    rows = waiting_rows('a', 'b', 'c', 'd', 'e')
    later = Task.objects.create(data='later', status=Status.waiting(now() + ONE_HOUR, 0))
    claims = claim_many(Task.objects.all(), 'status', 3, ONE_HOUR, 3, ZERO_SECS)
    assert [claim.task.pk for claim in claims] == [row.pk for row in rows[:3]]
    for claim, row in zip(claims, rows):
        assert claim.was == row.status
        assert status_of(row) == claim.claimed == claim.task.status
        assert claim.claimed.state == State.working and claim.claimed.attempts == 0
    assert [status_of(row).state for row in rows[3:]] == [State.waiting, State.waiting]
    assert status_of(later).state == State.waiting
    assert [claim.task.pk for claim in claim_many(Task.objects.all(), 'status', 10, ONE_HOUR, 3, ZERO_SECS)] == [
        row.pk for row in rows[3:]
    ]


@pytest.mark.django_db
def test_a_batch_claim_keeps_each_rows_attempts():
    row = Task.objects.create(data='x', status=Status.waiting(now(), 2))
    (claim,) = claim_many(Task.objects.all(), 'status', 10, ONE_HOUR, 3, ZERO_SECS)
    assert claim.claimed.attempts == 2 and status_of(row) == claim.claimed


@pytest.mark.django_db
def test_statuses_are_written_only_where_each_row_still_holds_what_it_must():
    first, second, third = waiting_rows('a', 'b', 'c')
    finished = Status.finished(now(), 1)
    canceled = Status.canceled(now(), 0)
    Task.objects.filter(pk=second.pk).update(status=canceled)  # an operator's cancel
    written = write_statuses(
        Task.objects.all(),
        'status',
        [(first.pk, first.status, finished), (second.pk, second.status, finished), (third.pk, third.status, finished)],
    )
    assert written == {first.pk, third.pk}
    assert (status_of(first), status_of(second), status_of(third)) == (finished, canceled, finished)


@pytest.mark.django_db
def test_rows_given_back_have_the_status_they_had_unless_they_changed():
    rows = waiting_rows('a', 'b')
    claims = claim_many(Task.objects.all(), 'status', 10, ONE_HOUR, 3, ZERO_SECS)
    canceled = Status.canceled(now(), 0)
    Task.objects.filter(pk=rows[1].pk).update(status=canceled)
    assert give_back(Task.objects.all(), 'status', claims) == {rows[0].pk}
    assert (status_of(rows[0]), status_of(rows[1])) == (rows[0].status, canceled)


@pytest.mark.django_db
def test_a_batch_completion_writes_statuses_and_changed_fields_fenced_row_by_row():
    rows = waiting_rows('a', 'b', 'c')
    claims = claim_many(Task.objects.all(), 'status', 10, ONE_HOUR, 3, ZERO_SECS)
    outcomes = []
    for claim in claims:
        before = snapshot(claim.task)
        if claim.task.data == 'b':
            claim.task.note = 'changed by the action'
        outcomes.append(Outcome(claim.task, claim.claimed, before, Status.finished(now(), 1)))
    Task.objects.filter(pk=rows[2].pk).update(status=Status.waiting())  # requeued meanwhile
    assert complete_many(Task.objects.all(), 'status', outcomes) == {rows[0].pk, rows[1].pk}
    assert Task.objects.get(pk=rows[1].pk).note == 'changed by the action'
    assert status_of(rows[0]).state == status_of(rows[1]).state == State.finished
    assert status_of(rows[2]).state == State.waiting


# -- the worker loop ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize('threads', [1, 3])
def test_a_batched_worker_runs_every_row_once_with_two_commits_per_batch(threads):
    rows = waiting_rows(*['ok'] * 25)
    worker = Worker(Task.objects.all(), 'status', actions.record, burst=True, listen=False, batch=10, threads=threads)
    with CaptureQueriesContext(connection) as queries:
        assert worker.run() == 25
    assert executions_per_task() == {row.pk: 1 for row in rows}
    assert state_counts() == {'finished': 25}
    if threads == 1:  # the pool's threads have connections of their own
        # Three claims and three completions, and the timeout reclaim's
        # look before each claim (a SELECT), where one task each would take 25.
        assert len(task_updates(queries.captured_queries)) <= 8, task_updates(queries.captured_queries)


@pytest.mark.django_db(transaction=True)
def test_a_batch_handles_each_outcome_as_run_does_with_a_failure_record_per_failure():
    rows = dict(zip(['ok', 'retry', 'abort', 'cancel', 'fail'], waiting_rows('ok', 'retry', 'abort', 'cancel', 'fail')))
    worker = Worker(Task.objects.all(), 'status', actions.fail_or_follow_data, retry=1, delay=ONE_HOUR, burst=True,
                    listen=False, batch=10)
    assert worker.run() == 5
    states = {data: (status_of(row).state, status_of(row).attempts) for data, row in rows.items()}
    assert states == {
        'ok': (State.finished, 1),
        'retry': (State.waiting, 0),
        'abort': (State.waiting, 1),
        'cancel': (State.canceled, 1),
        'fail': (State.waiting, 1),
    }
    recorded = dict(FailureRecord.objects.values_list('object_id', 'exception'))
    assert set(recorded) == {str(rows[name].pk) for name in ('abort', 'cancel', 'fail')}
    assert 'RuntimeError' in recorded[str(rows['fail'].pk)]


@pytest.mark.django_db(transaction=True)
def test_a_row_an_operator_cancels_while_its_batch_runs_keeps_the_cancel():
    # A worker that found nothing yet claims one row at once, then batches.
    alone, first, second = waiting_rows('alone', 'a', 'b')
    canceled = Status.canceled(now(), 0)

    def cancel_the_other(task):
        actions.record(task)
        if task.pk == first.pk:  # second is claimed in the batch, not started
            assert status_of(second).state == State.working
            Task.objects.filter(pk=second.pk).update(status=canceled)

    worker = Worker(Task.objects.all(), 'status', cancel_the_other, burst=True, listen=False, batch=10)
    assert worker.run() == 3
    assert status_of(alone).state == status_of(first).state == State.finished
    assert status_of(second) == canceled


@pytest.mark.django_db(transaction=True)
def test_a_value_the_database_refuses_fails_only_its_own_row_of_the_batch():
    rows = waiting_rows('a', 'too long', 'c')

    def note_too_long(task):
        actions.record(task)
        if task.data == 'too long':
            task.note = 'x' * 100_000  # the column holds 200 characters (SQLite stores it all the same)
        else:
            task.note = 'fine'

    worker = Worker(Task.objects.all(), 'status', note_too_long, retry=0, burst=True, listen=False, batch=10)
    assert worker.run() == 3
    assert executions_per_task() == {row.pk: 1 for row in rows}
    assert [Task.objects.get(pk=row.pk).note for row in (rows[0], rows[2])] == ['fine', 'fine']
    refused = Task.objects.get(pk=rows[1].pk)
    if connection.vendor == 'sqlite':
        assert Status(refused.status).state == State.finished
    else:
        assert Status(refused.status).state == State.canceled and refused.note == ''
        assert FailureRecord.objects.get(object_id=str(rows[1].pk)).exception.startswith('modelqueue')


@pytest.mark.django_db(transaction=True)
def test_max_tasks_claims_no_more_rows_than_it_may_run():
    rows = waiting_rows(*['ok'] * 10)
    worker = Worker(Task.objects.all(), 'status', actions.record, burst=True, listen=False, batch=100, max_tasks=3)
    assert worker.run() == 3
    assert state_counts() == {'finished': 3, 'waiting': 7}
    assert len(executions_per_task()) == 3 and rows


def test_a_batch_is_checked():
    with pytest.raises(ValueError, match='batch'):
        Worker(Task.objects.all(), 'status', actions.record, batch=0)
    with pytest.raises(ValueError, match='batch'):
        Worker(Task.objects.all(), 'status', actions.record, batch=1001)
    with pytest.raises(ValueError, match='batch_wait'):
        Worker(Task.objects.all(), 'status', actions.record, batch=10, batch_wait=0)


# -- processes: no row held hostage, none lost to a kill ----------------------


def started_at_the_gate(gate):
    path = gate.path.with_name(gate.path.name + '.started')
    return path.exists() and path.read_text()


@pytest.mark.processes
def test_rows_behind_a_long_task_go_back_after_the_batch_wait_while_it_runs(spawn, gate):
    # The first row is claimed alone (the worker found nothing yet), the rest in a batch.
    first, long_task, *quick = waiting_rows('first', 'gate', 'a', 'b', 'c', 'd')
    worker = start_worker(spawn, '--burst', '--batch=10', '--batch-wait=1', action='record_after_the_gate_if_data_says',
                          env=gate.env)
    wait_until(lambda: started_at_the_gate(gate), WAIT_SECONDS, 'the long task to start', worker)
    # The long task waits at the gate: the rows behind it go back while it runs.
    wait_until(
        lambda: all(status_of(row) == row.status for row in quick), WAIT_SECONDS, 'the quick rows to be given back',
        worker,
    )
    assert not gate.is_open and set(executions_per_task()) == {first.pk}  # none of the batch ran
    gate.open()
    status, log = finish(worker)
    assert status == 0, log
    assert 'gave back 4 unstarted rows of its batch: they waited 1s behind a long task' in log
    assert executions_per_task() == {row.pk: 1 for row in [first, long_task, *quick]}
    assert state_counts() == {'finished': 6}


@pytest.mark.processes
def test_sigterm_gives_back_the_rows_not_started_at_once(spawn, gate):
    first, long_task, *quick = waiting_rows('first', 'gate', 'a', 'b')
    worker = start_worker(spawn, '--batch=10', '--batch-wait=600', action='record_after_the_gate_if_data_says',
                          env=gate.env)
    wait_until(lambda: started_at_the_gate(gate), WAIT_SECONDS, 'the long task to start', worker)
    worker.send_signal(signal.SIGTERM)
    wait_until(
        lambda: all(status_of(row) == row.status for row in quick), WAIT_SECONDS, 'the rows to be given back', worker
    )
    assert not gate.is_open  # given back while the long task still ran
    gate.open()
    status, log = finish(worker)
    assert status == 0, log
    assert 'the worker was told to stop' in log
    assert executions_per_task() == {first.pk: 1, long_task.pk: 1}
    assert status_of(long_task).state == State.finished


@pytest.mark.processes
def test_every_row_of_a_batch_whose_worker_is_killed_runs_exactly_once(spawn, gate):
    # Two rows done (the first claimed alone, the second in the batch), a
    # long one in hand, six not started when the worker is killed: the two
    # are written, the rest are rescued and run once elsewhere.
    rows = waiting_rows('a', 'b', 'gate', 'c', 'd', 'e', 'f', 'g', 'h')
    done, in_hand, unstarted = rows[:2], rows[2], rows[3:]
    env = {'MODELQUEUE_HEARTBEAT_SECONDS': str(BEAT), **gate.env}
    killed = start_worker(spawn, '--batch=10', '--batch-wait=600', '--sleep=0.5',
                          action='record_after_the_gate_if_data_says', env=env)
    wait_until(lambda: started_at_the_gate(gate), WAIT_SECONDS, 'the long task to start', killed)
    wait_until(
        lambda: all(status_of(row).state == State.finished for row in done), WAIT_SECONDS,
        'the outcomes of the rows done to be written while the long task runs', killed,
    )

    def holds_the_batch():
        beat = WorkerHeartbeat.objects.filter(pid=killed.pid).first()
        return beat is not None and {pk for pk, _ in beat.held} == {str(row.pk) for row in [in_hand, *unstarted]}

    wait_until(holds_the_batch, WAIT_SECONDS, 'the heartbeat to list the batch', killed)
    assert all(status_of(row).state == State.working for row in [in_hand, *unstarted])
    killed.kill()
    killed.wait(timeout=WAIT_SECONDS)
    gate.open()
    rescuer = start_worker(spawn, '--sleep=0.5', '--batch=10', action='record_after_the_gate_if_data_says',
                           env={'MODELQUEUE_HEARTBEAT_SECONDS': str(BEAT), **gate.env})
    wait_until(lambda: state_counts() == {'finished': len(rows)}, WAIT_SECONDS, 'every row to finish', rescuer)
    rescuer.send_signal(signal.SIGTERM)
    status, log = finish(rescuer)
    assert status == 0, log
    assert executions_per_task() == {row.pk: 1 for row in rows}
    # The rows the killed worker held were tried once before: rescued, their attempt counted.
    assert {status_of(row).attempts for row in [in_hand, *unstarted]} == {2}
    assert {status_of(row).attempts for row in done} == {1}


@pytest.mark.processes
def test_an_operators_cancel_of_rows_held_in_a_batch_wins_over_the_worker(spawn, gate):
    # The long row is in hand at the gate and the last one waits in the
    # batch, both working, when the operator cancels them: the worker's
    # outcomes for both are fenced off, and the cancels stay.
    first, in_hand, waiting = waiting_rows('first', 'gate', 'last')
    worker = start_worker(
        spawn, '--burst', '--batch=10', '--batch-wait=600', action='record_after_the_gate_if_data_says', env=gate.env
    )
    wait_until(lambda: started_at_the_gate(gate), WAIT_SECONDS, 'the long task to start', worker)
    assert status_of(in_hand).state == status_of(waiting).state == State.working  # both held by the batch
    canceled = Status.canceled(now(), 0)
    assert Task.objects.filter(pk__in=[in_hand.pk, waiting.pk]).update(status=canceled) == 2
    assert not gate.is_open  # the cancel landed while the action ran
    gate.open()
    status, log = finish(worker)
    assert status == 0, log
    assert (status_of(in_hand), status_of(waiting)) == (canceled, canceled)
    assert status_of(first).state == State.finished
    assert log.count('changed while its action ran') == 2, log
