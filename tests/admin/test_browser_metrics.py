"""The metrics page for Prometheus, as a browser shows it (the docs' screenshot)."""

import datetime as dt

import pytest
from selenium.webdriver.common.by import By

from modelqueue import Status, now
from tests.support.browser import log_in
from tests.testapp.models import Task

pytestmark = pytest.mark.browser


@pytest.mark.django_db(transaction=True)
def test_the_metrics_page_shows_each_queue_s_figures_as_text(browser):
    current = now()
    statuses = [
        *[Status.waiting(current - dt.timedelta(minutes=3))] * 3,
        Status.waiting(current + dt.timedelta(hours=1)),
        Status.working(current),
        *[Status.finished(current)] * 5,
        Status.canceled(current),
    ]
    Task.objects.bulk_create(Task(data='shown', status=status) for status in statuses)
    log_in(browser)
    browser.go('/admin/queues/metrics/')
    text = browser.find_element(By.TAG_NAME, 'body').text
    assert 'modelqueue_rows{queue="testapp.Task.status",state="waiting"} 4.0' in text
    assert 'modelqueue_due_rows{queue="testapp.Task.status"} 3.0' in text
    assert 'modelqueue_finished_total{queue="testapp.Task.status"} 5.0' in text
    assert '# TYPE modelqueue_oldest_due_age_seconds gauge' in text
    browser.set_window_size(1000, 900)
    browser.screenshot('admin-metrics')
