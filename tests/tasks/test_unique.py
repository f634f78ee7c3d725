"""Unique tasks: enqueue_unique() and the index behind it (issue 25, part 3)."""

import pathlib

import pytest
from django.db import IntegrityError, transaction

from modelqueue import State, Status, now
from modelqueue.tasks import DuplicateTask, enqueue_unique
from modelqueue.tasks.compat import TaskResultStatus, task_backends
from modelqueue.tasks.models import QueuedTask as TaskRow
from modelqueue.tasks.unique import ACTIVE
from modelqueue.tasks.worker import TaskWorker
from tests.support.processes import json_report
from tests.support.waits import wait_until
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

PROCESSES = 8
ENQUEUES = 50  # each; the benchmark does 1,000 (python -m bench unique)


def set_status(result, status):
    TaskRow.objects.filter(pk=result.id).update(status=status)


def test_a_second_enqueue_with_the_key_returns_the_ready_task():
    first = enqueue_unique(tasks.add, 'sum', 1, 2)
    second = enqueue_unique(tasks.add, 'sum', 3, 4)
    assert second.id == first.id and second.args == [1, 2]
    assert second.status == TaskResultStatus.READY
    assert TaskRow.objects.filter(unique_key='sum').count() == 1


def test_if_exists_raise_refuses_naming_the_task():
    first = enqueue_unique(tasks.add, 'sum', 1, 2)
    with pytest.raises(DuplicateTask, match=f"a task with the key 'sum' is READY: id {first.id}") as error:
        task_backends['default'].enqueue_unique(tasks.add, 'sum', [1, 2], {}, if_exists='raise')
    assert error.value.result.id == first.id


@pytest.mark.parametrize('status', [Status.working(now(), 0), Status.waiting(now(), 2), Status.created()])
def test_a_running_or_retry_waiting_task_holds_its_key(status):
    first = enqueue_unique(tasks.add, 'sum', 1, 2)
    set_status(first, status)
    assert enqueue_unique(tasks.add, 'sum', 1, 2).id == first.id


@pytest.mark.parametrize('state', ['finished', 'canceled'])
def test_a_successful_or_failed_task_frees_its_key(state):
    first = enqueue_unique(tasks.add, 'sum', 1, 2)
    set_status(first, Status.combine(state, now(), 1))
    second = enqueue_unique(tasks.add, 'sum', 1, 2)
    assert second.id != first.id
    assert TaskRow.objects.filter(unique_key='sum').count() == 2


def test_a_task_run_by_the_worker_frees_its_key():
    first = enqueue_unique(tasks.add, 'sum', 1, 2)
    TaskWorker('default', burst=True, listen=False).run()
    first.refresh()
    assert first.status == TaskResultStatus.SUCCESSFUL
    assert enqueue_unique(tasks.add, 'sum', 1, 2).id != first.id


def test_keys_are_per_backend_and_plain_enqueue_takes_none():
    one = enqueue_unique(tasks.add, 'k', 1, 2)
    other = enqueue_unique(tasks.keep_failing, 'k', 'x')  # the 'retrying' backend
    assert one.id != other.id
    plain = [tasks.add.enqueue(1, 2), tasks.add.enqueue(1, 2)]
    assert len({result.id for result in plain}) == 2
    assert TaskRow.objects.filter(pk__in=[r.id for r in plain], unique_key=None).count() == 2


def test_the_database_refuses_a_second_active_row_with_the_key():
    enqueue_unique(tasks.add, 'sum', 1, 2)
    row = TaskRow.objects.get(unique_key='sum')
    row.pk = None
    with pytest.raises(IntegrityError), transaction.atomic():
        row.save()
    row.status = Status.finished()  # an inactive one is taken
    row.save()


def test_the_index_bounds_are_the_active_states():
    low, high = ACTIVE
    assert low == Status.minimum(State.created) and Status(low).state == State.created
    assert high + 1 == Status.minimum(State.finished) and Status(high).state == State.working


def test_in_a_callers_transaction_a_duplicate_leaves_the_transaction_usable():
    with transaction.atomic():
        first = enqueue_unique(tasks.add, 'sum', 1, 2)
        assert enqueue_unique(tasks.add, 'sum', 1, 2).id == first.id
        assert TaskRow.objects.count() == 1  # still usable


def test_a_rolled_back_enqueue_leaves_the_key_free():
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_unique(tasks.add, 'sum', 1, 2)
        raise RuntimeError('roll back')
    assert TaskRow.objects.count() == 0
    enqueue_unique(tasks.add, 'sum', 1, 2)


@pytest.mark.parametrize(
    ('key', 'message'),
    [
        ('', "invalid key '': expected a string of 1 to 255 characters, without NUL"),
        ('x' * 256, 'invalid key .*: expected a string of 1 to 255 characters'),
        ('a\x00b', r"invalid key 'a\\x00b': expected a string"),
        (42, 'invalid key 42: expected a string'),
    ],
)
def test_a_bad_key_is_refused_naming_it(key, message):
    with pytest.raises(ValueError, match=message):
        enqueue_unique(tasks.add, key, 1, 2)
    assert TaskRow.objects.count() == 0


def test_a_bad_if_exists_is_refused_naming_it():
    with pytest.raises(ValueError, match="invalid if_exists 'skip': expected 'return' or 'raise'"):
        task_backends['default'].enqueue_unique(tasks.add, 'k', [], {}, if_exists='skip')


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_processes_racing_to_enqueue_one_key_leave_one_task(spawn, gate):
    children = [
        spawn('-m', 'tests.support.enqueue_unique', 'race', str(ENQUEUES), env=gate.env)
        for _ in range(PROCESSES)
    ]

    def at_the_insert():
        for child in children:
            if child.poll() is not None:
                pytest.fail(f'a process exited with {child.returncode} before the race: {child.communicate()}')
        return all(pathlib.Path(f'{gate.path}.{child.pid}').exists() for child in children)

    # Every process read no task with the key and is about to INSERT: the race.
    wait_until(at_the_insert, 60, f'{PROCESSES} processes to reach their INSERT')
    gate.open()
    reports = [json_report(child)[0] for child in children]
    (row,) = TaskRow.objects.filter(unique_key='race')
    assert all(report['ids'] == [str(row.pk)] for report in reports), reports
    assert sum(report['inserts'] for report in reports) >= PROCESSES  # every one tried
