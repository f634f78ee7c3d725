"""A worker process for concurrency tests: drain the queue, then report.

Run as ``python -m tests.support.queue_worker dotted.action`` with MODELQUEUE_DB and
MODELQUEUE_DB_NAME set by the test. It calls run() until it returns None and
prints one JSON line: tasks processed, and how many due rows nobody held at
the moment run() came back empty (must be 0).
"""

import json
import os
import sys

import django

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings')
django.setup()

from django.db import connection, transaction  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

import modelqueue  # noqa: E402
from tests.testapp.models import Task  # noqa: E402


def unclaimed_due_rows():
    """Count due waiting rows that no other worker is claiming right now."""
    due = Task.objects.filter(**modelqueue.Status.filter('status', 'waiting')).filter(
        status__lte=modelqueue.Status.waiting(modelqueue.now(), 9)
    )
    if connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            return len(due.select_for_update(skip_locked=True).values_list('pk'))
    return due.count()


def main():
    action = import_string(sys.argv[1])
    processed = 0
    while modelqueue.run(Task.objects.all(), 'status', action) is not None:
        processed += 1
    print(json.dumps({'processed': processed, 'unclaimed': unclaimed_due_rows()}))


if __name__ == '__main__':
    main()
