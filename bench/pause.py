"""The cost of reading pauses in the claim: run() with the pause check beside without it.

    python -m bench pause sqlite
    python -m bench pause postgresql [--tasks 1000] [--rounds 15]
    python -m bench pause sqlite --tasks 300 --rounds 2      # a smoke run

As ``python -m bench failures``: this Python imports this checkout (and
psycopg for PostgreSQL), on a database of its own; one process calls
``modelqueue.run()`` until the queue is empty, as a worker does, over
--tasks due rows; that is one measurement. The claim reads pauses with a
``NOT EXISTS`` in its own statement (:mod:`modelqueue.pauses`); ``off``
compiles the claim without it (as where the modelqueue app is not
installed). Two workloads: ``no pauses`` (the table empty) and ``50 other
queues paused`` (rows in the pause table, none of them this queue's). What
must hold: a queue that is not paused, or was resumed, drains as fast as
without the check (target: on within 3% of off).

On and off alternate round by round in the same process, each figure the
median of --rounds measurements, with the median of the rounds' own on/off
changes beside it ("paired"). Writes bench/results/pause-<date>-<vendor>.json,
or scratch/ for a run of fewer than 1000 tasks or 15 rounds.
"""

import os
import statistics
import time

from .failures import configure as configure_failures
from .results import default_path, header, log, write

TASKS = 1000
ROUNDS = 15
TARGET_PERCENT = 3.0
WORKLOADS = {'no pauses': 0, '50 other queues paused': 50}


def add_arguments(parser):
    parser.add_argument('vendor', choices=['sqlite', 'postgresql'])
    parser.add_argument('--tasks', type=int, default=TASKS, help=f'due rows per measurement ({TASKS})')
    parser.add_argument('--rounds', type=int, default=ROUNDS, help=f'measurements per mode (median; {ROUNDS})')
    parser.add_argument('--out', help='JSON file (default bench/results/pause-<date>-<vendor>.json)')


def other_pauses(count):
    """`count` pauses of queues other than Task.status (queue names of a Tasks backend)."""
    from django.contrib.contenttypes.models import ContentType  # noqa: PLC0415

    from modelqueue import now  # noqa: PLC0415
    from modelqueue.models import QueuePause  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    QueuePause.objects.all().delete()
    content_type = ContentType.objects.get_for_model(Task)
    QueuePause.objects.bulk_create(
        QueuePause(content_type=content_type, field='status', queue_name=f'other/{n}', paused_at=now())
        for n in range(count)
    )


def measure(tasks, reads):
    """Tasks per second of run() over `tasks` fresh due rows."""
    from django.db import connection  # noqa: PLC0415

    import modelqueue  # noqa: PLC0415
    from modelqueue import pauses  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    Task.objects.all().delete()
    due = modelqueue.Status.waiting(modelqueue.now())
    Task.objects.bulk_create(Task(data=f'task {number}', status=due) for number in range(tasks))
    pauses._readable[connection.alias] = reads  # the claim statement is kept per this flag
    queryset = Task.objects.all()
    processed = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    while modelqueue.run(queryset, 'status', lambda task: None) is not None:
        processed += 1
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    assert processed == tasks, (processed, tasks)
    return {
        'tasks_per_second': tasks / seconds,
        'seconds': seconds,
        'cpu_tasks_per_second': tasks / cpu_seconds,
        'cpu_seconds': cpu_seconds,
    }


def main(args):
    started = time.time()
    results = header(vars(args))
    configure_failures(args.vendor)
    from django.db import connection  # noqa: PLC0415

    from .dashboard import database_version  # noqa: PLC0415

    results.update(
        database={'vendor': connection.vendor, 'version': database_version(connection)},
        workloads={},
    )
    measure(min(args.tasks, 200), True)  # warm up: caches, statements, the file
    measure(min(args.tasks, 200), False)
    for name, count in WORKLOADS.items():
        other_pauses(count)
        runs = {'on': [], 'off': []}
        for number in range(args.rounds):
            order = ('on', 'off') if number % 2 == 0 else ('off', 'on')
            for mode in order:
                runs[mode].append(measure(args.tasks, mode == 'on'))
        row = {'other_pauses': count, 'tasks': args.tasks, 'rounds': args.rounds}
        for clock, key in (('', 'tasks_per_second'), ('cpu_', 'cpu_tasks_per_second')):
            on = statistics.median(run[key] for run in runs['on'])
            off = statistics.median(run[key] for run in runs['off'])
            paired = statistics.median(
                100 * (a[key] - b[key]) / b[key] for a, b in zip(runs['on'], runs['off'])
            )
            row.update({
                f'{clock}on_tasks_per_second': on,
                f'{clock}off_tasks_per_second': off,
                f'{clock}change_percent': 100 * (on - off) / off,
                f'{clock}paired_change_percent': paired,
            })
        row['runs'] = runs
        results['workloads'][name] = row
        log(
            f'bench: {args.vendor}: {name}: pause check on {row["on_tasks_per_second"]:.0f} tasks/s,'
            f' off {row["off_tasks_per_second"]:.0f} tasks/s ({row["change_percent"]:+.1f}%;'
            f' paired by round {row["paired_change_percent"]:+.1f}%; per CPU second'
            f' {row["cpu_paired_change_percent"]:+.1f}%)'
        )
    worst = min(row['paired_change_percent'] for row in results['workloads'].values())
    results['target'] = {
        'target': f'the pause check on within {TARGET_PERCENT:g}% of off (paired by round)',
        'met': worst >= -TARGET_PERCENT,
        'detail': f'{worst:+.1f}%',
    }
    print(f'{"workload":24} {"on":>10} {"off":>10} {"change":>8} {"paired":>8} {"cpu paired":>10}')
    for name, row in results['workloads'].items():
        print(
            f'{name:24} {row["on_tasks_per_second"]:10.0f} {row["off_tasks_per_second"]:10.0f}'
            f' {row["change_percent"]:+7.1f}% {row["paired_change_percent"]:+7.1f}%'
            f' {row["cpu_paired_change_percent"]:+9.1f}%'
        )
    print(f'target: {results["target"]["target"]}: {"met" if results["target"]["met"] else "NOT met"}'
          f' ({results["target"]["detail"]})')
    results['machine']['load_average_at_end'] = os.getloadavg()
    results['seconds'] = time.time() - started
    scratch = args.tasks < TASKS or args.rounds < ROUNDS
    write(results, args.out or default_path('pause', args.vendor, scratch))
    return 0
