"""Pausing a queue: a row that every claim reads in the statement that claims."""

import datetime as dt

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

import modelqueue
from modelqueue import Status, now, pauses, run
from modelqueue.models import QueuePause
from modelqueue.queue import run_chained
from tests.testapp.models import Task, Upload

# The claim in one statement (UPDATE ... RETURNING, SQLite and PostgreSQL),
# by SELECT ... FOR UPDATE SKIP LOCKED (a queryset that defers a field, on
# PostgreSQL and MariaDB), or by compare-and-swap (the same on SQLite).
CLAIMS = {
    'one statement': lambda: Task.objects.all(),
    'select for update': lambda: Task.objects.defer('note'),
}
TIMEOUT = dt.timedelta(minutes=10)


@pytest.fixture
def fresh_pause_check():
    """Claims decide once per process whether they read pauses; forget it."""
    pauses._readable.clear()
    yield
    pauses._readable.clear()


@pytest.mark.django_db
def test_pause_writes_a_row_naming_who_and_when_and_resume_deletes_it():
    before = now()
    assert modelqueue.is_paused(Task, 'status') is False
    assert modelqueue.pause(Task, 'status', by='alice') is True
    assert modelqueue.is_paused(Task, 'status') is True
    (row,) = QueuePause.objects.all()
    assert (row.field, row.queue_name, row.paused_by) == ('status', '', 'alice')
    assert row.content_type.model_class() is Task
    assert before <= row.paused_at <= now()
    assert modelqueue.resume(Task, 'status') is True
    assert modelqueue.is_paused(Task, 'status') is False
    assert not QueuePause.objects.exists()


@pytest.mark.django_db
def test_pausing_a_paused_queue_keeps_its_first_pause_and_resuming_a_running_one_says_so():
    assert modelqueue.pause(Task, 'status', by='alice')
    assert modelqueue.pause(Task, 'status', by='bob') is False
    assert pauses.pause_of(Task, 'status').paused_by == 'alice'
    assert modelqueue.resume(Task, 'status')
    assert modelqueue.resume(Task, 'status') is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    ('call', 'message'),
    [
        (lambda: modelqueue.pause(Task, 'data'), "invalid field 'data'"),
        (lambda: modelqueue.pause(Task, 'nope'), "invalid field 'nope': testapp.Task has no such"),
        (lambda: modelqueue.resume(Task, 'note'), "invalid field 'note'"),
        (lambda: modelqueue.is_paused(Task, 'data'), "invalid field 'data'"),
        (lambda: modelqueue.pause(Task, 'status', by=7), 'invalid by 7: expected a str'),
    ],
)
def test_a_bad_argument_is_refused_naming_it(call, message):
    with pytest.raises(ValueError, match=message.replace('.', r'\.')):
        call()
    assert not QueuePause.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize('claim_of', CLAIMS.values(), ids=CLAIMS.keys())
def test_every_claim_takes_nothing_from_a_paused_queue_and_drains_it_after_resume(claim_of):
    rows = [Task.objects.create(data=str(n), status=Status.waiting(n, 0)) for n in range(3)]
    modelqueue.pause(Task, 'status')
    assert run(claim_of(), 'status', pytest.fail) is None
    assert sorted(Task.objects.values_list('status', flat=True)) == [row.status for row in rows]
    modelqueue.resume(Task, 'status')
    done = [run(claim_of(), 'status', lambda task: None).pk for _ in rows]
    assert done == [row.pk for row in rows]


@pytest.mark.django_db
def test_a_pause_stops_one_queue_field_and_the_others_go_on():
    upload = Upload.objects.create(publish_status=Status.waiting(0))
    modelqueue.pause(Upload, 'scan_status')
    assert run(Upload.objects.all(), 'scan_status', pytest.fail) is None
    assert run(Upload.objects.all(), 'publish_status', lambda row: None).pk == upload.pk
    assert Task.objects.create(data='other model') == run(Task.objects.all(), 'status', lambda t: None)


@pytest.mark.django_db
@pytest.mark.vendors('sqlite', 'postgresql')  # MariaDB claims in more than one statement
def test_the_claim_of_a_paused_queue_costs_what_the_claim_of_an_empty_one_costs():
    """The pause is read inside the claim, one UPDATE: no statement is added."""
    run(Task.objects.all(), 'status', pytest.fail)  # compiled and kept
    with CaptureQueriesContext(connection) as empty:
        assert run(Task.objects.all(), 'status', pytest.fail) is None
    Task.objects.create(data='due')
    modelqueue.pause(Task, 'status')
    with CaptureQueriesContext(connection) as paused:
        assert run(Task.objects.all(), 'status', pytest.fail) is None
    assert len(paused) == len(empty)
    reading = [query['sql'] for query in paused if 'modelqueue_queuepause' in query['sql']]
    assert len(reading) == 1 and reading[0].startswith('UPDATE'), reading


@pytest.mark.django_db
@pytest.mark.vendors('postgresql')
def test_a_completion_claims_nothing_next_from_a_paused_queue():
    """On PostgreSQL a worker completes a row and claims the next in one
    statement: a pause made while the first row runs stops the second."""
    Task.objects.create(data='first', status=Status.waiting(1, 0))
    second = Task.objects.create(data='second', status=Status.waiting(2, 0))

    def pause_meanwhile(task):
        modelqueue.pause(Task, 'status')

    task, following = run_chained(
        Task.objects.all(), 'status', pause_meanwhile, 3, TIMEOUT, dt.timedelta(0),
        claim_next=lambda: True,
    )
    assert task.data == 'first' and Status(task.status).state.name == 'finished'
    assert following is None
    assert Task.objects.get(pk=second.pk).status == second.status


@pytest.mark.django_db
def test_a_pause_survives_in_the_database_not_in_the_process(fresh_pause_check):
    Task.objects.create(data='due')
    modelqueue.pause(Task, 'status')
    pauses._readable.clear()  # as a process started afresh
    assert run(Task.objects.all(), 'status', pytest.fail) is None


@pytest.mark.django_db
def test_without_the_modelqueue_app_a_claim_reads_no_pause(fresh_pause_check, monkeypatch):
    monkeypatch.setattr(pauses.apps, 'is_installed', lambda name: name != 'modelqueue')
    Task.objects.create(data='due')
    with CaptureQueriesContext(connection) as queries:
        assert run(Task.objects.defer('note'), 'status', lambda task: None) is not None
    assert not any('modelqueue_queuepause' in query['sql'] for query in queries)


@pytest.mark.django_db(transaction=True)
@pytest.mark.vendors('sqlite', 'postgresql')  # DDL in a transaction, rolled back
@pytest.mark.parametrize('claim_of', CLAIMS.values(), ids=CLAIMS.keys())
def test_without_the_pause_table_a_claim_reads_no_pause(fresh_pause_check, claim_of):
    Task.objects.create(data='due')
    run(claim_of(), 'status', lambda task: None)  # a statement reading pauses, compiled and kept
    Task.objects.create(data='due')
    pauses._readable.clear()  # as a process started where the table is missing

    class Dropped(Exception):
        pass

    with pytest.raises(Dropped), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f'DROP TABLE {QueuePause._meta.db_table}')
        assert run(claim_of(), 'status', lambda task: None) is not None
        assert pauses._readable == {'default': False}
        raise Dropped
    assert QueuePause.objects.count() == 0  # the table is back
