"""Production topology: workers direct to PostgreSQL beside through PgBouncer.

    python -m bench topology            # the full run (about 10 minutes on 2 cores)
    python -m bench topology --quick    # a smoke run, written to scratch

Runs in this Python, which must import this checkout, Django and psycopg
(.venv/py3.11 from ./runtests does), as root (PgBouncer runs as the
postgres user), on a PostgreSQL database of its own, with a PgBouncer of
its own in transaction mode (a pool of 10 server sessions; the one the
tests start, tests/support/pgbouncer.py). ``modelqueue_worker`` runs as
deployed, on the test app's queue, with an action that notes when it
started (and sleeps 0 or 5 ms). Three ways of reaching the database:

- ``direct``: claims and LISTEN to PostgreSQL itself;
- ``pooled``: claims through PgBouncer, no listen alias: the worker finds
  that notifications do not reach it, says so, and polls every second;
- ``pooled, direct listen``: claims through PgBouncer, ``--listen-database``
  an alias to PostgreSQL itself.

For each: **throughput**, one worker ``--threads 8`` draining --tasks rows
committed at once (no-op and 5 ms actions), tasks per second from the first
action's start to the last row's finish (its status says when), median of
--runs; **pickup**, one idle worker (``--sleep 1``), rows committed one at a
time at random moments, from just before the commit to the action's start,
p50 and p95. Then **8 hosts**: 8 worker processes with distinct host names
(``MODELQUEUE_HOST_NAME``), ``--threads 8`` each, through the pool of 10
with a direct listen, on --hosts-tasks rows of 5 ms: tasks per second,
lost and duplicated rows, the peak of the pool's server sessions (PgBouncer's
``SHOW POOLS``) and of the sessions PostgreSQL sees on the database; beside
the same 8 x 8 direct when the server has room for its 88 connections
(else the direct figure at 8 x 8 is not run, and the file says why).

Writes bench/results/topology-<date>-postgresql.json (--quick: scratch/),
with the issue's targets judged.
"""

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .results import ROOT, default_path, header, log, scratch_database, write

MODES = {
    'direct': {'pooled': False, 'listen': None},
    'pooled': {'pooled': True, 'listen': None},
    'pooled, direct listen': {'pooled': True, 'listen': 'direct'},
}
POOL_SIZE = 10
HOSTS, HOST_THREADS = 8, 8
#: Connections 8 x 8 direct workers hold: per process 8 claim, main, heartbeat, listen.
DIRECT_HOSTS_CONNECTIONS = HOSTS * (HOST_THREADS + 3)
ACTION = 'bench.topology_action.perform'


def add_arguments(parser):
    parser.add_argument('--quick', action='store_true', help='a small smoke run, written to scratch')
    parser.add_argument('--runs', type=int, help='throughput runs per figure (median); 3, quick 1')
    parser.add_argument('--tasks', type=int, help='rows per throughput run; 2000, quick 200')
    parser.add_argument('--pickup-samples', type=int, help='pickups per mode; 30, quick 5')
    parser.add_argument('--hosts-tasks', type=int, help='rows of the 8-host run; 4000, quick 400')
    parser.add_argument('--out', help='JSON file (default bench/results/topology-<date>-postgresql.json)')


def configure():
    os.environ['MODELQUEUE_DB'] = 'postgresql'
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings')
    from django.conf import settings  # noqa: PLC0415

    from .dashboard import create_postgresql_database  # noqa: PLC0415

    database = settings.DATABASES['default']
    database['NAME'] = scratch_database('postgresql', 'topology')
    create_postgresql_database(database)
    import django  # noqa: PLC0415

    django.setup()
    return database


class Workers:
    """``modelqueue_worker`` processes on the bench database, reached in one
    of the MODES; each action appends "pk start-time" to a file of its process."""

    def __init__(self, database, bouncer, mode, delay_ms=0.0):
        self.database = database
        self.bouncer = bouncer
        self.mode = MODES[mode]
        self.delay_ms = delay_ms
        self.folder = Path(tempfile.mkdtemp(prefix='mqbench-topology-'))
        self.children = []

    def env(self, host=None):
        aliases = {'direct': {}}
        if self.mode['pooled']:
            aliases['default'] = {'PORT': str(self.bouncer.port), 'OPTIONS': {'prepare_threshold': None},
                                  'DISABLE_SERVER_SIDE_CURSORS': True}
        env = {
            **os.environ,
            'DJANGO_SETTINGS_MODULE': 'tests.settings',
            'MODELQUEUE_DB': 'postgresql',
            'MODELQUEUE_DB_NAME': self.database['NAME'],
            'MODELQUEUE_TEST_DATABASES': json.dumps(aliases),
            'PYTHONPATH': str(ROOT),
            'MQBENCH_STARTS': str(self.folder),
            'MQBENCH_DELAY_MS': str(self.delay_ms),
        }
        if host is not None:
            env['MODELQUEUE_HOST_NAME'] = host
        return env

    def start(self, *options, host=None):
        command = [sys.executable, '-m', 'django', 'modelqueue_worker', 'testapp.Task', 'status', ACTION, *options]
        if self.mode['listen']:
            command.append(f'--listen-database={self.mode["listen"]}')
        log_file = open(self.folder / f'log-{len(self.children)}.txt', 'w')
        child = subprocess.Popen(command, cwd=ROOT, env=self.env(host), stderr=log_file, stdout=subprocess.DEVNULL)
        child.log_file = log_file
        self.children.append(child)
        return child

    def ready(self, timeout=60):
        """Wait until every worker beats (its heartbeat row is written once it
        has listened, or found that it cannot)."""
        from modelqueue.models import WorkerHeartbeat  # noqa: PLC0415

        deadline = time.monotonic() + timeout
        for child in self.children:
            while not WorkerHeartbeat.objects.filter(pid=child.pid).exists():
                if child.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f'a worker did not start:\n{self.logs()[-3000:]}')
                time.sleep(0.05)

    def starts(self):
        """(pk, start time) of every action run so far."""
        found = []
        for path in self.folder.glob('starts-*'):
            for line in path.read_text().splitlines():
                key, wall = line.split()
                found.append((int(key), float(wall)))
        return found

    def logs(self):
        return ''.join(path.read_text() for path in sorted(self.folder.glob('log-*.txt')))

    def stop(self):
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        failed = []
        for child in self.children:
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            child.log_file.close()
            if child.returncode != 0:
                failed.append(child.returncode)
        logs = self.logs()
        for path in self.folder.iterdir():
            path.unlink()
        self.folder.rmdir()
        if failed:
            raise RuntimeError(f'workers exited with {failed}:\n{logs[-3000:]}')
        return logs


def reset():
    from tests.testapp.models import Task  # noqa: PLC0415

    Task.objects.all().delete()


def add_due_rows(count):
    from django.db import transaction  # noqa: PLC0415

    from modelqueue import Status  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    with transaction.atomic():
        return [
            task.pk
            for task in Task.objects.bulk_create(
                (Task(data=f'row {n}', status=Status.waiting()) for n in range(count)), batch_size=1000
            )
        ]


def unfinished():
    from modelqueue import State, Status  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    return Task.objects.exclude(**Status.filter('status', State.finished)).count()


def last_finish():
    from django.db.models import Max  # noqa: PLC0415

    from modelqueue import State, Status  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    finished = Task.objects.filter(**Status.filter('status', State.finished))
    _, when, _ = Status(finished.aggregate(last=Max('status'))['last']).parse()
    return when.timestamp()


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f'timed out after {timeout}s waiting for {what}')
        time.sleep(0.05)


class Sampler:
    """Calls `sample()` every 100 ms in a thread; keeps the peak of each figure."""

    def __init__(self, sample):
        self.sample = sample
        self.peaks = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run)
        self.thread.start()

    def run(self):
        from django.db import connection  # noqa: PLC0415

        try:
            while not self.done.wait(0.1):
                for name, value in self.sample().items():
                    self.peaks[name] = max(self.peaks.get(name, 0), value)
        finally:
            connection.close()

    def stop(self):
        self.done.set()
        self.thread.join()
        return self.peaks


def throughput_run(database, bouncer, mode, tasks, delay_ms, processes=1, threads=8, hosts=False, sample=None):
    reset()
    workers = Workers(database, bouncer, mode, delay_ms)
    peaks = {}
    try:
        for number in range(processes):
            workers.start(f'--threads={threads}', '--sleep=30', host=f'host-{number}' if hosts else None)
        workers.ready()
        time.sleep(1.0)  # every thread has looked once and sleeps
        keys = add_due_rows(tasks)
        sampler = Sampler(sample) if sample else None
        try:
            wait_for(lambda: unfinished() == 0, 600, 'the rows to finish')
        finally:
            if sampler:
                peaks = sampler.stop()
        starts = workers.starts()
    finally:
        logs = workers.stop()
    ran = [key for key, _ in starts]
    first = min(wall for _, wall in starts)
    seconds = last_finish() - first
    return {
        'tasks': tasks,
        'seconds': seconds,
        'tasks_per_second': len(set(ran)) / seconds,
        'duplicates': len(ran) - len(set(ran)),
        'lost': len(set(keys) - set(ran)),
        'errors': logs.count('database error'),
        **peaks,
    }


def pickup_run(database, bouncer, mode, samples):
    reset()
    workers = Workers(database, bouncer, mode)
    from tests.testapp.models import Task  # noqa: PLC0415

    latencies = []
    try:
        workers.start('--sleep=1')
        workers.ready()
        for _ in range(samples + 1):
            time.sleep(random.uniform(0.2, 1.2))  # spread over the polling phase
            committed = time.time()  # before the INSERT: its commit is in the latency
            key = Task.objects.create(data='pickup').pk
            wait_for(lambda: key in dict(workers.starts()), 30, 'the row to start')
            latencies.append(dict(workers.starts())[key] - committed)
    finally:
        logs = workers.stop()
    latencies = latencies[1:]  # the first shows the worker is up: not counted
    ordered = sorted(latencies)
    return {
        'samples': len(latencies),
        'p50_ms': 1000 * ordered[round(0.5 * (len(ordered) - 1))],
        'p95_ms': 1000 * ordered[round(0.95 * (len(ordered) - 1))],
        'woken': 'polling' if 'notifications do not reach this worker' in logs else 'on commit',
    }


def free_connections():
    from django.db import connection  # noqa: PLC0415

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity")
        return cursor.fetchone()[0]


def backend_pid():
    from django.db import connection  # noqa: PLC0415

    with connection.cursor() as cursor:
        cursor.execute('SELECT pg_backend_pid()')
        return cursor.fetchone()[0]


def sessions_on_database(besides):
    """Sessions on the bench database but the caller's and the backend `besides` (the bench's own)."""
    from django.db import connection  # noqa: PLC0415

    with connection.cursor() as cursor:
        cursor.execute(
            'SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()'
            ' AND pid <> pg_backend_pid() AND pid <> %s',
            [besides],
        )
        return cursor.fetchone()[0]


def targets(results):
    checks = []

    def add(name, ok, detail):
        checks.append({'target': name, 'met': ok, 'detail': detail})

    pickup = results['pickup']['pooled, direct listen']
    add(
        'behind PgBouncer with a direct listen: pickup p50 <= 10 ms and p95 <= 25 ms',
        pickup['p50_ms'] <= 10 and pickup['p95_ms'] <= 25,
        f'p50 {pickup["p50_ms"]:.1f} ms, p95 {pickup["p95_ms"]:.1f} ms',
    )
    for delay in results['throughput']:
        direct = results['throughput'][delay]['direct']['tasks_per_second']
        pooled = results['throughput'][delay]['pooled, direct listen']['tasks_per_second']
        add(
            f'behind PgBouncer with a direct listen, {delay} actions: throughput within 20% of direct',
            pooled >= 0.8 * direct,
            f'{pooled:,.0f} vs {direct:,.0f} tasks/s ({pooled / direct:.0%})',
        )
    hosts = results['hosts']
    pooled = hosts['pooled, direct listen']
    add(
        '8 hosts x 8 threads through a pool of 10: 0 lost, 0 duplicated',
        pooled['lost'] == 0 and pooled['duplicates'] == 0,
        f'lost {pooled["lost"]}, duplicated {pooled["duplicates"]}, peak server sessions'
        f' {pooled["server_sessions"]}, peak sessions on the database {pooled["database_sessions"]}',
    )
    direct = hosts.get('direct')
    if direct and 'tasks_per_second' in direct:
        add(
            '8 hosts x 8 threads through a pool of 10: at least 90% of the direct throughput',
            pooled['tasks_per_second'] >= 0.9 * direct['tasks_per_second'],
            f'{pooled["tasks_per_second"]:,.0f} vs {direct["tasks_per_second"]:,.0f} tasks/s'
            f' ({pooled["tasks_per_second"] / direct["tasks_per_second"]:.0%})',
        )
    else:
        one = results['throughput']['5 ms']['direct']['tasks_per_second']
        add('8 hosts x 8 threads through a pool of 10: at least 90% of the direct throughput', None,
            f'{(direct or {}).get("not_run", "the direct run did not happen")}; for scale, one direct'
            f' worker of 8 threads ran {one:,.0f} tasks/s of 5 ms, and the 8 x 8 through the pool'
            f' {pooled["tasks_per_second"]:,.0f}')
    return checks


def main(args):
    started = time.time()
    runs = args.runs or (1 if args.quick else 3)
    tasks = args.tasks or (200 if args.quick else 2000)
    samples = args.pickup_samples or (5 if args.quick else 30)
    hosts_tasks = args.hosts_tasks or (400 if args.quick else 4000)
    results = header(vars(args))
    database = configure()
    from django.core.management import call_command  # noqa: PLC0415
    from django.db import connection  # noqa: PLC0415

    from tests.support.pgbouncer import PgBouncer, missing  # noqa: PLC0415

    from .dashboard import database_version  # noqa: PLC0415

    why = missing()
    if why is not None:
        sys.exit(f'bench topology: {why}')
    call_command('migrate', run_syncdb=True, verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('max_connections')")
        max_connections = int(cursor.fetchone()[0])
    results['database'] = {'vendor': 'postgresql', 'version': database_version(connection),
                           'max_connections': max_connections}
    with PgBouncer(database['NAME'], host=database['HOST'], port=database['PORT'], user=database['USER'],
                   pool_size=POOL_SIZE) as bouncer:
        version = subprocess.run(['/usr/sbin/pgbouncer', '--version'], capture_output=True, text=True).stdout
        results['pgbouncer'] = {'version': version.splitlines()[0], 'pool_mode': 'transaction', 'pool_size': POOL_SIZE}
        throughput_run(database, bouncer, 'direct', min(tasks, 200), 0.0)  # warm up
        results['throughput'] = {}
        for delay in (0.0, 5.0):
            label = f'{delay:g} ms'
            measured = {mode: [] for mode in MODES}
            for number in range(runs):  # the modes interleaved, each run in another order
                order = list(MODES)[number % len(MODES):] + list(MODES)[:number % len(MODES)]
                for mode in order:
                    measured[mode].append(throughput_run(database, bouncer, mode, tasks, delay))
            results['throughput'][label] = {}
            for mode, runs_of_mode in measured.items():
                rates = [run['tasks_per_second'] for run in runs_of_mode]
                results['throughput'][label][mode] = {
                    'tasks': tasks, 'threads': 8, 'delay_ms': delay,
                    'tasks_per_second': statistics.median(rates), 'rates': rates,
                    'duplicates': sum(run['duplicates'] for run in runs_of_mode),
                    'lost': sum(run['lost'] for run in runs_of_mode),
                }
                log(f'bench: {label}, {mode}: {statistics.median(rates):,.0f} tasks/s')
        results['pickup'] = {}
        for mode in MODES:
            results['pickup'][mode] = pickup_run(database, bouncer, mode, samples)
            log(f'bench: pickup, {mode}: {results["pickup"][mode]}')

        own = backend_pid()

        def sample():
            return {'server_sessions': bouncer.server_connections(), 'database_sessions': sessions_on_database(own)}

        results['hosts'] = {}
        run = throughput_run(database, bouncer, 'pooled, direct listen', hosts_tasks, 5.0,
                             processes=HOSTS, threads=HOST_THREADS, hosts=True, sample=sample)
        results['hosts']['pooled, direct listen'] = {'hosts': HOSTS, 'threads': HOST_THREADS, **run}
        log(f'bench: 8 hosts through the pool: {run}')
    # The same 8 x 8 direct, with the pool's server sessions gone, if the
    # server has room for them and a margin for everyone else's.
    free = free_connections()
    if free >= DIRECT_HOSTS_CONNECTIONS + 5:
        run = throughput_run(database, None, 'direct', hosts_tasks, 5.0,
                             processes=HOSTS, threads=HOST_THREADS, hosts=True)
        results['hosts']['direct'] = {'hosts': HOSTS, 'threads': HOST_THREADS, **run}
        log(f'bench: 8 hosts direct: {run}')
    else:
        results['hosts']['direct'] = {
            'not_run': f'the server had {free} of its {max_connections} connections free; 8 x 8 direct'
            f' workers need {DIRECT_HOSTS_CONNECTIONS}, and the others on it a margin'
        }
    results['targets'] = targets(results)
    for target in results['targets']:
        log(f'bench: {target["met"]}: {target["target"]}: {target["detail"]}')
    results['machine']['load_average_at_end'] = os.getloadavg()
    results['seconds'] = time.time() - started
    write(results, args.out or default_path('topology', 'postgresql', args.quick))
    lost = any(mode['lost'] or mode['duplicates'] for delay in results['throughput'].values()
               for mode in delay.values()) or results['hosts']['pooled, direct listen']['lost']
    return 1 if lost else 0
