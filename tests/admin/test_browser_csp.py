"""The dashboard in headless Chromium under a strict Content-Security-Policy.

Issue 3 promises a dashboard that works offline and with no inline script.
Here the pages are served with tests.support.csp.POLICY: the charts must still draw
the database's figures, the JSON refresh must still update them, and the
browser must report no violation. Each page ends with a deliberately blocked
inline script (the canary): its report proves that reporting works and that
every earlier report has had its chance to arrive.
"""

import collections
import datetime as dt
import urllib.request

import pytest
from django.contrib import admin
from django.core.handlers.wsgi import WSGIHandler
from django.test.testcases import _MediaFilesHandler
from django.urls import reverse
from selenium.webdriver.support.ui import WebDriverWait

import modelqueue
from modelqueue import Status
from tests.support import csp
from tests.support.browser import WAIT_SECONDS, chart_data, log_in
from tests.testapp.models import Task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]
STATES = ['created', 'waiting', 'working', 'finished', 'canceled']
CANARY = 'window.modelqueueCspCanary = true;'


@pytest.fixture
def strict_csp(settings, live_server, chromium_driver):
    """Serve every page of the live server with tests.support.csp.POLICY.

    The live server built its handlers, and their middleware chains, when it
    started: changing MIDDLEWARE alone reaches only the test client. So the
    server gets handlers built as LiveServerThread.run() builds them, from
    the changed settings, and its own back afterwards.
    """
    chromium_driver.get('about:blank')  # no page of an earlier test keeps polling
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, 'tests.support.csp.StrictContentSecurityPolicy']
    server = live_server.thread.httpd
    started_with = server.get_app()
    server.set_app(live_server.thread.static_handler(_MediaFilesHandler(WSGIHandler())))
    csp.reports.clear()
    yield
    server.set_app(started_with)
    csp.reports.clear()


def is_canary(report):
    return CANARY in report.get('script-sample', '')


def describe(report):
    return (
        f"{report.get('violated-directive')} blocked {report.get('blocked-uri')!r}"
        f" on {report.get('document-uri')} ({report.get('source-file', '')}"
        f":{report.get('line-number', '')}) {report.get('script-sample', '')!r}"
    )


def assert_no_violations(browser):
    """Fail, naming each one, if the browser reported a violation since the last call.

    Injects an inline script, which the policy must block, and waits until
    its report has arrived: reports of earlier violations were sent first.
    """
    browser.execute_script(
        'const script = document.createElement("script");'
        'script.textContent = arguments[0];'
        'document.head.appendChild(script);',
        CANARY,
    )
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: any(is_canary(report) for report in csp.reports),
        message=f'no report of the blocked canary script within {WAIT_SECONDS}s',
    )
    assert browser.execute_script('return window.modelqueueCspCanary') is None
    found = [describe(report) for report in csp.reports if not is_canary(report)]
    csp.reports.clear()
    assert not found, 'the policy blocked:\n' + '\n'.join(found)


def tally_in_database():
    counts = collections.Counter(Status(task.status).state.name for task in Task.objects.all())
    return [counts[name] for name in STATES]


def foreign_resources(browser, live_server):
    names = browser.execute_script(
        'return [location.href].concat('
        'performance.getEntriesByType("resource").map((entry) => entry.name));'
    )
    return [name for name in names if not name.startswith(live_server.url + '/')]


def test_dashboard_works_under_a_strict_policy(browser, live_server, strict_csp, client, monkeypatch):
    assert client.get('/admin/login/')['Content-Security-Policy'] == csp.POLICY
    with urllib.request.urlopen(live_server.url + '/admin/login/', timeout=WAIT_SECONDS) as response:
        assert response.headers['Content-Security-Policy'] == csp.POLICY

    monkeypatch.setattr(admin.site._registry[Task], 'queue_refresh_seconds', 1)
    current = modelqueue.now()
    for number in range(3):
        Task.objects.create(data=f'due {number}', status=Status.waiting(current - dt.timedelta(minutes=1)))
    Task.objects.create(data='tomorrow', status=Status.waiting(current + dt.timedelta(days=1)))
    Task.objects.create(data='busy', status=Status.working(current - dt.timedelta(seconds=10)))
    for number in range(2):
        Task.objects.create(data=f'done {number}', status=Status.finished(current - dt.timedelta(minutes=2)))
    Task.objects.create(data='dropped', status=Status.canceled(current - dt.timedelta(minutes=3)))
    log_in(browser)
    assert_no_violations(browser)  # the admin's own login and index pages

    browser.go(reverse('admin:testapp_task_dashboard'))
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: driver.execute_script(
            'return typeof Chart !== "undefined"'
            ' && Chart.getChart(document.querySelector("canvas[data-chart=tally]")) !== undefined'
        ),
        message='the vendored Chart.js or dashboard.js did not run under the policy',
    )
    assert chart_data(browser, 'status', 'tally') == [tally_in_database()] == [[0, 4, 1, 2, 1]]
    finished, canceled, failed = chart_data(browser, 'status', 'throughput')
    assert (sum(finished), sum(canceled), sum(failed)) == (2, 1, 0)
    assert browser.find_element('css selector', '[data-figure="due"]').text == '3'
    assert foreign_resources(browser, live_server) == []
    browser.screenshot('admin-dashboard-strict-csp')

    # The refresh fetches JSON (connect-src 'self') and redraws without reload.
    browser.execute_script('window.modelqueueNoReload = true;')
    Task.objects.filter(data='due 0').update(status=Status.finished())
    expected = tally_in_database()
    assert expected == [0, 3, 1, 3, 1]
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: chart_data(driver, 'status', 'tally') == [expected]
        and driver.find_element('css selector', '[data-figure="due"]').text == '2',
        message=f'the dashboard did not show {expected} within {WAIT_SECONDS}s',
    )
    assert browser.execute_script('return window.modelqueueNoReload === true')
    assert_no_violations(browser)

    browser.go(reverse('admin:modelqueue_overview'))
    row = browser.find_element('css selector', 'tr[data-queue="tasks:status"]')
    cells = [cell.text for cell in row.find_elements('css selector', 'td.modelqueue-count')]
    assert cells[: len(STATES)] == [str(count) for count in expected]
    assert foreign_resources(browser, live_server) == []
    assert_no_violations(browser)
