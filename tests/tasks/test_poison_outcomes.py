"""Poison for the Tasks backend's worker: errors whose text no database
stores as it is, and return values a database refuses. Each such task
runs once, ends FAILED with an error saying why (or SUCCESSFUL where its
value is stored), and the tasks behind it run."""

import logging
import sys

import pytest
from django.db import connection
from django.test.utils import override_settings

from modelqueue import State, Status
from modelqueue.models import FailureRecord
from modelqueue.names import exception_path
from modelqueue.tasks.compat import TaskResultStatus, task_finished
from modelqueue.tasks.models import QueuedTask as TaskRow
from modelqueue.tasks.worker import TaskWorker
from modelqueue.text import is_cleaned
from tests.testapp import tasks
from tests.testapp.actions import POISON_ERRORS, poison_error

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def nothing_ran():
    tasks.RAN.clear()
    yield
    tasks.RAN.clear()


def run_tasks(alias='default'):
    return TaskWorker(alias, burst=True, listen=False).run()


def storable_everywhere(text):
    return '\x00' not in text and text.encode('utf-8', 'surrogatepass').decode('utf-8', 'replace') == text


@pytest.mark.parametrize('kind', sorted(POISON_ERRORS))
def test_a_task_raising_a_poison_exception_fails_once_and_the_next_task_runs(kind):
    result = tasks.raise_poison.enqueue(kind)
    healthy = tasks.add.enqueue(1, 2)
    assert run_tasks() == 2
    assert run_tasks() == 0  # nothing runs again
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1
    (error,) = result.errors
    assert error.exception_class_path == exception_path(poison_error(kind))
    assert storable_everywhere(error.traceback), error.traceback
    assert type(poison_error(kind)).__name__ in error.traceback
    assert tasks.RAN == [f'raise_poison {kind}']
    healthy.refresh()
    assert healthy.status == TaskResultStatus.SUCCESSFUL and healthy.return_value == 3


def stored_where(kind):
    """Whether this database stores the return value `kind` of POISON_VALUES."""
    return {
        'nan': False,
        'infinity': False,
        'nul': connection.vendor != 'postgresql',
        'surrogate': connection.vendor == 'sqlite',  # as a JSON escape
    }[kind]


@pytest.mark.parametrize('kind', sorted(tasks.POISON_VALUES))
def test_a_return_value_the_database_cannot_store_fails_the_task_once_saying_why(kind):
    result = tasks.return_poison.enqueue(kind)
    healthy = tasks.add.enqueue(2, 2)
    assert run_tasks() == 2
    assert run_tasks() == 0  # nothing runs again
    assert tasks.RAN == [f'return_poison {kind}']
    result.refresh()
    row = TaskRow.objects.get(pk=result.id)
    if stored_where(kind):
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert result.return_value == tasks.POISON_VALUES[kind]
    else:
        assert result.status == TaskResultStatus.FAILED, Status(row.status)
        assert Status(row.status).parse()[0::2] == (State.canceled, 1)
        (error,) = result.errors
        assert error.exception_class_path == 'modelqueue.exceptions.OutcomeNotStored'
        assert 'return_value' in error.traceback and storable_everywhere(error.traceback)
        assert row.return_value is None and result.finished_at is not None
    healthy.refresh()
    assert healthy.status == TaskResultStatus.SUCCESSFUL


def test_a_task_retrying_on_exceptions_is_not_run_again_for_a_value_that_cannot_be_stored():
    """ON_EXCEPTION 'retry' retries what the task raised; a value that cannot
    be stored is the outcome of a run that happened, and is not retried."""
    result = tasks.return_poison.using(backend='retrying').enqueue('nan')
    run_tasks('retrying')
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and tasks.RAN == ['return_poison nan']


def test_a_huge_error_is_stored_within_the_same_cap_as_failure_records():
    with override_settings(MODELQUEUE_TRACEBACK_CHARS=5000):
        result = tasks.fail_hugely.enqueue(20_000_000)
        run_tasks()
    result.refresh()
    (error,) = result.errors
    assert len(error.traceback) <= 5000 and is_cleaned(error.traceback)
    assert error.traceback.startswith('Traceback (most recent call last):')
    (record,) = FailureRecord.objects.filter(object_id=result.id)
    assert len(record.traceback) <= 5000 and is_cleaned(record.traceback)


def test_by_default_a_task_error_is_capped_as_failure_records_are():
    result = tasks.fail_hugely.enqueue(20_000_000)
    run_tasks()
    result.refresh()
    (error,) = result.errors
    assert len(error.traceback) <= 20_000 and is_cleaned(error.traceback)


def test_task_finished_is_sent_while_the_tasks_exception_is_handled(caplog):
    """Django's own receiver logs a FAILED task with logger.exception: it
    must find the task's exception being handled, not NoneType: None."""
    seen = []

    def receive(sender, task_result, **kwargs):
        seen.append((task_result.status, sys.exc_info()[1]))

    task_finished.connect(receive)
    try:
        with caplog.at_level(logging.INFO):
            tasks.fail.enqueue('boom')
            tasks.add.enqueue(1, 1)
            run_tasks()
    finally:
        task_finished.disconnect(receive)
    (failed_status, error), (ok_status, none) = seen
    assert failed_status == TaskResultStatus.FAILED and none is None
    assert isinstance(error, ValueError) and str(error) == 'boom'
    assert 'NoneType: None' not in caplog.text
    (logged,) = [r for r in caplog.records if r.name in ('django_tasks', 'django.tasks') and r.exc_info]
    assert logged.exc_info[1] is error
    assert 'raise ValueError(message)' in caplog.text


@pytest.mark.vendors('mysql')
@pytest.mark.django_db(transaction=True)  # MariaDB drops the connection; the worker opens another
def test_a_return_value_beyond_max_allowed_packet_fails_the_task_once():
    """MariaDB refuses a statement longer than max_allowed_packet with an
    OperationalError and drops the connection: not a lost connection but a
    value too large, so the task ends FAILED rather than RUNNING."""
    with connection.cursor() as cursor:
        cursor.execute('SELECT @@max_allowed_packet')
        (packet,) = cursor.fetchone()
    result = tasks.return_hugely.enqueue(packet + 1000)
    healthy = tasks.add.enqueue(1, 2)
    assert run_tasks() == 2
    assert run_tasks() == 0
    assert tasks.RAN == [f'return_hugely {packet + 1000}']
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    (error,) = result.errors
    assert error.exception_class_path == 'modelqueue.exceptions.OutcomeNotStored'
    assert 'max_allowed_packet' in error.traceback
    healthy.refresh()
    assert healthy.status == TaskResultStatus.SUCCESSFUL
