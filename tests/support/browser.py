"""Headless Chromium, driven by Selenium, for the browser tests.

Debian's chromium and chromedriver are used by their paths, so Selenium
Manager never tries to download a browser or driver. Where they are
missing the browser tests are skipped, unless MODELQUEUE_REQUIRE_BROWSER is
set (as in CI): then they fail.
"""

import os
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.support import ROOT
from tests.support.users import PASSWORD, create_superuser

ARTIFACTS = ROOT / 'test-artifacts'
DOCS_SCREENSHOTS = 'MODELQUEUE_DOCS_SCREENSHOTS'  # a folder that also receives every screenshot
CHROMIUM = Path('/usr/bin/chromium')
CHROMEDRIVER = Path('/usr/bin/chromedriver')
WAIT_SECONDS = 20  # for a page to change


def browser_missing(reason):
    """Skip a browser test, or fail it where CI requires the browser."""
    if os.environ.get('MODELQUEUE_REQUIRE_BROWSER'):
        pytest.fail(f'browser tests are required here, but {reason}')
    pytest.skip(f'{reason} (install Debian chromium and chromium-driver)')


def start_chromium(profile):
    """Start a headless Chromium with its profile in the folder `profile`."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            browser_missing(f'{path} is not installed')
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
        f'--user-data-dir={profile}',
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    return driver


def screenshot_folders():
    """Where screenshots go: test-artifacts/, and the folder named by
    MODELQUEUE_DOCS_SCREENSHOTS when it is set (the documentation's images:
    ``MODELQUEUE_DOCS_SCREENSHOTS=docs/_static/screenshots ./runtests -m browser``
    refreshes them)."""
    folders = [ARTIFACTS]
    if os.environ.get(DOCS_SCREENSHOTS):
        folders.append(Path(os.environ[DOCS_SCREENSHOTS]))
    return folders


def for_live_server(driver, live_server):
    """Clear `driver`'s cookies and give it go(), login() and screenshot(); return it.

    ``go(path)`` opens a path of the live server; ``login(username, password)``
    signs in through the admin's login form; ``screenshot(name)`` saves
    test-artifacts/<name>.png, of the window or, given `element`, of that
    element alone, and the same in the folder of MODELQUEUE_DOCS_SCREENSHOTS
    when it is set.
    """
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
        WebDriverWait(driver, 30).until(gone(submit))

    def screenshot(name, element=None):
        png = driver.get_screenshot_as_png() if element is None else element.screenshot_as_png
        for folder in screenshot_folders():
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f'{name}.png').write_bytes(png)
        return ARTIFACTS / f'{name}.png'

    driver.go = go
    driver.login = login
    driver.screenshot = screenshot
    return driver


def gone(element):
    """A wait condition: `element` no longer belongs to the page (the page
    was replaced). Selenium's ``staleness_of`` knows only the
    StaleElementReferenceException; a Chromium asked about a node in the
    middle of the navigation that removes it can answer instead with an
    "unhandled inspector error" saying that the node does not belong to the
    document, which means the same."""

    def replaced(_driver):
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if 'does not belong to the document' in str(error) or 'No node with given id' in str(error):
                return True
            raise
        return False

    return replaced


def log_in(browser):
    """Create a superuser and sign `browser` in as them, through the login form.

    Returns once the admin shows the user's tools.
    """
    user = create_superuser(password=PASSWORD)
    browser.login(user.username, PASSWORD)
    WebDriverWait(browser, WAIT_SECONDS).until(  # shown only once logged in
        expected_conditions.presence_of_element_located((By.ID, 'user-tools'))
    )


def chart_data(browser, field, chart):
    """The datasets' data of the dashboard chart `chart` of the queue `field`."""
    return browser.execute_script(
        'const section = Array.from(document.querySelectorAll(".modelqueue-queue"))'
        '.find((s) => s.dataset.field === arguments[0]);'
        'const canvas = section.querySelector(`canvas[data-chart="${arguments[1]}"]`);'
        'return Chart.getChart(canvas).data.datasets.map((d) => d.data);',
        field,
        chart,
    )


def text_of(browser, selector):
    """The shown text of the first element that matches `selector`, read in one
    script call: a panel that refreshes itself replaces its elements, so a
    WebElement found first and read later may be stale by then."""
    return browser.execute_script(
        'const element = document.querySelector(arguments[0]);'
        'return element === null ? null : element.innerText;',
        selector,
    )
