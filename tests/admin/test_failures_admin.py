"""Failure records and worker heartbeats in the queue admin: history, column,
filter, dashboard panels, overview, read-only tables and who sees tracebacks."""

import datetime as dt
import html
import re
from unittest import mock

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from modelqueue import Abort, Cancel, Status, now, run
from modelqueue.admin import failures as admin_failures
from modelqueue.models import FailureRecord, WorkerHeartbeat
from tests.support.users import create_superuser, create_user
from tests.testapp.models import Task

pytestmark = pytest.mark.django_db

CHANGELIST = reverse('admin:testapp_task_changelist')
PAYLOAD = '<script>alert("xss")</script>'
ESCAPED = '&lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt;'


def fail(task, error, retry=3):
    Task.objects.filter(pk=task.pk).update(status=Status.waiting(now() - dt.timedelta(seconds=1), 0))
    try:
        run(Task.objects.filter(pk=task.pk), 'status', _raise(error), retry=retry)
    except Exception:  # noqa: BLE001 (an action's own exception: recorded, then re-raised)
        pass


def _raise(error):
    def action(task):
        raise error

    return action


def task_type():
    return ContentType.objects.get_for_model(Task)


def heartbeat(name, seen_ago, **fields):
    host, pid = name.split(':')
    return WorkerHeartbeat.objects.create(
        host=host, pid=int(pid), content_type=task_type(), field='status', started=now() - dt.timedelta(hours=1),
        last_seen=now() - dt.timedelta(seconds=seen_ago), interval=5, **fields,
    )


@pytest.fixture
def admin_client(client):
    client.force_login(create_superuser())
    return client


def test_the_change_form_shows_the_history_newest_first_with_the_traceback_collapsed(admin_client):
    task = Task.objects.create(data='mail')
    fail(task, ConnectionResetError('mail server closed the connection'))
    fail(task, ValueError(PAYLOAD))
    page = admin_client.get(reverse('admin:testapp_task_change', args=[task.pk])).content.decode()
    history = page[page.index('modelqueue-history-table'):]
    assert history.index('ValueError') < history.index('ConnectionResetError')
    assert '<details class="modelqueue-traceback"><summary>Traceback</summary><pre>Traceback (most recent' in history
    assert ESCAPED in history and PAYLOAD not in page
    assert 'will retry' in history and history.count('<tr data-record=') == 2


def test_a_row_without_failures_has_no_history(admin_client):
    task = Task.objects.create(data='fine')
    page = admin_client.get(reverse('admin:testapp_task_change', args=[task.pk])).content.decode()
    assert 'modelqueue-history-table' not in page


def changelist_queries(client):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(CHANGELIST)
    assert response.status_code == 200
    return len(queries), response.content.decode()


def test_the_last_error_column_costs_one_query_whatever_the_page(admin_client):
    first = Task.objects.create(data='first')
    fail(first, ValueError('first failure'))
    fail(first, KeyError('latest failure'))
    changelist_queries(admin_client)  # the first page asks once whether the failure tables exist
    few, page = changelist_queries(admin_client)
    assert 'KeyError' in page and 'latest failure' in page and 'first failure' not in page
    for number in range(30):
        task = Task.objects.create(data=f'task {number}')
        fail(task, ValueError(f'failure {number}'))
    many, page = changelist_queries(admin_client)
    assert many == few, 'the last error column must not cost a query per row'
    assert page.count('modelqueue-last-error') == 31


def test_the_filter_separates_canceled_after_failures_from_canceled_by_an_operator(admin_client):
    failed = Task.objects.create(data='failed')
    fail(failed, Cancel('no mailbox'))
    retried_then_operator = Task.objects.create(data='operator after a retry')
    fail(retried_then_operator, Abort())
    Task.objects.filter(pk=retried_then_operator.pk).update(status=Status.canceled(now(), 1))
    operator = Task.objects.create(data='operator', status=Status.canceled(now(), 0))
    Task.objects.create(data='waiting')

    def shown(value):
        response = admin_client.get(CHANGELIST, {'status_failures': value})
        return {task.data for task in response.context['cl'].result_list}

    assert shown('canceled_after_failures') == {failed.data}
    assert shown('canceled_by_operator') == {retried_then_operator.data, operator.data}
    assert shown('last_hour') == {failed.data, retried_then_operator.data}

    # Show counts: each choice counted by a query of its own, not Django's
    # generic facets (a subquery tested against every row of the queue).
    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(CHANGELIST, {'_facets': 1}).content.decode()
    section = page.split('By failures', 1)[1].split('</ul>', 1)[0]
    counts = dict(re.findall(r'status_failures=([\w:.]+)[^>]*>\s*(?:–\s*)?[^<(]+? \((\d+)\)', section))
    assert counts['canceled_after_failures'] == '1'
    assert counts['canceled_by_operator'] == '2'
    assert counts['last_hour'] == '2'
    assert not [q['sql'] for q in queries.captured_queries if 'FILTER (WHERE' in q['sql'].upper()]


def test_the_dashboard_groups_the_last_hour_by_exception_and_links_to_its_rows(admin_client):
    tasks = [Task.objects.create(data=f'mail {number}') for number in range(4)]
    for task in tasks[:3]:
        fail(task, ConnectionResetError(f'reset {task.pk}'))
    fail(tasks[3], ValueError(PAYLOAD))
    old = FailureRecord.objects.filter(exception='builtins.ValueError')
    Task.objects.create(data='never failed')
    response = admin_client.get(reverse('admin:testapp_task_dashboard'))
    (queue,) = response.context['queues']
    groups = {group['name']: group for group in queue['failure_groups']}
    assert queue['failed_last_hour'] == 4
    assert groups['ConnectionResetError']['count'] == 3
    assert groups['ConnectionResetError']['message'] == f'reset {tasks[2].pk}'
    assert list(groups) == ['ConnectionResetError', 'ValueError']
    page = response.content.decode()
    assert ESCAPED in page and PAYLOAD not in page
    link = groups['ConnectionResetError']['url']
    assert f'href="{link}"' in page
    listed = admin_client.get(link).context['cl'].result_list
    assert {task.pk for task in listed} == {task.pk for task in tasks[:3]}
    assert sum(queue['throughput']['failed']) == 4
    response = admin_client.get(reverse('admin:testapp_task_dashboard_data'))
    assert '<' not in response.content.decode()  # messages come as escaped HTML, not in the JSON
    old.update(ended=now() - dt.timedelta(hours=2))
    data = admin_client.get(reverse('admin:testapp_task_dashboard_data')).json()
    assert data['queues'][0]['failed_last_hour'] == 3
    assert sum(data['queues'][0]['throughput']['failed']) == 3


def test_the_workers_panel_marks_lost_workers_and_names_who_held_a_stalled_row(admin_client):
    stalled = Task.objects.create(data='stalled', status=Status.working(now() - dt.timedelta(hours=3), 0))
    heartbeat('web-1:100', seen_ago=2, tasks_done=7, failures=1)
    heartbeat('web-2:200', seen_ago=16, object_id=str(stalled.pk), held_since=now() - dt.timedelta(hours=3))
    response = admin_client.get(reverse('admin:testapp_task_dashboard_activity'))
    page = response.content.decode()
    assert 'Workers: 1 live, 1 lost' in page
    live = re.search(r'<tr data-worker="web-1:100">.*?</tr>', page, re.S).group()
    lost = re.search(r'<tr data-worker="web-2:200" class="modelqueue-lost">.*?</tr>', page, re.S).group()
    assert '>live<' in live and '>7<' in live and '>lost<' in lost
    row = re.search(rf'<tr data-stalled="{stalled.pk}">.*?</tr>', page, re.S).group()
    assert 'web-2:200 (lost)' in row
    assert reverse('admin:testapp_task_change', args=[stalled.pk]) in row


def test_the_overview_shows_failures_and_live_workers_per_queue(admin_client):
    task = Task.objects.create(data='mail')
    fail(task, ValueError('x'))
    fail(task, ValueError('y'))
    heartbeat('web-1:100', seen_ago=1)
    page = admin_client.get(reverse('admin:modelqueue_overview')).content.decode()
    row = re.search(r'<tr data-queue="tasks:status">.*?</tr>', page, re.S).group()
    assert re.search(r'data-column="failed_last_hour">2<', row)
    assert re.search(r'data-column="workers">1<', row)


def test_the_record_tables_are_read_only(admin_client):
    task = Task.objects.create(data='mail')
    fail(task, ValueError('x'))
    record = FailureRecord.objects.get()
    beat = heartbeat('web-1:100', seen_ago=1)
    for model, obj in (('failurerecord', record), ('workerheartbeat', beat)):
        assert admin_client.get(reverse(f'admin:modelqueue_{model}_changelist')).status_code == 200
        assert admin_client.get(reverse(f'admin:modelqueue_{model}_add')).status_code == 403
        delete = reverse(f'admin:modelqueue_{model}_delete', args=[obj.pk])
        assert admin_client.post(delete, {'post': 'yes'}).status_code == 403
        page = admin_client.get(reverse(f'admin:modelqueue_{model}_change', args=[obj.pk])).content.decode()
        assert 'name="_save"' not in page
    assert FailureRecord.objects.count() == 1 and WorkerHeartbeat.objects.count() == 1
    listing = admin_client.get(reverse('admin:modelqueue_failurerecord_changelist')).content.decode()
    assert f'href="{reverse("admin:testapp_task_change", args=[task.pk])}"' in listing


def test_tracebacks_only_for_staff_who_may_view_the_queue_model(client):
    task = Task.objects.create(data='mail')
    fail(task, ValueError('secret token 1234'))
    record = FailureRecord.objects.get()
    client.force_login(create_user('auditor', 'view_failurerecord'))
    listing = client.get(reverse('admin:modelqueue_failurerecord_changelist'))
    assert listing.status_code == 200 and 'secret token' not in listing.content.decode()
    assert client.get(reverse('admin:modelqueue_failurerecord_change', args=[record.pk])).status_code == 302
    client.force_login(create_user('operator', 'view_failurerecord', 'view_task'))
    page = client.get(reverse('admin:modelqueue_failurerecord_change', args=[record.pk])).content.decode()
    assert 'secret token 1234' in page and 'Traceback (most recent call last)' in page


def test_the_pages_work_before_the_tables_are_migrated(admin_client):
    task = Task.objects.create(data='mail')
    admin_failures._available.clear()
    try:
        with mock.patch.object(FailureRecord._meta, 'db_table', 'modelqueue_not_migrated'):
            for url in (
                CHANGELIST,
                CHANGELIST + '?status_failures=canceled_by_operator',
                reverse('admin:testapp_task_change', args=[task.pk]),
                reverse('admin:testapp_task_dashboard'),
                reverse('admin:testapp_task_dashboard_data'),
                reverse('admin:testapp_task_dashboard_activity'),
                reverse('admin:modelqueue_overview'),
            ):
                assert admin_client.get(url).status_code == 200, url
    finally:
        admin_failures._available.clear()


# Everything the queue admin shows about rows goes through its get_queryset:
# a multi-tenant admin shows nothing of the other tenants' rows.


class TheirOnlyError(Exception):
    """Raised only by the rows the operator may not see."""


@pytest.fixture
def tenant_admin(monkeypatch):
    """The task admin shows only rows whose data starts with 'mine'."""
    task_admin = admin.site._registry[Task]
    base = type(task_admin).get_queryset

    def get_queryset(request):
        return base(task_admin, request).filter(data__startswith='mine')

    monkeypatch.setattr(task_admin, 'get_queryset', get_queryset)
    return task_admin


#: The ids of the other tenant's rows: distinctive, so that none may appear.
THEIR_IDS = {'failed': 770001, 'stalled': 770002, 'held': 770003, 'canceled': 770004}
THEIR_MESSAGE = 'their secret message 5521'


def every_page(mine, record, beat):
    changelist = CHANGELIST
    return [
        changelist,
        changelist + '?_facets=1',
        *(
            f'{changelist}?status_failures={value}&_facets=1'
            for value in ('last_hour', 'canceled_after_failures', 'canceled_by_operator')
        ),
        changelist + '?status_queue=stalled&_facets=1',
        reverse('admin:testapp_task_change', args=[mine.pk]),
        reverse('admin:testapp_task_history', args=[mine.pk]),
        reverse('admin:testapp_task_dashboard'),
        reverse('admin:testapp_task_dashboard_data'),
        reverse('admin:testapp_task_dashboard_activity'),
        reverse('admin:modelqueue_overview'),
        reverse('admin:index'),
        reverse('admin:modelqueue_failurerecord_changelist'),
        reverse('admin:modelqueue_failurerecord_changelist') + '?q=secret',
        reverse('admin:modelqueue_failurerecord_change', args=[record.pk]),
        reverse('admin:modelqueue_workerheartbeat_changelist'),
        reverse('admin:modelqueue_workerheartbeat_change', args=[beat.pk]),
    ]


def test_a_tenant_sees_nothing_of_the_rows_its_admin_leaves_out(admin_client, tenant_admin):
    mine = Task.objects.create(pk=880001, data='mine')
    fail(mine, KeyError('my message'))
    theirs = {
        name: Task.objects.create(pk=pk, data=f'theirs {name}') for name, pk in THEIR_IDS.items()
    }
    fail(theirs['failed'], TheirOnlyError(THEIR_MESSAGE))
    fail(theirs['canceled'], Cancel(THEIR_MESSAGE))
    Task.objects.filter(pk=theirs['stalled'].pk).update(status=Status.working(now() - dt.timedelta(hours=3), 0))
    Task.objects.filter(pk=theirs['held'].pk).update(status=Status.working(now(), 0))
    beat = heartbeat(
        'web-1:100', seen_ago=1, object_id=str(theirs['held'].pk), held_since=now() - dt.timedelta(minutes=1)
    )
    their_record = FailureRecord.objects.filter(object_id=str(theirs['failed'].pk)).get()
    for url in every_page(mine, their_record, beat):
        response = admin_client.get(url, follow=True)
        assert response.status_code == 200, (url, response.status_code)
        page = response.content.decode()
        for shown in (THEIR_MESSAGE, 'TheirOnlyError', 'theirs ', *(str(pk) for pk in THEIR_IDS.values())):
            assert shown not in page, (url, shown)
    for pk in THEIR_IDS.values():  # their rows' pages say no more than "no such row"
        response = admin_client.get(reverse('admin:testapp_task_change', args=[pk]), follow=True)
        page = response.content.decode()
        assert f'Task with ID “{pk}” doesn’t exist' in page
        assert THEIR_MESSAGE not in page and 'modelqueue-history' not in page
    # The figures count only the tenant's own rows and failures.
    data = admin_client.get(reverse('admin:testapp_task_dashboard_data')).json()
    (queue,) = data['queues']
    assert (queue['failed_last_hour'], sum(queue['throughput']['failed'])) == (1, 1)
    assert (queue['stalled'], queue['tally']['working']) == (0, 0)
    page = admin_client.get(CHANGELIST, {'_facets': 1}).content.decode()
    section = page.split('By failures', 1)[1].split('</ul>', 1)[0]
    counts = dict(re.findall(r'status_failures=([\w:.]+)[^>]*>\s*(?:–\s*)?[^<(]+? \((\d+)\)', section))
    assert (counts['last_hour'], counts['canceled_after_failures']) == ('1', '0'), counts
    overview = admin_client.get(reverse('admin:modelqueue_overview')).content.decode()
    assert re.search(r'data-column="failed_last_hour">1<', overview)
    # The tenant's own row is shown, so the checks above can fail.
    activity = admin_client.get(reverse('admin:testapp_task_dashboard_activity')).content.decode()
    assert 'my message' in activity and 'web-1:100' in activity
    change = admin_client.get(reverse('admin:testapp_task_change', args=[mine.pk])).content.decode()
    assert 'my message' in change
    records = admin_client.get(reverse('admin:modelqueue_failurerecord_changelist')).content.decode()
    assert 'my message' in records


# Row ids past 2**31 (BigAutoField, the default): every page of the queue.


def test_every_page_works_for_a_row_whose_id_is_past_2_to_the_31(admin_client):
    task = Task.objects.create(pk=3_000_000_000, data='big id')
    fail(task, ValueError('big failure'))
    fail(task, Cancel('big cancel'), retry=0)
    Task.objects.create(data='operator canceled', status=Status.canceled(now(), 0))
    heartbeat('web-1:100', seen_ago=1, object_id=str(task.pk), held_since=now())
    error = 'error:builtins.ValueError'
    for query in (
        {},
        {'_facets': 1},
        {'status_failures': 'last_hour', '_facets': 1},
        {'status_failures': 'canceled_after_failures', '_facets': 1},
        {'status_failures': 'canceled_by_operator', '_facets': 1},
        {'status_failures': error, '_facets': 1},
        {'status_queue': 'canceled', '_facets': 1},
    ):
        response = admin_client.get(CHANGELIST, query)
        assert response.status_code == 200, query
        if query.get('status_failures') in ('last_hour', 'canceled_after_failures', error):
            assert [row.pk for row in response.context['cl'].result_list] == [task.pk], query
    for url in (
        reverse('admin:testapp_task_change', args=[task.pk]),
        reverse('admin:testapp_task_history', args=[task.pk]),
        reverse('admin:testapp_task_dashboard'),
        reverse('admin:testapp_task_dashboard_data'),
        reverse('admin:testapp_task_dashboard_activity'),
        reverse('admin:modelqueue_overview'),
        reverse('admin:modelqueue_failurerecord_changelist'),
        reverse('admin:modelqueue_workerheartbeat_changelist'),
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert '3000000000' in response.content.decode() or url.endswith(('/data/', '/queues/')), url


# The dashboard's link to an exception class's rows, whatever the class's name.


def test_the_dashboard_links_the_rows_of_an_exception_class_whose_name_needs_encoding(admin_client):
    class Odd(Exception):
        pass

    Odd.__qualname__ += '&status_failures=last_hour#x+y%20z'  # <locals>, &, =, #, +, %
    task = Task.objects.create(data='odd')
    Task.objects.create(data='failed otherwise')
    fail(Task.objects.get(data='failed otherwise'), ValueError('other'))
    fail(task, Odd('odd one'))
    path = FailureRecord.objects.get(object_id=str(task.pk)).exception
    assert '<locals>' in path and '&' in path
    for url in (reverse('admin:testapp_task_dashboard'), reverse('admin:testapp_task_dashboard_activity')):
        page = admin_client.get(url).content.decode()
        assert '<locals>' not in page and '&status_failures' not in page, url  # escaped
        row = r'<tr data-exception="[^"]*&lt;locals&gt;[^"]*">\s*<th scope="row"><a href="([^"]*)"'
        (link,) = re.findall(row, page)
        listed = admin_client.get(html.unescape(link)).context['cl'].result_list
        assert [row.pk for row in listed] == [task.pk], (url, link)
    # The changelist's filter offers the class too, and its link works.
    page = admin_client.get(CHANGELIST).content.decode()
    section = page.split('By failures', 1)[1].split('</ul>', 1)[0]
    links = [html.unescape(href) for href in re.findall(r'href="([^"]*)"', section) if 'error%3A' in href]
    chosen = [admin_client.get(CHANGELIST + link).context['cl'].result_list for link in links]
    assert [task.pk] in [[row.pk for row in rows] for rows in chosen], links
