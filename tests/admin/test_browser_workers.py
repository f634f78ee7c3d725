"""The Workers panel's buttons in headless Chromium: Quiet on a live worker,
Rescue now on a lost one, each through its confirmation page."""

import datetime as dt

import pytest
from django.contrib.contenttypes.models import ContentType
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from modelqueue import State, Status, now
from modelqueue.models import FailureRecord, WorkerHeartbeat
from tests.support.browser import WAIT_SECONDS, log_in
from tests.testapp.models import Task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def click(browser, selector):
    WebDriverWait(browser, WAIT_SECONDS).until(
        expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, selector))
    ).click()


def heartbeat(host, seen_ago, interval, held=()):
    current = now()
    return WorkerHeartbeat.objects.create(
        host=host,
        pid=100,
        content_type=ContentType.objects.get_for_model(Task),
        field='status',
        started=current - dt.timedelta(hours=2),
        last_seen=current - dt.timedelta(seconds=seen_ago),
        interval=interval,
        held=[[str(pk), str(status)] for pk, status in held],
    )


def message(browser):
    return WebDriverWait(browser, WAIT_SECONDS).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, 'ul.messagelist li'))
    ).text


def test_an_operator_quiets_a_live_worker_and_rescues_a_lost_ones_rows(browser):
    task = Task.objects.create(data='held')
    claimed = Status.working(now() - dt.timedelta(minutes=30), 0)
    Task.objects.filter(pk=task.pk).update(status=claimed)
    heartbeat('web-1', seen_ago=1, interval=3600)  # live for the whole test
    heartbeat('web-2', seen_ago=3600, interval=5, held=[(task.pk, int(claimed))])
    log_in(browser)
    browser.go('/admin/testapp/task/dashboard/')

    click(browser, '[data-worker="web-1:100"] .modelqueue-quiet-button')
    WebDriverWait(browser, WAIT_SECONDS).until(lambda driver: '/quiet/' in driver.current_url)
    assert 'Quiet the worker web-1:100' in browser.find_element(By.ID, 'content-main').text
    click(browser, '#content-main input[type="submit"]')
    assert 'Told the worker web-1:100 on the queue status of tasks to quiet' in message(browser)
    assert WorkerHeartbeat.objects.get(host='web-1').command == 'quiet'

    click(browser, '[data-worker="web-2:100"] .modelqueue-rescue-button')
    WebDriverWait(browser, WAIT_SECONDS).until(lambda driver: '/rescue/' in driver.current_url)
    assert 'Rescue the rows of the lost worker web-2:100' in browser.find_element(By.ID, 'content-main').text
    browser.screenshot('rescue-confirmation')
    click(browser, '#content-main input[type="submit"]')
    assert message(browser) == 'Rescued 1 row of the lost worker web-2:100 on the queue status of tasks.'
    assert Status(Task.objects.get(pk=task.pk).status).state == State.waiting
    assert FailureRecord.objects.get().exception == FailureRecord.WORKER_LOST
    # The worker reports quiet at its next beat; the panel says so.
    WorkerHeartbeat.objects.filter(host='web-1').update(quiet=True)
    browser.go('/admin/testapp/task/dashboard/')
    state = WebDriverWait(browser, WAIT_SECONDS).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, '[data-worker="web-1:100"] [data-state]'))
    )
    assert state.get_attribute('data-state') == 'quiet' and state.text.lower() == 'quiet'  # badges are upper case
    panel = browser.find_element(By.CSS_SELECTOR, '[data-panel="workers"]')
    browser.screenshot('workers-quiet', element=panel)
