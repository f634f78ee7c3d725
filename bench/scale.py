"""The admin at 10,000,000 rows: dashboard, changelist, filter counts, bulk action.

    python -m bench scale postgresql                 # 100,000 and 10,000,000 rows
    python -m bench scale sqlite                     # 100,000 and 1,000,000 rows
    python -m bench scale mariadb
    python -m bench scale sqlite --sizes 2000,20000 --repeat 3   # a smoke run
    python -m bench scale postgresql --drop          # drop the benchmark's databases

Runs in this Python (.venv/py3.11 from ./runtests imports this checkout,
Django, psycopg and mysqlclient). Each size gets a database of its own (kept
between runs and refilled only when its row count differs), filled by SQL
for PostgreSQL (``INSERT ... SELECT`` from ``generate_series``) and by one
``executemany`` elsewhere, with the mix of ``python -m bench dashboard``: 90%
finished, 2% canceled, 6% waiting, 1.5% created, 0.5% working. Ids follow
history: the finished and canceled rows come first, in the order they were
written (over the week before the fill and the day after it, so the last
hour holds its share of them whenever the benchmark runs within a day of
the fill), then the rows still in the queue.

Times, as the median of --repeat runs after one warm-up, through the test
client as a logged-in superuser (the whole request):

- the dashboard JSON endpoint, at every size;
- at the largest size: the changelist unfiltered and filtered to each
  state, the changelist with *Show counts* (``?_facets=1``), and "select
  all" then *Reset attempts* on --bulk-rows rows (the changelist filtered
  with ``?id__lte=``), timed --bulk-repeat times;
- every figure the dashboard and the facets show (due, scheduled, stalled and
  the last hour's finished and canceled too), estimated or exact,
  beside the true count (an exact COUNT, measured here), with the error.

Prints a summary and writes the JSON to bench/results/scale-<date>-<vendor>.json
(scratch/ when --sizes is not the default). --drop drops the databases the
runs made (PostgreSQL and MariaDB) or deletes their files (SQLite).
"""

import datetime as dt
import os
import random
import re
import statistics
import time

from django.db.models import F

from .results import default_path, header, log, scratch_database, write
from .timing import timings_ms

SIZES = {'postgresql': [100_000, 10_000_000], 'sqlite': [100_000, 1_000_000], 'mariadb': [100_000, 1_000_000]}
BULK_ROWS = {'postgresql': 1_000_000, 'sqlite': 1_000_000, 'mariadb': 1_000_000}
# Share of rows per state: python -m bench dashboard's mix.
MIX = [('finished', 0.90), ('canceled', 0.02), ('waiting', 0.06), ('created', 0.015), ('working', 0.005)]
STATE_NUMBERS = {'created': 1, 'waiting': 2, 'working': 3, 'finished': 4, 'canceled': 5}
FILTERS = ['created', 'waiting', 'due', 'scheduled', 'working', 'stalled', 'finished', 'canceled']
# Targets of issue 14 (PostgreSQL at 10,000,000 rows).
TARGET_DASHBOARD_MS = 100
TARGET_CHANGELIST_MS = 300
TARGET_FACETS_MS = 300
TARGET_ESTIMATE_ERROR = 0.02


def add_arguments(parser):
    parser.add_argument('vendor', choices=['sqlite', 'postgresql', 'mariadb'])
    parser.add_argument('--sizes', help='row counts, comma-separated (default: 100,000 and the largest)')
    parser.add_argument('--repeat', type=int, default=5, help='timed runs per figure (median)')
    parser.add_argument('--bulk-rows', type=int, help='rows of the bulk action (default 1,000,000)')
    parser.add_argument('--bulk-repeat', type=int, default=3, help='timed bulk actions (median)')
    parser.add_argument('--counters', action='store_true',
                        help='install the state counters (modelqueue.counters, PostgreSQL) at every size')
    parser.add_argument('--drop', action='store_true', help="drop the benchmark's databases and stop")
    parser.add_argument('--out', help='JSON file (default bench/results/scale-<date>-<vendor>.json)')


class ActiveDatabase:
    """A router that sends every query to the database of the size being timed."""

    alias = 'default'

    def db_for_read(self, model, **hints):
        return self.alias

    db_for_write = db_for_read

    def allow_relation(self, *objects, **hints):
        return True

    def allow_migrate(self, db, app_label, **hints):
        return True


ROUTER = ActiveDatabase()


def alias_of(rows):
    return f'rows_{rows}'


def configure(vendor, sizes):
    """Django settings with one database per size, each routed to in turn."""
    os.environ['MODELQUEUE_DB'] = vendor
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings')
    from django.conf import settings  # noqa: PLC0415

    base = settings.DATABASES['default']
    for rows in sizes:
        database = {**base, 'NAME': scratch_database(vendor, f'scale_{rows}')}
        database.pop('TEST', None)
        settings.DATABASES[alias_of(rows)] = database
        create_database(vendor, database)
    settings.DATABASES['default'] = settings.DATABASES[alias_of(sizes[0])]
    settings.DATABASE_ROUTERS = [ROUTER]
    import django  # noqa: PLC0415

    django.setup()


def create_database(vendor, database):
    if vendor == 'postgresql':
        import psycopg  # noqa: PLC0415

        with psycopg.connect(
            host=database['HOST'], port=database['PORT'], user=database['USER'], dbname='postgres',
            autocommit=True,
        ) as connection:
            if not connection.execute(
                'SELECT 1 FROM pg_database WHERE datname = %s', [database['NAME']]
            ).fetchone():
                connection.execute(f'CREATE DATABASE {database["NAME"]}')
    elif vendor == 'mariadb':
        import MySQLdb  # noqa: PLC0415

        connection = MySQLdb.connect(
            host=database['HOST'], port=int(database['PORT']), user=database['USER'],
            password=database['PASSWORD'],
        )
        connection.cursor().execute(
            f'CREATE DATABASE IF NOT EXISTS {database["NAME"]} CHARACTER SET utf8mb4'
        )
        connection.close()


def drop_databases(vendor, sizes):
    os.environ['MODELQUEUE_DB'] = vendor
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings')
    from django.conf import settings  # noqa: PLC0415

    base = settings.DATABASES['default']
    for rows in sizes:
        name = scratch_database(vendor, f'scale_{rows}')
        if vendor == 'sqlite':
            for suffix in ('', '-wal', '-shm'):
                if os.path.exists(name + suffix):
                    os.remove(name + suffix)
        elif vendor == 'postgresql':
            import psycopg  # noqa: PLC0415

            with psycopg.connect(
                host=base['HOST'], port=base['PORT'], user=base['USER'], dbname='postgres', autocommit=True
            ) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS {name}')
        else:
            import MySQLdb  # noqa: PLC0415

            connection = MySQLdb.connect(
                host=base['HOST'], port=int(base['PORT']), user=base['USER'], password=base['PASSWORD']
            )
            connection.cursor().execute(f'DROP DATABASE IF EXISTS {name}')
            connection.close()
        log(f'bench: dropped {name}')


# Filling.

POSTGRESQL_FILL = """
INSERT INTO {table} (data, note, status)
SELECT 'task ' || i, '', status FROM (
    SELECT i, state * 1000000000000000000
        + to_char(moment AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISSMS')::bigint * 10 + attempts AS status,
        CASE WHEN state >= 4 THEN moment ELSE %(current)s::timestamptz + interval '1 day' + v * interval '1 hour'
        END AS created
    FROM (
        SELECT i, r, v, attempts,
            CASE WHEN r < 0.90 THEN 4 WHEN r < 0.92 THEN 5 WHEN r < 0.98 THEN 2 WHEN r < 0.995 THEN 1 ELSE 3
            END AS state,
            CASE WHEN r < 0.92 THEN %(current)s::timestamptz + (u * 8 - 7) * interval '1 day'
                 WHEN r < 0.98 THEN %(current)s::timestamptz + (u * 3 - 2) * interval '1 day'
                 WHEN r < 0.995 THEN %(current)s::timestamptz - u * interval '1 day'
                 ELSE %(current)s::timestamptz - u * interval '2 hours'
            END AS moment
        FROM (
            SELECT i, random() AS r, random() AS u, random() AS v, floor(random() * 4)::bigint AS attempts
            FROM generate_series(1, %(rows)s) AS i
        ) AS drawn
    ) AS chosen
) AS statuses
ORDER BY created
"""


def python_rows(rows, current):
    """The mix as (data, note, status) in id order, for SQLite and MariaDB."""
    from modelqueue import Status  # noqa: PLC0415

    generator = random.Random(1)
    drawn = []
    for number in range(rows):
        r, u, v, attempts = generator.random(), generator.random(), generator.random(), generator.randint(0, 3)
        if r < 0.92:
            state, moment = ('finished' if r < 0.90 else 'canceled'), current + dt.timedelta(days=u * 8 - 7)
            created = moment
        else:
            if r < 0.98:
                state, moment = 'waiting', current + dt.timedelta(days=u * 3 - 2)
            elif r < 0.995:
                state, moment = 'created', current - dt.timedelta(days=u)
            else:
                state, moment = 'working', current - dt.timedelta(hours=2 * u)
            created = current + dt.timedelta(days=1, hours=v)
        drawn.append((created, number, getattr(Status, state)(moment, attempts)))
    drawn.sort()
    return [(f'task {number}', '', int(status)) for _created, number, status in drawn]


def fill(alias, rows):
    """Fill the Task table of `alias` with `rows` rows unless it has that many."""
    from django.core.management import call_command  # noqa: PLC0415
    from django.db import connections  # noqa: PLC0415

    import modelqueue  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    call_command('migrate', run_syncdb=True, verbosity=0, database=alias)
    set_counters(alias, wanted=False)
    if Task.objects.using(alias).count() == rows:
        analyze(alias)  # as autovacuum would leave it after an earlier run's bulk actions
        return None
    connection = connections[alias]
    table = Task._meta.db_table
    started = time.perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor == 'postgresql':
            cursor.execute(f'TRUNCATE {table} CASCADE')
            cursor.execute(POSTGRESQL_FILL.format(table=table), {'current': modelqueue.now(), 'rows': rows})
        else:
            cursor.execute(f'DELETE FROM {table}')
            values = python_rows(rows, modelqueue.now())
            for start in range(0, rows, 100_000):
                cursor.executemany(
                    f'INSERT INTO {table} (data, note, status) VALUES (%s, %s, %s)', values[start:start + 100_000]
                )
    analyze(alias)
    seconds = time.perf_counter() - started
    log(f'bench: filled {rows:,} rows in {seconds:.1f}s')
    return seconds


def set_counters(alias, wanted):
    """Install the state counters of the Task queue (`wanted`) or remove
    them; return the seconds the install took (it counts the table once),
    or None. The fill runs without them."""
    from modelqueue.counters import install_counters, uninstall_counters  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    if not wanted:
        uninstall_counters(Task, 'status', using=alias)
        return None
    started = time.perf_counter()
    install_counters(Task, 'status', using=alias)
    seconds = time.perf_counter() - started
    log(f'bench: installed the state counters in {seconds:.1f}s')
    return seconds


def analyze(alias):
    """Fresh planner statistics, as autovacuum keeps them (and the visibility
    map, on PostgreSQL, so counts can read the index alone)."""
    from django.db import connections  # noqa: PLC0415

    from tests.testapp.models import Task  # noqa: PLC0415

    connection = connections[alias]
    table = Task._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == 'postgresql':
            connection.set_autocommit(True)
            cursor.execute(f'VACUUM ANALYZE {table}')
        elif connection.vendor == 'mysql':
            cursor.execute(f'ANALYZE TABLE {table}')
        else:
            cursor.execute('ANALYZE')


# Timing.


def median(values):
    return statistics.median(values)


def timed(function, repeat):
    runs = timings_ms(function, repeat, warm=True)
    return {'median_ms': median(runs), 'runs_ms': runs}


def exact_counts(current, field='status'):
    """The true count of every state, due, scheduled and stalled at
    `current`, and of the rows finished and canceled in its last hour (COUNT)."""
    from modelqueue import ranges  # noqa: PLC0415
    from modelqueue.admin.figures import LATE_WRITES  # noqa: PLC0415
    from modelqueue.status import ONE_HOUR, Status  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    tasks = Task.objects.order_by()
    counts = {state.name: tasks.filter(ranges.in_states(field, state)).count() for state in Status.states}
    counts['due'] = tasks.filter(ranges.due(field, current)).count()
    counts['scheduled'] = tasks.filter(ranges.scheduled(field, current)).count()
    counts['stalled'] = tasks.filter(ranges.stalled(field, current, ONE_HOUR)).count()
    counts['total'] = tasks.count()
    last = current.replace(second=0, microsecond=0)
    since, until = last - dt.timedelta(minutes=59), last + LATE_WRITES + dt.timedelta(seconds=59, microseconds=999_000)
    for state in ('finished', 'canceled'):
        counts[f'{state}_last_hour'] = tasks.filter(ranges.written(field, state, since, until)).count()
    return counts


def estimates_against_truth(admin, request):
    """Every estimate the admin shows at this size, with the true count."""
    from django.test import RequestFactory  # noqa: PLC0415

    from modelqueue import now, ranges  # noqa: PLC0415
    from modelqueue.admin.changelist import page_count  # noqa: PLC0415
    from modelqueue.admin.counts import count_rows, is_estimate  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    current = now()
    truth = exact_counts(current)
    above = admin.queue_estimate_above
    figures = admin.get_queue_figures(request, current=current)[0]
    shown = {f'dashboard {name}': figures['tally'][name] for name in figures['tally']}
    for name in ('due', 'scheduled', 'stalled', 'finished_last_hour', 'canceled_last_hour'):
        shown[f'dashboard {name}'] = figures[name]
    shown['changelist total'] = count_rows(Task.objects.all(), above, admin.valid_queue_fields)
    for name in ('finished', 'canceled'):
        filtered = RequestFactory().get('/', {'status_queue': name})
        filtered.user = request.user
        shown[f'changelist filtered to {name}'] = page_count(
            admin, filtered, Task.objects.filter(ranges.in_states('status', name))
        )
    checks = {}
    for label, value in shown.items():
        true = truth['total'] if label == 'changelist total' else truth[label.split()[-1]]
        checks[label] = {
            'shown': str(value),
            'value': int(value),
            'true': true,
            'estimated': is_estimate(value),
            'error': (int(value) - true) / true if true else 0.0,
        }
    return checks, truth


def main(args):
    if args.drop:
        drop_databases(args.vendor, sorted({*SIZES[args.vendor], *parse_sizes(args.sizes or '')}))
        return 0
    started = time.time()
    sizes = parse_sizes(args.sizes) if args.sizes else SIZES[args.vendor]
    bulk_rows = args.bulk_rows or min(BULK_ROWS[args.vendor], sizes[-1])
    results = header(vars(args))
    configure(args.vendor, sizes)

    from django.contrib import admin  # noqa: PLC0415
    from django.contrib.auth.models import User  # noqa: PLC0415
    from django.db import connections, reset_queries  # noqa: PLC0415
    from django.test import Client, RequestFactory  # noqa: PLC0415
    from django.test.utils import CaptureQueriesContext  # noqa: PLC0415
    from django.urls import reverse  # noqa: PLC0415

    from tests.testapp.models import Task  # noqa: PLC0415

    task_admin = admin.site._registry[Task]
    dashboard_url = reverse('admin:testapp_task_dashboard_data')
    changelist_url = reverse('admin:testapp_task_changelist')
    results.update(vendor=args.vendor, sizes={}, estimate_above=task_admin.queue_estimate_above)
    for rows in sizes:
        ROUTER.alias = alias_of(rows)
        fill_seconds = fill(ROUTER.alias, rows)
        counters_seconds = set_counters(ROUTER.alias, args.counters)
        user, _created = User.objects.get_or_create(
            username='bench', defaults={'is_staff': True, 'is_superuser': True}
        )
        client = Client()
        client.force_login(user)

        def get(url, expect=200, client=client):
            response = client.get(url)
            assert response.status_code == expect, (url, response.status_code)
            return response

        size = results['sizes'][str(rows)] = {
            'rows': Task.objects.count(), 'fill_seconds': fill_seconds, 'counters_install_seconds': counters_seconds,
        }
        with CaptureQueriesContext(connections[ROUTER.alias]) as queries:
            get(dashboard_url)
        size['dashboard_queries'] = len(queries)
        size['dashboard JSON'] = timed(lambda: get(dashboard_url), args.repeat)
        log(f'bench: {rows:,} rows: dashboard JSON {size["dashboard JSON"]["median_ms"]:.1f} ms')
        if rows != sizes[-1]:
            continue
        request = RequestFactory().get(changelist_url)
        request.user = user
        size['estimates'], size['true_counts'] = estimates_against_truth(task_admin, request)
        pages = {'changelist': changelist_url}
        pages.update({f'changelist ?status_queue={value}': f'{changelist_url}?status_queue={value}'
                      for value in FILTERS})
        pages['Show counts (?_facets=1)'] = f'{changelist_url}?_facets=1'
        pages['Show counts, filtered to finished'] = f'{changelist_url}?status_queue=finished&_facets=1'
        for name, url in pages.items():
            size[name] = timed(lambda url=url: get(url), args.repeat)
            log(f'bench: {rows:,} rows: {name} {size[name]["median_ms"]:.1f} ms')
        page = get(f'{changelist_url}?_facets=1').content.decode()
        size['labels_on_the_page'] = sorted(set(re.findall(r'≈ [0-9.]+ [Mk]?', page)))
        size['bulk action'] = bulk_action(client, changelist_url, bulk_rows, args.bulk_repeat)
        size['estimates_after_bulk_action'], _truth = estimates_against_truth(task_admin, request)
        reset_queries()
    results['targets'] = judge(results, sizes)
    results['machine']['load_average_at_end'] = os.getloadavg()
    results['seconds'] = time.time() - started
    for line in results['targets']:
        print(line)
    scratch = args.sizes is not None and parse_sizes(args.sizes) != SIZES[args.vendor]
    write(results, args.out or default_path('scale', args.vendor, scratch))
    return 0


def parse_sizes(text):
    return [int(part.replace('_', '')) for part in text.split(',') if part.strip()]


def bulk_action(client, changelist_url, rows, repeat):
    """"Select all" on the changelist filtered to the first `rows` ids, then
    Reset attempts: times, statements sent, rows changed."""
    from django.db import connections  # noqa: PLC0415
    from django.test.utils import CaptureQueriesContext  # noqa: PLC0415

    from modelqueue import ranges  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    first = Task.objects.order_by('pk').values_list('pk', flat=True)[0]
    last = first + rows - 1
    selection = Task.objects.filter(pk__gte=first, pk__lte=last)
    url = f'{changelist_url}?id__gte={first}&id__lte={last}'
    runs, statements = [], []
    for _ in range(repeat):
        # Give the selection attempts again, so each run changes every row.
        selection.exclude(ranges.in_states('status', 'working')).update(status=F('status') - F('status') % 10 + 1)
        with CaptureQueriesContext(connections[ROUTER.alias]) as queries:
            before = time.perf_counter()
            response = client.post(
                url, {'action': 'reset_status_attempts', 'select_across': '1', 'index': '0',
                      '_selected_action': [str(first)]},
            )
            runs.append(1000 * (time.perf_counter() - before))
        assert response.status_code == 302, response.status_code
        statements.append(len(queries))
        log(f'bench: bulk action on {rows:,} rows: {runs[-1]:.0f} ms, {len(queries)} statements')
    changeable = selection.exclude(ranges.in_states('status', 'working'))
    left = changeable.annotate(attempts=F('status') % 10).exclude(attempts=0).count()
    return {
        'rows_selected': selection.count(),
        'rows_changeable': changeable.count(),
        'rows_not_reset_after': left,
        'median_ms': median(runs),
        'runs_ms': runs,
        'statements_per_action': statements,
    }


def judge(results, sizes):
    """MET / MISSED lines for what ran (issue 14's targets)."""
    lines = []
    small, large = results['sizes'][str(sizes[0])], results['sizes'][str(sizes[-1])]

    def line(met, text):
        lines.append(f'{"MET   " if met else "MISSED"} {text}')

    dashboard, base = large['dashboard JSON']['median_ms'], small['dashboard JSON']['median_ms']
    line(dashboard <= TARGET_DASHBOARD_MS, f'dashboard JSON at {sizes[-1]:,} rows <= {TARGET_DASHBOARD_MS} ms: '
         f'{dashboard:.1f} ms')
    line(dashboard <= 2 * base, f'dashboard JSON at {sizes[-1]:,} rows <= 2x its {sizes[0]:,}-row figure '
         f'({base:.1f} ms): {dashboard / base:.2f}x')
    pages = [name for name in large if name.startswith('changelist')]
    for name in pages:
        line(large[name]['median_ms'] <= TARGET_CHANGELIST_MS,
             f'{name} <= {TARGET_CHANGELIST_MS} ms: {large[name]["median_ms"]:.1f} ms')
    for name in [name for name in large if name.startswith('Show counts')]:
        line(large[name]['median_ms'] <= TARGET_FACETS_MS,
             f'{name} <= {TARGET_FACETS_MS} ms: {large[name]["median_ms"]:.1f} ms')
    for label, check in large['estimates'].items():
        if check['estimated']:
            line(abs(check['error']) <= TARGET_ESTIMATE_ERROR,
                 f'estimate {label} within 2%: {check["shown"]} for {check["true"]:,} ({check["error"]:+.3%})')
        else:
            line(check['value'] == check['true'], f'exact {label}: {check["value"]:,} (true {check["true"]:,})')
    bulk = large['bulk action']
    line(bulk['rows_not_reset_after'] == 0,
         f'bulk action on {bulk["rows_selected"]:,} rows (select all): {bulk["median_ms"] / 1000:.1f} s, '
         f'{max(bulk["statements_per_action"])} statements, {bulk["rows_not_reset_after"]} rows left unchanged')
    return lines
