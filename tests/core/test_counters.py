"""State counters kept by PostgreSQL triggers: exact after every kind of write.

Each test compares the counters with ``COUNT`` of each state's range, read
in one snapshot; the process test does so while workers claim and finish
rows and an operator's bulk update runs.
"""

import datetime as dt
import signal
import threading
import time

import pytest
from django.db import connection, transaction

from modelqueue import State, Status, counters, dbobjects, now
from modelqueue.admin import counts as admin_counts
from modelqueue.admin.counts import is_estimate, scheduled_from_counters, state_counts
from modelqueue.admin.figures import throughput
from modelqueue.counters import compact_counters, install_counters, state_totals, uninstall_counters
from modelqueue.ranges import in_states, scheduled
from modelqueue.worker.housekeeping import Housekeeping
from tests.support.processes import finish, start_worker
from tests.support.tasks import true_counts
from tests.support.waits import wait_until
from tests.testapp.models import Task, Upload

postgresql_only = pytest.mark.vendors('postgresql')  # statement triggers with transition tables
WAIT_SECONDS = 20


@pytest.fixture
def uninstalled_afterwards():
    """Remove the Task queue's counters after a test that commits them, so
    that no later test finds them installed."""
    yield
    uninstall_counters(Task, 'status')


def counter_rows():
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM {counters.COUNTS_TABLE} WHERE queue = %s', ['testapp_task.status'])
        return cursor.fetchone()[0]


def minutes_older_than_kept(state):
    """Counter rows of the Task queue for minutes of `state` that compaction folds."""
    horizon = int(getattr(Status, state)(now() - counters.KEEP_MINUTES)) // counters.MINUTE
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT count(*) FROM {counters.COUNTS_TABLE} WHERE queue = %s AND state = %s AND bucket < %s',
            ['testapp_task.status', int(State.get(state)), horizon],
        )
        return cursor.fetchone()[0]


def make(*statuses):
    return Task.objects.bulk_create(Task(data=f'row {n}', status=status) for n, status in enumerate(statuses))


@postgresql_only
@pytest.mark.django_db
def test_installing_counts_the_rows_already_there_and_a_second_install_changes_nothing():
    make(Status.waiting(), Status.waiting(), Status.finished(now()), -5)
    assert install_counters(Task, 'status') is True
    assert install_counters(Task, 'status') is False
    assert state_totals(Task.objects.all(), 'status') == {**true_counts(), 'waiting': 2, 'finished': 1, None: 1}


@postgresql_only
@pytest.mark.django_db
def test_every_kind_of_write_keeps_the_counts_exact():
    install_counters(Task, 'status')
    current = now()
    rows = make(*[Status.waiting()] * 5, Status.created(current), *[Status.finished(current)] * 3)
    checks = []

    def check():
        checks.append(state_totals(Task.objects.all(), 'status') == true_counts())

    check()
    Task.objects.filter(pk__in=[row.pk for row in rows[:3]]).update(status=Status.working(current))  # a claim
    check()
    row = Task.objects.get(pk=rows[0].pk)
    row.status = Status.canceled(current)  # a save
    row.save()
    check()
    Task.objects.filter(pk=rows[1].pk).update(data='no status change')
    check()
    Task.objects.filter(pk=rows[2].pk).update(status=-1)  # no state
    check()
    Task.objects.filter(pk=rows[5].pk).delete()
    check()
    with connection.cursor() as cursor:
        cursor.execute('UPDATE testapp_task SET status = status + 1 WHERE status BETWEEN %s AND %s',
                       [Status.minimum(State.finished), Status.maximum(State.finished)])  # attempts, same state
        cursor.execute('UPDATE testapp_task SET status = NULL WHERE false')
    check()
    assert checks == [True] * 7
    assert state_totals(Task.objects.all(), 'status')['canceled'] == 1


@postgresql_only
@pytest.mark.django_db
def test_truncate_empties_the_counts_and_counting_goes_on_after_it():
    install_counters(Task, 'status')
    make(*[Status.waiting()] * 4)
    with connection.cursor() as cursor:
        cursor.execute('TRUNCATE testapp_task CASCADE')
    assert state_totals(Task.objects.all(), 'status')['waiting'] == 0
    make(Status.waiting())
    assert state_totals(Task.objects.all(), 'status') == true_counts()


@postgresql_only
@pytest.mark.django_db
def test_compacting_folds_the_rows_into_one_per_state_and_keeps_the_sums():
    install_counters(Task, 'status')
    at = now()  # one minute for all, whenever the test runs
    for _ in range(6):
        make(Status.waiting(at), Status.finished(at))
    make(Status.finished(at - dt.timedelta(hours=4)))
    before = state_totals(Task.objects.all(), 'status')
    assert counter_rows() == 13  # one per state and minute per INSERT; counting the empty table added none
    assert minutes_older_than_kept('finished') == 1
    assert compact_counters(Task, 'status') == 13 - 3  # waiting, finished now, finished folded
    assert counter_rows() == 3 and minutes_older_than_kept('finished') == 0
    assert state_totals(Task.objects.all(), 'status') == before == true_counts()


@postgresql_only
@pytest.mark.django_db
def test_counters_answer_only_for_a_whole_table_with_every_trigger_enabled():
    make(Status.waiting())
    assert state_totals(Task.objects.all(), 'status') is None  # not installed
    install_counters(Task, 'status')
    assert state_totals(Task.objects.filter(data='row 0'), 'status') is None
    assert state_totals(Upload.objects.all(), 'scan_status') is None  # another queue
    with connection.cursor() as cursor:
        _, (_, update, _, _) = counters.trigger_names(Task, 'status')
        cursor.execute(f'ALTER TABLE testapp_task DISABLE TRIGGER {update}')
    assert state_totals(Task.objects.all(), 'status') is None
    uninstall_counters(Task, 'status')
    assert state_totals(Task.objects.all(), 'status') is None


@postgresql_only
@pytest.mark.django_db
def test_counts_of_writes_made_while_a_trigger_was_disabled_are_never_read_and_a_reinstall_recounts():
    """ALTER TABLE ... DISABLE TRIGGER, writes, then ENABLE TRIGGER: the
    counters missed those writes; they must not be read, and installing them
    again must count the table afresh (not answer "already installed")."""
    make(Status.waiting())
    install_counters(Task, 'status')
    _, (insert, _, _, _) = counters.trigger_names(Task, 'status')
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE testapp_task DISABLE TRIGGER {insert}')
    make(Status.waiting(), Status.finished(now()))  # not counted
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE testapp_task ENABLE TRIGGER {insert}')
    assert state_totals(Task.objects.all(), 'status') is None
    assert install_counters(Task, 'status') is True
    assert state_totals(Task.objects.all(), 'status') == true_counts()


@postgresql_only
@pytest.mark.django_db
def test_writes_under_session_replication_role_replica_are_counted():
    """A replica-role session (logical replication's apply worker, or
    pg_restore --disable-triggers' kind of tooling) fires only ALWAYS and
    REPLICA triggers: the counters' triggers are ALWAYS ones."""
    install_counters(Task, 'status')
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = 'replica'")
        make(Status.waiting(), Status.waiting(), Status.canceled(now()))
        Task.objects.filter(data='row 0').update(status=Status.working(now()))
    assert state_totals(Task.objects.all(), 'status') == true_counts()


@postgresql_only
@pytest.mark.django_db
@pytest.mark.parametrize('search_path', ['modelqueue_elsewhere, public', 'modelqueue_elsewhere', 'pg_catalog'])
def test_the_triggers_count_into_their_own_schemas_table_whatever_the_writers_search_path(search_path):
    """A session whose search_path finds another modelqueue_state_count
    first, or none, writes to the queue table by its qualified name: the
    counts go to the table the counters were installed with."""
    install_counters(Task, 'status')
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA modelqueue_elsewhere')
        cursor.execute(
            f'CREATE TABLE modelqueue_elsewhere.{counters.COUNTS_TABLE} (LIKE public.{counters.COUNTS_TABLE})'
        )
        cursor.execute(f'SET LOCAL search_path = {search_path}')
        cursor.execute(
            'INSERT INTO public.testapp_task (data, note, status) VALUES (%s, %s, %s), (%s, %s, %s)',
            ['a', '', Status.waiting(), 'b', '', Status.finished(now())],
        )
        cursor.execute(f'SELECT count(*) FROM modelqueue_elsewhere.{counters.COUNTS_TABLE}')
        assert cursor.fetchone() == (0,)
        cursor.execute('SET LOCAL search_path TO DEFAULT')  # LOCAL lasts to the test's rollback
    assert state_totals(Task.objects.all(), 'status') == true_counts()
    assert true_counts()['waiting'] == 1


@postgresql_only
@pytest.mark.django_db
def test_housekeeping_recounts_counters_whose_trigger_was_disabled_and_enabled_again():
    install_counters(Task, 'status')
    _, (_, update, _, _) = counters.trigger_names(Task, 'status')
    make(Status.waiting(), Status.waiting())
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE testapp_task DISABLE TRIGGER {update}')
    Task.objects.filter(data='row 0').update(status=Status.finished(now()))
    chores = Housekeeping(Task, 'status')
    chores.every_minute()
    assert state_totals(Task.objects.all(), 'status') is None  # disabled: an operator's choice, left alone
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE testapp_task ENABLE TRIGGER {update}')
    chores.every_minute()
    assert state_totals(Task.objects.all(), 'status') == true_counts()
    assert true_counts()['finished'] == 1


@postgresql_only
@pytest.mark.django_db
def test_a_verification_finds_counts_that_differ_from_the_index_and_recounts():
    """Whatever made them differ (here an edit of the counts table by hand),
    a verification in one snapshot finds it and counts afresh."""
    install_counters(Task, 'status')
    make(Status.waiting(), Status.working(now()))
    with connection.cursor() as cursor:
        cursor.execute(
            f'INSERT INTO {counters.COUNTS_TABLE} (queue, state, bucket, rows) VALUES (%s, 3, NULL, 5)',
            ['testapp_task.status'],
        )
    assert counters.verify_counters(Task, 'status') == ['working']
    assert state_totals(Task.objects.all(), 'status') == true_counts()
    assert counters.verify_counters(Task, 'status') == []


@postgresql_only
@pytest.mark.django_db
def test_two_queues_of_one_table_have_counts_of_their_own():
    install_counters(Upload, 'scan_status')
    install_counters(Upload, 'publish_status')
    Upload.objects.create(scan_status=Status.finished(now()), publish_status=Status.waiting())
    Upload.objects.create(scan_status=Status.waiting(), publish_status=Status.created(now()))
    assert state_totals(Upload.objects.all(), 'scan_status') == true_counts(Upload.objects.all(), 'scan_status')
    assert state_totals(Upload.objects.all(), 'publish_status') == true_counts(Upload.objects.all(), 'publish_status')
    assert state_totals(Upload.objects.all(), 'publish_status')['created'] == 1


@postgresql_only
@pytest.mark.django_db
def test_the_dashboard_counts_from_the_counters_exactly_where_it_would_estimate():
    current = now()
    make(
        *[Status.finished(current - dt.timedelta(minutes=n)) for n in range(30)],
        Status.waiting(current - dt.timedelta(minutes=1)), Status.waiting(current + dt.timedelta(days=1)),
        Status.working(current - dt.timedelta(hours=2)),
    )
    with connection.cursor() as cursor:
        cursor.execute('ANALYZE testapp_task')
    estimated = state_counts(Task.objects.all(), 'status', current, estimate_above=10)
    assert is_estimate(estimated['finished'])
    install_counters(Task, 'status')
    counted = state_counts(Task.objects.all(), 'status', current, estimate_above=10)
    assert not any(is_estimate(count) for count in counted.values())
    assert counted == {
        'created': 0, 'waiting': 2, 'working': 1, 'finished': 30, 'canceled': 0,
        'due': 1, 'scheduled': 1, 'stalled': 1,
    }


@postgresql_only
@pytest.mark.django_db
def test_a_read_that_sums_many_rows_compacts_them(monkeypatch):
    install_counters(Task, 'status')
    monkeypatch.setattr(counters, 'COMPACT_ABOVE', 3)
    at = now()
    for _ in range(5):
        make(Status.waiting(at))
    state_counts(Task.objects.all(), 'status', now())
    assert counter_rows() == 1


@pytest.mark.vendors('sqlite', 'mysql')
@pytest.mark.django_db
def test_elsewhere_counters_are_not_installed_and_counting_is_unchanged():
    make(Status.waiting())
    assert install_counters(Task, 'status') is False
    assert state_totals(Task.objects.all(), 'status') is None
    assert compact_counters(Task, 'status') == 0
    assert uninstall_counters(Task, 'status') is False
    assert state_counts(Task.objects.all(), 'status', now())['waiting'] == 1


@postgresql_only
@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(240)
def test_counts_stay_exact_while_workers_claim_and_an_operator_requeues(spawn, uninstalled_afterwards):
    """Two workers run 300 rows (each claim and finish a status change)
    while this process requeues and cancels rows in bulk and compacts; in
    every snapshot read meanwhile the counters' totals, throughput and
    scheduled count equal those counted on the queue's index."""
    install_counters(Task, 'status')
    make(*[Status.waiting()] * 300)
    workers = [
        start_worker(spawn, '--sleep', '0.05', action='record_slowly', env={'MODELQUEUE_TEST_ACTION_SECONDS': '0.01'})
        for _ in range(2)
    ]
    snapshots = []
    unfinished = Task.objects.filter(in_states('status', State.waiting, State.working))
    deadline = time.monotonic() + 120
    try:
        while unfinished.exists():
            assert time.monotonic() < deadline, 'the workers stopped finishing rows'
            for worker in workers:
                assert worker.poll() is None, finish(worker)[1]
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ')
                current, tasks = now(), Task.objects.all()
                snapshots.append((
                    (state_totals(tasks, 'status'), true_counts()),
                    (throughput(tasks, 'status', current, from_counters=True), throughput(tasks, 'status', current)),
                    (
                        scheduled_from_counters(tasks, 'status', current),
                        tasks.filter(scheduled('status', current)).count(),
                    ),
                ))
            # The operator requeues what waits, some of it 2 s later, and cancels a few rows.
            Task.objects.filter(in_states('status', State.waiting)).update(status=Status.waiting(now()))
            Task.objects.filter(in_states('status', State.waiting), pk__gt=Task.objects.latest('pk').pk - 20).update(
                status=Status.waiting(now() + dt.timedelta(seconds=2))
            )
            Task.objects.filter(in_states('status', State.waiting), pk__gt=Task.objects.latest('pk').pk - 5).update(
                status=Status.canceled(now())
            )
            compact_counters(Task, 'status')
            time.sleep(0.01)
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
            finish(worker)
    assert len(snapshots) >= 3
    for figures in zip(*snapshots):  # totals, throughput, scheduled: from the counters, then counted
        assert [by_counters for by_counters, _ in figures] == [counted for _, counted in figures]
    assert any(counted for _, counted in list(zip(*snapshots))[2])  # some were scheduled
    final = state_totals(Task.objects.all(), 'status')
    assert final == true_counts()
    assert final['finished'] + final['canceled'] == 300


@postgresql_only
@pytest.mark.processes
def test_a_running_workers_heartbeat_compacts_the_counts(spawn, uninstalled_afterwards):
    install_counters(Task, 'status')
    for _ in range(20):
        make(Status.waiting())
    worker = start_worker(spawn, env={'MODELQUEUE_HEARTBEAT_SECONDS': '0.2'})
    try:
        wait_until(lambda: counter_rows() <= 2, 20, 'the counts compacted', worker)
    finally:
        worker.send_signal(signal.SIGTERM)
        finish(worker)
    assert state_totals(Task.objects.all(), 'status') == true_counts() == {**true_counts(), 'finished': 20}


@postgresql_only
@pytest.mark.django_db
def test_throughput_and_scheduled_from_the_counters_equal_the_counts_before_and_after_folding():
    current = now().replace(second=30, microsecond=0)
    make(
        *[Status.finished(current - dt.timedelta(minutes=n, seconds=n)) for n in range(0, 300, 7)],
        *[Status.canceled(current - dt.timedelta(minutes=n)) for n in range(0, 200, 13)],
        Status.finished(current + dt.timedelta(seconds=50)),  # written while the figures are read
        Status.finished(current + dt.timedelta(hours=2)),  # not a late write
        Status.waiting(7), Status.waiting(current - dt.timedelta(hours=5)),  # due
        Status.waiting(current - dt.timedelta(seconds=10)), Status.waiting(current),  # due, in this minute
        Status.waiting(current + dt.timedelta(seconds=10)),  # scheduled, in this minute
        *[Status.waiting(current + dt.timedelta(minutes=n)) for n in (1, 2, 90, 60 * 24 * 40)],
    )
    tasks = Task.objects.all()
    by_index = (throughput(tasks, 'status', current), state_counts(tasks, 'status', current))
    install_counters(Task, 'status')
    assert minutes_older_than_kept('finished') == 0  # the install's count folded them
    by_counters = (throughput(tasks, 'status', current, from_counters=True), state_counts(tasks, 'status', current))
    assert by_counters[1].from_counters and not by_index[1].from_counters
    assert by_counters == by_index
    assert by_index[1]['scheduled'] == 5 and by_index[1]['due'] == 4
    assert sum(by_index[0][1]) == len(range(0, 60, 7)) + 1


def in_another_session(write):
    """Run `write` on a connection of its own (another thread's) and commit it."""
    failed = []

    def target():
        try:
            write()
        except Exception as error:  # noqa: BLE001 (reported by the test that asked)
            failed.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, failed


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_due_is_waiting_less_scheduled_read_in_one_snapshot_while_rows_are_scheduled(
    monkeypatch, uninstalled_afterwards
):
    """The counters give waiting; scheduled is counted after them. Another
    session schedules two rows and commits between the two reads: neither
    read sees them, so due is not off by two."""
    install_counters(Task, 'status')
    current = now()
    make(
        *[Status.waiting(current - dt.timedelta(minutes=1))] * 3,
        *[Status.waiting(current + dt.timedelta(hours=1))] * 2,
    )
    count_scheduled = admin_counts.scheduled_from_counters
    between = []

    def scheduled_after_another_write(queryset, field, when):
        later = Status.waiting(current + dt.timedelta(hours=2))
        writer, failed = in_another_session(lambda: make(later, later))
        writer.join(WAIT_SECONDS)
        assert not writer.is_alive() and not failed, failed
        between.append(True)
        return count_scheduled(queryset, field, when)

    monkeypatch.setattr(admin_counts, 'scheduled_from_counters', scheduled_after_another_write)
    found = state_counts(Task.objects.all(), 'status', current)
    assert between == [True] and Task.objects.count() == 7  # the write landed between the reads
    assert found.from_counters
    assert (found['waiting'], found['scheduled'], found['due']) == (5, 2, 3)


def session_waits_for_a_lock(pid):
    with connection.cursor() as cursor:
        cursor.execute('SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s', [pid])
        row = cursor.fetchone()
    return row is not None and row[0] == 'Lock'


@postgresql_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize('installed_before', [False, True], ids=['first-install', 'upgrade'])
def test_a_write_racing_the_install_waits_for_it_and_is_counted_exactly_once(
    monkeypatch, uninstalled_afterwards, installed_before
):
    """Another session inserts rows while install_counters runs: once the
    install has begun, the write waits until it commits, and then the
    triggers count it; none is missed by both the first count and the
    triggers, none counted by both. Upgrading counters an earlier version
    installed, the write must not deadlock with the install either."""
    make(*[Status.waiting()] * 5)
    objects = counters.counter_triggers(Task, 'status', connection.ops.quote_name)
    if installed_before:  # as an earlier version left them: its function differs
        install_counters(Task, 'status')
        with connection.cursor() as cursor:
            cursor.execute(
                f'CREATE OR REPLACE FUNCTION {objects.function}() RETURNS trigger LANGUAGE plpgsql'
                f' AS $body${objects.body.replace("-- modelqueue", "-- an earlier modelqueue")}$body$'
            )
    create = dbobjects.TriggerSet.create
    race = {}

    def create_while_another_session_writes(self, cursor, quote):
        if self.function == objects.function:  # the install has begun: its triggers come next
            session = []

            def write():
                with connection.cursor() as other:
                    other.execute('SELECT pg_backend_pid()')
                    session.append(other.fetchone()[0])
                make(*[Status.waiting()] * 3)

            race['writer'], race['failed'] = in_another_session(write)
            wait_until(lambda: session, WAIT_SECONDS, 'the writing session to start')
            race['held back'] = wait_until(
                lambda: (not race['writer'].is_alive() and 'went ahead')
                or (session_waits_for_a_lock(session[0]) and 'held back'),
                WAIT_SECONDS,
                'the write to finish or to wait for a lock',
            ) == 'held back'
        return create(self, cursor, quote)

    monkeypatch.setattr(dbobjects.TriggerSet, 'create', create_while_another_session_writes)
    assert install_counters(Task, 'status') is True
    race['writer'].join(WAIT_SECONDS)
    assert not race['writer'].is_alive()
    assert race['failed'] == [], race['failed']  # no deadlock, no lost write
    assert race['held back'], 'the write went ahead of the install instead of waiting for it'
    assert Task.objects.count() == 8
    assert state_totals(Task.objects.all(), 'status') == true_counts() == {**true_counts(), 'waiting': 8}
