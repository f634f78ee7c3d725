import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

# Scripts that tests start in child processes, not test modules.
collect_ignore = ["check_database.py", "queue_worker.py"]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def spawn(transactional_db):
    """Start a Python module in a child process that shares the test database.

    Returns a function taking the module's arguments and returning the
    Popen; every child still running at the end of the test is killed.
    """
    children = []

    def start(*args, env=None, **popen_kwargs):
        child_env = dict(os.environ)
        child_env['MODELQUEUE_DB_NAME'] = str(connection.settings_dict['NAME'])
        child_env['PYTHONPATH'] = str(ROOT)
        child_env.update(env or {})
        popen_kwargs.setdefault('stdout', subprocess.PIPE)
        popen_kwargs.setdefault('stderr', subprocess.PIPE)
        child = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=child_env, text=True, **popen_kwargs
        )
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
