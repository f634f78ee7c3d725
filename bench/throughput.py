"""Throughput, pickup and claim latency: this checkout beside modelqueue 2.2.1
and django-tasks-db; and this checkout's worker command with threads beside
processes.

    python -m bench throughput                # the full run: SQLite and PostgreSQL
    python -m bench throughput --quick        # a smoke run, well under 2 minutes
    python -m bench throughput --databases postgresql --impls modelqueue,modelqueue-2.2.1

Each implementation runs in its own Python (bench/peers.py): this checkout
in the Python running the harness when it can import it, else in a virtual
environment of its own; the workload itself is bench/driver.py, run once
per measurement. The parts `threads` and `wakeups` run this checkout's
``modelqueue_worker`` as deployed: --threads 8 beside --concurrency 8 (5 ms
actions; tasks per second and the memory of the command's processes),
--threads 32 with 50 ms actions, and, on PostgreSQL, the wake-ups of 8 idle
threads when 1,000 rows come due in one commit. Prints a table (bench/throughput_report.py) and writes it
as JSON to bench/results/throughput-<date>-<databases>.json, or, with
--quick, to bench/results/scratch/ (--out picks the file). Exits 1 if this
checkout ran a task twice, lost one or raised an error. Standard library
only.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import time

from .peers import IMPLS, OURS, ensure_venvs, import_path, our_python
from .results import ROOT, default_path, header, log, scratch_database, write
from .throughput_report import report, targets

DATABASES = ['sqlite', 'postgresql', 'mariadb']
PARTS = ['throughput', 'table', 'cost', 'pickup', 'dblimit', 'threads', 'wakeups']
# The worker command's modes: (label, threads, concurrency, action ms, tasks; quick tasks).
WORKER_MODES = [
    ('--threads 8', 8, 1, 5.0, 2000, 100),
    ('--concurrency 8', 1, 8, 5.0, 2000, 100),
    ('--threads 32', 32, 1, 50.0, 3200, 320),
]


def listed(convert=str, known=None):
    """An argparse type: a comma-separated list, of `known` items if given."""

    def parse(text):
        items = [convert(item) for item in text.split(',') if item]
        for item in items:
            if known is not None and item not in known:
                raise argparse.ArgumentTypeError(
                    f'unknown {item!r}: expected some of {",".join(known)}'
                )
        return items

    return parse


def add_arguments(parser):
    parser.add_argument('--quick', action='store_true', help='a small smoke run, written to scratch')
    parser.add_argument(
        '--databases', type=listed(known=DATABASES), default='sqlite,postgresql',
        help='of ' + ','.join(DATABASES),
    )
    parser.add_argument('--impls', type=listed(known=IMPLS), default=','.join(IMPLS), help='of ' + ','.join(IMPLS))
    parser.add_argument('--runs', type=int, help='runs per figure (median); 3, quick 1')
    parser.add_argument('--tasks', type=int, help='due rows per throughput run; 2000, quick 100')
    parser.add_argument('--workers', type=listed(int), help='worker processes; 1,4,8, quick 2')
    parser.add_argument('--delays', type=listed(float), help='action times in ms; 0,5, quick 0')
    parser.add_argument(
        '--table-sizes',
        type=listed(int),
        help='rows for claim latency and tally; 10000,100000,1000000, quick 1000,5000',
    )
    parser.add_argument('--pickup-samples', type=int, help='20, quick 2')
    parser.add_argument('--skip', type=listed(known=PARTS), default='', help='of ' + ','.join(PARTS))
    parser.add_argument(
        '--out', help='JSON file (default bench/results/throughput-<date>-<databases>.json; quick: scratch/)'
    )
    parser.add_argument(
        '--batch', type=int,
        help='run the worker command with --batch N beside --batch 1 instead (python -m bench batches'
        ' --batches 1,N: tasks/s against the commit limit, CPU per task)',
    )


def plan(args):
    """Fill in the options --quick and the full run set differently."""
    quick = args.quick
    args.runs = args.runs or (1 if quick else 3)
    args.tasks = args.tasks or (100 if quick else 2000)
    args.workers = args.workers or ([2] if quick else [1, 4, 8])
    args.delays = args.delays or ([0.0] if quick else [0.0, 5.0])
    args.table_sizes = args.table_sizes or ([1000, 5000] if quick else [10000, 100000, 1000000])
    args.pickup_samples = args.pickup_samples or (2 if quick else 20)
    args.dblimit_seconds = 0.3 if quick else 1.0
    args.claim_samples = 20 if quick else 200


class Driver:
    def __init__(self, impl, database, python):
        self.impl, self.database, self.python = impl, database, python
        name = scratch_database(database, re.sub(r'\W', '_', impl))
        self.env = dict(
            os.environ,
            MQBENCH_IMPL=impl,
            MQBENCH_DB=database,
            MQBENCH_DB_NAME=name,
            DJANGO_SETTINGS_MODULE='bench.settings',
            PYTHONPATH=str(ROOT) if impl in OURS else '',
        )

    def __call__(self, command, *args, timeout=1800):
        completed = subprocess.run(
            [self.python, '-m', 'bench.driver', command, *map(str, args)],
            cwd=import_path(),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f'{self.impl} on {self.database}: driver {command} failed:\n'
                f'{completed.stderr[-3000:]}'
            )
        return json.loads(completed.stdout.strip().splitlines()[-1])


def main(args, kind='throughput', judge=targets):
    """Run the measurements `args` select; `kind` names the results file and
    `judge` returns the targets judged on them."""
    if getattr(args, 'batch', None):
        from . import batches  # noqa: PLC0415 (it imports this module)

        return batches.main(batches.options_from_throughput(args))
    plan(args)
    started = time.time()
    results = {
        **header(vars(args)),
        'implementations': {},
        'throughput': [],
        'table': [],
        'pickup': [],
        'dblimit': [],
        'cost': [],
        'worker_modes': [],
        'wakeups': [],
    }
    ours = our_python(args.databases)
    if ours is None:  # this checkout into its own environment, on Django 5.2 LTS
        ours = ensure_venvs(['modelqueue'], args.databases, '5.2.*')['modelqueue']
    django_version = subprocess.run(
        [ours, '-c', 'import django; print(django.get_version())'],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    pythons = ensure_venvs([i for i in args.impls if i not in OURS], args.databases, django_version)
    pythons.update(dict.fromkeys(OURS, ours))
    skip = set(args.skip)
    for database in args.databases:
        drivers = {impl: Driver(impl, database, pythons[impl]) for impl in args.impls}
        for impl, driver in drivers.items():
            info = driver('prepare')
            results['implementations'].setdefault(impl, {})[database] = info
            log(f'bench: {database}: {impl} {info["version"]} on {info["database"]}')
        plain = Driver('modelqueue', database, ours)
        limits = {connections: [] for connections in sorted({1, max(args.workers)})}

        def measure_limit():
            """The database's own limit, measured between throughput runs
            so that it sees the same machine load they do."""
            results['machine'].setdefault('load_samples', []).append(os.getloadavg()[0])
            if 'dblimit' in skip:
                return
            for connections, values in limits.items():
                figures = plain(
                    'dblimit', '--connections', connections, '--seconds', args.dblimit_seconds
                )
                values.append(figures['commits_per_second'])

        if 'throughput' not in skip:
            for workers in args.workers:
                for delay in args.delays:
                    runs = {impl: [] for impl in args.impls}
                    for _ in range(args.runs):  # interleaved, so load drifts hit all alike
                        measure_limit()
                        for impl, driver in drivers.items():
                            runs[impl].append(
                                driver('throughput', '--n', args.tasks, '--workers', workers, '--delay-ms', delay)
                            )
                    for impl in args.impls:
                        row = summarize_throughput(runs[impl])
                        row.update(database=database, impl=impl, workers=workers, delay_ms=delay)
                        results['throughput'].append(row)
                        log(
                            f'bench: {database}: {impl} W={workers} M={delay:g}ms: '
                            f'{row["tasks_per_second"]:.0f} tasks/s'
                        )
        else:
            for _ in range(args.runs):
                measure_limit()
        for connections, values in limits.items():
            if values:
                results['dblimit'].append(
                    {
                        'database': database,
                        'connections': connections,
                        'commits_per_second': statistics.median(values),
                        'measurements': values,
                    }
                )
                log(
                    f'bench: {database}: database limit, {connections} connections:'
                    f' {statistics.median(values):.0f} commits/s (median of {len(values)})'
                )
        if 'table' not in skip:
            for rows in args.table_sizes:
                for impl, driver in drivers.items():
                    figures = driver(
                        'table', '--rows', rows, '--samples', args.claim_samples,
                        '--rounds', args.runs, '--due', min(1000, rows // 2),
                    )
                    figures.update(database=database, impl=impl)
                    results['table'].append(figures)
                    log(
                        f'bench: {database}: {impl} {rows} rows: claim p50'
                        f' {figures["claim_p50_ms"]:.2f} ms'
                    )
        if 'cost' not in skip:
            for impl, driver in drivers.items():
                figures = driver('cost', '--n', 50 if args.quick else 500)
                figures.update(database=database, impl=impl)
                results['cost'].append(figures)
        if 'pickup' not in skip:
            for impl, driver in drivers.items():
                figures = driver(
                    'pickup', '--samples', args.pickup_samples, '--settle', 0.5 if args.quick else 2
                )
                figures.update(database=database, impl=impl)
                results['pickup'].append(figures)
                log(f'bench: {database}: {impl} pickup p50 {figures["p50_ms"]} ms')
        ours_run = 'modelqueue' in args.impls  # its queue table is made by its 'prepare'
        if 'threads' not in skip and ours_run:
            run_worker_modes(args, plain, database, results)
        if 'wakeups' not in skip and ours_run and database == 'postgresql':
            figures = plain('wakeups', '--rows', 100 if args.quick else 1000, '--threads', 8)
            figures.update(database=database)
            results['wakeups'].append(figures)
            log(
                f'bench: {database}: {figures["rows"]} rows in one commit, {figures["threads"]} idle threads:'
                f' {figures["woken_by_notification"]} woken by the notification'
            )
    results['machine']['load_average_at_end'] = os.getloadavg()
    results['seconds'] = time.time() - started
    results['targets'] = judge(results)
    print(report(results))
    write(results, args.out or default_path(kind, '-'.join(args.databases), args.quick))
    log(f'bench: {kind} run took {results["seconds"]:.0f} s')
    # Figures are not judged here (the machine may be busy), but correctness is:
    # this checkout must run every task exactly once, without errors.
    wrong = [
        row for row in results['throughput']
        if row['impl'] in OURS
        and (row['duplicates'] or row['never_finished'] or row['errors'])
    ] + [row for row in results['worker_modes'] if row['duplicates'] or row['never_finished']]
    for row in wrong:
        log(f'bench: {row["impl"]} ran tasks wrongly on {row["database"]}: {row}')
    return 1 if wrong else 0


def run_worker_modes(args, plain, database, results):
    """Each worker mode `--runs` times, interleaved; the median rate and memory."""
    runs = {mode[0]: [] for mode in WORKER_MODES}
    for _ in range(args.runs):
        for label, threads, concurrency, delay, tasks, quick_tasks in WORKER_MODES:
            runs[label].append(
                plain(
                    'worker-mode', '--n', quick_tasks if args.quick else tasks, '--threads', threads,
                    '--concurrency', concurrency, '--delay-ms', delay,
                )
            )
    for label, threads, concurrency, delay, _, _ in WORKER_MODES:
        measured = runs[label]
        row = {
            'database': database,
            'mode': label,
            'threads': threads,
            'concurrency': concurrency,
            'delay_ms': delay,
            'runs': len(measured),
            'tasks': measured[0]['tasks'],
            'tasks_per_second': statistics.median(r['tasks_per_second'] for r in measured),
            'rates': [r['tasks_per_second'] for r in measured],
            'peak_rss_mb': statistics.median(r['peak_rss_mb'] for r in measured),
            'peak_pss_mb': statistics.median(r['peak_pss_mb'] for r in measured),
            'processes': max(r['peak_processes'] for r in measured),
            'duplicates': sum(r['duplicates'] for r in measured),
            'never_finished': sum(r['never_finished'] for r in measured),
        }
        results['worker_modes'].append(row)
        log(
            f'bench: {database}: modelqueue_worker {label}, {delay:g} ms actions:'
            f' {row["tasks_per_second"]:.0f} tasks/s, {row["peak_rss_mb"]:.0f} MB RSS'
        )


def summarize_throughput(runs):
    """Median rate over runs; correctness counts summed over every run."""
    rates = [r['tasks_per_second'] or 0 for r in runs]
    return {
        'runs': len(runs),
        'tasks': runs[0]['tasks'],
        'tasks_per_second': statistics.median(rates),
        'rates': rates,
        'executions_per_task': max(r['executions_per_task'] or 0 for r in runs),
        'duplicates': sum(r['duplicates'] for r in runs),
        'never_finished': sum(r['never_finished'] for r in runs),
        'errors': sum(r['errors'] for r in runs),
        'error_kinds': sorted({k for r in runs for k in r['error_kinds']}),
        'empty_while_due': sum(r['empty_while_due'] for r in runs),
    }
