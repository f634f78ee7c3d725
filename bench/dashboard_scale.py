"""Time the queue dashboard's JSON endpoint on a table of 1,000,000 rows.

    python -m bench.dashboard_scale sqlite
    python -m bench.dashboard_scale postgresql [--rows 1000000] [--repeat 5]

Builds its own database (a file under /tmp for SQLite, a database named
modelqueue_dashboard_bench for PostgreSQL; both kept between runs and refilled
only when the row count differs), fills testapp's Task table with a realistic
mix of states, then prints the median time of:

- the JSON endpoint ``/admin/testapp/task/dashboard/data/`` (test client,
  logged-in superuser, the whole request),
- ``modelqueue.dashboard.queue_figures`` alone,
- ``Status.tally`` of modelqueue 3 (five range counts in one call),
- ``Status.tally`` of modelqueue 2.2.1 (five range counts), imported from
  MODELQUEUE_221 (by default pip fetches it once into bench/.peers/),
- throughput as the dashboard computes it (one GROUP BY over the last
  hour's finished and canceled rows) and as 120 range counts (60 minutes x
  finished/canceled), the alternative.
"""

import argparse
import datetime as dt
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROWS = 1_000_000
# Share of rows per state; finished and canceled spread over the last week.
MIX = [('finished', 0.90), ('canceled', 0.02), ('waiting', 0.06), ('created', 0.015), ('working', 0.005)]


def configure(vendor):
    os.environ['MODELQUEUE_DB'] = vendor
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings')
    from django.conf import settings  # noqa: PLC0415

    database = settings.DATABASES['default']
    if vendor == 'sqlite':
        database['NAME'] = '/tmp/modelqueue-dashboard-bench.sqlite3'
    else:
        database['NAME'] = 'modelqueue_dashboard_bench'
        create_postgresql_database(database)
    import django  # noqa: PLC0415

    django.setup()


def create_postgresql_database(database):
    import psycopg  # noqa: PLC0415

    with psycopg.connect(
        host=database['HOST'], port=database['PORT'], user=database['USER'], dbname='postgres',
        autocommit=True,
    ) as connection:
        exists = connection.execute(
            'SELECT 1 FROM pg_database WHERE datname = %s', [database['NAME']]
        ).fetchone()
        if not exists:
            connection.execute(f'CREATE DATABASE {database["NAME"]}')


def statuses(rows, current):
    """Yield `rows` statuses of the mix above, deterministic."""
    from modelqueue import Status  # noqa: PLC0415

    week = 7 * 24 * 3600
    generator = random.Random(1)
    for state, share in MIX:
        for _ in range(int(rows * share)):
            attempts = generator.randint(0, 3)
            if state in ('finished', 'canceled'):
                moment = current - dt.timedelta(seconds=generator.uniform(0, week))
            elif state == 'waiting':
                moment = current + dt.timedelta(seconds=generator.uniform(-2 * 86400, 86400))
            elif state == 'working':
                moment = current - dt.timedelta(seconds=generator.uniform(0, 2 * 3600))
            else:
                moment = current - dt.timedelta(seconds=generator.uniform(0, 86400))
            yield getattr(Status, state)(moment, attempts)


def fill(rows):
    from django.core.management import call_command  # noqa: PLC0415
    from django.db import connection  # noqa: PLC0415

    import modelqueue  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    call_command('migrate', run_syncdb=True, verbosity=0)
    if Task.objects.count() == rows:
        return False
    Task.objects.all().delete()
    table = Task._meta.db_table
    values = ((f'task {number}', '', status) for number, status in enumerate(statuses(rows, modelqueue.now())))
    started = time.perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor == 'postgresql':
            with cursor.cursor.copy(f'COPY {table} (data, note, status) FROM STDIN') as copy:
                for row in values:
                    copy.write_row(row)
        else:
            cursor.executemany(f'INSERT INTO {table} (data, note, status) VALUES (%s, %s, %s)', list(values))
    with connection.cursor() as cursor:
        if connection.vendor == 'postgresql':
            connection.set_autocommit(True)
            cursor.execute(f'VACUUM ANALYZE {table}')
        else:
            cursor.execute('ANALYZE')
    print(f'filled {rows:,} rows in {time.perf_counter() - started:.1f}s')
    return True


def median_ms(function, repeat):
    function()  # warm the caches once
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


# Beside, not inside, the virtual environment bench/run.py makes for 2.2.1.
PEER_221 = Path(__file__).resolve().parent / '.peers' / 'modelqueue-2.2.1-module'


def load_221():
    """Import modelqueue 2.2.1 under another name, fetching it with pip once."""
    path = os.environ.get('MODELQUEUE_221')
    if path is None:
        path = PEER_221 / 'modelqueue' / '__init__.py'
        if not path.exists():
            subprocess.run(
                [sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
                 '--target', str(PEER_221), 'modelqueue==2.2.1'],
                check=True,
            )
    spec = importlib.util.spec_from_file_location('modelqueue_221', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def throughput_by_range_counts(queryset, current):
    from modelqueue import Status  # noqa: PLC0415

    last = current.replace(second=0, microsecond=0)
    counts = []
    for state in ('finished', 'canceled'):
        for index in range(60):
            start = last - dt.timedelta(minutes=59 - index)
            counts.append(
                queryset.filter(
                    status__gte=Status.combine(state, start, 0),
                    status__lt=Status.combine(state, start + dt.timedelta(minutes=1), 0),
                ).count()
            )
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('vendor', choices=['sqlite', 'postgresql'])
    parser.add_argument('--rows', type=int, default=ROWS)
    parser.add_argument('--repeat', type=int, default=5)
    arguments = parser.parse_args()
    configure(arguments.vendor)

    from django.contrib.auth.models import User  # noqa: PLC0415
    from django.db import connection  # noqa: PLC0415
    from django.test import Client  # noqa: PLC0415
    from django.test.utils import setup_test_environment  # noqa: PLC0415

    import modelqueue  # noqa: PLC0415
    from modelqueue.dashboard import queue_figures, throughput  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    fill(arguments.rows)
    setup_test_environment()
    user, _created = User.objects.get_or_create(
        username='bench', defaults={'is_staff': True, 'is_superuser': True}
    )
    client = Client()
    client.force_login(user)
    old = load_221()
    tasks = Task.objects.all()

    def endpoint():
        response = client.get('/admin/testapp/task/dashboard/data/')
        assert response.status_code == 200, response.status_code

    figures = queue_figures(tasks, 'status')
    print(f'{connection.vendor}, {Task.objects.count():,} rows: tally {figures["tally"]},'
          f' due {figures["due"]}, stalled {figures["stalled"]},'
          f' finished last hour {figures["finished_last_hour"]}')
    print(f'median of {arguments.repeat}:')
    for name, function in [
        ('dashboard JSON endpoint', endpoint),
        ('queue_figures()', lambda: queue_figures(tasks, 'status')),
        ('Status.tally (3.0)', lambda: modelqueue.Status.tally(tasks, 'status')),
        ('Status.tally (2.2.1, five counts)', lambda: old.Status.tally(tasks, 'status')),
        ('throughput, one GROUP BY (used)', lambda: throughput(tasks, 'status', modelqueue.now())),
        ('throughput as 120 range counts', lambda: throughput_by_range_counts(tasks, modelqueue.now())),
    ]:
        print(f'  {name:38} {median_ms(function, arguments.repeat):9.1f} ms')


if __name__ == '__main__':
    sys.exit(main())
