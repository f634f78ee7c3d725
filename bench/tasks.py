"""Django's Tasks framework: ModelQueueBackend beside django-tasks-db.

    python -m bench tasks               # SQLite and PostgreSQL, 1 and 4 workers
    python -m bench tasks --quick       # a smoke run, written to scratch

The same no-op ``@task`` (bench/benchapp/tasks.py) is enqueued for both;
``modelqueue_worker --tasks --burst`` (this checkout) and django-tasks-db
0.13.0's ``db_worker --batch`` drain it (bench/driver.py). Then one idle
worker of each, as deployed, picks up tasks enqueued one at a time: the
pickup latency is from the enqueue's commit to the task's start. Writes
bench/results/tasks-<date>-<databases>.json (--quick: scratch/) with the
issue's targets judged. Run it with a Python that imports this checkout and
Django's Tasks framework (.venv/py3.X/bin/python after ./runtests).
"""

import subprocess
import sys

from . import throughput
from .peers import TASKS_IMPLS, our_python
from .throughput_report import find


def add_arguments(parser):
    parser.add_argument('--quick', action='store_true', help='a small smoke run, written to scratch')
    parser.add_argument(
        '--databases', type=throughput.listed(known=throughput.DATABASES), default='sqlite,postgresql',
        help='of ' + ','.join(throughput.DATABASES),
    )
    parser.add_argument('--runs', type=int, help='runs per figure (median); 3, quick 1')
    parser.add_argument('--tasks', type=int, help='due tasks per throughput run; 2000, quick 100')
    parser.add_argument('--workers', type=throughput.listed(int), help='worker processes; 1,4, quick 4')
    parser.add_argument('--pickup-samples', type=int, help='20, quick 3')
    parser.add_argument('--out', help='JSON file (default bench/results/tasks-<date>-<databases>.json)')


def main(args):
    ours = our_python(args.databases)
    if ours is None or subprocess.run(
        [ours, '-c', 'import modelqueue.tasks.compat'], capture_output=True
    ).returncode:
        sys.exit(
            'bench tasks: run it with a Python that imports this checkout and Django 6 or the'
            ' django-tasks backport, such as .venv/py3.11/bin/python after ./runtests'
        )
    args.impls = TASKS_IMPLS
    args.workers = args.workers or ([4] if args.quick else [1, 4])
    args.pickup_samples = args.pickup_samples or (3 if args.quick else 20)
    args.delays = [0.0]
    args.table_sizes = [1]
    args.skip = ['table', 'cost', 'dblimit']
    return throughput.main(args, kind='tasks', judge=targets)


def targets(results):
    """The issue's targets for the Tasks backend, each with its figures."""
    checks = []
    tp, pickup = results['throughput'], results['pickup']

    def add(name, ok, detail):
        checks.append({'target': name, 'met': ok, 'detail': detail})

    ours = find(tp, database='postgresql', impl='modelqueue-tasks', workers=4)
    peer = find(tp, database='postgresql', impl='django-tasks-db', workers=4)
    if ours and peer:
        ratio = ours['tasks_per_second'] / peer['tasks_per_second']
        add(
            'PostgreSQL W=4: >= 3x the throughput of django-tasks-db',
            ratio >= 3,
            f'{ratio:.2f}x ({ours["tasks_per_second"]:.0f} vs {peer["tasks_per_second"]:.0f} tasks/s)',
        )
    ours = find(pickup, database='postgresql', impl='modelqueue-tasks')
    peer = find(pickup, database='postgresql', impl='django-tasks-db')
    if ours and ours['p50_ms'] is not None:
        add(
            'PostgreSQL pickup p50 <= 20 ms',
            ours['p50_ms'] <= 20,
            f'{ours["p50_ms"]:.1f} ms (django-tasks-db:'
            f' {peer["p50_ms"]:.0f} ms)' if peer and peer['p50_ms'] is not None else f'{ours["p50_ms"]:.1f} ms',
        )
    ours = find(tp, database='sqlite', impl='modelqueue-tasks', workers=4)
    if ours:
        add(
            'SQLite W=4: zero errors, no task lost or run twice',
            not (ours['errors'] or ours['never_finished'] or ours['duplicates']),
            f'errors {ours["errors"]}, lost {ours["never_finished"]}, duplicates {ours["duplicates"]}',
        )
    return checks
