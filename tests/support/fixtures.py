"""The fixtures that any test can use; tests/conftest.py registers them."""

import os

import pytest
from django.conf import settings

from tests.support import pgbouncer as pgbouncer_support
from tests.support.browser import for_live_server, start_chromium
from tests.support.gates import Gate
from tests.support.processes import Children
from tests.support.users import create_superuser


@pytest.fixture
def spawn(transactional_db):
    """Start a Python module in a child process that shares the test database.

    Returns a function taking the module's arguments and returning the
    Popen; every child still running at the end of the test is killed.
    """
    children = Children()
    yield children.start
    children.kill()


@pytest.fixture
def gate(tmp_path):
    """A closed gate (tests.support.gates) for a worker's action to wait at;
    opened at the end of the test, so no action waits for ever."""
    gate = Gate(tmp_path / 'gate')
    yield gate
    gate.open()


@pytest.fixture(scope='session')
def chromium_driver(tmp_path_factory):
    """A headless Chromium driven by Selenium, one for the whole session."""
    driver = start_chromium(tmp_path_factory.mktemp('chromium-profile'))
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium_driver, live_server):
    """The session's browser with fresh cookies, pointed at the live server.

    ``browser.login(username, password)`` signs in through the admin's login
    form; ``browser.go(path)`` opens a path of the live server;
    ``browser.screenshot(name)`` saves test-artifacts/<name>.png (and, with
    MODELQUEUE_DOCS_SCREENSHOTS set, the documentation's copy).
    """
    return for_live_server(chromium_driver, live_server)


@pytest.fixture
def superuser_client(client, db):
    """Django's test client, logged in as a superuser."""
    client.force_login(create_superuser())
    return client


@pytest.fixture(scope='session')
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """Name the test database after this process where two runs could share it.

    settings.py reads the pid when it is imported; mutmut (mutation/run)
    forks one process per mutant from a process that imported it already,
    and two mutants running at once must not share one database. SQLite's
    test database is named after the pid always, as settings.py does; under
    mutmut (MUTANT_UNDER_TEST is set) the others are too.
    """
    test = settings.DATABASES['default']['TEST']
    if settings.DATABASE_VENDOR == 'sqlite':
        test['NAME'] = str(
            settings.BASE_DIR / f'.{settings.TEST_DATABASE_NAME}_{os.getpid()}.sqlite3'
        )
    elif 'MUTANT_UNDER_TEST' in os.environ:
        test['NAME'] = f'{settings.TEST_DATABASE_NAME}_{os.getpid()}'


@pytest.fixture(autouse=True)
def look_for_the_failure_tables_afresh():
    """Start every test with no memory of whether the failure tables exist.

    run() and the admin remember a missing table for a while (so that an
    unmigrated database costs one failed query a minute, not one per task);
    a test that hides the table must not turn recording off for the tests
    after it, whatever their order.
    """
    from modelqueue import failures  # noqa: PLC0415 (the admin needs Django set up first)
    from modelqueue.admin import failures as admin_failures  # noqa: PLC0415

    failures._off_until.clear()
    failures._statements.clear()
    admin_failures._available.clear()


@pytest.fixture(autouse=True)
def compile_claims_afresh():
    """Start every test with no compiled claim statement (modelqueue.claim's cache).

    A test then compiles the claims it makes whatever ran before it, so a
    test checks ClaimStatement even when run after others, or alone, or in
    a process forked from one whose cache is full (mutmut's).
    """
    from modelqueue import claim  # noqa: PLC0415 (after Django is set up)

    claim._statements.clear()


@pytest.fixture
def pgbouncer(transactional_db):
    """A PgBouncer of the test's own in transaction mode, pooling the test
    database with at most 10 server sessions (tests/support/pgbouncer.py);
    stopped, its folder removed, when the test ends. Skipped where
    pgbouncer is missing, unless MODELQUEUE_REQUIRE_TOPOLOGY is set."""
    from django.db import connection  # noqa: PLC0415

    why = pgbouncer_support.missing()
    if why is not None:
        pgbouncer_support.topology_missing(why)
    settings_dict = connection.settings_dict
    with pgbouncer_support.PgBouncer(
        str(settings_dict['NAME']),
        host=settings_dict['HOST'] or '127.0.0.1',
        port=settings_dict['PORT'] or 5432,
        user=settings_dict['USER'],
    ) as bouncer:
        yield bouncer
