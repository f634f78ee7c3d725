"""ModelQueueBackend against the contract of Django's Tasks framework (issue 13).

Each test names one promise; the tasks run in this process with a
TaskWorker (the loop behind ``modelqueue_worker --tasks``) in burst mode.
"""

import datetime as dt
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from modelqueue import State, Status
from modelqueue.tasks import ModelQueueBackend
from modelqueue.tasks.compat import (
    InvalidTask,
    TaskContext,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
    task_enqueued,
    task_finished,
    task_started,
)
from modelqueue.tasks.models import QueuedTask as TaskRow
from modelqueue.tasks.worker import TaskWorker
from tests.support.waits import wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.django_db


def run_tasks(alias='default', queues=(), batch=1):
    """Run every due task of `alias` here; return how many ran."""
    return TaskWorker(alias, queues, burst=True, listen=False, batch=batch).run()


def status_of(result):
    return Status(TaskRow.objects.get(pk=result.id).status)


# Capabilities and enqueue


def test_every_capability_is_supported():
    backend = task_backends['default']
    assert isinstance(backend, ModelQueueBackend)
    assert backend.supports_defer is True
    assert backend.supports_priority is True
    assert backend.supports_get_result is True
    assert backend.supports_async_task is True


def test_enqueue_returns_a_ready_result_with_a_string_id_that_get_result_reads():
    result = tasks.add.enqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    assert isinstance(result.id, str)
    assert result.enqueued_at is not None
    assert result.args == [2, 3] and result.kwargs == {}
    stored = tasks.add.get_result(result.id)
    assert stored.id == result.id
    assert stored.status == TaskResultStatus.READY
    assert stored.task.func is tasks.add.func
    assert stored.args == [2, 3]
    assert stored.enqueued_at == result.enqueued_at


@pytest.mark.parametrize(
    'result_id',
    ['abc', '', '-1', ' 1', '1.0', '999999', str(2**63), str(2**64), str(uuid.uuid4()), uuid.uuid4()],
)
def test_an_unknown_id_of_any_shape_does_not_exist(result_id):
    tasks.add.enqueue(1, 1)
    with pytest.raises(TaskResultDoesNotExist):
        task_backends['default'].get_result(result_id)


def test_an_id_of_another_backend_does_not_exist_in_this_one():
    result = tasks.fail_then_succeed.enqueue('unused')
    with pytest.raises(TaskResultDoesNotExist):
        task_backends['default'].get_result(result.id)
    assert task_backends['retrying'].get_result(result.id).id == result.id


def test_a_queue_not_in_queues_is_refused_and_nothing_is_stored():
    with pytest.raises(InvalidTask, match='nowhere'):
        tasks.add.using(queue_name='nowhere').enqueue(1, 2)
    assert not TaskRow.objects.exists()


@pytest.mark.parametrize('args', [(object(),), ({1, 2},), (b'\xff',)])
def test_arguments_that_are_not_json_are_refused_at_enqueue_and_nothing_is_stored(args):
    with pytest.raises((TypeError, ValueError)):
        tasks.remember.enqueue(*args)
    assert not TaskRow.objects.exists()


# A run


def test_a_run_sets_successful_with_the_json_round_trip_of_the_return_value():
    result = tasks.with_context.enqueue((1, 2))
    before = dt.datetime.now(dt.timezone.utc)
    assert run_tasks() == 1
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {'id': result.id, 'attempt': 1, 'value': [1, 2]}
    assert before <= result.started_at == result.last_attempted_at <= result.finished_at
    assert len(result.worker_ids) == 1 and result.attempts == 1
    assert result.errors == []
    assert status_of(result).state == State.finished


def test_a_run_that_raises_sets_failed_with_an_importable_class_path_and_the_traceback():
    result = tasks.fail.enqueue('boom')
    run_tasks()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    (error,) = result.errors
    assert error.exception_class_path == 'builtins.ValueError'
    assert error.exception_class is ValueError
    assert 'ValueError: boom' in error.traceback and 'raise ValueError(message)' in error.traceback
    assert result.finished_at is not None and result.attempts == 1
    with pytest.raises(ValueError, match='failed'):
        result.return_value  # noqa: B018


def test_a_return_value_that_is_not_json_fails_the_task():
    result = tasks.give_a_set.enqueue()
    run_tasks()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class is TypeError


@pytest.mark.parametrize('path', ['tests.testapp.tasks.gone', 'tests.testapp.tasks.RAN'])
def test_a_row_whose_path_names_no_task_fails_with_the_error_recorded(path):
    result = tasks.add.enqueue(1, 2)
    TaskRow.objects.filter(pk=result.id).update(task_path=path)
    assert run_tasks() == 1
    row = TaskRow.objects.get(pk=result.id)
    assert Status(row.status).state == State.canceled
    assert row.errors and row.finished_at is not None


def test_async_tasks_run():
    result = tasks.add_later.enqueue(3, 4)
    run_tasks()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 7


def test_a_task_reads_running_while_it_runs(monkeypatch):
    seen = {}

    def look(**kwargs):
        seen['result'] = task_backends['default'].get_result(kwargs['task_result'].id)
        seen['context'] = kwargs['task_result']

    task_started.connect(look)
    try:
        result = tasks.add.enqueue(1, 2)
        run_tasks()
    finally:
        task_started.disconnect(look)
    stored = seen['result']
    assert stored.status == TaskResultStatus.RUNNING
    assert stored.started_at is not None and stored.last_attempted_at is not None
    assert stored.id == result.id


@pytest.mark.parametrize('batch', [1, 10])
def test_the_three_signals_are_sent_and_finished_after_the_outcome_is_written(batch):
    sent = []

    def on(name):
        def receive(sender, task_result, **kwargs):
            stored = task_backends['default'].get_result(task_result.id).status
            sent.append((name, sender, task_result.status, stored))

        return receive

    receivers = {signal: on(name) for signal, name in
                 ((task_enqueued, 'enqueued'), (task_started, 'started'), (task_finished, 'finished'))}
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    try:
        tasks.add.enqueue(1, 2)
        tasks.add.enqueue(3, 4)
        tasks.fail.enqueue('no')
        assert run_tasks(batch=batch) == 3
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)
    R, RUN, S, F = (TaskResultStatus.READY, TaskResultStatus.RUNNING,
                    TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
    expected = [
        ('enqueued', R, R), ('enqueued', R, R), ('enqueued', R, R),
        ('started', RUN, RUN), ('finished', S, S),
        ('started', RUN, RUN), ('finished', S, S),
        ('started', RUN, RUN), ('finished', F, F),
    ]
    if batch > 1:  # the first alone (nothing was found before), then both, then their outcomes together
        expected = [*expected[:5], expected[5], expected[7], expected[6], expected[8]]
    assert [(name, status, stored) for name, sender, status, stored in sent] == expected
    assert {sender for _, sender, _, _ in sent} == {ModelQueueBackend}


def test_a_task_taking_context_gets_a_task_context():
    result = tasks.with_context.enqueue('x')
    run_tasks()
    result.refresh()
    assert result.return_value == {'id': result.id, 'attempt': 1, 'value': 'x'}
    context = tasks.context_class.enqueue()
    run_tasks()
    context.refresh()
    assert context.return_value == f'{TaskContext.__module__}.{TaskContext.__qualname__}'


# Ordering


def test_higher_priority_runs_first_and_enqueue_order_breaks_ties():
    tasks.RAN.clear()
    for label, priority in [('low-1', -5), ('mid-1', 0), ('high-1', 10), ('mid-2', 0),
                            ('low-2', -5), ('high-2', 10), ('top', 100), ('bottom', -100)]:
        tasks.remember.using(priority=priority).enqueue(label)
    run_tasks()
    assert tasks.RAN == ['top', 'high-1', 'high-2', 'mid-1', 'mid-2', 'low-1', 'low-2', 'bottom']


def test_tasks_enqueued_within_one_millisecond_run_in_enqueue_order(monkeypatch):
    frozen = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    monkeypatch.setattr('modelqueue.tasks.backend.now', lambda: frozen)
    tasks.RAN.clear()
    labels = [f'task-{n}' for n in range(30)]
    for label in labels:
        tasks.remember.enqueue(label)
    run_tasks()
    assert tasks.RAN == labels


def test_run_after_is_honoured_and_a_due_deferred_task_takes_its_place_by_priority():
    tasks.RAN.clear()
    soon = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3)
    tasks.remember.using(priority=50, run_after=soon).enqueue('deferred-high')
    tasks.remember.using(run_after=soon + dt.timedelta(hours=1)).enqueue('next-hour')
    tasks.remember.enqueue('ready-1')
    run_tasks()
    # Not yet due when the worker looked: else this proved nothing (too slow a machine).
    assert dt.datetime.now(dt.timezone.utc) < soon, 'the first run took past run_after'
    assert tasks.RAN == ['ready-1']
    for label in ('ready-2', 'ready-3'):
        tasks.remember.enqueue(label)
    # Statuses keep milliseconds; run_after is rounded up to the next one.
    wait_until(
        lambda: dt.datetime.now(dt.timezone.utc) >= soon + dt.timedelta(milliseconds=2), 10, 'run_after'
    )
    run_tasks()
    assert tasks.RAN == ['ready-1', 'deferred-high', 'ready-2', 'ready-3']


def test_run_after_within_a_millisecond_is_never_due_early():
    run_after = dt.datetime(2099, 1, 1, 0, 0, 0, 500001, tzinfo=dt.timezone.utc)
    result = tasks.add.using(run_after=run_after).enqueue(1, 1)
    due_at = status_of(result).parse()[1]
    assert run_after <= due_at < run_after + dt.timedelta(milliseconds=1)


def test_run_after_in_the_past_is_ready_at_once():
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    result = tasks.add.using(run_after=past).enqueue(1, 1)
    assert status_of(result).priority < 10**13  # a plain-integer (ready) priority
    run_tasks()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL


def test_a_worker_of_named_queues_runs_only_those():
    email = tasks.send_email.enqueue('a@example.com')
    other = tasks.add.enqueue(1, 1)
    assert run_tasks(queues=['emails']) == 1
    email.refresh()
    other.refresh()
    assert email.status == TaskResultStatus.SUCCESSFUL and email.return_value == 'sent to a@example.com'
    assert other.status == TaskResultStatus.READY


# Transactions and the queue's guarantees


@pytest.mark.django_db(transaction=True)
def test_a_task_enqueued_in_a_transaction_that_rolls_back_never_runs():
    with pytest.raises(RuntimeError), transaction.atomic():
        result = tasks.add.enqueue(1, 2)
        raise RuntimeError('roll back')
    assert run_tasks() == 0
    with pytest.raises(TaskResultDoesNotExist):
        task_backends['default'].get_result(result.id)


@pytest.mark.vendors('sqlite', 'postgresql')  # MariaDB has no UPDATE ... RETURNING
def test_the_claim_is_one_statement():
    tasks.add.enqueue(1, 2)
    worker = TaskWorker('default', burst=True, listen=False)
    worker.next_promotion = float('inf')  # only the claim and the outcome
    with CaptureQueriesContext(connection) as queries:
        worker.run()
    # The task table's statements (the worker's heartbeat row has its own):
    # the claim, the attempt's worker id written before the task runs, then
    # the fenced outcome, on PostgreSQL with the next claim (the burst's,
    # which finds nothing) in the same statement; then the burst's look for
    # stalled rows.
    statements = [query['sql'] for query in queries.captured_queries if 'modelqueue_task"' in query['sql']]
    claim, mark, outcome, *_ = statements
    assert claim.startswith('UPDATE') and 'RETURNING' in claim, statements
    assert mark.startswith('UPDATE') and '"worker_ids"' in mark and 'RETURNING' not in mark, statements
    if connection.vendor == 'postgresql':
        assert 'SKIP LOCKED' in claim
        assert outcome.startswith('WITH done AS (UPDATE') and 'SKIP LOCKED' in outcome, statements
    else:
        assert outcome.startswith('UPDATE') and 'RETURNING' not in outcome, statements


@pytest.mark.parametrize('batch', [1, 10])
def test_an_operator_cancel_during_the_run_is_kept(batch):
    first = tasks.add.enqueue(0, 0)  # run alone; with batches, the next two are a batch
    result = tasks.add.enqueue(1, 2)
    last = tasks.add.enqueue(3, 4)
    finished = []
    task_finished.connect(receiver := lambda **kwargs: finished.append(kwargs))

    def cancel_meanwhile(**kwargs):
        if kwargs['task_result'].id == result.id:
            TaskRow.objects.filter(pk=result.id).update(status=Status.canceled())

    task_started.connect(cancel_meanwhile)
    try:
        run_tasks(batch=batch)
    finally:
        task_started.disconnect(cancel_meanwhile)
        task_finished.disconnect(receiver)
    row = TaskRow.objects.get(pk=result.id)
    assert Status(row.status).state == State.canceled
    assert row.return_value is None  # the fenced-off outcome wrote nothing
    assert [kwargs['task_result'].id for kwargs in finished] == [first.id, last.id]


def test_a_task_left_running_past_the_timeout_is_given_back_and_runs_again():
    result = tasks.add.enqueue(1, 2)
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    TaskRow.objects.filter(pk=result.id).update(status=Status.working(long_ago, 0))
    run_tasks()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert status_of(result).attempts == 2  # the lost attempt counted


def test_retry_sets_ready_again_without_counting_the_attempt():
    result = tasks.raise_modelqueue.enqueue('retry')
    worker = TaskWorker('default', burst=True, listen=False, max_tasks=1)
    worker.run()
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert result.errors == [] and status_of(result).attempts == 0
    assert len(result.worker_ids) == 1


def test_abort_retries_up_to_retry_then_fails():
    result = tasks.raise_modelqueue.enqueue('abort')
    assert task_backends['default'].retry == 3
    run_tasks()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert len(result.errors) == 4 and result.attempts == 4
    assert {error.exception_class_path for error in result.errors} == {'modelqueue.exceptions.Abort'}


def test_cancel_fails_at_once():
    result = tasks.raise_modelqueue.enqueue('cancel')
    run_tasks()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1


@pytest.mark.django_db(transaction=True)  # the worker closes the connection after an exception
def test_on_exception_retry_retries_a_plain_exception(tmp_path):
    result = tasks.fail_then_succeed.enqueue(str(tmp_path / 'marker'))
    run_tasks('retrying')
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 'second attempt'
    assert [error.exception_class for error in result.errors] == [RuntimeError]
    assert result.attempts == 2


@pytest.mark.django_db(transaction=True)  # the worker closes the connection after an exception
def test_on_exception_retry_fails_past_retry():
    assert (task_backends['retrying'].on_exception, task_backends['retrying'].retry) == ('retry', 2)
    result = tasks.keep_failing.enqueue('again')
    run_tasks('retrying')
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 3  # the first, then RETRY more
    assert [error.exception_class for error in result.errors] == [ValueError] * 3
    assert status_of(result).state.name == 'canceled'


@pytest.mark.parametrize(
    'options, message',
    [
        ({'ON_EXCEPTION': 'ignore'}, "ON_EXCEPTION'] 'ignore': expected 'fail' or 'retry'"),
        ({'RETRY': 9}, "RETRY'] 9: expected an integer from 0 through 8"),
        ({'RETRY': '3'}, "RETRY'] '3': expected an integer"),
        ({'TIMEOUT': 0}, "TIMEOUT'] 0: expected a number of seconds above 0"),
        ({'DELAY': -1}, "DELAY'] -1: expected a number of seconds, 0 or more"),
        ({'RETRIES': 1}, 'unknown TASKS'),
    ],
)
def test_bad_options_are_refused_naming_the_value(options, message):
    with pytest.raises(ImproperlyConfigured, match=message.replace('[', r'\[').replace(']', r'\]')):
        ModelQueueBackend('x', {'OPTIONS': options})


def test_defaults_are_fail_three_retries_an_hour_and_no_delay():
    backend = ModelQueueBackend('x', {})
    assert backend.on_exception == 'fail'
    assert backend.retry == 3
    assert backend.timeout == dt.timedelta(hours=1)
    assert backend.delay == dt.timedelta(0)
