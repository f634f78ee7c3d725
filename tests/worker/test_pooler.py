"""Behind PgBouncer in transaction mode, the pooler most hosted sites use.

PostgreSQL only; each test starts a PgBouncer of its own (the pgbouncer
fixture, tests/support/pgbouncer.py: a pool of 10 server sessions, handed
out round robin so that nothing can lean on a session by luck). Worker
processes reach the test database through it as their "default"; the
alias "direct" reaches PostgreSQL itself, for ``--listen-database``.
"""

import threading
import time

import pytest
from django.db import connection, connections
from django.test import override_settings

from modelqueue import Status
from modelqueue.counters import compact_counters, install_counters, state_totals, uninstall_counters
from modelqueue.models import WorkerHeartbeat
from modelqueue.wakeup import install_trigger, uninstall_trigger
from tests.support.admin import post_action
from tests.support.databases import child_env, extra_databases
from tests.support.processes import finish, start_worker
from tests.support.tasks import executions_per_task, waiting_tasks
from tests.support.waits import wait_until
from tests.testapp.admin import TaskAdmin
from tests.testapp.models import Task
from tests.testapp.routers import ReplicaRouter

pytestmark = [pytest.mark.vendors('postgresql'), pytest.mark.topology]

BOUND = 10  # seconds: far below a --sleep of 30, so only a notification can be this quick
FAST_BEATS = {'MODELQUEUE_HEARTBEAT_SECONDS': '0.3'}
#: What the deployment guide says a pooled alias needs (docs/deployment.rst).
POOLED = {'OPTIONS': {'prepare_threshold': None}, 'DISABLE_SERVER_SIDE_CURSORS': True}


def through(bouncer, **changes):
    """Settings changes of an alias that goes through `bouncer`."""
    return {'PORT': str(bouncer.port), **POOLED, **changes}


def worker_env(bouncer, **extra):
    return {**child_env(default=through(bouncer), direct={}), **FAST_BEATS, **extra}


def heartbeat_of(pid):
    return WorkerHeartbeat.objects.filter(pid=pid).first()


def backend_pid():
    with connection.cursor() as cursor:
        cursor.execute('SELECT pg_backend_pid()')
        return cursor.fetchone()[0]


def sessions(pid=None, besides=()):
    """application_name of the sessions on the test database, but this
    thread's and the backends `besides` (the test's other sessions)."""
    with connection.cursor() as cursor:
        cursor.execute(
            'SELECT application_name FROM pg_stat_activity'
            ' WHERE datname = current_database() AND pid <> pg_backend_pid() AND NOT pid = ANY(%s)',
            [list(besides)],
        )
        names = [name for (name,) in cursor.fetchall()]
    return [name for name in names if pid is None or f':{pid} ' in name]


@pytest.mark.processes
def test_through_a_transaction_pooler_the_worker_says_notifications_do_not_reach_it_and_polls(
    spawn, pgbouncer, superuser_client
):
    child = start_worker(spawn, '--sleep=0.3', env=worker_env(pgbouncer))
    wait_until(lambda: heartbeat_of(child.pid), 30, 'the heartbeat row', child=child)
    assert heartbeat_of(child.pid).wakeup == 'unreachable'
    rows = waiting_tasks(3)
    wait_until(lambda: len(executions_per_task()) == 3, BOUND, 'the rows, by polling', child=child)
    activity = superuser_client.get('/admin/testapp/task/dashboard/activity/').content.decode()
    assert 'polling: notifications do not reach this worker; set --listen-database' in activity
    child.terminate()
    status, log = finish(child)
    assert status == 0, log
    assert 'polling: notifications do not reach this worker' in log
    assert 'set --listen-database' in log
    assert 'listening on' not in log, 'the first line says how it is woken, not what it tried'
    assert executions_per_task() == {row.pk: 1 for row in rows}


@pytest.mark.processes
@pytest.mark.parametrize('how', ['option', 'setting'])
def test_with_a_direct_listen_database_it_wakes_on_commit_through_the_pooler(spawn, pgbouncer, how):
    if how == 'option':
        child = start_worker(spawn, '--sleep=30', '--threads=2', '--listen-database=direct', env=worker_env(pgbouncer))
    else:
        env = worker_env(pgbouncer, MODELQUEUE_LISTEN_DATABASE='direct')
        child = start_worker(spawn, '--sleep=30', '--threads=2', env=env)
    wait_until(lambda: heartbeat_of(child.pid), 30, 'the heartbeat row', child=child)
    assert heartbeat_of(child.pid).wakeup == 'listening'
    (listen,) = [name for name in sessions(child.pid) if name.endswith(' listen')]
    assert listen.startswith('modelqueue worker ')
    time.sleep(0.3)  # every thread has looked once and sleeps
    for number in range(3):
        Task.objects.create(data=f'row {number}')
        wait_until(lambda: len(executions_per_task()) == number + 1, BOUND, 'a notification to wake it', child=child)
    child.terminate()
    status, log = finish(child)
    assert status == 0, log
    assert "listening on modelqueue_testapp_task_status through database 'direct'" in log
    assert 'do not reach' not in log


@pytest.mark.processes
@pytest.mark.parametrize('batch', [1, 8])
def test_server_side_binding_without_prepared_statements_and_exactly_once_through_the_pooler(spawn, pgbouncer, batch):
    """psycopg 3 prepares a statement run 5 times on a session; through
    PgBouncer 1.18 in transaction mode that breaks ("prepared statement
    _pg3_0 does not exist"). With prepare_threshold None, as the guide says,
    server-side binding works through the pooler; so do batches (--batch:
    a claim of many rows and their completion are a statement each)."""
    rows = waiting_tasks(40)
    options = {'OPTIONS': {'prepare_threshold': None, 'server_side_binding': True}}
    env = {**child_env(default=through(pgbouncer, **options), direct={}), **FAST_BEATS}
    status, log = finish(
        start_worker(spawn, '--burst', '--threads=4', f'--batch={batch}', '--listen-database=direct', env=env),
        timeout=120,
    )
    assert status == 0, log
    assert executions_per_task() == {row.pk: 1 for row in rows}
    assert 'prepared statement' not in log and 'database error' not in log, log


def test_the_trigger_and_the_counters_install_and_compact_through_the_pooler(pgbouncer):
    uninstall_trigger(Task, 'status')
    uninstall_counters(Task, 'status')
    pgbouncer.warm()
    with extra_databases(pooled=through(pgbouncer)):
        assert install_trigger(Task, 'status', using='pooled') is True
        assert install_trigger(Task, 'status', using='pooled') is False, 'current'
        assert install_counters(Task, 'status', using='pooled') is True
        waiting_tasks(5)
        Task.objects.update(status=Status.finished())
        assert compact_counters(Task, 'status', using='pooled') > 0
        assert state_totals(Task.objects.using('pooled'), 'status')['finished'] == 5
        connections['pooled'].close()
    uninstall_counters(Task, 'status')


@pytest.mark.parametrize(
    'server_side_cursors', [True, False], ids=['server-side cursors', 'DISABLE_SERVER_SIDE_CURSORS']
)
def test_the_admin_through_the_pooler(pgbouncer, superuser_client, monkeypatch, server_side_cursors):
    """Every page and an action whose check of each row iterates the
    selection (Django's server-side cursor unless disabled) go through the
    pooler, whose sessions are handed out round robin."""
    rows = waiting_tasks(5)
    monkeypatch.setattr(TaskAdmin, 'has_change_permission', lambda self, request, obj=None: True, raising=False)
    pgbouncer.warm()
    pooled = through(pgbouncer, DISABLE_SERVER_SIDE_CURSORS=not server_side_cursors)
    router = ReplicaRouter(read='pooled', write='pooled')
    with extra_databases(pooled=pooled), override_settings(DATABASE_ROUTERS=[router]):
        for page in ('', 'dashboard/', 'dashboard/data/', 'dashboard/activity/', f'{rows[0].pk}/change/'):
            response = superuser_client.get(f'/admin/testapp/task/{page}')
            assert response.status_code == 200, page
        assert superuser_client.get('/admin/queues/').status_code == 200
        response = post_action(superuser_client, 'cancel_status', rows[:3], post='yes')
        assert response.status_code == 200
        connections['pooled'].close()
    assert sorted(Status(task.status).state.name for task in Task.objects.all()) == ['canceled'] * 3 + ['waiting'] * 2


@pytest.mark.processes
def test_eight_hosts_of_eight_threads_through_a_pool_of_ten(spawn, pgbouncer, superuser_client):
    """64 worker threads in 8 process trees with distinct host names share 10
    server sessions; PostgreSQL sees at most the pool and one LISTEN per
    process; every row runs exactly once, and the Workers panel shows each
    host."""
    hosts = [f'host-{number}' for number in range(8)]
    children = []
    for host in hosts:
        env = worker_env(pgbouncer, MODELQUEUE_HOST_NAME=host)
        children.append(start_worker(spawn, '--threads=8', '--sleep=30', '--listen-database=direct',
                                     action='record_slowly', env={**env, 'MODELQUEUE_TEST_ACTION_SECONDS': '0.005'}))
    for child in children:
        wait_until(lambda: heartbeat_of(child.pid), 60, 'every worker to beat', child=child)
    peaks = {'servers': 0, 'sessions': 0}
    stop = threading.Event()
    test_session = backend_pid()  # the sampler's own is left out by its query

    def sample():
        try:
            while not stop.wait(0.1):
                peaks['servers'] = max(peaks['servers'], pgbouncer.server_connections())
                peaks['sessions'] = max(peaks['sessions'], len(sessions(besides=[test_session])))
        finally:
            connection.close()

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        rows = waiting_tasks(600)
        wait_until(lambda: len(executions_per_task()) == 600, 120, 'the 600 rows')
        activity = superuser_client.get('/admin/testapp/task/dashboard/activity/').content.decode()
    finally:
        stop.set()
        sampler.join()
    for child in children:
        child.terminate()
    for child in children:
        status, log = finish(child, timeout=120)
        assert status == 0, log
    assert executions_per_task() == {row.pk: 1 for row in rows}
    assert {Status(value).state.name for value in Task.objects.values_list('status', flat=True)} == {'finished'}
    for host, child in zip(hosts, children):
        assert f'data-worker="{host}:{child.pid}"' in activity
    assert activity.count('woken on commit') == 8
    assert 0 < peaks['servers'] <= 10, peaks
    assert peaks['sessions'] <= 10 + len(children), peaks
