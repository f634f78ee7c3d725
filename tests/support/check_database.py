"""Fail clearly when the selected database cannot be reached.

Run as ``python -m tests.support.check_database`` with MODELQUEUE_DB set; the test
command calls it before pytest, so an unreachable server is one clear line
instead of an error per test.
"""

import os
import sys

import django

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'tests.settings')
django.setup()

from django.db import connection  # noqa: E402

try:
    connection.ensure_connection()
except Exception as error:  # noqa: BLE001 (any driver's connection error)
    settings = connection.settings_dict
    sys.exit(
        f'runtests: cannot reach the {connection.vendor} database at'
        f' {settings.get("HOST") or settings["NAME"]}:{settings.get("PORT") or ""}'
        f' ({error}); start it, or leave it out of MODELQUEUE_DATABASES'
    )
print(f'runtests: {connection.vendor} {connection.Database.__name__} reachable')
