"""Failure records: what run() writes when an attempt fails, what it costs, and pruning."""

import datetime as dt
import logging
from unittest import mock

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from modelqueue import Abort, Cancel, Retry, Status, conf, failures, now, run
from modelqueue.models import FailureRecord, WorkerHeartbeat
from modelqueue.names import worker_name
from tests.testapp.models import Task

SECOND = dt.timedelta(seconds=1)


@pytest.fixture(autouse=True)
def recording_on():
    failures._off_until.clear()
    yield
    failures._off_until.clear()


def make(data='task', status=None):
    return Task.objects.create(data=data, status=Status.waiting() if status is None else status)


def raising(error):
    def action(task):
        raise error

    return action


def statements(queries):
    return [query['sql'] for query in queries]


def touches_records(sql):
    return FailureRecord._meta.db_table in sql


@pytest.mark.django_db
def test_an_exception_is_recorded_with_everything_the_history_shows():
    task = make()
    before = now()
    with pytest.raises(ValueError):
        run(Task.objects.all(), 'status', raising(ValueError('bad <address>')), retry=2)
    (record,) = FailureRecord.objects.all()
    assert record.content_type == ContentType.objects.get_for_model(Task)
    assert (record.object_id, record.field, record.attempt) == (str(task.pk), 'status', 1)
    assert record.outcome == FailureRecord.WAITING
    assert (record.exception, record.message) == ('builtins.ValueError', 'bad <address>')
    assert 'Traceback (most recent call last)' in record.traceback
    assert "raise error" in record.traceback and 'ValueError: bad <address>' in record.traceback
    assert record.worker == worker_name()
    # started is the claim's time, written to the millisecond
    assert before - dt.timedelta(milliseconds=1) <= record.started <= record.ended <= now()
    assert record.duration == record.ended - record.started


@pytest.mark.django_db
def test_abort_then_cancel_past_retry_count_their_attempts():
    task = make()
    run(Task.objects.all(), 'status', raising(Abort()), retry=1)
    Task.objects.filter(pk=task.pk).update(status=Status.waiting(now() - SECOND, 1))
    run(Task.objects.all(), 'status', raising(Abort(dt.timedelta(minutes=5))), retry=1)
    records = list(FailureRecord.objects.order_by('pk').values_list('exception', 'attempt', 'outcome', 'message'))
    assert records == [
        ('modelqueue.exceptions.Abort', 1, 'waiting', ''),
        ('modelqueue.exceptions.Abort', 2, 'canceled', 'delay 0:05:00'),
    ]


@pytest.mark.django_db
def test_cancel_is_recorded_as_canceled_and_retry_is_not_a_failure():
    make('cancel')
    run(Task.objects.all(), 'status', raising(Cancel('no mailbox')))
    make('retry')
    run(Task.objects.filter(data='retry'), 'status', raising(Retry()))
    assert list(FailureRecord.objects.values_list('exception', 'outcome', 'message')) == [
        ('modelqueue.exceptions.Cancel', 'canceled', 'no mailbox')
    ]


@pytest.mark.django_db
def test_a_completion_fenced_off_is_recorded_as_left_as_changed():
    task = make()

    def canceled_meanwhile(row):
        Task.objects.filter(pk=row.pk).update(status=Status.canceled(now(), 0))
        raise Abort

    run(Task.objects.all(), 'status', canceled_meanwhile)
    assert FailureRecord.objects.get().outcome == FailureRecord.SUPERSEDED
    assert Status(Task.objects.get(pk=task.pk).status).state.name == 'canceled'


@pytest.mark.django_db
def test_a_timeout_reclaim_records_the_worker_whose_heartbeat_held_the_row():
    task = make(status=Status.working(now() - dt.timedelta(hours=2), 0))
    WorkerHeartbeat.objects.create(
        host='box', pid=42, content_type=ContentType.objects.get_for_model(Task), field='status',
        started=now(), last_seen=now() - dt.timedelta(hours=2), interval=5, object_id=str(task.pk),
    )
    run(Task.objects.all(), 'status', lambda row: None, retry=0)
    record = FailureRecord.objects.get()
    assert (record.exception, record.outcome, record.attempt) == (FailureRecord.TIMEOUT, 'canceled', 1)
    assert record.worker == 'box:42'
    assert 'timeout of 1:00:00' in record.message
    assert dt.timedelta(hours=1, minutes=59) < record.duration < dt.timedelta(hours=2, minutes=1)


@pytest.mark.django_db
def test_a_reclaim_without_a_heartbeat_names_no_worker():
    make(status=Status.working(now() - dt.timedelta(hours=2), 1))
    run(Task.objects.all(), 'status', lambda row: None)
    record = FailureRecord.objects.get()
    assert (record.worker, record.attempt, record.outcome) == ('', 2, 'waiting')


@pytest.mark.django_db
def test_a_traceback_keeps_its_first_frames_and_its_end_within_the_limit():
    make()
    with override_settings(MODELQUEUE_TRACEBACK_CHARS=1000), pytest.raises(ValueError):
        run(Task.objects.all(), 'status', raising(ValueError('x' * 5000)))
    traceback = FailureRecord.objects.get().traceback
    assert len(traceback) == 1000
    assert traceback.startswith('Traceback (most recent call last):\n')
    assert 'raise error' in traceback  # the frames, before the cut
    # The end of the exception's line, then the marker saying what was cut.
    body, marker = traceback.rsplit(' [modelqueue: ', 1)
    assert body.endswith('x' * 500 + '\n') and '…' in body
    assert marker.startswith('cut ') and marker.endswith(' characters]')


def test_the_traceback_limit_leaves_room_for_a_traceback():
    with override_settings(MODELQUEUE_TRACEBACK_CHARS=999), pytest.raises(ValueError) as error:
        conf.get('MODELQUEUE_TRACEBACK_CHARS')
    assert str(error.value) == 'MODELQUEUE_TRACEBACK_CHARS = 999: expected an integer of at least 1000'


@pytest.mark.django_db(transaction=True)
def test_success_costs_no_statement_and_a_failure_one_insert():
    make('ok')
    with override_settings(MODELQUEUE_FAILURE_RECORDS=False), CaptureQueriesContext(connection) as off:
        run(Task.objects.all(), 'status', lambda task: None)
    make('ok')
    with CaptureQueriesContext(connection) as on:
        run(Task.objects.all(), 'status', lambda task: None)
    assert len(on) == len(off) and not any(touches_records(sql) for sql in statements(on))

    make('fails')
    with override_settings(MODELQUEUE_FAILURE_RECORDS=False), CaptureQueriesContext(connection) as off:
        run(Task.objects.all(), 'status', raising(Abort()))
    make('fails')
    with CaptureQueriesContext(connection) as on:
        run(Task.objects.all(), 'status', raising(Abort()))
    added = [sql for sql in statements(on) if touches_records(sql)]
    assert len(on) == len(off) + 1
    assert len(added) == 1 and added[0].startswith('INSERT')


@pytest.mark.django_db(transaction=True)
def test_a_reclaim_costs_one_insert_more():
    make(status=Status.working(now() - dt.timedelta(hours=2), 0))
    with CaptureQueriesContext(connection) as on:
        run(Task.objects.all(), 'status', lambda row: None)
    added = [sql for sql in statements(on) if touches_records(sql)]
    assert len(added) == 1 and added[0].startswith('INSERT'), statements(on)


@pytest.mark.django_db
def test_run_works_without_the_table_and_says_why_once(caplog):
    make('one')
    make('two')
    missing = mock.patch.object(FailureRecord._meta, 'db_table', 'modelqueue_not_migrated')
    with missing, caplog.at_level(logging.WARNING, 'modelqueue'):
        assert run(Task.objects.all(), 'status', raising(Abort())) is not None
        assert run(Task.objects.all(), 'status', raising(Abort())) is not None
    warnings = [record.getMessage() for record in caplog.records if 'Failure records' in record.getMessage()]
    assert len(warnings) == 1, warnings
    assert "off on database 'default'" in warnings[0] and 'migrate modelqueue' in warnings[0]
    assert Task.objects.filter(**Status.filter('status', 'waiting')).count() == 2
    failures._off_until.clear()  # the table is back: recording resumes
    make('three')
    run(Task.objects.filter(data='three'), 'status', raising(Abort()))
    assert FailureRecord.objects.count() == 1


@pytest.mark.parametrize(
    ('name', 'value', 'expected'),
    [
        ('MODELQUEUE_FAILURES_PER_ROW', 0, 'an integer of at least 1'),
        ('MODELQUEUE_FAILURE_MAX_AGE', 30, 'a timedelta above zero'),
        ('MODELQUEUE_FAILURE_RECORDS', 'yes', 'True or False'),
    ],
)
def test_a_bad_setting_is_named_with_what_was_expected(name, value, expected):
    with override_settings(**{name: value}), pytest.raises(ValueError) as error:
        conf.get(name)
    assert str(error.value) == f'{name} = {value!r}: expected {expected}'


def add_records(task, count, ended):
    content_type = ContentType.objects.get_for_model(Task)
    FailureRecord.objects.bulk_create(
        FailureRecord(
            content_type=content_type, object_id=str(task.pk), field='status', attempt=1,
            outcome='waiting', exception='builtins.ValueError', message=str(number),
            started=ended, ended=ended, duration=dt.timedelta(0),
        )
        for number in range(count)
    )


@pytest.mark.django_db
def test_pruning_keeps_the_newest_records_per_row_and_drops_old_ones():
    busy, quiet, old = make('busy'), make('quiet'), make('old')
    add_records(busy, 8, now())
    add_records(quiet, 2, now())
    add_records(old, 3, now() - dt.timedelta(days=31))
    with override_settings(MODELQUEUE_FAILURES_PER_ROW=5):
        deleted = failures.Pruner().prune()
    assert deleted == 3 + 3
    kept = FailureRecord.objects.filter(object_id=str(busy.pk)).values_list('message', flat=True)
    assert sorted(kept) == ['3', '4', '5', '6', '7']
    assert FailureRecord.objects.filter(object_id=str(quiet.pk)).count() == 2
    assert not FailureRecord.objects.filter(object_id=str(old.pk)).exists()


@pytest.mark.django_db
def test_pruning_works_in_bounded_batches(monkeypatch):
    task = make()
    add_records(task, 7, now() - dt.timedelta(days=40))
    monkeypatch.setattr(failures, 'PRUNE_BATCH', 2)
    monkeypatch.setattr(failures, 'PRUNE_BATCHES', 2)
    pruner = failures.Pruner()
    with CaptureQueriesContext(connection) as queries:
        assert pruner.prune() == 4
    deletes = [q['sql'] for q in queries if q['sql'].startswith('DELETE')]
    assert len(deletes) == 2
    assert pruner.prune() == 3
    assert pruner.prune() == 0


@pytest.mark.django_db
def test_later_pruning_passes_still_trim_rows_that_earlier_passes_saw():
    """A pass looks only at records written since the last one, but trims
    the whole row they belong to: older records that an earlier pass kept
    go once newer ones push the row past the limit."""
    busy = make('busy')
    add_records(busy, 3, now())
    records = FailureRecord.objects.filter(object_id=str(busy.pk)).order_by('pk')
    pruner = failures.Pruner()
    with override_settings(MODELQUEUE_FAILURES_PER_ROW=3):
        assert pruner.prune() == 0  # three: within the limit
        seen = list(records.values_list('pk', flat=True))
        add_records(busy, 2, now())
        newer = list(records.exclude(pk__in=seen).values_list('pk', flat=True))
        assert pruner.prune() == 2
        assert pruner.prune() == 0
    assert list(records.values_list('pk', flat=True)) == [seen[-1], *newer]  # the two oldest went


@pytest.mark.django_db
def test_a_reclaim_names_the_worker_that_held_the_row_most_recently():
    """A row can be named by two heartbeat rows: a worker that held it
    earlier (lost long ago, its row not yet pruned) and the one that claimed
    it last. The reclaim names the latter, the last seen."""
    task = make(status=Status.working(now() - dt.timedelta(hours=2), 1))
    content_type = ContentType.objects.get_for_model(Task)
    for host, last_seen in (('earlier', now() - dt.timedelta(hours=5)), ('latest', now() - dt.timedelta(hours=2))):
        WorkerHeartbeat.objects.create(
            host=host, pid=7, content_type=content_type, field='status', started=last_seen,
            last_seen=last_seen, interval=5, object_id=str(task.pk),
        )
    run(Task.objects.all(), 'status', lambda row: None)
    assert FailureRecord.objects.get().worker == 'latest:7'
