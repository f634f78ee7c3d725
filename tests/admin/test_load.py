"""Load: the dashboard's JSON endpoint under concurrent clients while workers run.

20 clients poll the endpoint over HTTP (pytest-django's live server) for
MODELQUEUE_LOAD_SECONDS (30 by default) while 4 worker processes drain the
queue. No request may fail; the latency percentiles are printed, never
asserted (the machine's load decides them).
"""

import os
import statistics
import threading
import time
import urllib.error
import urllib.request

import pytest
from django.db import connection
from django.urls import reverse

from modelqueue import Status
from tests.support.fleet import Fleet
from tests.support.tasks import waiting_tasks
from tests.testapp.models import Task

CLIENTS = 20
WORKERS = 4
SECONDS = float(os.environ.get('MODELQUEUE_LOAD_SECONDS', '30'))

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.load,
    pytest.mark.processes,
    pytest.mark.timeout(SECONDS + 150),  # the load, then the workers finishing
]


def poll(url, cookie, deadline, latencies, errors):
    while time.monotonic() < deadline:
        request = urllib.request.Request(url, headers={'Cookie': cookie})
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read()
                if response.status != 200 or not body.startswith(b'{'):
                    errors.append(f'{response.status}: {body[:200]!r}')
        except (OSError, urllib.error.URLError) as error:
            errors.append(f'{type(error).__name__}: {error}')
            continue
        latencies.append(time.monotonic() - started)


def test_dashboard_data_under_concurrent_clients_while_workers_run(
    live_server, spawn, tmp_path, superuser_client, capsys
):
    waiting_tasks(3000)
    fleet = Fleet(
        spawn,
        tmp_path,
        'record_slowly',
        '--sleep', '0.5',
        env={'MODELQUEUE_TEST_ACTION_SECONDS': '0.02'},
    )
    fleet.start(WORKERS)
    cookie = f'sessionid={superuser_client.cookies["sessionid"].value}'
    url = live_server.url + reverse('admin:testapp_task_dashboard_data')

    latencies, errors = [], []
    deadline = time.monotonic() + SECONDS
    clients = [
        threading.Thread(target=poll, args=(url, cookie, deadline, latencies, errors))
        for _ in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=SECONDS + 60)
    assert not any(client.is_alive() for client in clients), 'a client hung'
    assert fleet.exited() == []
    tally = Status.tally(Task.objects.all(), 'status')
    results = fleet.stop()

    assert errors == [], errors[:5]
    assert len(latencies) > CLIENTS
    assert [code for code, _ in results] == [0] * WORKERS, results
    assert tally['finished'] > 0  # the workers did run meanwhile
    p95 = statistics.quantiles(latencies, n=20)[-1]
    with capsys.disabled():
        print(
            f'\n[{connection.vendor}] dashboard data, {CLIENTS} clients for {SECONDS:.0f}s'
            f' while {WORKERS} workers finished {tally["finished"]} rows:'
            f' {len(latencies)} requests, {len(latencies) / SECONDS:.0f}/s,'
            f' p50 {statistics.median(latencies) * 1000:.0f} ms,'
            f' p95 {p95 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms, 0 errors'
        )
