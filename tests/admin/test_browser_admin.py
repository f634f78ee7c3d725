"""The operations admin in real headless Chromium: filter, actions, dashboard."""

import datetime as dt
import json

import pytest
from django.contrib import admin
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

import modelqueue
from modelqueue import State, Status
from tests.support.browser import WAIT_SECONDS, chart_data, gone, log_in
from tests.support.processes import json_report
from tests.testapp.models import Task, Upload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def states():
    return {task.data: Status(task.status).state.name for task in Task.objects.all()}


def messages(browser):
    return [item.text for item in browser.find_elements(By.CSS_SELECTOR, 'ul.messagelist li')]


def select_rows(browser, names):
    for row in browser.find_elements(By.CSS_SELECTOR, '#result_list tbody tr'):
        if row.find_element(By.CSS_SELECTOR, 'td.field-data').text in names:
            row.find_element(By.CSS_SELECTOR, 'input.action-select').click()


def submit(browser, button):
    """Click `button` and wait until the next page has replaced this one."""
    page = browser.find_element(By.TAG_NAME, 'html')
    button.click()
    WebDriverWait(browser, WAIT_SECONDS).until(gone(page))
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: driver.execute_script('return document.readyState') == 'complete'
    )


def run_action(browser, name):
    Select(browser.find_element(By.NAME, 'action')).select_by_value(name)
    submit(browser, browser.find_element(By.CSS_SELECTOR, 'button[name="index"]'))


def test_filter_requeue_cancel_and_reprioritize(browser):
    current = modelqueue.now()
    Task.objects.create(data='due one', status=Status.waiting(current - dt.timedelta(minutes=5)))
    Task.objects.create(data='due two', status=Status.waiting(current - dt.timedelta(minutes=1)))
    Task.objects.create(data='later', status=Status.waiting(current + dt.timedelta(hours=2)))
    Task.objects.create(data='stuck', status=Status.working(current - dt.timedelta(hours=3)))
    Task.objects.create(data='done', status=Status.finished(current - dt.timedelta(minutes=2)))
    Task.objects.create(data='<script>document.title="owned"</script>')
    log_in(browser)
    browser.screenshot('admin-index')
    submit(browser, browser.find_element(By.CSS_SELECTOR, '#modelqueue-queues caption a'))
    assert browser.current_url.endswith('/admin/queues/')
    stalled = browser.find_element(By.CSS_SELECTOR, 'tr[data-queue="tasks:status"] td.modelqueue-alert')
    assert stalled.text == '1'
    browser.screenshot('admin-overview')
    Upload.objects.create(name='scan me')
    browser.go('/admin/testapp/upload/dashboard/')
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: driver.execute_script('return typeof Chart !== "undefined"')
    )
    assert chart_data(browser, 'publish_status', 'tally') == [[1, 0, 0, 0, 0]]
    browser.screenshot('admin-dashboard-two-queues')
    browser.go(f'/admin/testapp/task/{Task.objects.get(data="stuck").pk}/change/')
    browser.screenshot('admin-change-form')

    browser.go('/admin/testapp/task/')
    browser.screenshot('admin-changelist')
    assert browser.title != 'owned'
    assert '<script>' in browser.find_element(By.ID, 'result_list').text

    submit(browser, browser.find_element(By.LINK_TEXT, '– stalled'))
    assert 'status_queue=stalled' in browser.current_url
    rows = browser.find_elements(By.CSS_SELECTOR, '#result_list td.field-data')
    assert [row.text for row in rows] == ['stuck']

    browser.go('/admin/testapp/task/?status_queue=due')
    shown = sorted(row.text for row in browser.find_elements(By.CSS_SELECTOR, '#result_list td.field-data'))
    assert shown == ['<script>document.title="owned"</script>', 'due one', 'due two']

    browser.go('/admin/testapp/task/')
    select_rows(browser, {'stuck', 'done'})
    run_action(browser, 'requeue_status')
    assert any('Requeued 2 tasks' in text for text in messages(browser))
    assert states()['stuck'] == states()['done'] == 'waiting'

    select_rows(browser, {'due one', 'done'})
    run_action(browser, 'cancel_status')
    table = browser.find_element(By.CSS_SELECTOR, 'table.modelqueue-tally-table')
    assert 'waiting' in table.text.lower() and '2' in table.text
    assert states()['due one'] == 'waiting'  # nothing changes before confirming
    browser.screenshot('admin-cancel-confirmation')
    submit(browser, browser.find_element(By.CSS_SELECTOR, 'input[type="submit"][value="Yes, cancel them"]'))
    assert any('Canceled 2 tasks' in text for text in messages(browser))
    assert states()['due one'] == states()['done'] == 'canceled'

    select_rows(browser, {'later'})
    run_action(browser, 'reprioritize_status')
    browser.find_element(By.CSS_SELECTOR, 'input[name="reprioritize-when"][value="integer"]').click()
    browser.find_element(By.NAME, 'reprioritize-priority').send_keys('123456789012345678')
    submit(browser, browser.find_element(By.NAME, 'apply'))
    errors = browser.find_element(By.CSS_SELECTOR, '.field-priority .errorlist').text
    assert '9999999999999' in errors
    browser.screenshot('admin-reprioritize-error')
    field = browser.find_element(By.NAME, 'reprioritize-priority')
    field.clear()
    field.send_keys('7')
    submit(browser, browser.find_element(By.NAME, 'apply'))
    assert any('Reprioritized 1 task' in text for text in messages(browser))
    status = Status(Task.objects.get(data='later').status)
    assert (status.state, status.priority) == (State.waiting, 7)


@pytest.mark.processes
def test_dashboard_follows_a_worker_without_reload(browser, spawn, monkeypatch):
    monkeypatch.setattr(admin.site._registry[Task], 'queue_refresh_seconds', 1)
    current = modelqueue.now()
    for number in range(6):
        Task.objects.create(data=f'job {number}', status=Status.waiting(current - dt.timedelta(seconds=30)))
    Task.objects.create(data='tomorrow', status=Status.waiting(current + dt.timedelta(days=1)))
    log_in(browser)

    browser.go('/admin/testapp/task/')
    submit(browser, browser.find_element(By.CSS_SELECTOR, 'a.modelqueue-dashboard-link'))
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: driver.execute_script('return typeof Chart !== "undefined"')
    )
    (tally,) = chart_data(browser, 'status', 'tally')
    assert tally == [0, 7, 0, 0, 0]
    figure = browser.find_element(By.CSS_SELECTOR, '[data-figure="due"]')
    assert figure.text == '6'
    config = json.loads(browser.find_element(By.ID, 'modelqueue-dashboard-config').get_attribute('textContent'))
    assert config['queues'][0]['scheduled'] == 1
    browser.screenshot('admin-dashboard-before')
    browser.execute_script('window.modelqueueNoReload = true;')

    worker = spawn('-m', 'tests.support.queue_worker', 'tests.testapp.actions.record')
    report, _ = json_report(worker)
    assert report['processed'] == 6

    try:
        WebDriverWait(browser, WAIT_SECONDS).until(
            lambda driver: chart_data(driver, 'status', 'tally')[0] == [0, 1, 0, 6, 0]
        )
    except TimeoutException:
        line = browser.find_element(By.CSS_SELECTOR, '[data-refresh-status]').text
        pytest.fail(
            f'the chart still shows {chart_data(browser, "status", "tally")} after'
            f' {WAIT_SECONDS}s ({line!r}); the database has {states()}'
        )
    finished, canceled, failed = chart_data(browser, 'status', 'throughput')
    assert sum(finished) == 6 and sum(canceled) == 0 and sum(failed) == 0
    assert browser.find_element(By.CSS_SELECTOR, '[data-figure="due"]').text == '0'
    assert browser.find_element(By.CSS_SELECTOR, '[data-figure="finished_last_hour"]').text == '6'
    assert browser.find_element(By.CSS_SELECTOR, '[data-tally="finished"]').text == '6'
    assert not browser.find_element(By.CSS_SELECTOR, '[data-estimated-note]').is_displayed()  # nothing estimated
    assert browser.execute_script('return window.modelqueueNoReload === true')
    browser.screenshot('admin-dashboard')

    # Clicking the "finished" bar opens the changelist filtered to it.
    x, y, left, top = browser.execute_script(
        'const canvas = document.querySelector(\'canvas[data-chart="tally"]\');'
        'const bar = Chart.getChart(canvas).getDatasetMeta(0).data[3];'
        'const box = canvas.getBoundingClientRect();'
        'return [bar.x, (bar.y + bar.base) / 2, box.width / 2, box.height / 2];'
    )
    canvas = browser.find_element(By.CSS_SELECTOR, 'canvas[data-chart="tally"]')
    ActionChains(browser).move_to_element_with_offset(canvas, int(x - left), int(y - top)).click().perform()
    WebDriverWait(browser, WAIT_SECONDS).until(EC.url_contains('status_queue=finished'))
    assert len(browser.find_elements(By.CSS_SELECTOR, '#result_list tbody tr')) == 6
