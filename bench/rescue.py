"""A SIGKILLed worker's rows run again within 20 s, exactly once (issue 24's target).

    python -m bench rescue sqlite
    python -m bench rescue postgresql [--rounds 5] [--threads 4] [--heartbeat 5]
    python -m bench rescue mariadb --rounds 1      # a smoke run, written to scratch

On a database of its own (tests.settings, the test app's Task queue), each
round starts a worker with --threads rows in hand (an action that would run
for ten minutes) and a second worker, both with heartbeats every
--heartbeat seconds, then SIGKILLs the first once its heartbeat lists its
rows, at a random moment within one beat after the rescuer started, and
times how long until every one of its rows has run again and
finished. The rows' timeout is an hour: only a rescue gives them back in
time. The bound is four beats after the killed worker's last one: three
missed, then the rescuer's next beat; where the rescuer's beats fall
against the killed worker's is left to the processes' start, so a round
need not meet that worst case. What must hold: every round within 20 s, every row run exactly once
more (two executions: the killed worker's and one), and one
``modelqueue.worker_lost`` record per row. Writes
bench/results/rescue-<date>-<vendor>.json, or scratch/ for fewer than 5
rounds.
"""

import os
import random
import signal
import statistics
import subprocess
import sys
import time

from .dashboard import create_postgresql_database
from .results import ROOT, default_path, header, log, scratch_database, write

ROUNDS = 5
THREADS = 4
HEARTBEAT = 5.0
TARGET_SECONDS = 20.0
WAIT_SECONDS = 120  # for a worker to start or list its rows


def add_arguments(parser):
    parser.add_argument('vendor', choices=['sqlite', 'postgresql', 'mariadb'])
    parser.add_argument('--rounds', type=int, default=ROUNDS, help=f'kills measured ({ROUNDS})')
    parser.add_argument('--threads', type=int, default=THREADS, help=f'rows the killed worker holds ({THREADS})')
    parser.add_argument('--heartbeat', type=float, default=HEARTBEAT, help=f'seconds between beats ({HEARTBEAT:g})')
    parser.add_argument('--seed', type=int, default=1, help='of the kills\' moments (1)')
    parser.add_argument('--out', help='JSON file (default bench/results/rescue-<date>-<vendor>.json)')


def configure(vendor):
    """Django on a database of this benchmark's own, migrated; return its name."""
    os.environ['MODELQUEUE_DB'] = vendor
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings')
    from django.conf import settings  # noqa: PLC0415

    database = settings.DATABASES['default']
    database['NAME'] = scratch_database(vendor, 'rescue')
    if vendor == 'postgresql':
        create_postgresql_database(database)
    elif vendor == 'mariadb':
        import MySQLdb  # noqa: PLC0415

        connection = MySQLdb.connect(
            host=database['HOST'], port=int(database['PORT']), user=database['USER'], passwd=database['PASSWORD']
        )
        connection.cursor().execute(f'CREATE DATABASE IF NOT EXISTS {database["NAME"]} CHARACTER SET utf8mb4')
        connection.close()
    import django  # noqa: PLC0415

    django.setup()
    from django.core.management import call_command  # noqa: PLC0415

    call_command('migrate', run_syncdb=True, verbosity=0)
    return database['NAME']


def wait_until(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f'bench rescue: timed out after {seconds}s waiting for {what}')
        time.sleep(0.05)


def start_worker(vendor, name, heartbeat, action_seconds, *options):
    env = {
        **os.environ,
        'DJANGO_SETTINGS_MODULE': 'tests.settings',
        'MODELQUEUE_DB': vendor,
        'MODELQUEUE_DB_NAME': str(name),
        'MODELQUEUE_HEARTBEAT_SECONDS': str(heartbeat),
        'MODELQUEUE_TEST_ACTION_SECONDS': str(action_seconds),
        'PYTHONPATH': str(ROOT),
    }
    return subprocess.Popen(
        [sys.executable, '-m', 'django', 'modelqueue_worker', 'testapp.Task', 'status',
         'tests.testapp.actions.record_slowly', '--sleep=0.5', *options],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def measure(vendor, name, threads, heartbeat):
    """One kill: seconds until the killed worker's rows finished, and their counts."""
    from modelqueue import State, Status  # noqa: PLC0415
    from modelqueue.models import FailureRecord, WorkerHeartbeat  # noqa: PLC0415
    from tests.testapp.models import Execution, Task  # noqa: PLC0415

    for model in (Execution, Task, FailureRecord, WorkerHeartbeat):
        model.objects.all().delete()
    tasks = [Task.objects.create(data=f'held {n}') for n in range(threads)]
    keys = {str(task.pk) for task in tasks}
    lost = start_worker(vendor, name, heartbeat, 600, f'--threads={threads}')
    rescuer = None
    try:
        wait_until(
            lambda: any(
                {pk for pk, _ in beat.held} >= keys for beat in WorkerHeartbeat.objects.filter(pid=lost.pid)
            ),
            WAIT_SECONDS, 'the worker to list its rows',
        )
        rescuer = start_worker(vendor, name, heartbeat, 0)
        wait_until(lambda: WorkerHeartbeat.objects.filter(pid=rescuer.pid).exists(), WAIT_SECONDS, 'the rescuer')
        # Not a wait for anything: where in the rescuer's beat the kill lands.
        time.sleep(random.uniform(0, heartbeat))
        lost.send_signal(signal.SIGKILL)
        lost.wait(timeout=30)
        killed = time.monotonic()
        wait_until(
            lambda: {Status(value).state for value in Task.objects.values_list('status', flat=True)}
            == {State.finished},
            10 * heartbeat + 30, 'the rows to run again',
        )
        seconds = time.monotonic() - killed
    finally:
        for process in (lost, rescuer):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=30)
    executions = sorted(Execution.objects.filter(task__in=tasks).values_list('task_id', flat=True))
    per_row = [executions.count(task.pk) for task in tasks]
    records = FailureRecord.objects.filter(exception=FailureRecord.WORKER_LOST).count()
    return {'seconds': round(seconds, 2), 'executions_per_row': per_row, 'worker_lost_records': records}


def main(args):
    results = header(vars(args))
    random.seed(args.seed)
    name = configure(args.vendor)
    rounds = []
    for number in range(1, args.rounds + 1):
        round_ = measure(args.vendor, name, args.threads, args.heartbeat)
        log(f'bench rescue {args.vendor}: round {number}: {round_}')
        rounds.append(round_)
    seconds = [round_['seconds'] for round_ in rounds]
    exactly_once = all(
        round_['executions_per_row'] == [2] * args.threads and round_['worker_lost_records'] == args.threads
        for round_ in rounds
    )
    results['rescue'] = {
        'vendor': args.vendor,
        'rounds': rounds,
        'median_seconds': statistics.median(seconds),
        'max_seconds': max(seconds),
        'target': f'every round within {TARGET_SECONDS:g} s with {args.heartbeat:g} s heartbeats,'
        ' each row run once more',
        'met': max(seconds) <= TARGET_SECONDS and exactly_once,
    }
    log(f'bench rescue {args.vendor}: median {statistics.median(seconds):.1f} s, max {max(seconds):.1f} s,'
        f' exactly once: {exactly_once}; target met: {results["rescue"]["met"]}')
    write(results, args.out or default_path('rescue', args.vendor, scratch=args.rounds < ROUNDS))
    return 0 if results['rescue']['met'] else 1
