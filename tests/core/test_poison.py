"""Poison inputs to run(): exceptions whose text no database stores as it
is (or that cannot be turned into text), and values an action set that the
database refuses. What run() writes about a failure never fails, and an
outcome that cannot be stored with the action's values is still written."""

import logging
from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.test.utils import override_settings

from modelqueue import OutcomeNotStored, State, Status, failures, queue, run
from modelqueue.models import FailureRecord
from modelqueue.text import is_cleaned
from tests.testapp.actions import POISON_ERRORS, POISON_NOTES, poison_error
from tests.testapp.models import Task

pytestmark = pytest.mark.django_db


def make(data='task', status=None):
    return Task.objects.create(data=data, status=Status.waiting() if status is None else status)


def status_of(task):
    return Status(Task.objects.values_list('status', flat=True).get(pk=task.pk))


def raising(error):
    def action(task):
        raise error

    return action


def setting_note(note, then=None):
    def action(task):
        task.note = note
        if then is not None:
            raise then

    return action


def storable_everywhere(text):
    """True if every supported database stores `text` as it is."""
    return '\x00' not in text and text.encode('utf-8', 'surrogatepass').decode('utf-8', 'replace') == text


@pytest.mark.parametrize('kind', sorted(POISON_ERRORS))
def test_run_reraises_the_actions_own_exception_whatever_its_text(kind):
    task = make()
    error = poison_error(kind)
    with pytest.raises(type(error)) as raised:
        run(Task.objects.all(), 'status', raising(error), retry=1)
    assert raised.value is error
    assert status_of(task).parse()[0::2] == (State.waiting, 1)
    record = FailureRecord.objects.get()
    assert record.outcome == FailureRecord.WAITING and record.attempt == 1
    for text in (record.message, record.traceback, record.exception):
        assert storable_everywhere(text), text
    assert is_cleaned(record.message) and record.exception.endswith(type(error).__qualname__)
    # The traceback's last line names the exception even when its text is poison.
    assert type(error).__name__ in record.traceback


def test_a_file_name_that_is_not_utf_8_is_kept_readable_and_marked():
    make()
    with pytest.raises(OSError):
        run(Task.objects.all(), 'status', raising(poison_error('surrogate')))
    message = FailureRecord.objects.get().message
    assert message.startswith('/data/caf\\udce9.txt')
    assert is_cleaned(message) and '1 lone surrogate' in message


@pytest.mark.parametrize('kind', ['unreadable', 'not-text'])
def test_a_message_that_cannot_be_read_says_why(kind):
    make()
    with pytest.raises(Exception):  # noqa: B017 (the poison's own class)
        run(Task.objects.all(), 'status', raising(poison_error(kind)))
    message = FailureRecord.objects.get().message
    assert is_cleaned(message) and 'str() raised' in message


def test_a_nul_in_one_message_leaves_failure_records_on_for_every_queue(caplog):
    make('nul')
    make('next')
    with caplog.at_level(logging.WARNING, 'modelqueue'):
        with pytest.raises(ValueError):
            run(Task.objects.filter(data='nul'), 'status', raising(poison_error('nul')))
        with pytest.raises(ValueError):
            run(Task.objects.filter(data='next'), 'status', raising(ValueError('an ordinary failure')))
    nul_message, ordinary = FailureRecord.objects.order_by('pk').values_list('message', flat=True)
    assert ordinary == 'an ordinary failure'
    assert nul_message.startswith('before\\x00after') and is_cleaned(nul_message)
    assert not [r for r in caplog.records if 'Failure records are off' in r.getMessage()]


def test_a_record_that_cannot_be_written_is_logged_and_changes_nothing_else(caplog):
    """An INSERT that fails for another reason than a missing table (here a
    broken statement) is logged; recording stays on and run() raises the
    action's own exception."""
    make('first')
    make('second')
    broken = mock.patch.object(failures, 'insert_sql', return_value='INSERT INTO nowhere VALUES (%s)')
    error = ValueError('the action failed')
    with broken, caplog.at_level(logging.WARNING, 'modelqueue'), pytest.raises(ValueError) as raised:
        run(Task.objects.filter(data='first'), 'status', raising(error))
    assert raised.value is error
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any('Could not write the failure record' in text for text in warnings), warnings
    assert not any('Failure records are off' in text for text in warnings), warnings
    with pytest.raises(ValueError):
        run(Task.objects.filter(data='second'), 'status', raising(ValueError('recorded')))
    assert list(FailureRecord.objects.values_list('message', flat=True)) == ['recorded']


def test_a_traceback_and_a_message_keep_within_their_caps_however_long_the_text():
    make()
    with override_settings(MODELQUEUE_TRACEBACK_CHARS=5000), pytest.raises(ValueError):
        run(Task.objects.all(), 'status', raising(ValueError('E' * 20_000_000)))
    record = FailureRecord.objects.get()
    assert len(record.traceback) <= 5000 and len(record.message) <= failures.MESSAGE_CHARS
    assert is_cleaned(record.traceback) and is_cleaned(record.message)
    # The cut keeps the traceback's first frames and its last line's end.
    assert record.traceback.startswith('Traceback (most recent call last):')
    assert 'raise error' in record.traceback
    assert record.message.startswith('EEEE')


# Values the action set that the database refuses


@pytest.mark.parametrize('retry, state', [(1, State.waiting), (0, State.canceled)])
def test_values_no_database_stores_make_a_failed_attempt_written_without_them(retry, state):
    task = make()
    with pytest.raises(OutcomeNotStored) as raised:
        run(Task.objects.all(), 'status', setting_note(POISON_NOTES['note-surrogate']), retry=retry)
    assert 'note' in str(raised.value)
    assert status_of(task).parse()[0::2] == (state, 1)
    assert Task.objects.get(pk=task.pk).note == ''
    record = FailureRecord.objects.get()
    assert record.exception == 'modelqueue.exceptions.OutcomeNotStored'
    assert record.outcome == (FailureRecord.WAITING if retry else FailureRecord.CANCELED)
    assert 'note' in record.message and 'UnicodeEncodeError' in record.message


def test_the_task_run_returns_holds_what_was_written():
    task = make()
    seen = []

    def action(row):
        seen.append(row)
        row.note = POISON_NOTES['note-surrogate']

    with pytest.raises(OutcomeNotStored):
        run(Task.objects.all(), 'status', action)
    (row,) = seen
    assert row.note == '' and row.status == status_of(task)


@pytest.mark.parametrize('kind', ['note-nul', 'note-too-long'])
def test_values_some_databases_refuse_are_stored_where_they_can_be(kind):
    task = make()
    note = POISON_NOTES[kind]
    refused = connection.vendor == 'postgresql' or (connection.vendor == 'mysql' and kind == 'note-too-long')
    if refused:
        with pytest.raises(OutcomeNotStored):
            run(Task.objects.all(), 'status', setting_note(note))
        assert status_of(task).parse()[0::2] == (State.waiting, 1)
        assert Task.objects.get(pk=task.pk).note == ''
        assert FailureRecord.objects.get().exception == 'modelqueue.exceptions.OutcomeNotStored'
    else:
        run(Task.objects.all(), 'status', setting_note(note))
        assert status_of(task).state == State.finished
        assert Task.objects.get(pk=task.pk).note == note


def test_an_actions_own_exception_is_still_reraised_when_its_values_are_refused():
    task = make()
    error = ValueError('the action failed too')
    with pytest.raises(ValueError) as raised:
        run(Task.objects.all(), 'status', setting_note(POISON_NOTES['note-surrogate'], then=error), retry=0)
    assert raised.value is error
    assert status_of(task).parse()[0::2] == (State.canceled, 1)
    record = FailureRecord.objects.get()
    assert record.exception == 'modelqueue.exceptions.OutcomeNotStored'
    assert 'the action failed too' in record.message


def test_retry_with_refused_values_counts_as_a_failed_attempt():
    from modelqueue import Retry  # noqa: PLC0415

    task = make()
    with pytest.raises(OutcomeNotStored):
        run(Task.objects.all(), 'status', setting_note(POISON_NOTES['note-surrogate'], then=Retry()), retry=3)
    assert status_of(task).parse()[0::2] == (State.waiting, 1)


def failing_completion(error):
    """Patch the completion's UPDATE (fenced on a working status) to raise
    `error`; the claim's (fenced on a waiting one, on MariaDB) still works."""
    real = queue._fenced_update

    def update(queryset, pk, attname, expected, values):
        if Status(expected).state == State.working:
            raise error
        return real(queryset, pk, attname, expected, values)

    return mock.patch.object(queue, '_fenced_update', update)


def test_a_lost_connection_at_the_completion_keeps_the_row_working_for_the_timeout():
    """Not the values' fault: the row stays working (a timeout reclaims it)
    and the error propagates, as before, for the worker to back off."""
    task = make()
    lost = OperationalError('server closed the connection unexpectedly')
    with failing_completion(lost), pytest.raises(OperationalError):
        run(Task.objects.all(), 'status', setting_note('fine'))
    assert status_of(task).state == State.working
    assert not FailureRecord.objects.exists()


def test_a_status_that_cannot_be_written_is_not_retried_without_values():
    """Only the status to write, and it fails: nothing to leave out, the error
    propagates (it is not about the action's values)."""
    task = make()
    refused = ValueError('a broken adapter')
    with failing_completion(refused), pytest.raises(ValueError):
        run(Task.objects.all(), 'status', lambda row: None)
    assert status_of(task).state == State.working

