"""Helpers for the fault tests: bounded waits, worker fleets, database sessions.

Also the actions the fault tests hand to worker processes, and a plain
``run()`` loop (``python -m tests.support.fleet loop ...``) standing for a user's
own worker code.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

WORKER_COMMAND = ('-m', 'django', 'modelqueue_worker', 'testapp.Task', 'status')


def wait_until(predicate, timeout, what):
    """Poll `predicate` until it returns something true; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout}s waiting for {what}')
        time.sleep(0.05)


class Fleet:
    """Worker command processes on the Task queue, started with `spawn`.

    Each worker logs (verbosity 2) to its own file in `log_dir`; start()
    returns once every new worker has logged that it started, so a signal
    never lands before the worker handles it. Remembers every pid it killed,
    so a test can tell the executions of killed workers from the others.
    """

    def __init__(self, spawn, log_dir, action, *options, env=None):
        self.spawn = spawn
        self.log_dir = log_dir
        self.action = action
        self.options = [str(option) for option in options]
        self.env = {'DJANGO_SETTINGS_MODULE': 'tests.settings', **(env or {})}
        self.running = []
        self.killed = set()
        self.logs = {}

    def start(self, count=1, wait=True):
        """Start `count` workers; with `wait`, return once they are ready."""
        for _ in range(count):
            path = self.log_dir / f'worker-{len(self.logs)}.log'
            with open(path, 'w') as log:
                process = self.spawn(
                    *WORKER_COMMAND,
                    self.action,
                    '--verbosity', '2',
                    *self.options,
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            self.logs[process.pid] = path
            self.running.append(process)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=60):
        """Wait until every running worker has logged that it started."""
        for process in self.running:
            wait_until(
                lambda: process.poll() is not None or 'started on' in self.log(process.pid),
                timeout,
                f'worker {process.pid} to start',
            )
            assert process.poll() is None, self.log(process.pid)

    def log(self, pid):
        return self.logs[pid].read_text()

    def pids(self):
        return {process.pid for process in self.running}

    def exited(self):
        """The running processes that exited by themselves (must be none)."""
        return [process for process in self.running if process.poll() is not None]

    def kill(self, pid):
        """SIGKILL the worker `pid` and start another in its place."""
        (process,) = [each for each in self.running if each.pid == pid]
        process.kill()
        process.wait(timeout=30)
        self.killed.add(pid)
        self.running.remove(process)
        self.start(wait=False)

    def stop(self, timeout=60):
        """SIGTERM every worker; return their (returncode, log) pairs."""
        self.wait_ready()
        for process in self.running:
            process.send_signal(signal.SIGTERM)
        results = []
        for process in self.running:
            process.wait(timeout=timeout)
            results.append((process.returncode, self.log(process.pid)))
        self.running = []
        return results


def kill_workers_mid_task(fleet, kills, pause, timeout):
    """SIGKILL up to `kills` workers, each while it runs an action.

    A worker is caught mid-task by finding a working row whose latest
    execution was recorded by one of the fleet's live processes. Stops early
    when no row is left waiting or working. Returns the pids killed.
    """
    from modelqueue import Status  # noqa: PLC0415 (needs Django set up)
    from tests.testapp.models import Execution, Task  # noqa: PLC0415

    def busy_worker_or_drained():
        unsettled = Task.objects.filter(status__gte=Status.minimum('waiting'))
        if not unsettled.filter(status__lte=Status.maximum('working')).exists():
            return 'drained'
        pids = fleet.pids()
        for task in Task.objects.filter(**Status.filter('status', 'working')):
            latest = Execution.objects.filter(task=task).order_by('-pk').first()
            if latest is not None and latest.pid in pids:
                return latest.pid
        return None

    victims = []
    for _ in range(kills):
        pid = wait_until(busy_worker_or_drained, timeout, 'a worker in the middle of a task')
        if pid == 'drained':
            break
        fleet.kill(pid)
        victims.append(pid)
        time.sleep(pause * random.uniform(0.5, 1.5))
    return victims


def server_sessions(connection):
    """Ids of the other sessions on this test database (the workers').

    PostgreSQL: backend pids from pg_stat_activity; MariaDB: connection ids
    from the process list. The test's own session is left out.
    """
    with connection.cursor() as cursor:
        if connection.vendor == 'postgresql':
            cursor.execute(
                'SELECT pid FROM pg_stat_activity'
                ' WHERE datname = current_database() AND pid <> pg_backend_pid()'
            )
        elif connection.vendor == 'mysql':
            cursor.execute(
                'SELECT id FROM information_schema.processlist'
                ' WHERE db = DATABASE() AND id <> CONNECTION_ID()'
            )
        else:
            raise ValueError(f'no server sessions on {connection.vendor}')
        return [row[0] for row in cursor.fetchall()]


def cut_sessions(connection):
    """Terminate every other session on the test database; return how many."""
    cut = 0
    with connection.cursor() as cursor:
        for session in server_sessions(connection):
            try:
                if connection.vendor == 'postgresql':
                    cursor.execute('SELECT pg_terminate_backend(%s)', [session])
                else:
                    cursor.execute(f'KILL CONNECTION {int(session)}')
                cut += 1
            except Exception as error:  # noqa: BLE001 (the session ended by itself)
                if 'Unknown thread id' not in str(error):
                    raise
    return cut


def record_and_stamp(task):
    """Count one execution and note when the action started (UTC, ISO)."""
    from modelqueue import now  # noqa: PLC0415
    from tests.testapp.actions import record  # noqa: PLC0415

    started = now()
    record(task)
    task.note = started.isoformat()
    time.sleep(float(os.environ.get('MODELQUEUE_TEST_ACTION_SECONDS', '0')))


def append_to_log(task):
    """Count one execution in a file, without touching the database."""
    with open(os.environ['MODELQUEUE_TEST_LOG'], 'a') as log:
        log.write(f'{task.pk} {os.getpid()}\n')
    time.sleep(float(os.environ.get('MODELQUEUE_TEST_ACTION_SECONDS', '0')))


def loop(action_path, seconds):
    """Call run() for `seconds`, as user code would; print a JSON report.

    Any exception escaping run() is reported, not raised, so the test sees
    what reached "user code". MODELQUEUE_TEST_SQLITE_TIMEOUT sets SQLite's
    busy timeout (seconds), to provoke "database is locked".
    """
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings')
    if os.environ.get('MODELQUEUE_TEST_SQLITE_TIMEOUT'):
        from tests import settings  # noqa: PLC0415

        options = settings.DATABASES['default']['OPTIONS']
        options['timeout'] = float(os.environ['MODELQUEUE_TEST_SQLITE_TIMEOUT'])
    import django  # noqa: PLC0415

    django.setup()
    from django.utils.module_loading import import_string  # noqa: PLC0415

    import modelqueue  # noqa: PLC0415
    from tests.testapp.models import Task  # noqa: PLC0415

    action = import_string(action_path)
    processed, errors = 0, []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            task = modelqueue.run(Task.objects.all(), 'status', action)
        except Exception as error:  # noqa: BLE001 (reported to the test)
            errors.append(f'{type(error).__name__}: {error}')
            continue
        if task is None:
            time.sleep(0.02)
        else:
            processed += 1
    print(json.dumps({'processed': processed, 'errors': errors}))


if __name__ == '__main__':
    command, *arguments = sys.argv[1:]
    if command != 'loop' or len(arguments) != 2:
        sys.exit('usage: python -m tests.support.fleet loop dotted.action seconds')
    loop(arguments[0], float(arguments[1]))
