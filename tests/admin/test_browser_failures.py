"""Failures and workers in headless Chromium: the dashboard panel refreshes, and
"why did this fail?" is two clicks from the dashboard's panel to the history."""

import datetime as dt

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from modelqueue import Status, now, run
from modelqueue.models import WorkerHeartbeat
from tests.support.browser import WAIT_SECONDS, chart_data, log_in, text_of
from tests.testapp.models import Task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def fail(task, error):
    Task.objects.filter(pk=task.pk).update(status=Status.waiting(now() - dt.timedelta(seconds=1), 0))

    def action(row):
        raise error

    try:
        run(Task.objects.filter(pk=task.pk), 'status', action)
    except Exception:  # noqa: BLE001 (the action's own exception, re-raised after it was recorded)
        pass


def test_failure_panel_refreshes_and_leads_to_the_history(browser, monkeypatch):
    monkeypatch.setattr(admin.site._registry[Task], 'queue_refresh_seconds', 1)
    mails = [Task.objects.create(data=f'mail to user{number}@example.com') for number in range(3)]
    for mail in mails:
        fail(mail, ConnectionResetError('mail server closed the connection'))
    fail(mails[0], ValueError('no MX record for example.com <check DNS>'))
    WorkerHeartbeat.objects.create(
        host='mail-1', pid=4242, content_type=ContentType.objects.get_for_model(Task), field='status',
        started=now() - dt.timedelta(minutes=30), last_seen=now(), interval=5, tasks_done=118, failures=4,
        object_id=str(mails[1].pk), held_since=now(),
    )
    log_in(browser)
    browser.go('/admin/testapp/task/dashboard/')
    # The panels refresh every second: their text is read in one call each.
    panel = text_of(browser, '[data-panel="failures"]')
    assert 'ConnectionResetError' in panel and 'no MX record for example.com <check DNS>' in panel

    fail(mails[2], KeyError('template "welcome" is missing'))  # after the page was drawn
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: 'KeyError' in (text_of(driver, '[data-panel="failures"]') or '')
    )
    finished, canceled, failed = chart_data(browser, 'status', 'throughput')
    assert sum(failed) == 5
    workers = text_of(browser, '[data-panel="workers"]')
    assert 'mail-1:4242' in workers and 'Workers: 1 live, 0 lost' in workers
    activity = browser.find_element(By.CSS_SELECTOR, '[data-activity="status"]')
    browser.execute_script('arguments[0].scrollIntoView()', activity)
    browser.screenshot('failures-panel', element=activity)
    browser.screenshot('failures-dashboard')

    # Click 1: the group's link, the changelist filtered to its rows.
    browser.find_element(By.LINK_TEXT, 'ValueError').click()
    WebDriverWait(browser, WAIT_SECONDS).until(lambda driver: 'status_failures=error' in driver.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, '#result_list tbody tr')
    assert len(rows) == 1 and 'no MX record' in rows[0].text
    # Click 2: the row, whose change form shows why, newest first.
    rows[0].find_element(By.CSS_SELECTOR, 'th a, td a').click()
    history = WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: driver.find_elements(By.CSS_SELECTOR, '.modelqueue-history-table')
    )[0]
    records = history.find_elements(By.CSS_SELECTOR, 'tbody tr')
    assert [record.find_element(By.TAG_NAME, 'code').text for record in records] == [
        'ValueError', 'ConnectionResetError'
    ]
    traceback = records[0].find_element(By.CSS_SELECTOR, 'details pre')
    assert not traceback.is_displayed()
    records[0].find_element(By.CSS_SELECTOR, 'details summary').click()
    assert traceback.is_displayed() and 'ValueError: no MX record' in traceback.text
    browser.execute_script('arguments[0].scrollIntoView()', history)
    browser.screenshot('failures-history', element=history)
