"""The whole suite's fixtures and markers; tests/README.md maps the tree.

The fixtures' code is in tests/support: importing them here registers them
for every test.
"""

import os

import pytest
from django.db import connection
from hypothesis import settings as hypothesis_settings

from tests.support.fixtures import (  # noqa: F401 (registered as fixtures)
    browser,
    chromium_driver,
    compile_claims_afresh,
    django_db_modify_db_settings,
    gate,
    look_for_the_failure_tables_afresh,
    pgbouncer,
    spawn,
    superuser_client,
)

# Hypothesis keeps no database of examples in the checkout (a failure
# prints how to reproduce it); MODELQUEUE_HYPOTHESIS_PROFILE may name
# another registered profile.
hypothesis_settings.register_profile('modelqueue', database=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get('MODELQUEUE_HYPOTHESIS_PROFILE', 'modelqueue'))

# Scripts that tests and ./runtests start in child processes, not modules to
# import for doctests: they set Django up, or connect, when imported.
collect_ignore = ['support/check_database.py', 'support/queue_worker.py']

# Kinds of test, to choose with -m. None is skipped by default.
KINDS = {
    'browser': 'drives headless Chromium with Selenium (the browser fixture)',
    'processes': 'starts real child processes: workers (the spawn fixture), scripts, demo/run',
    'load': 'a load test: concurrent clients for MODELQUEUE_LOAD_SECONDS (30 by default)',
    'topology': 'starts servers of its own: PgBouncer (the pgbouncer fixture), a PostgreSQL'
    ' primary and replica (PostgreSQL only; MODELQUEUE_REQUIRE_TOPOLOGY=1 fails it where they are missing)',
}
# A test that uses one of these fixtures must be marked with the kind named.
KIND_OF_FIXTURE = {
    'browser': 'browser',
    'chromium_driver': 'browser',
    'spawn': 'processes',
    'pgbouncer': 'topology',
}


def pytest_configure(config):
    for kind, description in KINDS.items():
        config.addinivalue_line('markers', f'{kind}: {description}')
    config.addinivalue_line(
        'markers',
        'vendors(*names): a test that applies only to these database vendors'
        ' (sqlite, postgresql, mysql); elsewhere it is deselected, not skipped',
    )


def pytest_collection_modifyitems(config, items):
    require_kind_markers(items)
    deselect_other_vendors(config, items)


def require_kind_markers(items):
    """Stop the run if a test uses a fixture of a kind without that kind's marker.

    Otherwise ``-m "not processes"`` would quietly run a test that starts
    workers, and a fast subset would not be fast.
    """
    unmarked = []
    for item in items:
        fixtures = [name for name in getattr(item, 'fixturenames', ()) if name in KIND_OF_FIXTURE]
        for kind in sorted({KIND_OF_FIXTURE[name] for name in fixtures}):
            if item.get_closest_marker(kind) is None:
                unmarked.append(
                    f'{item.nodeid} uses the fixtures {", ".join(fixtures)}: mark it'
                    f' @pytest.mark.{kind}, or add that to its module\'s pytestmark'
                )
    if unmarked:
        raise pytest.UsageError('\n'.join(unmarked))


def deselect_other_vendors(config, items):
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
            needed = ' or '.join(DATABASE_OF_VENDOR.get(vendor, vendor) for vendor in marker.args)
            deselected = config.stash.setdefault(DESELECTED, {})
            deselected[needed] = deselected.get(needed, 0) + 1
    if not_applicable:
        config.hook.pytest_deselected(items=not_applicable)
        items[:] = applicable


# ./runtests names databases as MODELQUEUE_DATABASES does; Django's vendors differ.
DATABASE_OF_VENDOR = {'sqlite': 'sqlite', 'postgresql': 'postgresql', 'mysql': 'mariadb'}
DESELECTED = pytest.StashKey[dict]()  # the databases needed -> tests deselected here


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say plainly how many tests this database left out, and which database
    each needs, so a green SQLite run is not read as the whole suite."""
    needs = config.stash.get(DESELECTED, {})
    if not needs:
        return
    here = DATABASE_OF_VENDOR.get(connection.vendor, connection.vendor)
    total = sum(needs.values())
    every = ','.join(DATABASE_OF_VENDOR.values())
    terminalreporter.write_line(
        f'runtests: {total} test{"s" * (total != 1)} deselected on {here}: they need '
        + ', '.join(f'{needed} ({count})' for needed, count in sorted(needs.items(), key=lambda x: -x[1]))
        + f'; run MODELQUEUE_DATABASES={every} ./runtests for the whole suite'
    )
