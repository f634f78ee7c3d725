"""The queue admin under a router that reads from a replica.

The dashboard, the overview, the changelist and the counts read the
replica and say how far behind it is; every write (the bulk actions, the
change form's buttons, the change form itself) goes to the primary; a
replica that cannot be reached costs no page: they read the primary, with
a note.

Two kinds of replica: on every database, an alias of the test database
(it reads what the primary holds) or one that cannot be reached; on
PostgreSQL, a real streaming replica of a primary of the test's own
(tests/support/replica.py: ``initdb``, then ``pg_basebackup -R`` on another
port), delayed with ``recovery_min_apply_delay`` and stopped.
"""

import re
import tempfile
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from modelqueue import Status
from tests.support import replica as replica_support
from tests.support.admin import post_action
from tests.support.databases import extra_databases
from tests.support.pgbouncer import free_port, topology_missing
from tests.support.users import create_superuser
from tests.support.waits import wait_until
from tests.testapp.models import Task
from tests.testapp.routers import ReplicaRouter

CHANGELIST = '/admin/testapp/task/'
PAGES = ['', 'dashboard/', 'dashboard/data/', 'dashboard/activity/']
LAG = re.compile(r'Read from the replica &quot;(\w+)&quot;, (\d+\.\d) s behind the primary\.')


def unreachable():
    """Settings changes of an alias that cannot be reached, on this database."""
    if connection.vendor == 'sqlite':
        return {'NAME': f'{tempfile.gettempdir()}/no-such-folder/replica.sqlite3'}
    return {'PORT': str(free_port()), 'OPTIONS': {**connection.settings_dict['OPTIONS'], 'connect_timeout': 5}}


def states(using='default'):
    return sorted(Status(value).state.name for value in Task.objects.using(using).values_list('status', flat=True))


@pytest.fixture
def operator(client, transactional_db):
    client.force_login(create_superuser())
    return client


def test_with_a_reachable_replica_the_pages_read_it_and_the_actions_write_the_primary(operator):
    rows = [Task.objects.create(data=f'row {number}') for number in range(3)]
    with extra_databases(replica={}), override_settings(DATABASE_ROUTERS=[ReplicaRouter()]):
        with CaptureQueriesContext(connections['replica']) as read:
            for page in PAGES:
                assert operator.get(CHANGELIST + page).status_code == 200, page
            assert operator.get('/admin/queues/').status_code == 200
        assert any('testapp_task' in query['sql'] for query in read.captured_queries)
        assert operator.get(CHANGELIST + 'dashboard/data/').json()['reads']['replica'] == 'replica'
        with CaptureQueriesContext(connections['replica']) as read:
            response = post_action(operator, 'cancel_status', rows[:2], post='yes')
            assert response.status_code == 200
            assert operator.post(f'{CHANGELIST}{rows[2].pk}/queue/status/cancel/').status_code == 302
        assert not [query['sql'] for query in read.captured_queries if 'UPDATE' in query['sql']]
    assert states() == ['canceled'] * 3


def test_an_unreachable_replica_costs_no_page_they_read_the_primary_with_a_note(operator):
    Task.objects.create(data='due')
    with extra_databases(replica=unreachable()), override_settings(DATABASE_ROUTERS=[ReplicaRouter()]):
        for page in PAGES:
            response = operator.get(CHANGELIST + page)
            assert response.status_code == 200, page
        dashboard = operator.get(CHANGELIST + 'dashboard/').content.decode()
        assert 'The replica &quot;replica&quot; cannot be reached' in dashboard
        assert 'read from the primary &quot;default&quot; instead' in dashboard
        data = operator.get(CHANGELIST + 'dashboard/data/').json()
        assert data['reads']['fell_back'] is True and data['queues'][0]['tally']['waiting'] == 1
        overview = operator.get('/admin/queues/')
        assert overview.status_code == 200 and 'cannot be reached' in overview.content.decode()
        changelist = operator.get(CHANGELIST).content.decode()
        assert 'cannot be reached' in changelist and '1 task' in changelist


# -- a real streaming replica (PostgreSQL) -----------------------------------


@pytest.fixture(scope='module')
def pair(django_db_blocker):
    """A primary of the test's own with the test app migrated, and its replica."""
    if connection.vendor != 'postgresql':
        pytest.skip('PostgreSQL streaming replication')  # deselected: the tests are marked
    why = replica_support.missing()
    if why is not None:
        topology_missing(why)
    with replica_support.ReplicaPair() as pair:
        name = connection.settings_dict['NAME']
        pair.primary.execute(f'CREATE DATABASE "{name}"')
        with django_db_blocker.unblock(), extra_databases(primary=own(pair.primary)):
            call_command('migrate', database='primary', run_syncdb=True, verbosity=0)
        pair.start_replica()
        yield pair


def own(cluster):
    return {'HOST': '127.0.0.1', 'PORT': str(cluster.port), 'USER': 'postgres'}


@pytest.fixture
def replicated(pair, client, transactional_db):
    """The router reads the queue's models from the replica, writes the
    primary; the test client is logged in (users live on the primary)."""
    with extra_databases(primary=own(pair.primary), replica=own(pair.replica)), override_settings(
        DATABASE_ROUTERS=[ReplicaRouter(read='replica', write='primary')]
    ):
        Task.objects.using('primary').all().delete()
        User = get_user_model()
        User.objects.using('primary').all().delete()  # the primary outlives each test's flush
        client.force_login(create_superuser())
        yield client
        set_apply_delay(pair, '0')


def set_apply_delay(pair, delay):
    """Delay the replica's replay by `delay` from now on (as a replica
    behind a busy primary, or far away, is)."""
    name = connection.settings_dict['NAME']
    pair.replica.execute(f"ALTER SYSTEM SET recovery_min_apply_delay = '{delay}'", dbname=name)
    pair.replica.execute('SELECT pg_reload_conf()', dbname=name)
    wanted = '0' if delay == '0' else delay
    wait_until(lambda: pair.replica.execute('SHOW recovery_min_apply_delay', dbname=name)[0][0] == wanted,
               10, 'the replica to read its new delay')
    time.sleep(0.5)  # the startup process, signalled with the rest, reads it too


def replayed(client):
    data = client.get(CHANGELIST + 'dashboard/data/').json()
    return data['reads']['lag_seconds'] == 0 and data


@pytest.mark.vendors('postgresql')
@pytest.mark.topology
def test_the_pages_read_a_lagging_replica_and_say_how_far_behind_it_is(pair, replicated):
    wait_until(lambda: replayed(replicated), 30, 'the replica to catch up')
    set_apply_delay(pair, '5s')
    for number in range(3):
        Task.objects.create(data=f'row {number}')  # on the primary
    for page in PAGES:
        assert replicated.get(CHANGELIST + page).status_code == 200, page
    dashboard = replicated.get(CHANGELIST + 'dashboard/').content.decode()
    match = LAG.search(dashboard)
    note = re.findall(r'<p class="modelqueue-reads[^<]*</p>', dashboard)
    assert match and match[1] == 'replica' and float(match[2]) >= 0.5, note
    data = replicated.get(CHANGELIST + 'dashboard/data/').json()
    assert data['queues'][0]['tally']['waiting'] == 0, 'read from the replica, which has not replayed them'
    assert data['reads']['lag_seconds'] > 0
    assert 's behind the primary' in replicated.get(CHANGELIST).content.decode()
    assert 's behind the primary' in replicated.get('/admin/queues/').content.decode()
    data = wait_until(lambda: replayed(replicated), 30, 'the rows to be replayed')
    assert data['queues'][0]['tally']['waiting'] == 3


@pytest.mark.vendors('postgresql')
@pytest.mark.topology
def test_every_write_goes_to_the_primary_while_the_replica_lags(pair, replicated):
    wait_until(lambda: replayed(replicated), 30, 'the replica to catch up')
    set_apply_delay(pair, '5s')
    rows = [Task.objects.create(data=f'row {number}') for number in range(4)]  # not on the replica yet
    assert Task.objects.count() == 0, 'the router reads the replica'
    change = replicated.get(f'{CHANGELIST}{rows[0].pk}/change/')
    assert change.status_code == 200, 'the change form reads the row where it is written'
    response = post_action(replicated, 'cancel_status', rows[:2], post='yes')
    assert response.status_code == 200
    assert 'Canceled 2 tasks (status), previously 2 waiting.' in response.content.decode()
    assert replicated.post(f'{CHANGELIST}{rows[2].pk}/queue/status/cancel/').status_code == 302
    opened = replicated.get(f'{CHANGELIST}{rows[3].pk}/change/')
    form = opened.context['adminform'].form
    posted = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    posted.update(note='edited', _modelqueue_opened=opened.context['modelqueue_opened'], _save='Save')
    saved = replicated.post(f'{CHANGELIST}{rows[3].pk}/change/', posted)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert states('primary') == ['canceled'] * 3 + ['waiting']
    assert Task.objects.using('primary').get(pk=rows[3].pk).note == 'edited'


@pytest.mark.vendors('postgresql')
@pytest.mark.topology
def test_a_replica_that_stops_falls_back_to_the_primary_within_one_page_load(pair, replicated):
    Task.objects.create(data='due')
    wait_until(lambda: replayed(replicated), 30, 'the replica to catch up')
    pair.replica.stop('immediate')
    try:
        for page in [*PAGES, f'{Task.objects.using("primary").get().pk}/change/']:
            response = replicated.get(CHANGELIST + page)
            assert response.status_code == 200, page
        dashboard = replicated.get(CHANGELIST + 'dashboard/').content.decode()
        assert 'The replica &quot;replica&quot; cannot be reached' in dashboard
        data = replicated.get(CHANGELIST + 'dashboard/data/').json()
        assert data['reads']['fell_back'] and data['queues'][0]['tally']['waiting'] == 1
        assert replicated.get('/admin/queues/').status_code == 200
    finally:
        pair.replica.start()


@pytest.mark.vendors('postgresql')
@pytest.mark.topology
def test_an_import_looks_its_rows_up_on_the_primary_while_the_replica_lags(pair, replicated):
    pytest.importorskip('import_export')
    from tests.support.imports import confirm, preview  # noqa: PLC0415 (import-export installed)

    wait_until(lambda: replayed(replicated), 30, 'the replica to catch up')
    set_apply_delay(pair, '5s')
    row = Task.objects.create(data='before')  # on the primary, not yet on the replica
    text = f'id,data,status,status_state,status_when,status_attempts\n{row.pk},after,,waiting,7,0\n'
    response = preview(replicated, text)
    assert response.status_code == 200, response.content.decode()[:2000]
    assert confirm(replicated, response).status_code == 302
    (imported,) = Task.objects.using('primary').all()
    assert (imported.pk, imported.data) == (row.pk, 'after'), 'updated, not taken for a new row'
