"""Waking idle workers: the NOTIFY trigger, the waiters, and the worker using them."""

import datetime as dt
import hashlib
import logging
import os
import threading
import time
import types

import pytest
from django.db import connection, transaction

from modelqueue import State, Status, now
from modelqueue.expressions import with_state
from modelqueue.wakeup import channel_name, install_trigger, uninstall_trigger
from modelqueue.worker.waiters import ListeningWaiter, PollingWaiter, waiter_for
from tests.support.connections import listening
from tests.support.processes import finish, idle, start_worker
from tests.support.tasks import executed
from tests.support.waits import wait_until
from tests.testapp.models import Task, Upload

postgresql_only = pytest.mark.vendors('postgresql')  # LISTEN/NOTIFY

BOUND = 10  # seconds: a functional bound on a wait, far below the 30 s poll


def bounded(wait, seconds=30):
    """Call ``wait(seconds)``; return what it returned and whether it came back soon."""
    started = time.monotonic()
    woken = wait(seconds)
    return woken, time.monotonic() - started < BOUND


@pytest.mark.django_db
def test_waiter_for_polls_unless_listening_on_postgresql():
    waiter = waiter_for(Task.objects.all(), 'status', listen=False)
    assert type(waiter) is PollingWaiter
    listening = waiter_for(Task.objects.all(), 'status')
    expected = ListeningWaiter if connection.vendor == 'postgresql' else PollingWaiter
    assert type(listening) is expected
    listening.close()


@pytest.mark.django_db(transaction=True)
def test_polling_waiter_sleeps_only_until_the_next_scheduled_row():
    soon = now() + dt.timedelta(seconds=0.5)
    Task.objects.create(data='later', status=Status.waiting(now() + dt.timedelta(hours=1)))
    Task.objects.create(data='soon', status=Status.waiting(soon))
    woken, quick = bounded(PollingWaiter(Task.objects.all(), 'status').wait)
    assert quick and not woken
    assert now() >= soon


@pytest.mark.django_db(transaction=True)
def test_polling_waiter_respects_the_queryset():
    Task.objects.create(data='other', status=Status.waiting(now() + dt.timedelta(seconds=0.2)))
    waiter = PollingWaiter(Task.objects.filter(data='mine'), 'status')
    assert waiter.until_scheduled(30) == 30


@pytest.mark.vendors('sqlite', 'mysql')  # PostgreSQL installs it
def test_install_trigger_does_nothing_on_other_databases():
    assert install_trigger(Task, 'status') is False
    assert uninstall_trigger(Task, 'status') is False


@pytest.fixture
def notifications(transactional_db):
    """Count the NOTIFYs each change sends to the channel of Task.status.

    ``count(change)`` makes the change, then sends a marker notification
    itself and reads until the marker: notifications arrive in commit order,
    so those before the marker are the change's own.
    """
    import psycopg  # noqa: PLC0415 (PostgreSQL's driver, for PostgreSQL's tests only)

    install_trigger(Task, 'status')
    channel = channel_name(Task, 'status')
    params = connection.get_connection_params()
    listener = psycopg.connect(
        **{key: params[key] for key in ('dbname', 'user', 'host', 'port') if key in params},
        autocommit=True,
    )
    listener.execute(f'LISTEN "{channel}"')

    def count(change):
        change()
        with connection.cursor() as cursor:
            cursor.execute('SELECT pg_notify(%s, %s)', [channel, 'marker'])
        received = 0
        for notification in listener.notifies(timeout=BOUND):
            if notification.payload == 'marker':
                return received
            received += 1
        pytest.fail('the marker notification never came')

    yield count
    listener.close()


@postgresql_only
def test_install_trigger_is_idempotent(transactional_db):
    uninstall_trigger(Task, 'status')
    assert install_trigger(Task, 'status') is True
    assert install_trigger(Task, 'status') is False
    assert install_trigger(Upload, 'scan_status') is True
    assert install_trigger(Upload, 'publish_status') is True
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'testapp_upload'::regclass"
            " AND tgname LIKE 'modelqueue_%%'"
        )
        assert cursor.fetchone() == (4,)


@postgresql_only
def test_every_path_to_waiting_notifies(notifications):
    task = Task.objects.create(data='finished', status=Status.finished())
    assert notifications(lambda: Task.objects.create(data='new')) == 1
    assert notifications(
        lambda: Task.objects.bulk_create(Task(data=str(n)) for n in range(5))
    ) == 1, 'one notification per transaction'
    assert notifications(
        lambda: Task.objects.filter(pk=task.pk).update(status=with_state('status', 'waiting'))
    ) == 1

    def raw_update():
        with connection.cursor() as cursor:
            cursor.execute(
                'UPDATE testapp_task SET status = %s WHERE id = %s',
                [Status.waiting(now() + dt.timedelta(hours=1)), task.pk],
            )

    assert notifications(raw_update) == 1, 'a scheduled row notifies too'


@postgresql_only
def test_other_changes_do_not_notify(notifications):
    task = Task(data='t', status=Status.waiting())
    assert notifications(task.save) == 1
    assert notifications(lambda: Task.objects.create(data='c', status=Status.created())) == 0
    assert notifications(lambda: task.save()) == 0, 'status unchanged'
    assert notifications(lambda: Task.objects.update(note='edited')) == 0
    for state in (State.working, State.finished, State.canceled):
        assert notifications(
            lambda: Task.objects.filter(pk=task.pk).update(status=Status.combine(state, now(), 1))
        ) == 0


@postgresql_only
def test_listening_waiter_wakes_on_commit_and_survives_a_lost_connection(transactional_db):
    install_trigger(Task, 'status')
    waiter = ListeningWaiter(Task.objects.all(), 'status')
    try:
        assert waiter.wait(30) is True, 'a fresh LISTEN returns at once'
        Task.objects.create(data='new')
        assert bounded(waiter.wait) == (True, True)
        assert waiter.wait(0.1) is False
        with connection.cursor() as cursor:
            cursor.execute(
                'SELECT pg_terminate_backend(pid) FROM pg_stat_activity'
                " WHERE query LIKE 'LISTEN%%' AND datname = current_database()"
            )
        assert bounded(waiter.wait) == (True, True), 'a lost connection wakes it'
        assert waiter.wait(30) is True, 'listening again'
        Task.objects.create(data='after')
        assert bounded(waiter.wait) == (True, True)
    finally:
        waiter.close()


@pytest.mark.processes
@postgresql_only
def test_idle_worker_wakes_for_rows_made_due_by_any_path(spawn):
    child = start_worker(spawn, '--sleep=30')
    wait_until(lambda: listening(connection), 20, 'the worker to LISTEN', child=child)
    # Past the look a fresh LISTEN makes: asleep, so only a notification wakes it.
    wait_until(lambda: idle(child.pid), 20, 'the worker to wait', child=child)
    Task.objects.create(data='saved')
    wait_until(executed(1), BOUND, 'a saved row', child=child)
    Task.objects.bulk_create([Task(data='bulk 1'), Task(data='bulk 2')])
    wait_until(executed(3), BOUND, 'bulk-created rows', child=child)
    finished = Task.objects.get(data='saved')
    Task.objects.filter(pk=finished.pk).update(status=with_state('status', 'waiting'))
    wait_until(executed(4), BOUND, 'a requeued row', child=child)
    with connection.cursor() as cursor:
        cursor.execute(
            'UPDATE testapp_task SET status = %s WHERE id = %s',
            [Status.waiting(), finished.pk],
        )
    wait_until(executed(5), BOUND, 'a row made due by raw SQL', child=child)
    due = now() + dt.timedelta(seconds=1)
    scheduled = Task.objects.create(data='scheduled', status=Status.waiting(due))
    wait_until(executed(6), BOUND, 'a scheduled row coming due', child=child)
    child.terminate()
    status, log = finish(child)
    assert status == 0, log
    state, when, _ = Status(Task.objects.get(pk=scheduled.pk).status).parse()
    assert state == State.finished and when >= due.replace(microsecond=due.microsecond // 1000 * 1000)
    assert 'listening on modelqueue_testapp_task_status' in log


@pytest.mark.processes
def test_idle_worker_polls_and_wakes_for_a_scheduled_row(spawn):
    due = now() + dt.timedelta(seconds=1)
    Task.objects.create(data='scheduled', status=Status.waiting(due))
    child = start_worker(spawn, '--sleep=30', '--no-listen')
    wait_until(executed(1), BOUND, 'a scheduled row coming due', child=child)
    child.terminate()
    status, log = finish(child)
    assert status == 0, log
    assert 'polling every 30s' in log


@pytest.mark.processes
def test_polling_worker_picks_up_new_rows(spawn):
    child = start_worker(spawn, '--sleep=0.1', '--no-listen')
    # It has looked and found nothing: only a later poll can find the row.
    wait_until(lambda: idle(child.pid), 20, 'the worker to wait', child=child)
    Task.objects.create(data='new')
    wait_until(executed(1), BOUND, 'the new row', child=child)
    child.terminate()
    status, log = finish(child)
    assert status == 0, log


def test_channel_name_is_the_table_and_column_and_short_enough_for_postgresql():
    assert channel_name(Task, 'status') == 'modelqueue_testapp_task_status'
    assert waiter_for(Task.objects.all(), 'status', listen=False).describe(1) == 'polling every 1s'


@postgresql_only
@pytest.mark.parametrize(
    'replacement',
    [
        # Another WHEN clause: the trigger would never fire for waiting rows.
        'CREATE OR REPLACE TRIGGER {update} AFTER UPDATE OF status ON testapp_task'
        ' FOR EACH ROW WHEN (false) EXECUTE FUNCTION {function}()',
        # The same trigger, dropped and created again by hand with another event list.
        'DROP TRIGGER {update} ON testapp_task;'
        ' CREATE TRIGGER {update} AFTER UPDATE ON testapp_task'
        ' FOR EACH ROW EXECUTE FUNCTION {function}()',
    ],
)
def test_a_trigger_whose_definition_changed_is_installed_again(transactional_db, replacement):
    uninstall_trigger(Task, 'status')
    assert install_trigger(Task, 'status') is True
    channel = channel_name(Task, 'status')

    def definition():
        with connection.cursor() as cursor:
            cursor.execute(
                'SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = %s',
                [f'{channel}_update'],
            )
            return cursor.fetchone()[0]

    installed = definition()
    with connection.cursor() as cursor:
        cursor.execute(replacement.format(update=f'{channel}_update', function=f'{channel}_notify'))
    assert definition() != installed
    assert install_trigger(Task, 'status') is True
    assert definition() == installed
    assert install_trigger(Task, 'status') is False


def fake_model(table, column='status'):
    """What channel_name reads of a model: its table and a field's column."""
    field = types.SimpleNamespace(column=column)
    return types.SimpleNamespace(
        _meta=types.SimpleNamespace(db_table=table, get_field=lambda name: field)
    )


def test_channel_name_replaces_what_is_not_a_lowercase_letter_digit_or_underscore():
    assert channel_name(fake_model('App.Tasks-2', 'Status'), 'status') == (
        'modelqueue_app_tasks_2_status'
    )


def test_a_channel_name_past_50_characters_is_cut_to_41_and_a_digest():
    table = 'x' * (50 - len('modelqueue__status'))
    assert channel_name(fake_model(table), 'status') == f'modelqueue_{table}_status'
    longer = fake_model(table + 'y')
    full = f'modelqueue_{table}y_status'
    digest = hashlib.sha1(full.encode()).hexdigest()[:8]
    assert channel_name(longer, 'status') == f'{full[:41]}_{digest}'
    assert len(channel_name(longer, 'status')) == 50


@postgresql_only
def test_uninstall_trigger_removes_the_function_and_both_triggers(transactional_db):
    install_trigger(Task, 'status')
    assert uninstall_trigger(Task, 'status') is True
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'testapp_task'::regclass"
            " AND tgname LIKE 'modelqueue_%%'"
        )
        assert cursor.fetchone() == (0,)
        cursor.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'modelqueue_testapp_task%%'")
        assert cursor.fetchone() == (0,)
    assert install_trigger(Task, 'status') is True


@postgresql_only
def test_install_trigger_logs_what_it_installed(transactional_db, caplog):
    uninstall_trigger(Task, 'status')
    with caplog.at_level(logging.INFO, logger='modelqueue.worker'):
        install_trigger(Task, 'status')
    assert [record.getMessage() for record in caplog.records] == [
        'Installed the wake-up trigger modelqueue_testapp_task_status_notify on testapp_task'
    ]


@postgresql_only
def test_an_outdated_trigger_function_is_replaced(transactional_db):
    install_trigger(Task, 'status')
    with connection.cursor() as cursor:
        cursor.execute(
            'CREATE OR REPLACE FUNCTION modelqueue_testapp_task_status_notify() RETURNS trigger'
            " LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END;$$"
        )
    assert install_trigger(Task, 'status') is True
    assert install_trigger(Task, 'status') is False


@pytest.mark.django_db
@pytest.mark.parametrize('listen', [False, True])
def test_a_waiter_wakes_as_soon_as_the_wakeup_fd_is_readable(listen):
    read, write = os.pipe()
    waiter = waiter_for(Task.objects.all(), 'status', listen=listen, wakeup_fd=read)
    try:
        assert waiter.wakeup_fd == read
        os.write(write, b'x')
        started = time.monotonic()
        assert waiter.wait(BOUND) is True
        assert time.monotonic() - started < BOUND / 2
    finally:
        waiter.close()
        os.close(read)
        os.close(write)


@pytest.mark.django_db
def test_a_waiter_sleeps_until_just_after_the_next_scheduled_row():
    Task.objects.create(data='soon', status=Status.waiting(now() + dt.timedelta(seconds=2)))
    until = PollingWaiter(Task.objects.all(), 'status').until_scheduled(30)
    assert 1 < until <= 2.002
    Task.objects.all().delete()
    Task.objects.create(data='now', status=Status.waiting(now() + dt.timedelta(milliseconds=50)))
    assert PollingWaiter(Task.objects.all(), 'status').until_scheduled(30) < 0.5


@postgresql_only
def test_a_missing_trigger_is_put_back(transactional_db):
    install_trigger(Task, 'status')
    with connection.cursor() as cursor:
        cursor.execute('DROP TRIGGER modelqueue_testapp_task_status_update ON testapp_task')
    assert install_trigger(Task, 'status') is True
    assert install_trigger(Task, 'status') is False


@postgresql_only
def test_install_trigger_in_the_callers_transaction_leaves_its_lock_timeout(transactional_db):
    uninstall_trigger(Task, 'status')
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute('SHOW lock_timeout')
        (before,) = cursor.fetchone()
        assert install_trigger(Task, 'status') is True
        cursor.execute('SHOW lock_timeout')
        assert cursor.fetchone() == (before,)


@postgresql_only
def test_of_two_installs_at_once_only_the_one_that_installed_says_so(transactional_db):
    """Two processes migrate at once: the second waits for the first's lock,
    then finds the trigger current and reports that it installed nothing."""
    uninstall_trigger(Task, 'status')
    installed_first = threading.Event()
    commit_first = threading.Event()
    results = {}

    def first():
        try:
            with transaction.atomic():  # holds the install lock until it commits
                results['first'] = install_trigger(Task, 'status')
                installed_first.set()
                commit_first.wait(BOUND)
        finally:
            connection.close()

    def second():
        try:
            results['second'] = install_trigger(Task, 'status')
        finally:
            connection.close()

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert installed_first.wait(BOUND)
    threads.append(threading.Thread(target=second))
    threads[1].start()

    def second_waits():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
            return cursor.fetchone()[0]

    wait_until(second_waits, BOUND, 'the second install to wait for the lock')
    commit_first.set()
    for thread in threads:
        thread.join(BOUND)
    assert results == {'first': True, 'second': False}
