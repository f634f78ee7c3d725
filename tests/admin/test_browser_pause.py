"""Pausing a queue in headless Chromium: the dashboard's Pause button, its
confirmation, the banner on the dashboard and the changelist, and Resume."""

import pytest
from django.utils.timezone import localtime
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

import modelqueue
from modelqueue.models import QueuePause
from tests.support.browser import WAIT_SECONDS, log_in
from tests.testapp.models import Task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def click(browser, selector):
    WebDriverWait(browser, WAIT_SECONDS).until(
        expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, selector))
    ).click()


def banner(browser):
    return WebDriverWait(browser, WAIT_SECONDS).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, '[data-paused="status"]'))
    )


def test_an_operator_pauses_a_queue_sees_the_banner_and_resumes_it(browser):
    Task.objects.bulk_create(Task(data=f'mail {number}') for number in range(5))
    log_in(browser)
    browser.go('/admin/testapp/task/dashboard/')
    click(browser, '[data-pause-controls="status"] .modelqueue-pause-button')
    WebDriverWait(browser, WAIT_SECONDS).until(lambda driver: '/pause/status/' in driver.current_url)
    assert 'Pause the queue status of tasks?' in browser.find_element(By.ID, 'content-main').text
    browser.screenshot('pause-confirmation')
    click(browser, '#content-main input[type="submit"]')

    paused = banner(browser)
    assert '/dashboard/' in browser.current_url
    pause = QueuePause.objects.get()
    assert paused.text.startswith(f"Paused since {localtime(pause.paused_at):%H:%M} by admin")
    section = browser.find_element(By.CSS_SELECTOR, '.modelqueue-queue[data-field="status"]')
    browser.screenshot('pause-banner', element=section)
    browser.go('/admin/testapp/task/')
    assert banner(browser).text.startswith('Paused since')
    browser.screenshot('pause-changelist')

    browser.go('/admin/testapp/task/dashboard/')
    click(browser, '[data-paused="status"] .modelqueue-resume-button')
    click(browser, '#content-main input[type="submit"]')
    click(browser, '[data-pause-controls="status"] .modelqueue-pause-button')  # back, running
    assert not modelqueue.is_paused(Task, 'status')
