"""Benchmark modelqueue side by side with modelqueue 2.2.1 and django-tasks-db.

    python bench/run.py                      # the full run: SQLite and PostgreSQL
    python bench/run.py --quick              # a smoke run, well under 2 minutes
    python bench/run.py --databases postgresql --impls modelqueue,modelqueue-2.2.1

Each implementation runs in its own virtual environment under bench/.peers/
(the peers are installed there from PyPI with pip; this checkout is used
from the Python running this script when it can import it, or installed
there too), so modelqueue 2.2.1 and this checkout never share a process.
Prints a table and writes it as JSON to bench/results/. Uses the standard
library only; the workload itself is bench/driver.py.
"""

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = BENCH / '.peers'
RESULTS = BENCH / 'results'
TAG = hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]

IMPLS = ['modelqueue', 'modelqueue-2.2.1', 'django-tasks-db']
LABELS = {
    'modelqueue': 'modelqueue (this)',
    'modelqueue-2.2.1': 'modelqueue 2.2.1',
    'django-tasks-db': 'django-tasks-db',
}
PACKAGES = {
    'modelqueue': ['-e', str(ROOT)],
    'modelqueue-2.2.1': ['modelqueue==2.2.1'],
    'django-tasks-db': ['django-tasks-db==0.13.0'],
}
DATABASES = ['sqlite', 'postgresql', 'mariadb']


def log(message):
    print(message, file=sys.stderr, flush=True)


# -- environments -----------------------------------------------------------


def python_can(python, code):
    return (
        subprocess.run([python, '-c', code], capture_output=True, cwd=BENCH).returncode == 0
    )


def driver_packages(databases):
    packages = []
    if 'postgresql' in databases:
        packages.append('psycopg[binary]>=3.1')
    if 'mariadb' in databases:
        packages.append('mysqlclient>=2.2.1')
    return packages


def our_python(databases):
    """This script's Python when it imports this checkout (and the drivers)."""
    code = (
        'import django, modelqueue, pathlib, sys;'
        f'sys.exit(pathlib.Path(modelqueue.__file__).parent != pathlib.Path({str(ROOT / "modelqueue")!r}))'
    )
    if 'postgresql' in databases:
        code += '; import psycopg'
    if 'mariadb' in databases:
        code += '; import MySQLdb'
    if python_can(sys.executable, code):
        return sys.executable
    return None


def ensure_venvs(impls, databases, django_version):
    """The Python of each implementation's virtual environment, made and
    filled once (the installs run side by side)."""
    pythons, installs = {}, []
    for impl in impls:
        venv = PEERS / impl
        python = venv / 'bin' / 'python'
        pythons[impl] = str(python)
        packages = list(PACKAGES[impl])
        if impl == 'django-tasks-db' and int(django_version.split('.')[0]) < 6:
            packages = ['django-tasks-db[compat]==0.13.0']  # the django-tasks backport
        packages += [f'Django=={django_version}', *driver_packages(databases)]
        stamp = venv / ('.installed-' + hashlib.sha1(' '.join(packages).encode()).hexdigest()[:12])
        if stamp.exists():
            continue
        log(f'bench: installing {" ".join(packages)} into {venv}')
        if not python.exists():
            subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
        pip = subprocess.Popen(
            [str(python), '-m', 'pip', 'install', '-q', *packages],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        installs.append((pip, packages, stamp))
    for pip, packages, stamp in installs:
        output = pip.communicate()[0]
        if pip.returncode != 0:
            raise RuntimeError(f'bench: pip could not install {packages}:\n{output}')
        stamp.touch()
    return pythons


def import_path():
    """A folder holding only the `bench` package, so a peer's `modelqueue`
    is never shadowed by this checkout's."""
    path = PEERS / 'path'
    path.mkdir(parents=True, exist_ok=True)
    link = path / 'bench'
    if not link.exists():
        link.symlink_to(BENCH, target_is_directory=True)
    return path


# -- running the driver -----------------------------------------------------


class Driver:
    def __init__(self, impl, database, python):
        self.impl, self.database, self.python = impl, database, python
        slug = re.sub(r'\W', '_', impl)
        if database == 'sqlite':
            folder = RESULTS / 'scratch' / 'db'
            folder.mkdir(parents=True, exist_ok=True)
            name = str(folder / f'{slug}.sqlite3')
        else:
            name = f'mqbench_{TAG}_{slug}'
        self.env = dict(
            os.environ,
            MQBENCH_IMPL=impl,
            MQBENCH_DB=database,
            MQBENCH_DB_NAME=name,
            DJANGO_SETTINGS_MODULE='bench.settings',
            PYTHONPATH=str(ROOT) if impl == 'modelqueue' else '',
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


# -- the plan ---------------------------------------------------------------


def options():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='a small smoke run')
    parser.add_argument(
        '--databases', default='sqlite,postgresql', help='of sqlite,postgresql,mariadb'
    )
    parser.add_argument('--impls', default=','.join(IMPLS), help='of ' + ','.join(IMPLS))
    parser.add_argument('--runs', type=int, help='runs per figure (median); 3, quick 1')
    parser.add_argument('--tasks', type=int, help='due rows per throughput run')
    parser.add_argument('--workers', help='worker processes, comma-separated')
    parser.add_argument('--delays', help='action times in ms, comma-separated')
    parser.add_argument('--table-sizes', help='rows for claim latency and tally')
    parser.add_argument('--pickup-samples', type=int)
    parser.add_argument('--skip', default='', help='of throughput,table,cost,pickup,dblimit')
    parser.add_argument('--out', help='JSON file (default bench/results/<time>.json)')
    args = parser.parse_args()
    quick = args.quick
    args.runs = args.runs or (1 if quick else 3)
    args.tasks = args.tasks or (100 if quick else 2000)
    args.workers = [int(w) for w in (args.workers or ('2' if quick else '1,4,8')).split(',')]
    args.delays = [float(m) for m in (args.delays or ('0' if quick else '0,5')).split(',')]
    args.table_sizes = [
        int(n)
        for n in (args.table_sizes or ('1000,5000' if quick else '10000,100000,1000000')).split(',')
    ]
    args.pickup_samples = args.pickup_samples or (2 if quick else 20)
    args.dblimit_seconds = 0.3 if quick else 1.0
    args.claim_samples = 20 if quick else 200
    args.databases = args.databases.split(',')
    args.impls = args.impls.split(',')
    for value, known, name in (
        (args.databases, DATABASES, 'database'),
        (args.impls, IMPLS, 'implementation'),
        (args.skip.split(',') if args.skip else [], ['throughput', 'table', 'cost', 'pickup', 'dblimit'], 'part to skip'),
    ):
        for item in value:
            if item not in known:
                parser.error(f'unknown {name} {item!r}: expected one of {", ".join(known)}')
    return args


def machine():
    model = ''
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                model = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    return {
        'cores': os.cpu_count(),
        'cpu': model or platform.processor(),
        'system': platform.platform(),
        'load_average_at_start': os.getloadavg(),
    }


def main():
    args = options()
    started = time.time()
    results = {
        'started': dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds'),
        'options': {k: v for k, v in vars(args).items()},
        'machine': machine(),
        'implementations': {},
        'throughput': [],
        'table': [],
        'pickup': [],
        'dblimit': [],
        'cost': [],
    }
    ours = our_python(args.databases)
    if ours is None:  # this checkout into its own environment, on Django 5.2 LTS
        ours = ensure_venvs(['modelqueue'], args.databases, '5.2.*')['modelqueue']
    django_version = subprocess.run(
        [ours, '-c', 'import django; print(django.get_version())'],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    pythons = ensure_venvs([i for i in args.impls if i != 'modelqueue'], args.databases, django_version)
    pythons['modelqueue'] = ours
    skip = set(args.skip.split(',')) if args.skip else set()
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
    results['machine']['load_average_at_end'] = os.getloadavg()
    results['seconds'] = time.time() - started
    results['targets'] = targets(results)
    text = report(results)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else RESULTS / (
        dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ') + '.json'
    )
    out.write_text(json.dumps(results, indent=1, default=str) + '\n')
    log(f'bench: wrote {out} in {results["seconds"]:.0f} s')
    # Figures are not judged here (the machine may be busy), but correctness is:
    # this checkout must run every task exactly once, without errors.
    wrong = [
        row for row in results['throughput']
        if row['impl'] == 'modelqueue'
        and (row['duplicates'] or row['never_finished'] or row['errors'])
    ]
    for row in wrong:
        log(f'bench: modelqueue ran tasks wrongly on {row["database"]}: {row}')
    return 1 if wrong else 0


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


# -- targets and report -----------------------------------------------------


def find(items, **match):
    for row in items:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def targets(results):
    """The issue's targets, each with the figures it was judged on."""
    checks = []
    tp, limits = results['throughput'], results['dblimit']

    def add(name, ok, detail):
        checks.append({'target': name, 'met': ok, 'detail': detail})

    ours = find(tp, database='postgresql', impl='modelqueue', workers=1, delay_ms=0.0)
    old = find(tp, database='postgresql', impl='modelqueue-2.2.1', workers=1, delay_ms=0.0)
    limit1 = find(limits, database='postgresql', connections=1)
    if ours and old:
        ratio = ours['tasks_per_second'] / old['tasks_per_second']
        add('PostgreSQL W=1 0 ms: >= 1.5x modelqueue 2.2.1', ratio >= 1.5, f'{ratio:.2f}x')
    if ours and limit1:
        share = ours['tasks_per_second'] / (limit1['commits_per_second'] / 2)
        add(
            'PostgreSQL W=1 0 ms: >= 30% of the single-connection limit for two commits per task',
            share >= 0.3,
            f'{100 * share:.0f}% of {limit1["commits_per_second"] / 2:.0f} tasks/s',
        )
    ours = find(tp, database='postgresql', impl='modelqueue', workers=8, delay_ms=5.0)
    limit8 = find(limits, database='postgresql', connections=8)
    if ours:
        ideal = 1600.0
        if limit8:
            ideal = min(ideal, limit8['commits_per_second'] / 2)
        share = ours['tasks_per_second'] / ideal
        peers = [
            find(tp, database='postgresql', impl=impl, workers=8, delay_ms=5.0)
            for impl in ('modelqueue-2.2.1', 'django-tasks-db')
        ]
        ahead = all(p is None or ours['tasks_per_second'] > p['tasks_per_second'] for p in peers)
        clean = not (ours['duplicates'] or ours['never_finished'])
        add(
            'PostgreSQL W=8 5 ms: >= 70% of ideal, no duplicates or losses, ahead of both peers',
            share >= 0.7 and clean and ahead,
            f'{100 * share:.0f}% of {ideal:.0f} tasks/s; duplicates {ours["duplicates"]},'
            f' lost {ours["never_finished"]}; ahead of peers: {ahead}',
        )
    for delay in (0.0, 5.0):
        ours = find(tp, database='sqlite', impl='modelqueue', workers=4, delay_ms=delay)
        old = find(tp, database='sqlite', impl='modelqueue-2.2.1', workers=4, delay_ms=delay)
        if ours:
            clean = not (ours['errors'] or ours['never_finished'] or ours['duplicates'])
            ahead = old is None or ours['tasks_per_second'] > old['tasks_per_second']
            add(
                f'SQLite W=4 {delay:g} ms: no errors, no losses, ahead of 2.2.1',
                clean and ahead,
                f'errors {ours["errors"]}, lost {ours["never_finished"]},'
                f' {ours["tasks_per_second"]:.0f} vs'
                f' {old["tasks_per_second"] if old else float("nan"):.0f} tasks/s',
            )
    for database in DATABASES:
        sizes = sorted(
            r['rows'] for r in results['table'] if r['database'] == database and r['impl'] == 'modelqueue'
        )
        if len(sizes) >= 2:
            small = find(results['table'], database=database, impl='modelqueue', rows=sizes[0])
            big = find(results['table'], database=database, impl='modelqueue', rows=sizes[-1])
            ratio = big['claim_p50_ms'] / small['claim_p50_ms']
            add(
                f'{database}: claim p50 at {sizes[-1]:,} rows within 2x of {sizes[0]:,}',
                ratio <= 2,
                f'{big["claim_p50_ms"]:.2f} vs {small["claim_p50_ms"]:.2f} ms ({ratio:.2f}x)',
            )
    pickup = find(results['pickup'], database='postgresql', impl='modelqueue')
    if pickup and pickup['p50_ms'] is not None:
        add(
            'PostgreSQL pickup: p50 <= 20 ms, p95 <= 50 ms (idle worker polling once a second)',
            pickup['p50_ms'] <= 20 and pickup['p95_ms'] <= 50,
            f'p50 {pickup["p50_ms"]:.0f} ms, p95 {pickup["p95_ms"]:.0f} ms ({pickup["mechanism"]})',
        )
    return checks


def report(results):
    lines = []
    m = results['machine']
    lines.append(
        f'Machine: {m["cores"]} cores, {m["cpu"]}; load average {m["load_average_at_start"][0]:.1f}'
        f' at start, {m["load_average_at_end"][0]:.1f} at end'
        + (
            f', {min(m["load_samples"]):.1f} to {max(m["load_samples"]):.1f} during throughput'
            if m.get('load_samples') else ''
        )
    )
    impls = list(results['implementations'])
    for impl, per_db in results['implementations'].items():
        info = next(iter(per_db.values()))
        lines.append(
            f'  {LABELS[impl]}: {info["version"]} (Python {info["python"]}, Django {info["django"]})'
        )
    databases = []
    for per_db in results['implementations'].values():
        for database, info in per_db.items():
            if database not in databases:
                databases.append(database)
    width = 20
    for database in databases:
        info = results['implementations'][impls[0]][database]
        lines.append('')
        lines.append(f'== {info["database"]} ==')
        for limit in results['dblimit']:
            if limit['database'] == database:
                lines.append(
                    f'Database limit, {limit["connections"]} connection(s): '
                    f'{limit["commits_per_second"]:,.0f} single-row UPDATE commits/s'
                    f' (= {limit["commits_per_second"] / 2:,.0f} tasks/s at two commits per task)'
                )
        rows = [r for r in results['throughput'] if r['database'] == database]
        if rows:
            lines.append('')
            lines.append(
                f'Throughput, tasks/s (median of {rows[0]["runs"]} runs of {rows[0]["tasks"]} tasks);'
                ' [duplicate executions / never finished / errors / empty claims while due]'
            )
            lines.append('W  action | ' + ' | '.join(LABELS[i].ljust(width) for i in impls))
            for workers, delay in dict.fromkeys((r['workers'], r['delay_ms']) for r in rows):
                cells = []
                for impl in impls:
                    r = find(rows, impl=impl, workers=workers, delay_ms=delay)
                    cells.append(
                        f'{r["tasks_per_second"]:6.0f} [{r["duplicates"]}/{r["never_finished"]}'
                        f'/{r["errors"]}/{r["empty_while_due"]}]'.ljust(width)
                        if r else '-'.ljust(width)
                    )
                lines.append(f'{workers:<2} {delay:4g} ms | ' + ' | '.join(cells))
        rows = [r for r in results['table'] if r['database'] == database]
        if rows:
            lines.append('')
            lines.append('Claim latency p50 / p99 ms (most rows finished), and state counts (tally) ms')
            lines.append('rows      | ' + ' | '.join(LABELS[i].ljust(width) for i in impls))
            for size in dict.fromkeys(r['rows'] for r in rows):
                cells = []
                for impl in impls:
                    r = find(rows, impl=impl, rows=size)
                    cells.append(
                        f'{r["claim_p50_ms"]:.2f} / {r["claim_p99_ms"]:.2f}'.ljust(width) if r else '-'.ljust(width)
                    )
                lines.append(f'{size:<9,} | ' + ' | '.join(cells))
            for size in dict.fromkeys(r['rows'] for r in rows):
                cells = []
                for impl in impls:
                    r = find(rows, impl=impl, rows=size)
                    value = r and r.get('tally_ms')
                    text = f'{value:.1f}' if value is not None else '-'
                    if r and r.get('dashboard_ms') is not None:
                        text += f' (dashboard {r["dashboard_ms"]:.1f})'
                    cells.append(text.ljust(width))
                lines.append(f'tally {size:<9,} | ' + ' | '.join(cells))
        rows = [r for r in results['cost'] if r['database'] == database]
        if rows:
            lines.append('')
            lines.append('Cost per task, one worker: SQL statements sent / transactions (PostgreSQL counts) / CPU ms of the worker')
            cells = []
            for impl in impls:
                r = find(rows, impl=impl)
                commits = '-' if not r or r['commits_per_task'] is None else f'{r["commits_per_task"]:.1f}'
                cells.append(
                    f'{r["statements_per_task"]:.1f} / {commits} / {r["cpu_ms_per_task"]:.2f}'.ljust(width)
                    if r else '-'.ljust(width)
                )
            lines.append('          | ' + ' | '.join(cells))
        rows = [r for r in results['pickup'] if r['database'] == database]
        if rows:
            lines.append('')
            lines.append('Pickup latency p50 / p95 ms, one idle worker, commit to action start')
            cells = []
            for impl in impls:
                r = find(rows, impl=impl)
                cells.append(
                    f'{r["p50_ms"]:.0f} / {r["p95_ms"]:.0f} (n={r["samples"]})'.ljust(width)
                    if r and r['p50_ms'] is not None else '-'.ljust(width)
                )
            lines.append('          | ' + ' | '.join(cells))
            ours = find(rows, impl='modelqueue')
            if ours:
                lines.append(f'  modelqueue waits with: {ours["mechanism"]}')
    if results['targets']:
        lines.append('')
        lines.append('Targets')
        for check in results['targets']:
            mark = 'MET    ' if check['met'] else 'MISSED '
            lines.append(f'  {mark}{check["target"]}: {check["detail"]}')
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
