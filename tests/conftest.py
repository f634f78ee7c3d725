import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

# Scripts that tests start in child processes, not test modules.
collect_ignore = ["support/check_database.py", "support/queue_worker.py"]

ROOT = Path(__file__).resolve().parent.parent


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


ARTIFACTS = ROOT / 'test-artifacts'
CHROMIUM = Path('/usr/bin/chromium')
CHROMEDRIVER = Path('/usr/bin/chromedriver')


def _browser_missing(reason):
    """Skip a browser test, or fail it where CI requires the browser."""
    if os.environ.get('MODELQUEUE_REQUIRE_BROWSER'):
        pytest.fail(f'browser tests are required here, but {reason}')
    pytest.skip(f'{reason} (install Debian chromium and chromium-driver)')


@pytest.fixture(scope='session')
def chromium_driver(tmp_path_factory):
    """A headless Chromium driven by Selenium, one for the whole session.

    Uses Debian's chromium and chromedriver by their paths, so Selenium
    Manager never tries to download a browser or driver.
    """
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            _browser_missing(f'{path} is not installed')
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _browser_missing('selenium is not installed')
    os.environ['SE_OFFLINE'] = 'true'
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-sync',
        '--window-size=1400,1000',
        f'--user-data-dir={tmp_path_factory.mktemp("chromium-profile")}',
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium_driver, live_server):
    """The session's browser with fresh cookies, pointed at the live server.

    ``browser.login(username, password)`` signs in through the admin's login
    form; ``browser.go(path)`` opens a path of the live server;
    ``browser.screenshot(name)`` saves test-artifacts/<name>.png.
    """
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium_driver
    driver.delete_all_cookies()

    def go(path):
        driver.get(live_server.url + path)

    def login(username, password):
        go('/admin/login/')
        driver.find_element(By.NAME, 'username').send_keys(username)
        driver.find_element(By.NAME, 'password').send_keys(password)
        submit = driver.find_element(By.CSS_SELECTOR, 'input[type=submit]')
        submit.click()
        # Return only once the login page has been replaced by the next one.
        WebDriverWait(driver, 30).until(expected_conditions.staleness_of(submit))

    def screenshot(name):
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f'{name}.png'
        driver.save_screenshot(str(path))
        return path

    driver.go = go
    driver.login = login
    driver.screenshot = screenshot
    return driver
