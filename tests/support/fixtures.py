"""The fixtures that any test can use; tests/conftest.py registers them."""

import pytest

from tests.support.browser import for_live_server, start_chromium
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
    ``browser.screenshot(name)`` saves test-artifacts/<name>.png.
    """
    return for_live_server(chromium_driver, live_server)


@pytest.fixture
def superuser_client(client, db):
    """Django's test client, logged in as a superuser."""
    client.force_login(create_superuser())
    return client
