"""Routers and databases: claims are writes, and go where writes go.

A router that sends reads to a replica (tests/testapp/routers.py) must not
send run()'s claim, the worker's heartbeat or the Tasks worker's claims
there; ``--database`` names the database; a database that takes no writes
stops the worker with a plain message and exit status 1, rather than a
loop of failing claims under a misleading hint. The "replica" here is an
alias of the test database whose sessions refuse every write, as a hot
standby's do (tests/support/databases.py); on every database.
"""

import pytest
from django.db import DatabaseError, connection, connections
from django.test import override_settings

import modelqueue
from modelqueue import Status
from modelqueue.databases import (
    DatabaseNotWritable,
    is_read_only_error,
    writable_problem,
    write_database,
)
from modelqueue.models import FailureRecord
from modelqueue.worker.heartbeat import Heartbeat
from modelqueue.worker.loop import Worker, serve
from tests.support.databases import child_env, extra_databases
from tests.support.processes import finish, start_worker
from tests.support.tasks import executions_per_task
from tests.testapp import actions, tasks
from tests.testapp.models import Execution, Task

ROUTER = 'tests.testapp.routers.ReplicaRouter'


def read_only():
    """Settings changes that make an alias's sessions refuse writes, on this database."""
    if connection.vendor == 'postgresql':
        return {'OPTIONS': {**connection.settings_dict['OPTIONS'], 'options': '-c default_transaction_read_only=on'}}
    options = dict(connection.settings_dict['OPTIONS'])
    if connection.vendor == 'mysql':
        options['init_command'] = 'SET SESSION TRANSACTION READ ONLY'
    else:
        options['init_command'] = options.get('init_command', '') + ' PRAGMA query_only=1;'
        # BEGIN IMMEDIATE is a write: Django's own feature checks (which
        # Django 6 runs on --database) would fail before ModelQueue speaks.
        options.pop('transaction_mode', None)
    return {'OPTIONS': options}


@pytest.fixture
def replica(transactional_db):
    """A read-only 'replica' alias and the router that reads from it."""
    with extra_databases(replica=read_only()), override_settings(DATABASE_ROUTERS=[ROUTER]):
        yield 'replica'


def test_the_replica_alias_refuses_writes_as_a_standby_does(replica):
    with pytest.raises(DatabaseError) as raised:
        Task.objects.using(replica).create(data='x')
    assert is_read_only_error(raised.value)
    assert writable_problem(replica) is not None
    assert writable_problem('default') is None


def test_run_claims_and_completes_through_the_routers_write_database(replica):
    assert write_database(Task.objects.all()) == 'default'
    assert Task.objects.all().db == replica, 'the router reads from the replica'
    done = Task.objects.create(data='ok')
    failing = Task.objects.create(data='fail')
    assert modelqueue.run(Task.objects.filter(pk=done.pk), 'status', actions.record) == done
    with pytest.raises(RuntimeError):
        modelqueue.run(Task.objects.filter(pk=failing.pk), 'status', actions.fail_or_follow_data)
    states = dict(Task.objects.using('default').values_list('data', 'status'))
    assert Status(states['ok']).state.name == 'finished'
    assert Status(states['fail']).state.name == 'waiting'
    assert FailureRecord.objects.using('default').filter(object_id=str(failing.pk)).count() == 1


def test_run_keeps_the_database_the_queryset_names(replica):
    Task.objects.create(data='ok')
    with pytest.raises(DatabaseError) as raised:
        modelqueue.run(Task.objects.using(replica), 'status', actions.record)
    assert is_read_only_error(raised.value)


def test_a_worker_pins_its_queryset_to_the_write_database(replica):
    worker = Worker(Task.objects.all(), 'status', actions.record, burst=True)
    assert worker.queryset.db == 'default'
    assert Worker(Task.objects.using(replica), 'status', actions.record).queryset.db == replica


def test_serve_stops_before_anything_when_the_database_takes_no_writes(replica):
    worker = Worker(Task.objects.using(replica), 'status', actions.record, burst=True)
    with pytest.raises(DatabaseNotWritable, match="The database 'replica' takes no writes"):
        serve(worker)


def test_a_refused_heartbeat_stops_the_worker_without_the_migrations_hint(replica, caplog):
    with pytest.raises(DatabaseNotWritable, match='--database'):
        Heartbeat(Task.objects.using(replica), 'status').start()
    assert 'migrations' not in caplog.text


def test_a_claim_refused_as_a_write_stops_the_worker_rather_than_retrying(replica):
    """The database turned read-only after the worker started (a failover
    that left it on the old primary): its next claim stops it."""
    Task.objects.create(data='due')
    worker = Worker(Task.objects.using(replica), 'status', actions.record, burst=True)
    with pytest.raises(DatabaseNotWritable):
        worker.run_one()
    connections[replica].close()


@pytest.mark.processes
@pytest.mark.parametrize('kind', ['model', 'tasks'])
def test_both_workers_claim_through_the_write_database_under_a_replica_router(spawn, kind):
    env = child_env(router=ROUTER, replica=read_only())
    if kind == 'model':
        rows = [Task.objects.create(data=f'row {n}') for n in range(5)]
        status, log = finish(start_worker(spawn, '--burst', env=env))
        assert status == 0, log
        assert executions_per_task() == {row.pk: 1 for row in rows}
    else:
        results = [tasks.add.enqueue(n, 1) for n in range(5)]
        status, log = finish(spawn('-m', 'django', 'modelqueue_worker', '--tasks', '--burst', '-v', '2',
                                   env={'DJANGO_SETTINGS_MODULE': 'tests.settings', **env}))
        assert status == 0, log
        for result in results:
            result.refresh()
            assert result.status.name == 'SUCCESSFUL', log
    assert 'read-only' not in log and 'heartbeat' not in log, log


@pytest.mark.processes
@pytest.mark.parametrize('kind', ['model', 'tasks'])
def test_a_worker_given_a_database_that_takes_no_writes_says_so_and_exits_1(spawn, kind):
    Task.objects.create(data='due')
    env = child_env(replica=read_only())
    if kind == 'model':
        child = start_worker(spawn, '--database', 'replica', '--burst', env=env)
    else:
        child = spawn('-m', 'django', 'modelqueue_worker', '--tasks', '--database', 'replica', '--burst',
                      env={'DJANGO_SETTINGS_MODULE': 'tests.settings', **env})
    status, log = finish(child)
    assert status == 1, log
    assert "The database 'replica' takes no writes" in log
    assert 'migrations applied' not in log
    assert Execution.objects.count() == 0


@pytest.mark.processes
def test_database_names_an_alias_of_databases(spawn):
    status, log = finish(start_worker(spawn, '--database', 'elsewhere', '--burst'))
    assert status == 1
    assert "--database = 'elsewhere': expected None or an alias of DATABASES" in log
