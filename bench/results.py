"""Where benchmark results go, and what every results file records.

Published results (the files the documentation's performance page reads
its figures from when it is built) are committed in bench/results/. Smoke and scratch runs, and the benchmarks' SQLite
databases, go to bench/results/scratch/, which git ignores, so a run never
dirties the tree by accident. Every results file starts with the same
header: when it started, the git commit it measured, its options and the
machine.
"""

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / 'results'
SCRATCH = RESULTS / 'scratch'
CHECKOUT_TAG = hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]


def log(message):
    print(message, file=sys.stderr, flush=True)


def header(options):
    """The start of a results file; `options` are the run's arguments."""
    return {
        'started': dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds'),
        'git': git_commit(),
        'options': dict(options),
        'machine': machine(),
    }


def git_commit():
    """The checkout's commit, and whether files git tracks had changes."""
    def git(*args):
        return subprocess.run(
            ['git', *args], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()

    commit = git('rev-parse', 'HEAD')
    if not commit:
        return None
    return {'commit': commit, 'dirty': bool(git('status', '--porcelain', '--untracked-files=no'))}


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


def default_path(kind, label, scratch):
    """bench/results/<kind>-<date>-<label>.json, or the same in scratch/;
    a -2, -3... suffix keeps an earlier run's file."""
    folder = SCRATCH if scratch else RESULTS
    stem = f'{kind}-{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}-{label}'
    path, number = folder / f'{stem}.json', 1
    while path.exists():
        number += 1
        path = folder / f'{stem}-{number}.json'
    return path


def write(results, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str) + '\n')
    log(f'bench: wrote {path}')
    return path


def scratch_database(vendor, name):
    """A benchmark database's name: a file in scratch/db/ for SQLite, else a
    name of this checkout's own, so two checkouts never share a database."""
    if vendor == 'sqlite':
        folder = SCRATCH / 'db'
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / f'{name}.sqlite3')
    return f'mqbench_{CHECKOUT_TAG}_{name}'
