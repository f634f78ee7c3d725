"""The admin dashboard's JSON endpoint on a table of 1,000,000 rows.

    python -m bench dashboard sqlite
    python -m bench dashboard postgresql [--rows 1000000] [--repeat 5]
    python -m bench dashboard sqlite --rows 20000 --repeat 3   # a smoke run

Runs in this Python, which must import this checkout, Django and, for
PostgreSQL, psycopg (.venv/py3.11 from ./runtests does). Fills the test
app's Task table with a realistic mix of states in a database of its own (a
file in bench/results/scratch/db/ for SQLite, a database named after this
checkout for PostgreSQL; both kept between runs and refilled only when the
row count differs), then times, as the median of --repeat runs after one
warm-up:

- the JSON endpoint (``admin:testapp_task_dashboard_data``; test client,
  logged-in superuser, the whole request),
- ``queue_figures`` alone (``modelqueue.admin.figures``),
- ``Status.tally`` of this checkout and of modelqueue 2.2.1 (five range
  counts each; 2.2.1 is imported from MODELQUEUE_221, or from a copy pip
  fetches once into bench/.peers/),
- throughput as the dashboard computes it (one GROUP BY over the last
  hour's finished and canceled rows) and as 120 range counts (60 minutes x
  finished/canceled), the alternative.

Prints the table and writes it as JSON to
bench/results/dashboard-<date>-<vendor>.json; a run at another size than
1,000,000 rows goes to bench/results/scratch/ (--out picks the file).
"""

import datetime as dt
import os
import random
import statistics
import time

from .peers import import_221
from .results import default_path, header, log, scratch_database, write
from .timing import timings_ms

ROWS = 1_000_000
# Share of rows per state; finished and canceled spread over the last week.
MIX = [('finished', 0.90), ('canceled', 0.02), ('waiting', 0.06), ('created', 0.015), ('working', 0.005)]


def add_arguments(parser):
    parser.add_argument('vendor', choices=['sqlite', 'postgresql'])
    parser.add_argument('--rows', type=int, default=ROWS, help=f'{ROWS:,} by default')
    parser.add_argument('--repeat', type=int, default=5, help='timed runs per figure (median)')
    parser.add_argument(
        '--out', help='JSON file (default bench/results/dashboard-<date>-<vendor>.json;'
        f' scratch/ at other than {ROWS:,} rows)'
    )


def configure(vendor):
    os.environ['MODELQUEUE_DB'] = vendor
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings')
    from django.conf import settings  # noqa: PLC0415

    database = settings.DATABASES['default']
    database['NAME'] = scratch_database(vendor, 'dashboard')
    if vendor == 'postgresql':
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


def fill(model, rows):
    """Fill the table with `rows` rows of the mix unless it has that many."""
    from django.core.management import call_command  # noqa: PLC0415
    from django.db import connection  # noqa: PLC0415

    import modelqueue  # noqa: PLC0415

    call_command('migrate', run_syncdb=True, verbosity=0)
    if model.objects.count() == rows:
        return False
    model.objects.all().delete()
    table = model._meta.db_table
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
    log(f'bench: filled {rows:,} rows in {time.perf_counter() - started:.1f}s')
    return True


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


def database_version(connection):
    if connection.vendor == 'sqlite':
        return connection.Database.sqlite_version
    major, minor = divmod(connection.pg_version, 10000)
    return f'{major}.{minor}'


def main(args):
    started = time.time()
    results = header(vars(args))
    configure(args.vendor)

    from django.contrib.auth.models import User  # noqa: PLC0415
    from django.db import connection  # noqa: PLC0415
    from django.test import Client  # noqa: PLC0415
    from django.test.utils import setup_test_environment  # noqa: PLC0415
    from django.urls import reverse  # noqa: PLC0415

    import modelqueue  # noqa: PLC0415
    from modelqueue.admin import figures  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415
    filled = fill(Task, args.rows)
    setup_test_environment()
    user, _created = User.objects.get_or_create(
        username='bench', defaults={'is_staff': True, 'is_superuser': True}
    )
    client = Client()
    client.force_login(user)
    old = import_221()
    tasks = Task.objects.all()
    url = reverse('admin:testapp_task_dashboard_data')

    def endpoint():
        response = client.get(url)
        assert response.status_code == 200, response.status_code

    contents = figures.queue_figures(tasks, 'status')
    log(f'bench: {connection.vendor}, {Task.objects.count():,} rows: tally {contents["tally"]},'
        f' due {contents["due"]}, stalled {contents["stalled"]},'
        f' finished last hour {contents["finished_last_hour"]}')
    results.update(
        database={'vendor': connection.vendor, 'version': database_version(connection)},
        implementations={
            'modelqueue': modelqueue.__version__,
            'modelqueue-2.2.1': getattr(old, '__version__', None),
        },
        rows=Task.objects.count(),
        filled=filled,
        tally=contents['tally'],
        timings={},
    )
    print(f'median of {args.repeat}:')
    for name, function in [
        ('dashboard JSON endpoint', endpoint),
        ('queue_figures()', lambda: figures.queue_figures(tasks, 'status')),
        ('Status.tally (this checkout)', lambda: modelqueue.Status.tally(tasks, 'status')),
        ('Status.tally (2.2.1, five counts)', lambda: old.Status.tally(tasks, 'status')),
        ('throughput, one GROUP BY (used)', lambda: figures.throughput(tasks, 'status', modelqueue.now())),
        ('throughput as 120 range counts', lambda: throughput_by_range_counts(tasks, modelqueue.now())),
    ]:
        timings = timings_ms(function, args.repeat, warm=True)
        results['timings'][name] = {'median_ms': statistics.median(timings), 'runs_ms': timings}
        print(f'  {name:38} {statistics.median(timings):9.1f} ms')
    results['machine']['load_average_at_end'] = os.getloadavg()
    results['seconds'] = time.time() - started
    label = args.vendor if args.rows == ROWS else f'{args.vendor}-{args.rows}-rows'
    write(results, args.out or default_path('dashboard', label, args.rows != ROWS))
    return 0
