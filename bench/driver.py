"""The workload driver: runs inside one implementation's Python environment.

``python -m bench.driver COMMAND [options]`` with MQBENCH_IMPL, MQBENCH_DB
and MQBENCH_DB_NAME set (see bench/settings.py). Each command prints one
JSON object on its last line of output. ``python -m bench throughput``
runs it; it is not meant to be run by hand, though it can be.

Implementations: ``modelqueue`` (this checkout) and ``modelqueue-2.2.1``
share one API, so one adapter serves both; ``django-tasks-db`` is driven
through its own ``db_worker`` code.
"""

import argparse
import datetime as dt
import json
import os
import random
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.timing import median_ms

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'bench.settings')
IMPL = os.environ.get('MQBENCH_IMPL', 'modelqueue')
VENDOR = os.environ.get('MQBENCH_DB', 'sqlite')
DB_NAME = os.environ.get('MQBENCH_DB_NAME', 'mqbench')
#: More options of this checkout's idle worker command (pickup): '--batch 100'.
WORKER_OPTIONS = os.environ.get('MQBENCH_WORKER_OPTIONS', '').split()


def emit(value):
    print(json.dumps(value), flush=True)


def percentile(values, fraction):
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


# -- databases --------------------------------------------------------------


def recreate_database():
    """Drop and create the benchmark database, before Django connects."""
    if VENDOR == 'sqlite':
        for suffix in ('', '-wal', '-shm', '-journal'):
            Path(DB_NAME + suffix).unlink(missing_ok=True)
    elif VENDOR == 'postgresql':
        import psycopg

        with psycopg.connect(**_pg_params('postgres'), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    elif VENDOR == 'mariadb':
        import MySQLdb

        conn = MySQLdb.connect(**_mariadb_params())
        cursor = conn.cursor()
        cursor.execute(f'DROP DATABASE IF EXISTS `{DB_NAME}`')
        cursor.execute(f'CREATE DATABASE `{DB_NAME}` CHARACTER SET utf8mb4')
        conn.close()


def _pg_params(dbname):
    return {
        'dbname': dbname,
        'user': os.environ.get('MODELQUEUE_PG_USER', 'postgres'),
        'host': os.environ.get('MODELQUEUE_PG_HOST', '127.0.0.1'),
        'port': os.environ.get('MODELQUEUE_PG_PORT', '5432'),
    }


def _mariadb_params(database=None):
    params = {
        'user': os.environ.get('MODELQUEUE_MARIADB_USER', 'root'),
        'password': os.environ.get('MODELQUEUE_MARIADB_PASSWORD', ''),
        'host': os.environ.get('MODELQUEUE_MARIADB_HOST', '127.0.0.1'),
        'port': int(os.environ.get('MODELQUEUE_MARIADB_PORT', '3306')),
    }
    if database:
        params['database'] = database
    return params


def setup_django():
    import django

    django.setup()


# -- implementations --------------------------------------------------------


class ModelQueueImpl:
    """modelqueue, this checkout or 2.2.1: the same API."""

    def __init__(self):
        import modelqueue
        from bench.queueapp.models import Task

        self.mq = modelqueue
        self.model = Task
        self.table = Task._meta.db_table
        self.status_column = 'status'

    def version(self):
        return self.mq.__version__

    def template(self):
        return self.model.objects.create(data='template', status=self.mq.Status.waiting())

    def statuses(self):
        """SQL literals of a due waiting and a finished status."""
        Status, now = self.mq.Status, self.mq.now
        import datetime as dt

        due = Status.waiting(now() - dt.timedelta(minutes=1), 0)
        done = Status.finished(now() - dt.timedelta(days=1), 1)
        return str(int(due)), str(int(done))

    def add_due(self):
        """Make one row due now (one commit); return its key."""
        return self.model.objects.create(data='pickup', status=self.mq.Status.waiting()).pk

    def due(self):
        Status = self.mq.Status
        return self.model.objects.filter(
            status__gte=Status.minimum(self.mq.State.waiting),
            status__lte=Status.waiting(self.mq.now(), 9),
        )

    def unfinished(self):
        Status, State = self.mq.Status, self.mq.State
        finished = self.model.objects.filter(**Status.filter('status', State.finished))
        return self.model.objects.count() - finished.count()

    def run_once(self, action):
        return self.mq.run(self.model.objects.all(), 'status', action) is not None

    def action(self):
        from bench.benchapp import actions

        return lambda task: actions.perform(task.pk)

    def drain(self, counters):
        """Run until no due row is left; count empty claims while rows were due."""
        action = self.action()
        while True:
            try:
                if self.run_once(action):
                    counters['last'] = time.time()
                    continue
            except Exception as error:  # noqa: BLE001 - counted, reported
                counters['errors'] += 1
                counters['error_kinds'].add(type(error).__name__ + ': ' + str(error)[:80])
                if counters['errors'] > 1000:
                    return
                continue
            if not due_unclaimed(self):
                return
            counters['empty_while_due'] += 1

    def idle_worker(self):
        """This checkout: its worker command, as deployed (on PostgreSQL it
        wakes on NOTIFY). 2.2.1: the reference's loop, polling once a second."""
        if IMPL == 'modelqueue':
            from django.core.management import call_command

            call_command(
                'modelqueue_worker', 'queueapp.Task', 'status',
                'bench.benchapp.actions.perform_task', *WORKER_OPTIONS, verbosity=0,
            )
            return
        action = self.action()
        while True:
            if not self.run_once(action):
                time.sleep(1.0)

    def tally(self):
        return self.mq.Status.tally(self.model.objects.all(), 'status')


class TasksDbImpl:
    """django-tasks-db: Django's Tasks framework with its database backend."""

    def __init__(self):
        from django_tasks_db.models import DBTaskResult

        self.model = DBTaskResult
        self.table = DBTaskResult._meta.db_table
        self.status_column = 'status'

    def version(self):
        from importlib.metadata import version

        return version('django-tasks-db')

    def template(self):
        from bench.benchapp.tasks import work

        result = work.enqueue()
        return self.model.objects.get(pk=result.id)

    def statuses(self):
        return "'READY'", "'SUCCESSFUL'"

    def add_due(self):
        from bench.benchapp.tasks import work

        return str(work.enqueue().id)

    def due(self):
        return self.model.objects.ready()

    def unfinished(self):
        return self.model.objects.exclude(status='SUCCESSFUL').count()

    def worker(self, **options):
        from django_tasks_db.management.commands.db_worker import Worker

        defaults = dict(
            queue_names=['default'],
            interval=0,
            batch=True,
            backend_name='default',
            startup_delay=False,
            max_tasks=None,
            worker_id=f'bench-{os.getpid()}',
            excluded_queue_names=[],
        )
        defaults.update(options)
        return Worker(**defaults)

    def run_once(self, action=None):
        self.worker(batch=False, max_tasks=1).run()
        return True

    def action(self):
        return None

    def drain(self, counters):
        """db_worker --batch until no due row is left (each return while rows
        were still due counts as an empty claim)."""
        from django.core.management import call_command
        from django_tasks_db.compat import task_finished

        def finished(sender, task_result, **kwargs):
            counters['last'] = time.time()

        task_finished.connect(finished, weak=False)
        while True:
            try:
                call_command(
                    'db_worker',
                    batch=True,
                    interval=0,
                    startup_delay=False,
                    reload=False,
                    verbosity=0,
                    worker_id=f'bench-{os.getpid()}',
                )
            except Exception as error:  # noqa: BLE001 - counted, reported
                counters['errors'] += 1
                counters['error_kinds'].add(type(error).__name__ + ': ' + str(error)[:80])
                if counters['errors'] > 1000:
                    return
                continue
            if not due_unclaimed(self):
                return
            counters['empty_while_due'] += 1

    def idle_worker(self):
        """Its db_worker with the default one-second interval."""
        from django.core.management import call_command

        call_command('db_worker', reload=False, verbosity=0, startup_delay=False)

    def tally(self):
        return None


class ModelQueueTasksImpl(TasksDbImpl):
    """This checkout as a backend of Django's Tasks framework: the same
    ``@task`` as django-tasks-db, run by ``modelqueue_worker --tasks``."""

    def __init__(self):
        import modelqueue
        from modelqueue.tasks.models import QueuedTask

        self.mq = modelqueue
        self.model = QueuedTask
        self.table = QueuedTask._meta.db_table
        self.status_column = 'status'

    def version(self):
        return self.mq.__version__

    def statuses(self):
        from modelqueue.tasks.models import ready_status

        done = self.mq.Status.finished(self.mq.now(), 1)
        return str(int(ready_status(0))), str(int(done))

    def due(self):
        from modelqueue import ranges

        return self.model.objects.filter(ranges.due('status', self.mq.now()))

    def unfinished(self):
        from modelqueue import ranges

        return self.model.objects.exclude(ranges.in_states('status', 'finished')).count()

    def run_once(self, action=None):
        from modelqueue.tasks.worker import task_worker

        return task_worker(burst=True, max_tasks=1, listen=False).run() == 1

    def drain(self, counters):
        """``modelqueue_worker --tasks --burst`` until no due row is left."""
        from django.core.management import call_command

        from modelqueue.tasks.compat import task_finished

        def finished(sender, task_result, **kwargs):
            counters['last'] = time.time()

        task_finished.connect(finished, weak=False)
        while True:
            try:
                call_command('modelqueue_worker', tasks=True, burst=True, listen=False, verbosity=0)
            except Exception as error:  # noqa: BLE001 - counted, reported
                counters['errors'] += 1
                counters['error_kinds'].add(type(error).__name__ + ': ' + str(error)[:80])
                if counters['errors'] > 1000:
                    return
                continue
            if not due_unclaimed(self):
                return
            counters['empty_while_due'] += 1

    def idle_worker(self):
        """``modelqueue_worker --tasks`` as deployed (on PostgreSQL it wakes on commit)."""
        from django.core.management import call_command

        call_command('modelqueue_worker', *WORKER_OPTIONS, tasks=True, verbosity=0)


def implementation():
    if IMPL == 'django-tasks-db':
        return TasksDbImpl()
    if IMPL == 'modelqueue-tasks':
        return ModelQueueTasksImpl()
    return ModelQueueImpl()


def due_unclaimed(impl):
    """Count due rows that no worker holds right now."""
    from django.db import connection, transaction

    due = impl.due().order_by()
    if connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            return len(due.select_for_update(skip_locked=True).values_list('pk'))
    return due.count()


def fill(impl, due, finished):
    """Empty the queue table, then insert `finished` finished and `due` due
    rows with one INSERT ... SELECT (generate_series, a recursive CTE or a
    MariaDB sequence), copying every other column from a template row."""
    from django.db import connection

    impl.model.objects.all().delete()
    template = impl.template()
    total = due + finished
    due_value, done_value = impl.statuses()
    columns, values = [], []
    for field in impl.model._meta.concrete_fields:
        column = connection.ops.quote_name(field.column)
        columns.append(column)
        if field.primary_key:
            if field.get_internal_type() == 'UUIDField':
                values.append(
                    {
                        'postgresql': 'gen_random_uuid()',
                        'sqlite': 'lower(hex(randomblob(16)))',
                        'mariadb': 'UUID()',
                    }[VENDOR]
                )
            else:
                values.append(f'{template.pk} + s.i')
        elif field.column == impl.status_column:
            values.append(f'CASE WHEN s.i <= {finished} THEN {done_value} ELSE {due_value} END')
        else:
            values.append(f'tpl.{column}')
    table = connection.ops.quote_name(impl.table)
    select = (
        f'SELECT {", ".join(values)} FROM {table} tpl, {{series}}'
        f' WHERE tpl.{connection.ops.quote_name(impl.model._meta.pk.column)} = %s'
    )
    insert = f'INSERT INTO {table} ({", ".join(columns)}) '
    if VENDOR == 'postgresql':
        sql = insert + select.format(series=f'generate_series(1, {total}) AS s(i)')
    elif VENDOR == 'sqlite':
        sql = (
            f'WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {total}) '
            + insert
            + select.format(series='s')
        )
    else:
        sql = insert + select.format(series=f'(SELECT seq AS i FROM seq_1_to_{total}) s')
    pk = template.pk
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk.hex if VENDOR == 'sqlite' and hasattr(pk, 'hex') else pk])
    impl.model.objects.filter(pk=template.pk).delete()
    with connection.cursor() as cursor:
        cursor.execute('ANALYZE' if VENDOR != 'mariadb' else f'ANALYZE TABLE {table}')


# -- commands ---------------------------------------------------------------


def cmd_prepare(args):
    recreate_database()
    setup_django()
    from django.core.management import call_command
    from django.db import connection

    call_command('migrate', run_syncdb=True, verbosity=0)
    impl = implementation()
    import django

    emit(
        {
            'impl': IMPL,
            'version': impl.version(),
            'django': django.get_version(),
            'python': sys.version.split()[0],
            'database': f'{connection.display_name} {database_version(connection)}',
        }
    )


def database_version(connection):
    with connection.cursor() as cursor:
        if VENDOR == 'sqlite':
            cursor.execute('SELECT sqlite_version()')
        elif VENDOR == 'postgresql':
            cursor.execute('SHOW server_version')
        else:
            cursor.execute('SELECT VERSION()')
        return cursor.fetchone()[0].split()[0]


def cmd_throughput(args):
    """Fill `n` due rows, start `workers` processes together, drain the queue."""
    setup_django()
    from django.db import connection

    impl = implementation()
    fill(impl, args.n, 0)
    connection.close()
    children = [
        subprocess.Popen(
            [sys.executable, '-m', 'bench.driver', 'worker', '--delay-ms', str(args.delay_ms)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(args.workers)
    ]
    try:
        for child in children:
            line = child.stdout.readline()
            if line.strip() != 'ready':
                raise RuntimeError(f'worker did not start: {line!r}')
        for child in children:  # all at once: the timed window starts here
            child.stdin.write('go\n')
            child.stdin.flush()
        reports = []
        for child in children:
            out, _ = child.communicate(timeout=args.timeout)
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    executed = [key for report in reports for key in report['executed']]
    distinct = len(set(executed))
    first = min(report['start'] for report in reports)
    last = max(report['last'] or report['start'] for report in reports)
    unfinished = impl.unfinished()
    emit(
        {
            'tasks': args.n,
            'seconds': last - first,
            'tasks_per_second': distinct / (last - first) if last > first else None,
            'executions_per_task': len(executed) / distinct if distinct else None,
            'duplicates': len(executed) - distinct,
            'never_finished': unfinished,
            'errors': sum(report['errors'] for report in reports),
            'error_kinds': sorted({kind for report in reports for kind in report['error_kinds']}),
            'empty_while_due': sum(report['empty_while_due'] for report in reports),
        }
    )


def cmd_worker(args):
    """One throughput worker: start on 'go', drain, report."""
    setup_django()
    from django.db import connection

    from bench.benchapp import actions

    actions.DELAY = args.delay_ms / 1000
    impl = implementation()
    connection.ensure_connection()
    print('ready', flush=True)
    sys.stdin.readline()
    counters = {'errors': 0, 'error_kinds': set(), 'empty_while_due': 0, 'last': None}
    counters['start'] = time.time()
    impl.drain(counters)
    emit(
        {
            'executed': [key for key, _, _ in actions.RECORD],
            'start': counters['start'],
            'last': counters['last'],
            'errors': counters['errors'],
            'error_kinds': sorted(counters['error_kinds']),
            'empty_while_due': counters['empty_while_due'],
        }
    )


def cmd_table(args):
    """On a table of `rows` rows, `due` of them due and the rest finished:
    claim latency (from calling the worker's step to the start of the
    action), then the time of the state counts (tally) and, once this
    checkout has it, of the dashboard's figures."""
    setup_django()
    from bench.benchapp import actions

    impl = implementation()
    started = time.perf_counter()
    fill(impl, args.due, args.rows - args.due)
    figures = {'rows': args.rows, 'fill_seconds': time.perf_counter() - started}
    action = impl.action()
    rounds = []
    for _ in range(args.rounds):
        latencies, steps = [], []
        for sample in range(args.samples + 5):
            before = time.perf_counter()
            impl.run_once(action)
            after = time.perf_counter()
            if sample >= 5:  # warm-up
                latencies.append(actions.RECORD[-1][2] - before)
                steps.append(after - before)
        rounds.append(
            (percentile(latencies, 0.5), percentile(latencies, 0.99), percentile(steps, 0.5))
        )
    figures['claim_p50_ms'] = 1000 * statistics.median(r[0] for r in rounds)
    figures['claim_p99_ms'] = 1000 * statistics.median(r[1] for r in rounds)
    figures['step_p50_ms'] = 1000 * statistics.median(r[2] for r in rounds)
    figures['tally_ms'] = median_ms(impl.tally, args.repeat) if impl.tally() else None
    dashboard = dashboard_figures()
    if dashboard is not None:
        figures['dashboard_ms'] = median_ms(
            lambda: dashboard(impl.model.objects.all(), 'status'), args.repeat
        )
    emit(figures)


def dashboard_figures():
    """The dashboard's figures function of this checkout."""
    if IMPL != 'modelqueue':
        return None
    from modelqueue.admin.figures import queue_figures

    return queue_figures


def cmd_cost(args):
    """Per task, on `n` due rows with one worker: the SQL statements the
    implementation sends through Django, the commits PostgreSQL counts
    (pg_stat_database) and the process CPU time; with --profile, a
    pyinstrument profile of the same loop."""
    setup_django()
    from django.db import connection

    impl = implementation()
    fill(impl, args.n, 0)
    action = impl.action()
    statements = []

    def count(execute, sql, params, many, context):
        statements.append(sql.split()[0].upper())
        return execute(sql, params, many, context)

    def commits():
        if VENDOR != 'postgresql':
            return None
        import psycopg

        with psycopg.connect(**_pg_params(DB_NAME)) as conn:
            (value,) = conn.execute(
                'SELECT xact_commit FROM pg_stat_database WHERE datname = %s', [DB_NAME]
            ).fetchone()
            return value

    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0002)
    before_commits = commits()
    cpu = time.process_time()
    if profiler:
        profiler.start()
    with connection.execute_wrapper(count):
        for _ in range(args.n):
            impl.run_once(action)
    if profiler:
        profiler.stop()
    cpu = time.process_time() - cpu
    time.sleep(0.6)  # pg_stat_database is updated at most every 500 ms
    after_commits = commits()
    kinds = {}
    for kind in statements:
        kinds[kind] = kinds.get(kind, 0) + 1
    if profiler:
        print(profiler.output_text(unicode=False, color=False, show_all=False), file=sys.stderr)
    emit(
        {
            'statements_per_task': len(statements) / args.n,
            'kinds_per_task': {k: v / args.n for k, v in sorted(kinds.items())},
            'commits_per_task': (
                (after_commits - before_commits - 1) / args.n
                if before_commits is not None
                else None
            ),
            'cpu_ms_per_task': 1000 * cpu / args.n,
        }
    )


def cmd_pickup(args):
    """Start one idle worker, then make a row due `samples` times and time
    from the commit to the start of its action."""
    setup_django()
    impl = implementation()
    impl.model.objects.all().delete()
    child = subprocess.Popen(
        [sys.executable, '-m', 'bench.driver', 'idle-worker'],
        stdout=subprocess.PIPE,
        text=True,
    )
    started = {}
    arrived = threading.Condition()

    def read():
        for line in child.stdout:
            if line.startswith('{'):
                record = json.loads(line)
                with arrived:
                    started[record['key']] = record['time']
                    arrived.notify_all()

    threading.Thread(target=read, daemon=True).start()
    latencies, missed = [], 0
    try:
        time.sleep(args.settle)
        for sample in range(args.samples + 1):
            time.sleep(random.uniform(0.2, 1.2))  # spread over the polling phase
            committed = time.time()  # before the INSERT: its commit is in the latency
            key = impl.add_due()
            with arrived:
                if not arrived.wait_for(lambda: key in started, timeout=args.timeout):
                    missed += 1
                    continue
                if sample:  # the first one shows the worker is up: not counted
                    latencies.append(started[key] - committed)
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    emit(
        {
            'samples': len(latencies),
            'missed': missed,
            'p50_ms': 1000 * percentile(latencies, 0.5) if latencies else None,
            'p95_ms': 1000 * percentile(latencies, 0.95) if latencies else None,
            'mechanism': pickup_mechanism(),
        }
    )


def pickup_mechanism():
    if IMPL not in ('modelqueue', 'modelqueue-tasks'):
        return 'polls every 1 s'
    if IMPL == 'modelqueue':
        from bench.queueapp.models import Task
    else:
        from modelqueue.tasks.models import QueuedTask as Task
    from modelqueue.worker.waiters import waiter_for

    waiter = waiter_for(Task.objects.all(), 'status')
    try:
        return f'modelqueue_worker: {waiter.describe(1.0)}'
    finally:
        waiter.close()


def cmd_idle_worker(args):
    setup_django()
    from bench.benchapp import actions

    actions.ON_START = lambda key, wall: print(
        json.dumps({'key': key, 'time': wall}), flush=True
    )
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    implementation().idle_worker()


# -- the worker command: threads vs processes -------------------------------


def cmd_worker_mode(args):
    """Start ``modelqueue_worker`` with the given --threads and --concurrency
    on an empty queue, let every thread connect and go idle, commit `n` due
    rows at once, and stop it (SIGTERM) once they are finished. Measures the
    tasks per second, from the first action's start to the last row's finish
    (as its status records it), and the memory of the command's processes:
    the peak of their summed RSS, and of their summed PSS, sampled every
    100 ms."""
    setup_django()
    impl = implementation()
    impl.model.objects.all().delete()
    sleep = '30' if VENDOR == 'postgresql' else '0.1'  # elsewhere the workers poll
    with tempfile.TemporaryDirectory() as starts, tempfile.TemporaryFile('w+') as log:
        command = [
            sys.executable, '-m', 'bench.driver', 'command-worker',
            '--delay-ms', str(args.delay_ms), '--starts', starts, '--',
            '--threads', str(args.threads), '--concurrency', str(args.concurrency), '--sleep', sleep,
        ]
        child = subprocess.Popen(command, stderr=log)
        memory = MemorySampler(child.pid)
        memory.start()
        try:
            time.sleep(args.settle)  # every thread has connected, looked once and sleeps
            if child.poll() is None:
                add_due_rows(impl, args.n)
                wait_for(
                    lambda: child.poll() is not None or impl.unfinished() == 0, args.timeout, 'the rows to finish'
                )
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=60)
        finally:
            memory.stop()
            if child.poll() is None:
                child.kill()
        if child.returncode != 0:
            log.seek(0)
            raise RuntimeError(f'the worker command exited with {child.returncode}:\n{log.read()[-3000:]}')
        started = [line.split() for path in Path(starts).iterdir() for line in path.read_text().splitlines()]
    keys = [key for key, _ in started]
    first = min(float(wall) for _, wall in started)
    last = last_finish(impl)
    emit(
        {
            'tasks': args.n,
            'threads': args.threads,
            'concurrency': args.concurrency,
            'seconds': last - first,
            'tasks_per_second': len(set(keys)) / (last - first),
            'duplicates': len(keys) - len(set(keys)),
            'never_finished': impl.unfinished(),
            'peak_rss_mb': memory.peak['rss'] / 1024,
            'peak_pss_mb': memory.peak['pss'] / 1024,
            'peak_processes': memory.peak['processes'],
        }
    )


def add_due_rows(impl, count):
    """Commit `count` due rows in one transaction (on PostgreSQL, one NOTIFY)."""
    from django.db import transaction

    Status = impl.mq.Status
    with transaction.atomic():
        impl.model.objects.bulk_create(
            (impl.model(data=f'row {n}', status=Status.waiting()) for n in range(count)), batch_size=1000
        )


def last_finish(impl):
    """When the last row finished (epoch seconds), from the time in its status."""
    from django.db.models import Max

    Status = impl.mq.Status
    finished = impl.model.objects.filter(**Status.filter('status', impl.mq.State.finished))
    _, when, _ = Status(finished.aggregate(last=Max('status'))['last']).parse()
    return when.timestamp()


class MemorySampler:
    """Every 100 ms, the summed RSS and PSS (kB) of a process and its descendants; keeps the peaks."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = {'rss': 0, 'pss': 0, 'processes': 0}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._done.set()
        self._thread.join()

    def _run(self):
        while not self._done.wait(0.1):
            pids = self._tree(self.pid)
            sample = {'rss': 0, 'pss': 0, 'processes': len(pids)}
            for pid in pids:
                sample['rss'] += _proc_kb(f'/proc/{pid}/status', 'VmRSS:')
                sample['pss'] += _proc_kb(f'/proc/{pid}/smaps_rollup', 'Pss:')
            for key, value in sample.items():
                self.peak[key] = max(self.peak[key], value)

    def _tree(self, pid):
        pids, index = [pid], 0
        while index < len(pids):
            try:
                with open(f'/proc/{pids[index]}/task/{pids[index]}/children') as children:
                    pids.extend(int(child) for child in children.read().split())
            except OSError:
                pass
            index += 1
        return pids


def _proc_kb(path, field):
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmd_wakeups(args):
    """Start ``modelqueue_worker --threads N`` on an empty queue, let it go
    idle, commit `rows` due rows in one INSERT (one NOTIFY), and count the
    wake-ups the worker logs once it has run them all."""
    setup_django()
    impl = implementation()
    impl.model.objects.all().delete()
    with tempfile.TemporaryDirectory() as starts:
        child = subprocess.Popen(
            [
                sys.executable, '-m', 'bench.driver', 'command-worker', '--starts', starts,
                '--', '--threads', str(args.threads), '--sleep', '30', '--verbosity', '2',
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        log_lines = []
        reader = threading.Thread(target=lambda: log_lines.extend(child.stderr), daemon=True)
        reader.start()
        try:
            wait_for(listening, 30, 'the worker to LISTEN')
            time.sleep(args.settle)  # every thread has looked once and sleeps
            committed = time.time()
            add_due_rows(impl, args.rows)
            wait_for(lambda: impl.unfinished() == 0, 120, 'the rows to finish')
            drained = last_finish(impl) - committed
        finally:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
            reader.join(timeout=5)
    log = ''.join(log_lines)
    counts = re.search(
        r'woken (\d+) times? by a notification, (\d+) by another thread, (\d+) by polling; (\d+) found nothing',
        log,
    )
    if counts is None:
        raise RuntimeError(f'the worker logged no wake-up counts:\n{log[-3000:]}')
    notification, handed_on, polling, nothing = map(int, counts.groups())
    emit(
        {
            'threads': args.threads,
            'rows': args.rows,
            'woken_by_notification': notification,
            'woken_by_another_thread': handed_on,
            'woken_by_polling': polling,
            'found_nothing': nothing,
            'drain_seconds': drained,
        }
    )


def listening():
    """Whether the worker's LISTEN session on this database is idle, waiting (PostgreSQL)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%%'"
            " AND state = 'idle' AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f'timed out after {timeout}s waiting for {what}')
        time.sleep(0.05)


def cmd_command_worker(args):
    """``manage.py modelqueue_worker`` on the benchmark queue, with the
    benchmark action; each process appends "key start-time" lines to a file
    of its own in `starts`."""
    setup_django()
    from django.core.management import call_command

    from bench.benchapp import actions

    actions.DELAY = args.delay_ms / 1000
    actions.LONG = args.long_seconds
    files = {}

    def on_start(key, wall):
        pid = os.getpid()
        if pid not in files:
            files[pid] = os.open(f'{args.starts}/{pid}', os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.write(files[pid], f'{key} {wall}\n'.encode())

    actions.ON_START = on_start
    options = [option for option in args.options if option != '--']
    if IMPL == 'modelqueue-tasks':
        call_command('modelqueue_worker', '--tasks', *options)
        return
    call_command(
        'modelqueue_worker', 'queueapp.Task', 'status', 'bench.benchapp.actions.perform_task', *options
    )


def cmd_burst(args):
    """Fill `n` due rows, then drain them with the worker command (this
    checkout's, of the model queue or of --tasks) given `options` and
    --burst, as a process of its own; the same on an empty queue first, for
    its start-up. Reports the seconds and the CPU seconds (user + system of
    the command's processes, reaped) of both, and the rows run twice or
    never."""
    setup_django()
    from django.db import connection

    impl = implementation()
    options = [option for option in args.options if option != '--']
    figures = {}
    for label, rows in (('empty', 0), ('full', args.n)):
        if rows:
            fill(impl, rows, 0)
        else:
            impl.model.objects.all().delete()
        if VENDOR == 'postgresql':  # each run on a table without the dead rows of the last
            with connection.cursor() as cursor:
                cursor.execute(f'VACUUM {connection.ops.quote_name(impl.table)}')
        connection.close()
        with tempfile.TemporaryDirectory() as starts:
            command = [
                sys.executable, '-m', 'bench.driver', 'command-worker', '--starts', starts, '--',
                '--burst', '--verbosity=0', *options,
            ]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.monotonic()
            subprocess.run(command, check=True, timeout=args.timeout)
            seconds = time.monotonic() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            keys = [line.split()[0] for path in Path(starts).iterdir() for line in path.read_text().splitlines()]
        figures[label] = {
            'seconds': seconds,
            'cpu_seconds': (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            'ran': len(keys),
            'duplicates': len(keys) - len(set(keys)),
        }
    full, empty = figures['full'], figures['empty']
    working = full['seconds'] - empty['seconds']
    emit(
        {
            'tasks': args.n,
            'options': options,
            'seconds': full['seconds'],
            'startup_seconds': empty['seconds'],
            'tasks_per_second': args.n / working,
            'cpu_ms_per_task': 1000 * (full['cpu_seconds'] - empty['cpu_seconds']) / args.n,
            'duplicates': full['duplicates'],
            'never_finished': impl.unfinished(),
            'ran': full['ran'],
        }
    )


def cmd_profile(args):
    """Fill `n` due rows and drain them in this process with the worker
    loop (``--batch`` `batch`, one process, one thread) under pyinstrument;
    write its text profile to `out` and report tasks per second and CPU per
    task (the profiler's own cost included)."""
    setup_django()
    from django.db import connection
    from pyinstrument import Profiler

    from bench.benchapp import actions

    impl = implementation()
    fill(impl, args.n, 0)
    connection.close()
    if IMPL == 'modelqueue-tasks':
        from modelqueue.tasks.worker import TaskWorker

        worker = TaskWorker(burst=True, listen=False, batch=args.batch, schedules=False)
    else:
        from modelqueue.worker import Worker

        worker = Worker(impl.model.objects.all(), 'status', actions.perform_task, burst=True, listen=False,
                        batch=args.batch)
    profiler = Profiler(interval=0.0005)
    cpu, wall = time.process_time(), time.monotonic()
    profiler.start()
    ran = worker.run()
    profiler.stop()
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    Path(args.out).write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    emit({'tasks': ran, 'batch': args.batch, 'tasks_per_second': ran / wall, 'cpu_ms_per_task': 1000 * cpu / ran,
          'profile': args.out})


def cmd_hostage(args):
    """Two quick tasks, a long one, then `n` quick ones, due in one commit;
    the worker command with `options` (--concurrency 2 --batch 100
    --batch-wait B) drains them. Reports each quick row's wait, from the
    commit to the start of its action, and whether the long task shared a
    batch (a worker gave rows back)."""
    setup_django()
    from django.db import transaction

    impl = implementation()
    impl.model.objects.all().delete()
    Status = impl.mq.Status
    options = [option for option in args.options if option != '--']
    with tempfile.TemporaryDirectory() as starts:
        command = [
            sys.executable, '-m', 'bench.driver', 'command-worker', '--starts', starts,
            '--long-seconds', str(args.long_seconds), '--', '--verbosity=2', '--sleep=0.1', *options,
        ]
        worker_log = tempfile.TemporaryFile('w+')
        child = subprocess.Popen(command, stderr=worker_log)
        try:
            time.sleep(args.settle)
            at = impl.mq.now() - dt.timedelta(seconds=1)
            with transaction.atomic():
                # An idle worker claims its first row alone: two quick rows first,
                # so that the long one is in a batch whichever worker wakes first.
                impl.model.objects.bulk_create(
                    impl.model(data=f'first {n}', status=Status.waiting(at, 0)) for n in range(2)
                )
                long_task = impl.model.objects.create(
                    data='long', status=Status.waiting(at + dt.timedelta(milliseconds=1), 0)
                )
                impl.model.objects.bulk_create(
                    impl.model(data=f'quick {n}', status=Status.waiting(at + dt.timedelta(milliseconds=2), 0))
                    for n in range(args.n)
                )
            committed = time.time()
            wait_for(lambda: impl.unfinished() == 0, args.long_seconds + 120, 'the rows to finish')
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(timeout=60)
        started = [line.split() for path in Path(starts).iterdir() for line in path.read_text().splitlines()]
    waits = [float(wall) - committed for key, wall in started if key != str(long_task.pk)]
    keys = [key for key, _ in started]
    worker_log.seek(0)
    given_back = sum(
        int(line.split('gave back ')[1].split()[0]) for line in worker_log if 'unstarted row' in line
    )
    emit(
        {
            'quick_tasks': args.n,
            'long_seconds': args.long_seconds,
            'options': options,
            'rows_given_back': given_back,
            'max_wait_seconds': max(waits),
            'p50_wait_seconds': percentile(waits, 0.5),
            'duplicates': len(keys) - len(set(keys)),
            'never_finished': impl.unfinished(),
        }
    )


def cmd_dblimit(args):
    """Single-row UPDATE commits per second on `connections` plain
    connections (psycopg / sqlite3 / MySQLdb directly), each its own process."""
    import multiprocessing

    table_rows = 1000
    connect = _plain_connect
    conn = connect()
    cursor = conn.cursor()
    cursor.execute('DROP TABLE IF EXISTS mqbench_counter')
    cursor.execute('CREATE TABLE mqbench_counter (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)')
    for start in range(0, table_rows, 500):
        rows = ', '.join(f'({i}, 0)' for i in range(start + 1, start + 501))
        cursor.execute(f'INSERT INTO mqbench_counter (id, n) VALUES {rows}')
    conn.close()
    go = multiprocessing.Event()
    results = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(target=_updater, args=(go, results, args.seconds, index, args.connections))
        for index in range(args.connections)
    ]
    for process in processes:
        process.start()
    time.sleep(0.5 + 0.1 * args.connections)
    go.set()
    total = sum(results.get(timeout=args.seconds + 60) for _ in processes)
    for process in processes:
        process.join()
    emit({'connections': args.connections, 'commits_per_second': total / args.seconds})


def _plain_connect():
    if VENDOR == 'postgresql':
        import psycopg

        return psycopg.connect(**_pg_params(DB_NAME), autocommit=True)
    if VENDOR == 'sqlite':
        import sqlite3

        conn = sqlite3.connect(DB_NAME, timeout=20, isolation_level=None)
        conn.execute('PRAGMA journal_mode=WAL')
        conn.execute('PRAGMA synchronous=NORMAL')
        return conn
    import MySQLdb

    conn = MySQLdb.connect(**_mariadb_params(DB_NAME))
    conn.autocommit(True)
    return conn


def _updater(go, results, seconds, index, connections):
    conn = _plain_connect()
    cursor = conn.cursor()
    placeholder = '?' if VENDOR == 'sqlite' else '%s'
    sql = f'UPDATE mqbench_counter SET n = n + 1 WHERE id = {placeholder}'
    # Each connection its own rows: the limit of commits, not of one row's lock.
    ids = [i for i in range(1, 1001) if i % connections == index]
    go.wait()
    deadline = time.perf_counter() + seconds
    count = 0
    while time.perf_counter() < deadline:
        cursor.execute(sql, (random.choice(ids),))
        count += 1
    conn.close()
    results.put(count)


def main():
    parser = argparse.ArgumentParser(prog='python -m bench.driver')
    commands = parser.add_subparsers(dest='command', required=True)
    commands.add_parser('prepare')
    throughput = commands.add_parser('throughput')
    throughput.add_argument('--n', type=int, required=True)
    throughput.add_argument('--workers', type=int, required=True)
    throughput.add_argument('--delay-ms', type=float, default=0)
    throughput.add_argument('--timeout', type=float, default=600)
    worker = commands.add_parser('worker')
    worker.add_argument('--delay-ms', type=float, default=0)
    table = commands.add_parser('table')
    table.add_argument('--rows', type=int, required=True)
    table.add_argument('--due', type=int, default=1000)
    table.add_argument('--samples', type=int, default=200)
    table.add_argument('--rounds', type=int, default=3)
    table.add_argument('--repeat', type=int, default=5)
    pickup = commands.add_parser('pickup')
    pickup.add_argument('--samples', type=int, default=20)
    pickup.add_argument('--settle', type=float, default=2.0)
    pickup.add_argument('--timeout', type=float, default=30.0)
    cost = commands.add_parser('cost')
    cost.add_argument('--n', type=int, default=500)
    cost.add_argument('--profile', action='store_true')
    commands.add_parser('idle-worker')
    mode = commands.add_parser('worker-mode')
    mode.add_argument('--n', type=int, required=True)
    mode.add_argument('--threads', type=int, default=1)
    mode.add_argument('--concurrency', type=int, default=1)
    mode.add_argument('--delay-ms', type=float, default=0)
    mode.add_argument('--timeout', type=float, default=600)
    mode.add_argument('--settle', type=float, default=2.0)
    wakeups = commands.add_parser('wakeups')
    wakeups.add_argument('--rows', type=int, default=1000)
    wakeups.add_argument('--threads', type=int, default=8)
    wakeups.add_argument('--settle', type=float, default=1.0)
    command_worker = commands.add_parser('command-worker')
    command_worker.add_argument('--delay-ms', type=float, default=0)
    command_worker.add_argument('--starts', required=True)
    command_worker.add_argument('--long-seconds', type=float, default=0)
    command_worker.add_argument('options', nargs=argparse.REMAINDER)
    burst = commands.add_parser('burst')
    burst.add_argument('--n', type=int, required=True)
    burst.add_argument('--timeout', type=float, default=900)
    burst.add_argument('options', nargs=argparse.REMAINDER)
    profile = commands.add_parser('profile')
    profile.add_argument('--n', type=int, default=5000)
    profile.add_argument('--batch', type=int, default=100)
    profile.add_argument('--out', required=True)
    hostage = commands.add_parser('hostage')
    hostage.add_argument('--n', type=int, default=99)
    hostage.add_argument('--long-seconds', type=float, default=30)
    hostage.add_argument('--settle', type=float, default=2.0)
    hostage.add_argument('options', nargs=argparse.REMAINDER)
    dblimit = commands.add_parser('dblimit')
    dblimit.add_argument('--connections', type=int, required=True)
    dblimit.add_argument('--seconds', type=float, default=3.0)
    args = parser.parse_args()
    globals()['cmd_' + args.command.replace('-', '_')](args)


if __name__ == '__main__':
    main()
