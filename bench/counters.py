"""The write cost of the state counters: run() with counters beside without.

    python -m bench counters                      # PostgreSQL, 2,000 tasks, 15 rounds
    python -m bench counters --tasks 200 --rounds 2   # a smoke run

Runs in this Python, which must import this checkout, Django and psycopg
(.venv/py3.11 from ./runtests does), on a PostgreSQL database of its own.
One measurement: --tasks due rows, then --workers processes calling
``modelqueue.run()`` with an empty action until the queue is empty (each
task: a claim and a completion, two status changes, so two INSERTs into the
counts with the counters installed), timed from the first claim to the
last completion. Rounds alternate which mode goes first; each figure is the
median of --rounds measurements, with the median of the rounds' own changes
beside it ("paired"). Writes bench/results/counters-<date>-postgresql.json,
or scratch/ for a run of fewer tasks or rounds than the defaults.
"""

import multiprocessing
import os
import statistics
import time

from .dashboard import create_postgresql_database
from .results import default_path, header, log, scratch_database, write

TASKS = 2000
ROUNDS = 15
WORKERS = [1, 4]


def add_arguments(parser):
    parser.add_argument('--tasks', type=int, default=TASKS, help=f'due rows per measurement ({TASKS})')
    parser.add_argument('--rounds', type=int, default=ROUNDS, help=f'measurements per mode (median; {ROUNDS})')
    parser.add_argument('--out', help='JSON file (default bench/results/counters-<date>-postgresql.json)')


def configure():
    os.environ['MODELQUEUE_DB'] = 'postgresql'
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings')
    from django.conf import settings  # noqa: PLC0415

    database = settings.DATABASES['default']
    database['NAME'] = scratch_database('postgresql', 'counters')
    create_postgresql_database(database)
    import django  # noqa: PLC0415

    django.setup()


def drain(start, finished):
    """One worker process: wait for `start`, run tasks until none is due."""
    from django.db import connections  # noqa: PLC0415

    import modelqueue  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    connections.close_all()  # the parent's, inherited by fork
    Task.objects.exists()  # connect before the start
    start.wait()
    while modelqueue.run(Task.objects.all(), 'status', lambda task: None) is not None:
        pass
    finished.put(time.perf_counter())


def measure(tasks, workers, counted):
    """Tasks per second of `workers` processes over `tasks` fresh due rows."""
    from django.db import connection  # noqa: PLC0415

    import modelqueue  # noqa: PLC0415
    from modelqueue.counters import install_counters, state_totals, uninstall_counters  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    uninstall_counters(Task, 'status')
    Task.objects.all().delete()
    due = modelqueue.Status.waiting(modelqueue.now())
    Task.objects.bulk_create((Task(data=f'task {number}', status=due) for number in range(tasks)), batch_size=1000)
    if counted:
        install_counters(Task, 'status')
    with connection.cursor() as cursor:
        cursor.execute('VACUUM ANALYZE testapp_task')
    connection.close()
    start, finished = multiprocessing.Event(), multiprocessing.Queue()
    processes = [multiprocessing.Process(target=drain, args=(start, finished)) for _ in range(workers)]
    for process in processes:
        process.start()
    time.sleep(0.5)  # every worker has connected
    started = time.perf_counter()
    start.set()
    last = max(finished.get(timeout=300) for _ in processes)
    for process in processes:
        process.join()
    left = Task.objects.exclude(modelqueue.ranges.in_states('status', 'finished')).count()
    assert left == 0, left
    if counted:
        assert state_totals(Task.objects.all(), 'status')['finished'] == tasks
    return tasks / (last - started)


def main(args):
    started = time.time()
    results = header(vars(args))
    multiprocessing.set_start_method('fork')
    configure()
    from django.core.management import call_command  # noqa: PLC0415
    from django.db import connection  # noqa: PLC0415

    from .dashboard import database_version  # noqa: PLC0415

    call_command('migrate', run_syncdb=True, verbosity=0)
    results.update(database={'vendor': connection.vendor, 'version': database_version(connection)}, workers={})
    measure(min(args.tasks, 200), 1, True)  # warm up
    for workers in WORKERS:
        runs = {'with': [], 'without': []}
        for number in range(args.rounds):
            for mode in (('with', 'without') if number % 2 == 0 else ('without', 'with')):
                runs[mode].append(measure(args.tasks, workers, mode == 'with'))
        with_, without = statistics.median(runs['with']), statistics.median(runs['without'])
        paired = statistics.median(100 * (a - b) / b for a, b in zip(runs['with'], runs['without']))
        results['workers'][str(workers)] = {
            'tasks': args.tasks,
            'rounds': args.rounds,
            'with_counters_tasks_per_second': with_,
            'without_counters_tasks_per_second': without,
            'change_percent': 100 * (with_ - without) / without,
            'paired_change_percent': paired,
            'runs': runs,
        }
        log(f'bench: {workers} worker(s): with counters {with_:.0f} tasks/s, without {without:.0f}'
            f' ({100 * (with_ - without) / without:+.1f}%; paired by round {paired:+.1f}%)')
    results['machine']['load_average_at_end'] = os.getloadavg()
    results['seconds'] = time.time() - started
    scratch = args.tasks < TASKS or args.rounds < ROUNDS
    write(results, args.out or default_path('counters', 'postgresql', scratch))
    return 0
