"""A process that enqueues one task under one key, many times: the unique
tasks' race test (tests/tasks/test_unique.py) and its benchmark.

Run as ``python -m tests.support.enqueue_unique KEY COUNT`` on the test
database (MODELQUEUE_DB_NAME). With MODELQUEUE_TEST_GATE set, the first
time enqueue_unique's read finds no task with the key, the process writes
``<gate>.<pid>`` and waits until the gate opens (tests.support.gates),
before its INSERT: the test opens it when every process is there, so that
all of them INSERT, racing. Prints one JSON line: the ids the calls
returned and how many INSERTs it tried.
"""

import json
import os
import pathlib
import sys
import time

import django

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings')
django.setup()

from django.db.models.signals import pre_save  # noqa: E402

from modelqueue.tasks import enqueue_unique  # noqa: E402
from modelqueue.tasks.compat import task_backends  # noqa: E402
from modelqueue.tasks.models import QueuedTask  # noqa: E402
from tests.testapp import tasks  # noqa: E402

inserts = 0


def at_insert(sender, **kwargs):
    """Count the INSERTs tried."""
    global inserts
    inserts += 1


def wait_at_the_gate_once(read):
    """`read` (the backend's read of the active task with a key), which
    waits at the gate the first time it finds none."""
    waited = []

    def reading(*args, **kwargs):
        found = read(*args, **kwargs)
        gate = os.environ.get('MODELQUEUE_TEST_GATE')
        if found is None and gate and not waited:
            waited.append(True)
            pathlib.Path(f'{gate}.{os.getpid()}').touch()
            deadline = time.monotonic() + 120
            while not os.path.exists(gate):
                if time.monotonic() > deadline:
                    raise TimeoutError(f'the gate {gate} was never opened')
                time.sleep(0.005)
        return found

    return reading


def main():
    key, count = sys.argv[1], int(sys.argv[2])
    pre_save.connect(at_insert, sender=QueuedTask)
    backend = task_backends['default']
    backend._active_with = wait_at_the_gate_once(backend._active_with)
    ids = {enqueue_unique(tasks.add, key, 1, 2).id for _ in range(count)}
    print(json.dumps({'ids': sorted(ids), 'inserts': inserts}))


if __name__ == '__main__':
    main()
