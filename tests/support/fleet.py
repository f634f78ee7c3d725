"""Fleets of worker command processes, and killing them in the middle of a task.

For the tests of faults that production brings: workers SIGKILLed mid-task,
replaced, and stopped at the end with their logs.
"""

import random
import signal
import subprocess
import time

from tests.support.processes import start_worker
from tests.support.waits import wait_until


class Fleet:
    """Worker command processes on the Task queue, started with `spawn`.

    Each worker logs (verbosity 2) to its own file in `log_dir`; start()
    returns once every new worker has logged that it started, so a signal
    never lands before the worker handles it. Remembers every pid it killed,
    so a test can tell the executions of killed workers from the others.
    `action` names a function of tests.testapp.actions.
    """

    def __init__(self, spawn, log_dir, action, *options, env=None):
        self.spawn = spawn
        self.log_dir = log_dir
        self.action = action
        self.options = [str(option) for option in options]
        self.env = env
        self.running = []
        self.killed = set()
        self.logs = {}

    def start(self, count=1, wait=True):
        """Start `count` workers; with `wait`, return once they are ready."""
        for _ in range(count):
            path = self.log_dir / f'worker-{len(self.logs)}.log'
            with open(path, 'w') as log:
                process = start_worker(
                    self.spawn,
                    *self.options,
                    action=self.action,
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

    def stop(self, timeout=60, signal_first=True):
        """SIGTERM every worker (or, without `signal_first`, let them exit by
        themselves: --burst, --max-tasks); return their (returncode, log) pairs."""
        self.wait_ready()
        for process in self.running if signal_first else ():
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
