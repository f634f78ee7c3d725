"""Batches: ``modelqueue_worker --batch N`` beside one task at a time, and the database's commit limit.

    python -m bench batches                          # PostgreSQL, batches of 1 and 100, 3 runs
    python -m bench batches --databases sqlite,postgresql,mariadb
    python -m bench batches --quick                  # a smoke run, written to scratch
    python -m bench throughput --batch 100           # the same as --batches 1,100

For each database, interleaved over --runs (bench/driver.py):

- the model queue: --tasks no-op due rows drained by ``modelqueue_worker
  --burst --concurrency 2 --batch B``, for each B of --batches; tasks per
  second and worker CPU per task, both with the command's start-up (the
  same command on an empty queue) subtracted;
- Django's Tasks framework: the same with ``--tasks`` (--tasks-framework
  rows), and django-tasks-db's ``db_worker --batch`` (2 processes) beside;
- the database's limit: single-row commits per second on 1 and 2 plain
  connections, measured between the runs;
- pickup: an idle worker with ``--batch 1`` and with the largest B, a row
  made due at a time, from its commit to its action's start;
- no row held hostage: a --long-seconds task first, then 99 quick ones in
  one commit, drained by ``--concurrency 2 --batch 100 --batch-wait W``:
  the longest wait of a quick row.

Writes bench/results/batches-<date>-<databases>.json (--quick: scratch/)
with the issue's targets judged; exits 1 if a task ran twice or never.
"""

import statistics
import subprocess
import time

from .peers import ensure_venvs, our_python
from .results import default_path, header, log, write
from .throughput import DATABASES, Driver, listed
from .throughput_report import find


def add_arguments(parser):
    parser.add_argument('--quick', action='store_true', help='a small smoke run, written to scratch')
    parser.add_argument('--databases', type=listed(known=DATABASES), default='postgresql',
                        help='of ' + ','.join(DATABASES))
    parser.add_argument('--batches', type=listed(int), default='1,100', help='batch sizes (1,100)')
    parser.add_argument('--runs', type=int, help='runs per figure (median); 3, quick 1')
    parser.add_argument('--tasks', type=int, help='rows per model-queue run; 20000, quick 2000')
    parser.add_argument('--tasks-framework', type=int, help='tasks per Tasks run; 10000, quick 1000')
    parser.add_argument('--peer-tasks', type=int, help='tasks per django-tasks-db run; 2000, quick 300')
    parser.add_argument('--long-seconds', type=float, help='the long task of the hostage run; 30, quick 5')
    parser.add_argument('--batch-wait', type=float, default=1.0, help='--batch-wait of the hostage run (1)')
    parser.add_argument('--skip-peer', action='store_true', help='no django-tasks-db run')
    parser.add_argument('--out', help='JSON file (default bench/results/batches-<date>-<databases>.json)')


def options_from_throughput(args):
    """``python -m bench throughput --batch N``'s options as this benchmark's."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = parser.parse_args([])
    options.quick, options.databases, options.runs, options.out = args.quick, args.databases, args.runs, args.out
    options.batches = [1, args.batch]
    return options


def main(args):
    quick = args.quick
    runs = args.runs or (1 if quick else 3)
    rows = args.tasks or (2000 if quick else 20000)
    task_rows = args.tasks_framework or (1000 if quick else 10000)
    peer_rows = args.peer_tasks or (300 if quick else 2000)
    long_seconds = args.long_seconds or (5 if quick else 30)
    started = time.time()
    results = {**header(vars(args)), 'burst': [], 'dblimit': [], 'peer': [], 'pickup': [], 'hostage': []}
    ours = our_python(args.databases)
    if ours is None:
        raise SystemExit('bench batches: run it with the Python of ./runtests (.venv/py3.11/bin/python)')
    django_version = subprocess.run(
        [ours, '-c', 'import django; print(django.get_version())'], capture_output=True, text=True, check=True
    ).stdout.strip()
    peer_python = None if args.skip_peer else ensure_venvs(['django-tasks-db'], args.databases, django_version)[
        'django-tasks-db'
    ]
    for database in args.databases:
        model = Driver('modelqueue', database, ours)
        tasks = Driver('modelqueue-tasks', database, ours)
        peer = None if peer_python is None else Driver('django-tasks-db', database, peer_python)
        for driver in (model, tasks, peer):
            if driver is not None:
                log(f'bench: {database}: {driver.impl} {driver("prepare")["version"]}')
        measured = {}
        limits = {1: [], 2: []}
        for _ in range(runs):
            for connections, values in limits.items():
                values.append(model('dblimit', '--connections', connections, '--seconds', 1)['commits_per_second'])
            for batch in args.batches:
                for kind, driver, count in (('model', model, rows), ('tasks', tasks, task_rows)):
                    figures = driver('burst', '--n', count, '--', '--concurrency=2', f'--batch={batch}')
                    measured.setdefault((kind, batch), []).append(figures)
                    log(
                        f'bench: {database}: {kind} --batch {batch}: {figures["tasks_per_second"]:.0f} tasks/s,'
                        f' {figures["cpu_ms_per_task"]:.3f} ms CPU per task'
                    )
            if peer is not None:
                figures = peer('throughput', '--n', peer_rows, '--workers', 2)
                measured.setdefault(('django-tasks-db', None), []).append(figures)
                log(f'bench: {database}: django-tasks-db W=2: {figures["tasks_per_second"]:.0f} tasks/s')
        peer_runs = measured.pop(('django-tasks-db', None), [])
        if peer_runs:
            results['peer'].append(
                {
                    'database': database,
                    'impl': 'django-tasks-db',
                    'workers': 2,
                    'tasks': peer_rows,
                    'tasks_per_second': statistics.median(f['tasks_per_second'] for f in peer_runs),
                    'rates': [f['tasks_per_second'] for f in peer_runs],
                }
            )
        for (kind, batch), figures in measured.items():
            results['burst'].append(
                {
                    'database': database,
                    'kind': kind,
                    'batch': batch,
                    'concurrency': 2,
                    'tasks': figures[0]['tasks'],
                    'tasks_per_second': statistics.median(f['tasks_per_second'] for f in figures),
                    'cpu_ms_per_task': statistics.median(f['cpu_ms_per_task'] for f in figures),
                    'rates': [f['tasks_per_second'] for f in figures],
                    'startup_seconds': statistics.median(f['startup_seconds'] for f in figures),
                    'duplicates': sum(f['duplicates'] for f in figures),
                    'never_finished': sum(f['never_finished'] for f in figures),
                }
            )
        for connections, values in limits.items():
            results['dblimit'].append(
                {'database': database, 'connections': connections,
                 'commits_per_second': statistics.median(values), 'measurements': values}
            )
        for batch in sorted({1, max(args.batches)}):
            driver = Driver('modelqueue', database, ours)
            driver.env['MQBENCH_WORKER_OPTIONS'] = f'--batch={batch}'
            figures = driver('pickup', '--samples', 5 if quick else 20, '--settle', 2)
            results['pickup'].append({**figures, 'database': database, 'batch': batch})
            log(f'bench: {database}: pickup with --batch {batch}: p50 {figures["p50_ms"]} ms')
        figures = model(
            'hostage', '--n', 99, '--long-seconds', long_seconds, '--',
            '--concurrency=2', '--batch=100', f'--batch-wait={args.batch_wait:g}',
        )
        results['hostage'].append({**figures, 'database': database, 'batch_wait': args.batch_wait})
        log(
            f'bench: {database}: a {long_seconds:g}s task first in a batch of 100: the quick rows waited'
            f' {figures["max_wait_seconds"]:.2f}s at most (--batch-wait {args.batch_wait:g})'
        )
    results['seconds'] = time.time() - started
    results['targets'] = targets(results, max(args.batches))
    for target in results['targets']:
        log(f'bench: target {"MET" if target["met"] else "MISSED"}: {target["target"]}: {target["detail"]}')
    write(results, args.out or default_path('batches', '-'.join(args.databases), quick))
    wrong = [row for row in [*results['burst'], *results['hostage']] if row['duplicates'] or row['never_finished']]
    for row in wrong:
        log(f'bench: tasks ran wrongly: {row}')
    return 1 if wrong else 0


def targets(results, batch):
    """Issue 26's targets (PostgreSQL, 2 worker processes), with their figures."""
    checks = []

    def add(name, met, detail):
        checks.append({'target': name, 'met': met, 'detail': detail})

    burst, database = results['burst'], 'postgresql'
    batched = find(burst, database=database, kind='model', batch=batch)
    single = find(burst, database=database, kind='model', batch=1)
    peer = find(results['peer'], database=database)
    if batched and single:
        rate = batched['tasks_per_second']
        add(f'no-op tasks, 2 processes, --batch {batch}: >= 8,000 tasks/s', rate >= 8000, f'{rate:.0f} tasks/s')
        ratio = rate / single['tasks_per_second']
        add('>= 3.5x the worker without batches in the same run', ratio >= 3.5,
            f'{ratio:.1f}x ({single["tasks_per_second"]:.0f} tasks/s with --batch 1)')
        if peer:
            ratio = rate / peer['tasks_per_second']
            add('>= 40x django-tasks-db (2 processes)', ratio >= 40,
                f'{ratio:.0f}x ({peer["tasks_per_second"]:.0f} tasks/s)')
        add('<= 0.15 ms of worker CPU per task', batched['cpu_ms_per_task'] <= 0.15,
            f'{batched["cpu_ms_per_task"]:.3f} ms ({single["cpu_ms_per_task"]:.3f} ms with --batch 1)')
        add('0 duplicates, 0 lost', not (batched['duplicates'] or batched['never_finished']),
            f'{batched["duplicates"]} duplicates, {batched["never_finished"]} lost')
    tasks = find(burst, database=database, kind='tasks', batch=batch)
    if tasks:
        add(f'Tasks framework no-op tasks, --batch {batch}: >= 4,000 tasks/s', tasks['tasks_per_second'] >= 4000,
            f'{tasks["tasks_per_second"]:.0f} tasks/s')
    for pickup in results['pickup']:
        if pickup['database'] == database and pickup['p50_ms'] is not None:
            add(f'pickup p50 <= 5 ms with an idle worker, --batch {pickup["batch"]}', pickup['p50_ms'] <= 5,
                f'{pickup["p50_ms"]:.1f} ms')
    hostage = find(results['hostage'], database=database)
    if hostage:
        bound = hostage['batch_wait'] + 0.1  # the bound, the keeper's look and another worker's claim
        add(f'a {hostage["long_seconds"]:g}s task in a batch delays none of the others by more than'
            f' --batch-wait {hostage["batch_wait"]:g}s (and 0.1 s to give them back and claim them again)',
            hostage['rows_given_back'] > 0 and hostage['max_wait_seconds'] <= bound,
            f'{hostage["max_wait_seconds"]:.3f}s at most; {hostage["rows_given_back"]} rows given back')
    return checks
