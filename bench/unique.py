"""Unique tasks: processes enqueueing one key leave one task (issue 25's target).

    python -m bench unique                  # SQLite, PostgreSQL, MariaDB: 8 processes x 1,000
    python -m bench unique --quick          # 8 x 50, written to scratch

Each process calls ``modelqueue.tasks.enqueue_unique(work, KEY)`` (this
checkout's ModelQueueBackend, bench/settings.py's ``modelqueue-tasks``)
COUNT times, all starting at one moment; no worker runs, so the first task
stays READY and holds the key. Then the task table is counted: the target is
one row with the key, and one id returned to every call. Writes
bench/results/unique-<date>-<databases>.json (--quick: scratch/). Run it
with a Python that imports this checkout and Django's Tasks framework
(.venv/py3.11/bin/python after ./runtests).
"""

import json
import os
import subprocess
import sys
import time

from . import results

DATABASES = ('sqlite', 'postgresql', 'mariadb')
KEY = 'bench-unique'


def add_arguments(parser):
    parser.add_argument('--quick', action='store_true', help='8 x 50, written to scratch')
    parser.add_argument(
        '--databases', default=','.join(DATABASES), help='comma-separated, of ' + ','.join(DATABASES)
    )
    parser.add_argument('--processes', type=int, default=8)
    parser.add_argument('--enqueues', type=int, help='per process; 1000, quick 50')
    parser.add_argument('--out', help='JSON file (default bench/results/unique-<date>-<databases>.json)')


def _run(env, *args):
    done = subprocess.run(
        [sys.executable, *args], env={**os.environ, **env}, cwd=results.ROOT, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f'bench unique: {" ".join(args)} failed:\n{done.stderr}')
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(vendor, processes, enqueues):
    env = {
        'MQBENCH_IMPL': 'modelqueue-tasks',
        'MQBENCH_DB': vendor,
        'MQBENCH_DB_NAME': results.scratch_database(vendor, 'unique'),
    }
    prepared = _run(env, '-m', 'bench.driver', 'prepare')
    start = time.time() + 2 + processes * 0.3  # after every process has started
    children = [
        subprocess.Popen(
            [sys.executable, '-m', 'bench.unique', 'enqueue', str(enqueues), str(start)],
            env={**os.environ, **env},
            cwd=results.ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    reports = []
    for child in children:
        out, err = child.communicate(timeout=1800)
        if child.returncode:
            sys.exit(f'bench unique: an enqueueing process failed:\n{err}')
        reports.append(json.loads(out.strip().splitlines()[-1]))
    counted = _run(env, '-m', 'bench.unique', 'count')
    seconds = max(r['ended'] for r in reports) - min(r['started'] for r in reports)
    ids = sorted({i for r in reports for i in r['ids']})
    return {
        'database': prepared['database'],
        'django': prepared['django'],
        'processes': processes,
        'enqueues_per_process': enqueues,
        'rows_with_the_key': counted['rows'],
        'ids_returned': ids,
        'inserts_tried': sum(r['inserts'] for r in reports),
        'seconds': round(seconds, 3),
        'enqueues_per_second': round(processes * enqueues / seconds),
        'target_one_task': counted['rows'] == 1 and len(ids) == 1,
    }


def main(args):
    vendors = [v for v in args.databases.split(',') if v]
    unknown = sorted(set(vendors) - set(DATABASES))
    if unknown:
        sys.exit(f'bench unique: invalid --databases {",".join(unknown)}: expected of {",".join(DATABASES)}')
    enqueues = args.enqueues or (50 if args.quick else 1000)
    found = results.header(vars(args))
    found['runs'] = {}
    for vendor in vendors:
        results.log(f'bench unique: {vendor}, {args.processes} processes x {enqueues}')
        found['runs'][vendor] = measure(vendor, args.processes, enqueues)
        results.log(f'  {found["runs"][vendor]}')
    found['targets'] = [
        {
            'name': f'{args.processes} processes x {enqueues} enqueues of one key leave one task ({vendor})',
            'ok': run['target_one_task'],
        }
        for vendor, run in found['runs'].items()
    ]
    path = args.out or results.default_path('unique', '-'.join(vendors), args.quick)
    results.write(found, path)
    return 0 if all(t['ok'] for t in found['targets']) else 1


def _child():
    """``python -m bench.unique enqueue COUNT START`` or ``count``, on the
    MQBENCH_* database: prints one JSON line."""
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'bench.settings')
    import django  # noqa: PLC0415

    django.setup()
    from django.db.models.signals import pre_save  # noqa: PLC0415

    from bench.benchapp.tasks import work  # noqa: PLC0415
    from modelqueue.tasks import enqueue_unique  # noqa: PLC0415
    from modelqueue.tasks.models import QueuedTask  # noqa: PLC0415

    if sys.argv[1] == 'count':
        print(json.dumps({'rows': QueuedTask.objects.filter(unique_key=KEY).count()}))
        return
    count, start = int(sys.argv[2]), float(sys.argv[3])
    inserts = []
    pre_save.connect(lambda **kwargs: inserts.append(1), sender=QueuedTask, weak=False)
    time.sleep(max(0.0, start - time.time()))
    started = time.time()
    ids = {enqueue_unique(work, KEY).id for _ in range(count)}
    print(json.dumps({'ids': sorted(ids), 'inserts': len(inserts), 'started': started, 'ended': time.time()}))


if __name__ == '__main__':
    _child()
