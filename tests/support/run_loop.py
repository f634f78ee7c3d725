"""A plain run() loop, standing for a user's own worker code, run as a child process.

Run as ``python -m tests.support.run_loop dotted.action seconds`` with
MODELQUEUE_DB and MODELQUEUE_DB_NAME set by the test (the spawn fixture
does). It calls run() on the Task queue for `seconds` and prints one JSON
line: tasks processed, and every exception that escaped run(), reported
rather than raised, so the test sees what reached "user code".
MODELQUEUE_TEST_SQLITE_TIMEOUT sets SQLite's busy timeout (seconds), to
provoke "database is locked".
"""

import json
import os
import sys
import time


def loop(action_path, seconds):
    """Call run() for `seconds`, as user code would; print a JSON report."""
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
    if len(sys.argv) != 3:
        sys.exit('usage: python -m tests.support.run_loop dotted.action seconds')
    loop(sys.argv[1], float(sys.argv[2]))
