"""Every session of a worker names itself: ``modelqueue worker host:pid role``.

PostgreSQL only (``application_name`` in ``pg_stat_activity``): the claim
sessions of its threads, its main thread's, its heartbeat thread's and its
LISTEN connection.
"""

import pytest
from django.db import connection

from modelqueue.names import HOST_NAME_VARIABLE
from tests.support.processes import finish, start_worker
from tests.support.waits import wait_until
from tests.testapp.models import Task

pytestmark = [pytest.mark.vendors('postgresql'), pytest.mark.processes]


def names_of(pid):
    with connection.cursor() as cursor:
        cursor.execute(
            'SELECT application_name FROM pg_stat_activity WHERE datname = current_database()'
            ' AND application_name LIKE %s',
            [f'modelqueue worker %:{pid} %'],
        )
        return sorted(name for (name,) in cursor.fetchall())


def test_each_session_of_a_worker_says_whose_it_is_and_what_it_does(spawn):
    env = {HOST_NAME_VARIABLE: 'named-host', 'MODELQUEUE_HEARTBEAT_SECONDS': '0.2'}
    child = start_worker(spawn, '--threads=2', '--sleep=0.2', env=env)
    for number in range(4):
        Task.objects.create(data=f'row {number}')
    prefix = f'modelqueue worker named-host:{child.pid} '
    expected = sorted(prefix + role for role in ('claim', 'claim', 'heartbeat', 'listen', 'main'))
    wait_until(lambda: names_of(child.pid) == expected, 30, f'the sessions {expected}', child=child)
    child.terminate()
    status, log = finish(child)
    assert status == 0, log
