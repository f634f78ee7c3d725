"""Retry all failed rows matching the changelist's filters (issue 25, item 5):
the link, its confirmation page, the retry in chunks, its fences, its
permission checks, its history, and the Tasks admin's unique keys. The race
with a worker mid-action: tests/admin/test_operator_races.py."""

import datetime as dt

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from modelqueue import State, Status, now
from modelqueue.admin import retry_failed
from modelqueue.tasks import enqueue_unique
from modelqueue.tasks.models import QueuedTask
from tests.support.admin import CHANGELIST, messages_of
from tests.support.users import create_user
from tests.testapp import tasks
from tests.testapp.models import Task, Upload

pytestmark = pytest.mark.django_db

URL = reverse('admin:testapp_task_queue_retry_failed', args=['status'])
TASKS_CHANGELIST = '/admin/modelqueue/queuedtask/'
TASKS_URL = reverse('admin:modelqueue_queuedtask_queue_retry_failed', args=['status'])


def ago(**delta):
    return now() - dt.timedelta(**delta)


def make(data, status):
    return Task.objects.create(data=data, status=status)


def status_of(row):
    return Status(type(row).objects.get(pk=row.pk).status)


@pytest.fixture
def rows():
    """Failed rows that match ?q=alpha, one that does not, and alpha rows in other states."""
    return {
        'alpha 1': make('alpha 1', Status.canceled(ago(minutes=5), 3)),
        'alpha 2': make('alpha 2', Status.canceled(ago(minutes=4), 1)),
        'beta': make('beta', Status.canceled(ago(minutes=3), 2)),
        'alpha waiting': make('alpha waiting', Status.waiting(ago(minutes=1), 1)),
        'alpha finished': make('alpha finished', Status.finished(ago(minutes=2), 1)),
    }


def confirm(client, query='q=alpha', url=URL):
    """The confirmation page of `query`, and the POST of its form; returns both."""
    page = client.get(f'{url}?{query}')
    assert page.status_code == 200
    return page, client.post(f'{url}?{query}', {'seen': page.context['seen']}, follow=True)


def test_the_changelist_links_to_the_retry_with_its_filters(superuser_client, rows):
    page = superuser_client.get(CHANGELIST, {'q': 'alpha', 'status_queue': 'canceled'}).content.decode()
    assert f'href="{URL}?q=alpha&amp;status_queue=canceled"' in page
    assert 'Retry all failed matching these filters</a>' in page
    # The whole filtered set, not the page the operator was on.
    page = superuser_client.get(CHANGELIST, {'q': 'alpha', 'p': '1'}).content.decode()
    assert f'href="{URL}?q=alpha"' in page


def test_a_model_with_two_queue_fields_gets_a_link_per_field_naming_it(superuser_client):
    page = superuser_client.get('/admin/testapp/upload/').content.decode()
    for field in ('scan_status', 'publish_status'):
        url = reverse('admin:testapp_upload_queue_retry_failed', args=[field])
        label = Upload._meta.get_field(field).verbose_name
        link = f'href="{url}" class="modelqueue-retry-failed-link">'
        assert f'{link}Retry all failed matching these filters ({label})</a>' in page


def test_without_the_change_permission_no_link_and_the_page_and_the_retry_are_refused(client, rows):
    client.force_login(create_user('viewer', 'view_task'))
    assert 'retry-failed' not in client.get(CHANGELIST).content.decode()
    assert client.get(URL).status_code == 403
    seen = Status.maximum(State.canceled)
    assert client.post(URL, {'seen': seen}).status_code == 403
    assert status_of(rows['alpha 1']).state == State.canceled


def test_the_confirmation_counts_the_failed_rows_matching_the_filters_and_changes_nothing(superuser_client, rows):
    page = superuser_client.get(URL, {'q': 'alpha'})
    assert page.context['count'] == 2
    assert page.context['seen'] == int(status_of(rows['alpha 2']))  # the highest of the two
    assert 'modelqueue-retry-failed-count">2</strong>' in page.content.decode()
    assert all(status_of(row).state == Status(row.status).state for row in rows.values())
    assert superuser_client.get(URL, {'q': 'nothing'}).context['seen'] is None  # nothing to retry


def test_confirming_retries_exactly_the_failed_rows_matching_the_filters_and_logs_it(superuser_client, rows):
    _page, response = confirm(superuser_client)
    assert response.redirect_chain[-1][0] == f'{CHANGELIST}?q=alpha'
    assert messages_of(response) == ['Retried 2 tasks (status), previously 2 canceled.']
    for name in ('alpha 1', 'alpha 2'):
        assert status_of(rows[name]).parse()[0::2] == (State.waiting, 0), name
    for name in ('beta', 'alpha waiting', 'alpha finished'):
        assert status_of(rows[name]) == Status(rows[name].status), name
    entry = LogEntry.objects.get()
    assert (entry.object_id, entry.change_message) == (None, 'Retried 2 tasks (status), previously 2 canceled.')


def test_a_row_that_failed_after_the_page_was_shown_is_not_retried(superuser_client, rows):
    page = superuser_client.get(URL, {'q': 'alpha'})
    later = make('alpha later', Status.canceled(now() + dt.timedelta(seconds=1), 1))
    response = superuser_client.post(f'{URL}?q=alpha', {'seen': page.context['seen']}, follow=True)
    assert messages_of(response) == ['Retried 2 tasks (status), previously 2 canceled.']
    assert status_of(later).state == State.canceled


@pytest.mark.parametrize('seen', ['', 'abc', str(Status.waiting()), '9' * 30])
def test_a_seen_status_that_is_not_a_failed_row_s_is_refused_naming_it(superuser_client, rows, seen):
    response = superuser_client.post(f'{URL}?q=alpha', {'seen': seen}, follow=True)
    assert messages_of(response) == [
        f'Nothing was retried: invalid seen {seen!r}: expected the status of a canceled row'
        ' (from the confirmation page).'
    ]
    assert status_of(rows['alpha 1']).state == State.canceled
    assert not LogEntry.objects.exists()


@pytest.mark.parametrize(
    ('query', 'found'),
    [
        ('bogus=1', "Cannot resolve keyword 'bogus' into field"),
        ('status_queue=lost', "unknown state 'lost'"),
    ],
)
def test_filters_the_changelist_refuses_are_named_and_nothing_is_retried(superuser_client, rows, query, found):
    response = superuser_client.post(f'{URL}?{query}', {'seen': Status.maximum(State.canceled)}, follow=True)
    [message] = messages_of(response)
    assert message.startswith(f"Nothing was retried: the filters '{query}' are not valid (") and found in message
    assert all(status_of(row) == Status(row.status) for row in rows.values())


def test_a_row_the_model_admin_refuses_refuses_the_whole_retry(superuser_client, rows, monkeypatch):
    task_admin = admin.site._registry[Task]

    def has_change_permission(request, obj=None):
        return obj is None or not obj.data.endswith('2')

    monkeypatch.setattr(type(task_admin), 'has_change_permission', staticmethod(has_change_permission))
    _page, response = confirm(superuser_client)
    [message] = messages_of(response)
    assert 'Nothing was changed: you may not change 1 of the selected task' in message and 'alpha 2' in message
    assert status_of(rows['alpha 1']).state == State.canceled


def test_the_retry_writes_in_chunks_of_keys_each_read_past_the_last(superuser_client, monkeypatch):
    monkeypatch.setattr(retry_failed, 'CHUNK_ROWS', 3)
    failed = [make(f'alpha {n}', Status.canceled(ago(minutes=10 - n), 1)) for n in range(8)]
    page = superuser_client.get(URL, {'q': 'alpha'})
    with CaptureQueriesContext(connection) as queries:
        response = superuser_client.post(f'{URL}?q=alpha', {'seen': page.context['seen']}, follow=True)
    assert messages_of(response) == ['Retried 8 tasks (status), previously 8 canceled.']
    assert all(status_of(row).state == State.waiting for row in failed)
    updates = [query['sql'] for query in queries.captured_queries if query['sql'].startswith('UPDATE')]
    assert len(updates) == 3  # 3 + 3 + 2 rows
    # Each chunk's keys are read by one query limited to a chunk.
    reads = [q['sql'] for q in queries.captured_queries if 'LIMIT 3' in q['sql'] and q['sql'].startswith('SELECT')]
    assert len(reads) == 4  # the last one finds none
    # Each read past the last row starts the status index's range at its
    # status (an OR alone would read every row before it again: O(n²) at 10 M).
    lower = [read.count('"status" >=') + read.count('`status` >=') for read in reads]
    assert lower[1:] == [lower[0] + 1] * 3, reads


def test_past_its_time_the_retry_stops_after_a_chunk_says_so_and_a_second_one_goes_on(superuser_client, monkeypatch):
    monkeypatch.setattr(retry_failed, 'CHUNK_ROWS', 3)
    monkeypatch.setattr(retry_failed, 'SECONDS', 0)
    failed = [make(f'alpha {n}', Status.canceled(ago(minutes=10 - n), 1)) for n in range(5)]
    _page, response = confirm(superuser_client)
    assert messages_of(response) == [
        'Retried 3 tasks (status), previously 3 canceled.',
        'Stopped after 0 seconds, so that the page answers: the other failed tasks are not retried yet.'
        ' Retry all failed again to go on.',
    ]
    assert [status_of(row).state for row in failed] == [State.waiting] * 3 + [State.canceled] * 2
    _page, response = confirm(superuser_client)
    assert messages_of(response) == ['Retried 2 tasks (status), previously 2 canceled.']  # the last chunk is short
    assert all(status_of(row).state == State.waiting for row in failed)
    assert LogEntry.objects.count() == 2


def test_on_the_tasks_changelist_a_task_whose_key_is_held_is_left_and_named_escaped(superuser_client):
    held = enqueue_unique(tasks.add, '<i>report</i>', 1, 2)
    QueuedTask.objects.filter(pk=held.id).update(status=Status.canceled(ago(minutes=2), 1))
    holder = enqueue_unique(tasks.add, '<i>report</i>', 3, 4)
    plain = tasks.add.enqueue(5, 6)
    QueuedTask.objects.filter(pk=plain.id).update(status=Status.canceled(ago(minutes=1), 1))
    page = superuser_client.get(TASKS_CHANGELIST).content.decode()
    link = f'href="{TASKS_URL}" class="modelqueue-retry-failed-link">'
    assert f'{link}Retry all failed matching these filters</a>' in page
    _page, response = confirm(superuser_client, 'task_path=tests.testapp.tasks.add', TASKS_URL)
    assert messages_of(response) == [
        'Retried 1 task (status), previously 1 canceled.',
        f"Left 1 task as they were (status): task {held.id} (its unique key '<i>report</i>' is held by the"
        f' READY or RUNNING task {holder.id}).',
    ]
    assert '&lt;i&gt;report&lt;/i&gt;' in response.content.decode()
    assert '<i>report</i>' not in response.content.decode()
    assert Status(QueuedTask.objects.get(pk=held.id).status).state == State.canceled
    assert Status(QueuedTask.objects.get(pk=plain.id).status).state == State.waiting


def test_a_row_claimed_between_a_chunk_s_read_and_its_write_is_left_to_its_worker(
    superuser_client, rows, monkeypatch
):
    # The model admin's hook runs between the two: a worker's claim there
    # (the row made working) must fence the row off the UPDATE.
    claimed = rows['alpha 1']

    def claim_first(using, pks):
        assert claimed.pk in pks  # read as failed
        Task.objects.filter(pk=claimed.pk).update(status=Status.working(now(), 4))
        return {}

    task_admin = admin.site._registry[Task]
    monkeypatch.setattr(task_admin, 'queue_rows_to_leave', lambda field, operation: claim_first)
    _page, response = confirm(superuser_client)
    assert messages_of(response) == ['Retried 1 task (status), previously 1 canceled.']
    assert status_of(claimed).state == State.working
    assert status_of(rows['alpha 2']).state == State.waiting


def test_the_retry_needs_a_login_the_csrf_token_and_the_model_s_own_permission(client, rows):
    assert client.get(URL).url.startswith(reverse('admin:login'))
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(create_user('operator', 'view_task', 'change_task'))
    seen = csrf_client.get(URL, {'q': 'alpha'}).context['seen']
    assert csrf_client.post(f'{URL}?q=alpha', {'seen': seen}).status_code == 403
    assert status_of(rows['alpha 1']).state == State.canceled
    # With the token the same request goes through, so the check above can fail.
    token = csrf_client.cookies['csrftoken'].value
    assert csrf_client.post(f'{URL}?q=alpha', {'seen': seen, 'csrfmiddlewaretoken': token}).status_code == 302
    assert status_of(rows['alpha 1']).state == State.waiting
    # Changing tasks gives nothing of uploads.
    upload_url = reverse('admin:testapp_upload_queue_retry_failed', args=['scan_status'])
    assert csrf_client.get(upload_url).status_code == 403
    assert csrf_client.get(reverse('admin:testapp_task_queue_retry_failed', args=['data'])).status_code == 404
