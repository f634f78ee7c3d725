from django.db import connection

from tests.support.fixtures import (  # noqa: F401 (registered as fixtures)
    browser,
    chromium_driver,
    spawn,
    superuser_client,
)

# Scripts that tests start in child processes, not test modules.
collect_ignore = ["support/check_database.py", "support/queue_worker.py"]


def pytest_configure(config):
    config.addinivalue_line(
        'markers',
        'vendors(*names): a test that applies only to these database vendors'
        ' (sqlite, postgresql, mysql); elsewhere it is deselected, not skipped',
    )


def pytest_collection_modifyitems(config, items):
    """Deselect tests that do not apply to the selected database.

    A PostgreSQL-only test (LISTEN/NOTIFY, pg_terminate_backend) has nothing
    to check on SQLite: it is left out and counted as deselected, so a skip
    in the summary always means something that should have run did not.
    """
    applicable, not_applicable = [], []
    for item in items:
        marker = item.get_closest_marker('vendors')
        if marker is None or connection.vendor in marker.args:
            applicable.append(item)
        else:
            not_applicable.append(item)
    if not_applicable:
        config.hook.pytest_deselected(items=not_applicable)
        items[:] = applicable
