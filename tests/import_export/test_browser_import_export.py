"""An operator exports last night's canceled tasks, fixes the file, imports it back."""

import csv
import datetime as dt

import pytest
import pytz
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from modelqueue import State, Status
from tests.support.browser import log_in
from tests.support.waits import wait_until
from tests.testapp.models import Task

pytestmark = pytest.mark.browser

WHEN = dt.datetime(2018, 1, 2, 3, 4, 56, 789000, tzinfo=pytz.utc)
TIMEOUT = 30


def downloaded(directory, pattern):
    """The finished downloads in `directory` matching `pattern`: none while
    Chromium still writes one (a ``.crdownload`` file; it also reserves the
    final name with an empty file from the start)."""
    if any(directory.glob('*.crdownload')):
        return []
    return [p for p in directory.glob(pattern) if p.stat().st_size > 0]


@pytest.mark.django_db(transaction=True)
def test_export_filtered_then_import_with_confirmation(browser, tmp_path):
    canceled = [
        Task.objects.create(data=f'failed {n}', status=Status.canceled(WHEN, 3))
        for n in range(2)
    ]
    finished = Task.objects.create(data='done', status=Status.finished(WHEN, 1))
    downloads = tmp_path / 'downloads'
    downloads.mkdir()
    browser.execute_cdp_cmd(
        'Browser.setDownloadBehavior',
        {'behavior': 'allow', 'downloadPath': str(downloads)},
    )
    wait = WebDriverWait(browser, TIMEOUT)

    log_in(browser)
    browser.go('/ie-admin/testapp/task/?status_queue=canceled')
    browser.find_element(By.CLASS_NAME, 'export_link').click()
    wait.until(lambda driver: driver.find_elements(By.NAME, 'format'))
    Select(browser.find_element(By.NAME, 'format')).select_by_visible_text('csv')
    browser.find_element(By.CSS_SELECTOR, '#content input.default[type=submit]').click()
    exported = wait_until(
        lambda: downloaded(downloads, '*.csv'), TIMEOUT, 'the CSV file to download'
    )[0]

    with exported.open(encoding='utf-8-sig', newline='') as file:
        rows = list(csv.DictReader(file))
    assert sorted((row['data'], row['status_state']) for row in rows) == [
        ('failed 0', 'canceled'),
        ('failed 1', 'canceled'),
    ]
    assert {row['status'] for row in rows} == {str(Status.canceled(WHEN, 3))}

    # Fix the file: requeue as waiting, due now, attempts back to zero.
    for row in rows:
        row.update(
            status='', status_state='waiting', status_when='', status_attempts='0'
        )
    fixed = tmp_path / 'fixed.csv'
    with fixed.open('w', newline='') as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    browser.go('/ie-admin/testapp/task/')
    browser.find_element(By.CLASS_NAME, 'import_link').click()
    wait.until(lambda driver: driver.find_elements(By.NAME, 'import_file'))
    browser.find_element(By.NAME, 'import_file').send_keys(str(fixed))
    Select(browser.find_element(By.NAME, 'format')).select_by_visible_text('csv')
    # Canceled rows sent back to waiting run again: the operator says so.
    browser.find_element(By.NAME, 'allow_rerun').click()
    browser.find_element(By.CSS_SELECTOR, '#content input.default[type=submit]').click()

    confirm = wait.until(lambda driver: driver.find_elements(By.NAME, 'confirm'))
    preview = browser.find_element(By.ID, 'content').text.lower()
    assert 'status_state' in preview  # the decoded columns, old and new values
    assert 'canceledwaiting' in preview.replace(' ', '')
    browser.screenshot('import-export-preview')
    assert all(Status(t.status).state == State.canceled for t in _reloaded(canceled))

    confirm[0].click()
    wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, '.messagelist'))
    messages = browser.find_element(By.CSS_SELECTOR, '.messagelist').text
    assert 'Import finished' in messages
    for task in _reloaded(canceled):
        assert Status(task.status).state == State.waiting
        assert Status(task.status).attempts == 0
    assert Task.objects.get(pk=finished.pk).status == Status.finished(WHEN, 1)


def _reloaded(tasks):
    return [Task.objects.get(pk=task.pk) for task in tasks]
