"""Child processes that share the test database with the test that starts them.

A child runs this checkout's Python with MODELQUEUE_DB_NAME naming the test
database, so ``-m django modelqueue_worker`` and the scripts in this package
see the rows the test made (which is why tests that start children need
the transactional_db fixture: they must commit them).
"""

import os
import subprocess
import sys

from django.db import connection

from tests.support import ROOT


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
