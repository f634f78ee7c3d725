"""Schedules: every slot enqueued exactly once, and on time (issue 25's target).

    python -m bench schedules                 # PostgreSQL: 1,000 schedules, 8 workers, 10 minutes
    python -m bench schedules --quick         # 100 schedules, 8 workers, 2 minutes, written to scratch

Declares --schedules schedules of a no-op ``@task`` (bench/benchapp/tasks.py's
``scheduled``), each with the cron expression ``* * * * *`` (bench/settings.py,
``MQBENCH_SCHEDULES``), starts --workers ``modelqueue_worker --tasks``
processes (this checkout), which fire them and run the tasks, and stops them
after --minutes whole minutes. Then, for every minute slot between the
first after the last worker started and the last before they stopped, each
schedule must have exactly one task enqueued within that minute; its
lateness is the enqueue time less the slot. Targets: every slot exactly
once, and no slot late by more than 2 s. Writes
bench/results/schedules-<date>-<database>.json (--quick: scratch/). Run it
with .venv/py3.11/bin/python after ./runtests (Django's Tasks framework and
croniter installed).
"""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

from . import results

DATABASES = ('postgresql', 'sqlite', 'mariadb')
LATE_TARGET_SECONDS = 2.0


def add_arguments(parser):
    parser.add_argument('--quick', action='store_true', help='100 schedules, 2 minutes, written to scratch')
    parser.add_argument('--database', default='postgresql', choices=DATABASES)
    parser.add_argument('--schedules', type=int, help='schedules firing every minute; 1000, quick 100')
    parser.add_argument('--workers', type=int, default=8, help='modelqueue_worker --tasks processes')
    parser.add_argument('--minutes', type=int, help='whole minutes measured; 10, quick 2')
    parser.add_argument('--out', help='JSON file (default bench/results/schedules-<date>-<database>.json)')


def _child_env(env):
    return {**os.environ, 'DJANGO_SETTINGS_MODULE': 'bench.settings', 'PYTHONPATH': str(results.ROOT), **env}


def _run(env, *args):
    done = subprocess.run(
        [sys.executable, *args], env=_child_env(env), cwd=results.ROOT, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f'bench schedules: {" ".join(args)} failed:\n{done.stderr}')
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(args):
    count = args.schedules or (100 if args.quick else 1000)
    minutes = args.minutes or (2 if args.quick else 10)
    env = {
        'MQBENCH_IMPL': 'modelqueue-tasks',
        'MQBENCH_DB': args.database,
        'MQBENCH_DB_NAME': results.scratch_database(args.database, 'schedules'),
        'MQBENCH_SCHEDULES': str(count),
    }
    found = results.header(vars(args))
    found['prepared'] = _run(env, '-m', 'bench.driver', 'prepare')
    results.log(f'bench schedules: {count} schedules, {args.workers} workers, {minutes} minutes on {args.database}')
    workers = [
        subprocess.Popen(
            [sys.executable, '-m', 'django', 'modelqueue_worker', '--tasks'],
            env=_child_env(env), cwd=results.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(args.workers)
    ]
    started = time.time()
    # The first slot measured: the first whole minute at least 5 s after the
    # workers started (each syncs the schedules when it starts).
    first = (int(started + 5) // 60 + 1) * 60
    last = first + (minutes - 1) * 60
    try:
        time.sleep(max(0.0, last + 15 - time.time()))  # the last slot, and time to fire it
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        errors = [worker.communicate(timeout=120)[1] for worker in workers]
    found['worker_exit_statuses'] = [worker.returncode for worker in workers]
    found['worker_stderr_tail'] = [text[-2000:] for text in errors if text.strip()]
    measured = _run(env, '-m', 'bench.schedules', 'measure', str(count), str(first), str(last))
    found.update(schedules=count, workers=args.workers, minutes=minutes, **measured)
    found['targets'] = [
        {
            'target': f'{count} schedules x {minutes} slots with {args.workers} workers: every slot enqueued once',
            'met': measured['slots_missing'] == 0 and measured['slots_twice'] == 0,
            'detail': f'{measured["slots_expected"]} expected, {measured["slots_missing"]} missing,'
            f' {measured["slots_twice"]} enqueued more than once',
        },
        {
            'target': f'no slot late by more than {LATE_TARGET_SECONDS:g} s',
            'met': measured['late_max_seconds'] is not None and measured['late_max_seconds'] <= LATE_TARGET_SECONDS,
            'detail': f'max {measured["late_max_seconds"]} s, p50 {measured["late_p50_seconds"]} s,'
            f' p99 {measured["late_p99_seconds"]} s',
        },
    ]
    found['machine']['load_average_at_end'] = os.getloadavg()
    for target in found['targets']:
        print(f'{"MET" if target["met"] else "MISSED"} {target["target"]}: {target["detail"]}')
    results.write(found, args.out or results.default_path('schedules', args.database, args.quick))
    return 0 if all(target['met'] for target in found['targets']) else 1


def _measure(count, first, last):
    """Each schedule's tasks by slot, between the slots `first` and `last` (epoch seconds)."""
    import django  # noqa: PLC0415

    django.setup()
    from modelqueue.tasks.models import QueuedTask  # noqa: PLC0415

    by_slot = {}
    for args, enqueued_at in QueuedTask.objects.filter(task_path='bench.benchapp.tasks.scheduled').values_list(
        'args', 'enqueued_at'
    ):
        slot = int(enqueued_at.timestamp()) // 60 * 60
        if first <= slot <= last:
            by_slot.setdefault((args[0], slot), []).append(enqueued_at.timestamp() - slot)
    slots = range(first, last + 1, 60)
    expected = count * len(slots)
    missing = sum(1 for number in range(count) for slot in slots if (number, slot) not in by_slot)
    twice = sum(1 for late in by_slot.values() if len(late) > 1)
    lateness = sorted(min(late) for late in by_slot.values())

    def quantile(q):
        return round(lateness[min(len(lateness) - 1, int(q * len(lateness)))], 3) if lateness else None

    return {
        'first_slot': dt.datetime.fromtimestamp(first, dt.timezone.utc).isoformat(),
        'last_slot': dt.datetime.fromtimestamp(last, dt.timezone.utc).isoformat(),
        'slots_expected': expected,
        'slots_enqueued': len(by_slot),
        'slots_missing': missing,
        'slots_twice': twice,
        'late_p50_seconds': quantile(0.5),
        'late_p99_seconds': quantile(0.99),
        'late_max_seconds': round(lateness[-1], 3) if lateness else None,
    }


if __name__ == '__main__':  # python -m bench.schedules measure COUNT FIRST LAST
    print(json.dumps(_measure(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
