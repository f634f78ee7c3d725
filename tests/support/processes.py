"""Child processes that share the test database with the test that starts them.

A child runs this checkout's Python with MODELQUEUE_DB_NAME naming the test
database, so ``-m django modelqueue_worker`` and the scripts in this package
see the rows the test made (which is why tests that start children need
the transactional_db fixture: they must commit them).
"""

import json
import os
import subprocess
import sys
import time

import pytest
from django.db import connection

from tests.support import ROOT

# The worker command on the test app's Task queue; the action comes next.
WORKER_COMMAND = ('-m', 'django', 'modelqueue_worker', 'testapp.Task', 'status')
ACTIONS = 'tests.testapp.actions.'


class Children:
    """Python processes started for one test; kill() ends those still running."""

    def __init__(self):
        self.started = []

    def start(self, *args, env=None, **popen_kwargs):
        """Start ``python *args`` in the checkout; return the Popen.

        `env` adds to this process's environment; stdout and stderr are
        pipes (text) unless given.
        """
        child_env = dict(os.environ)
        child_env['MODELQUEUE_DB_NAME'] = str(connection.settings_dict['NAME'])
        child_env['PYTHONPATH'] = str(ROOT)
        child_env.update(env or {})
        popen_kwargs.setdefault('stdout', subprocess.PIPE)
        popen_kwargs.setdefault('stderr', subprocess.PIPE)
        # A log need not be valid UTF-8 (two logging handlers of two threads
        # may interleave on one stream): read it whatever its bytes.
        popen_kwargs.setdefault('errors', 'backslashreplace')
        child = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=child_env, text=True, **popen_kwargs
        )
        self.started.append(child)
        return child

    def kill(self):
        for child in self.started:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=30)


def children_of(pid):
    """The pids of the running child processes of `pid`."""
    listing = subprocess.run(
        ['ps', '-o', 'pid=', '--ppid', str(pid)], capture_output=True, text=True
    )
    return [int(child) for child in listing.stdout.split()]


def start_worker(spawn, *options, action='record', env=None, **popen_kwargs):
    """Start ``modelqueue_worker testapp.Task status`` with log lines on (verbosity 2).

    `action` names a function of tests.testapp.actions; `spawn` is the
    fixture. Returns the Popen.
    """
    return spawn(
        *WORKER_COMMAND,
        ACTIONS + action,
        '--verbosity=2',
        *options,
        env={'DJANGO_SETTINGS_MODULE': 'tests.settings', **(env or {})},
        **popen_kwargs,
    )


def finish(child, timeout=60):
    """Wait for `child` to exit; return its exit status and its log (stderr).

    A child still running after `timeout` seconds is killed, and the test fails.
    """
    returncode, _, log = _communicate(child, timeout)
    return returncode, log


def json_report(child, timeout=60):
    """Wait for a script that ends by printing a JSON line; return it read, and the log.

    The script must exit with 0. For tests.support.queue_worker and run_loop.
    """
    returncode, out, log = _communicate(child, timeout)
    assert returncode == 0, log
    return json.loads(out.strip().splitlines()[-1]), log


def _communicate(child, timeout):
    try:
        out, log = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        _, log = child.communicate()
        pytest.fail(f'the child process did not exit within {timeout}s; its log:\n{log}')
    return child.returncode, out, log


def blocked_threads(pid):
    """What each thread of process `pid` waits in: {thread id: the kernel
    function it sleeps in (Linux's /proc/<pid>/task/<tid>/wchan), or '' while
    it runs}."""
    found = {}
    for tid in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{tid}/stat') as stat:
                state = stat.read().rsplit(')', 1)[1].split()[0]
            with open(f'/proc/{pid}/task/{tid}/wchan') as wchan:
                waits_in = wchan.read().strip()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended meanwhile
        found[int(tid)] = waits_in if state in ('S', 'D') else ''
    return found


def idle(pid, threads=0, looks=4):
    """Whether the worker process `pid` sleeps in its wait for work.

    Its main thread is blocked in select or poll (the waiter), and at least
    `threads` other threads on a lock or an event (the idle threads of a
    --threads pool and the heartbeat's thread), at each of `looks` looks
    50 ms apart: a thread blocks for a moment in a query too. A test waits
    for this (with wait_until) before it makes the row that must wake the
    worker, so the row cannot be found by a look that was due anyway.
    """
    for look in range(looks):
        if look:
            time.sleep(0.05)
        blocked = blocked_threads(pid)
        main = blocked.get(pid, '')
        if 'poll' not in main and 'select' not in main:
            return False
        if sum('futex' in waits_in for tid, waits_in in blocked.items() if tid != pid) < threads:
            return False
    return True
