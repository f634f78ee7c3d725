"""The cost of failure records: run() with recording on beside recording off.

    python -m bench failures sqlite
    python -m bench failures postgresql [--tasks 1000] [--rounds 15]
    python -m bench failures sqlite --tasks 300 --rounds 2      # a smoke run

Runs in this Python, which must import this checkout, Django and, for
PostgreSQL, psycopg (.venv/py3.11 from ./runtests does), on a database of its
own (bench/results/scratch/db/ for SQLite, a database named after this
checkout for PostgreSQL). One process calls ``modelqueue.run()`` until the
queue is empty, as a worker does, over --tasks due rows; that is one
measurement. Two workloads:

- ``no failures``: every action returns; recording must cost nothing
  (target: recording on within 3% of off);
- ``10% failing``: every tenth action raises ``ValueError`` (retry=0, so it
  is canceled after that one attempt, and 10% of attempts are recorded).

Recording on (``MODELQUEUE_FAILURE_RECORDS = True``, the default) and off
alternate round by round in the same process (the first mode of a round
alternates too), so load drifts hit both alike; each figure is the median of
--rounds measurements, in tasks per second of wall-clock time and per second
of this process's CPU time (which, on SQLite, includes the database's work
and is less moved by other processes on the machine), with the median of the
rounds' own on/off changes beside it ("paired"). Writes bench/results/failures-<date>-<vendor>.json,
or scratch/ for a run of fewer than 1000 tasks or 15 rounds.
"""

import os
import statistics
import time

from .dashboard import create_postgresql_database
from .results import default_path, header, log, scratch_database, write

TASKS = 1000
ROUNDS = 15
TARGET_PERCENT = 3.0
WORKLOADS = {'no failures': 0, '10% failing': 10}


def add_arguments(parser):
    parser.add_argument('vendor', choices=['sqlite', 'postgresql'])
    parser.add_argument('--tasks', type=int, default=TASKS, help=f'due rows per measurement ({TASKS})')
    parser.add_argument('--rounds', type=int, default=ROUNDS, help=f'measurements per mode (median; {ROUNDS})')
    parser.add_argument('--out', help='JSON file (default bench/results/failures-<date>-<vendor>.json)')


def configure(vendor):
    os.environ['MODELQUEUE_DB'] = vendor
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings')
    from django.conf import settings  # noqa: PLC0415

    database = settings.DATABASES['default']
    database['NAME'] = scratch_database(vendor, 'failures')
    if vendor == 'postgresql':
        create_postgresql_database(database)
    import django  # noqa: PLC0415

    django.setup()
    from django.core.management import call_command  # noqa: PLC0415

    call_command('migrate', run_syncdb=True, verbosity=0)


def action_failing_every(nth):
    def action(task):
        if nth and task.pk % nth == 0:
            raise ValueError(f'task {task.pk} failed on purpose')

    return action


def measure(tasks, every, recording):
    """Tasks per second of run() over `tasks` fresh due rows."""
    from django.conf import settings  # noqa: PLC0415

    import modelqueue  # noqa: PLC0415
    from modelqueue.models import FailureRecord  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    Task.objects.all().delete()
    FailureRecord.objects.all().delete()
    due = modelqueue.Status.waiting(modelqueue.now())
    Task.objects.bulk_create(Task(data=f'task {number}', status=due) for number in range(tasks))
    settings.MODELQUEUE_FAILURE_RECORDS = recording
    queryset, action = Task.objects.all(), action_failing_every(every)
    processed = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    while True:
        try:
            if modelqueue.run(queryset, 'status', action, retry=0) is None:
                break
        except ValueError:
            pass
        processed += 1
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    assert processed == tasks, (processed, tasks)
    records = FailureRecord.objects.count()
    expected = tasks // every if every and recording else 0
    assert records == expected, (records, expected)
    return {
        'tasks_per_second': tasks / seconds,
        'seconds': seconds,
        'cpu_tasks_per_second': tasks / cpu_seconds,
        'cpu_seconds': cpu_seconds,
        'records': records,
    }


def main(args):
    started = time.time()
    results = header(vars(args))
    configure(args.vendor)
    from django.db import connection  # noqa: PLC0415

    from .dashboard import database_version  # noqa: PLC0415

    results.update(
        database={'vendor': connection.vendor, 'version': database_version(connection)},
        workloads={},
    )
    measure(min(args.tasks, 200), 0, True)  # warm up: caches, statements, the file
    for name, every in WORKLOADS.items():
        runs = {'on': [], 'off': []}
        for number in range(args.rounds):
            order = ('on', 'off') if number % 2 == 0 else ('off', 'on')
            for mode in order:
                runs[mode].append(measure(args.tasks, every, mode == 'on'))
        row = {'failing_every': every, 'tasks': args.tasks, 'rounds': args.rounds}
        for clock, key in (('', 'tasks_per_second'), ('cpu_', 'cpu_tasks_per_second')):
            on = statistics.median(run[key] for run in runs['on'])
            off = statistics.median(run[key] for run in runs['off'])
            # Each round's on beside its own off: what load drifts between rounds cannot move.
            paired = statistics.median(
                100 * (a[key] - b[key]) / b[key] for a, b in zip(runs['on'], runs['off'])
            )
            row.update({
                f'{clock}on_tasks_per_second': on,
                f'{clock}off_tasks_per_second': off,
                f'{clock}change_percent': 100 * (on - off) / off,
                f'{clock}paired_change_percent': paired,
            })
        row.update(records_per_measurement=runs['on'][0]['records'], runs=runs)
        results['workloads'][name] = row
        on, off = row['on_tasks_per_second'], row['off_tasks_per_second']
        change, paired = row['change_percent'], row['paired_change_percent']
        log(
            f'bench: {args.vendor}: {name}: recording on {on:.0f} tasks/s, off {off:.0f} tasks/s'
            f' ({change:+.1f}%; paired by round {paired:+.1f}%; per CPU second'
            f' {row["cpu_paired_change_percent"]:+.1f}%)'
        )
    quiet = results['workloads']['no failures']['change_percent']
    results['target'] = {
        'target': f'no failures: recording on within {TARGET_PERCENT:g}% of off',
        'met': quiet >= -TARGET_PERCENT,
        'detail': f'{quiet:+.1f}%',
    }
    print(f'{"workload":14} {"on":>10} {"off":>10} {"change":>8} {"paired":>8} {"cpu paired":>10}')
    for name, row in results['workloads'].items():
        print(
            f'{name:14} {row["on_tasks_per_second"]:10.0f} {row["off_tasks_per_second"]:10.0f}'
            f' {row["change_percent"]:+7.1f}% {row["paired_change_percent"]:+7.1f}%'
            f' {row["cpu_paired_change_percent"]:+9.1f}%'
        )
    print(f'target: {results["target"]["target"]}: {"met" if results["target"]["met"] else "NOT met"}'
          f' ({results["target"]["detail"]})')
    results['machine']['load_average_at_end'] = os.getloadavg()
    results['seconds'] = time.time() - started
    scratch = args.tasks < TASKS or args.rounds < ROUNDS
    write(results, args.out or default_path('failures', args.vendor, scratch))
    return 0
