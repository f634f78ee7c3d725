"""QueueAdminMixin through Django's test client: columns, filter, actions, pages."""

import datetime as dt
import html
import json
import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.test.utils import CaptureQueriesContext

import modelqueue
from modelqueue import State, Status
from modelqueue.admin import QueueAdminMixin, QueueAdminSite
from tests.support.admin import post_action
from tests.support.users import create_user
from tests.testapp.models import Task, Upload

pytestmark = pytest.mark.django_db

CHANGELIST = '/admin/testapp/task/'
DASHBOARD = '/admin/testapp/task/dashboard/'
DATA = '/admin/testapp/task/dashboard/data/'
OVERVIEW = '/admin/queues/'


@pytest.fixture
def viewer_client(client):
    client.force_login(create_user('viewer', 'view_task'))
    return client


def ago(**delta):
    return modelqueue.now() - dt.timedelta(**delta)


def make(data, status):
    return Task.objects.create(data=data, status=status)


def state_of(task):
    return Status(Task.objects.get(pk=task.pk).status).state


def texts(response):
    return [str(message) for message in response.context['messages']]


# The mixin merges with what the subclass declares.


def test_mixin_keeps_declared_columns_filters_and_actions(rf):
    request = rf.get(CHANGELIST)
    request.user = User(is_superuser=True, is_staff=True, is_active=True)
    task_admin = admin.site._registry[Task]
    assert task_admin.get_list_display(request) == [
        'id', 'data', 'note', 'queue_status_state', 'queue_status_when', 'queue_status_attempts',
        'queue_status_last_error',
    ]
    state_filter, failure_filter = task_admin.get_list_filter(request)
    assert state_filter.parameter_name == 'status_queue'
    assert failure_filter.parameter_name == 'status_failures'
    assert 'due' in dict(state_filter.lookups(state_filter, request, task_admin))
    actions = task_admin.get_actions(request)
    assert 'make_status_state_waiting' in actions  # declared: modelqueue 2.2.1's actions
    assert {'requeue_status', 'cancel_status', 'reprioritize_status', 'reset_status_attempts'} <= set(actions)


def test_two_queue_fields_get_columns_filters_and_actions_each(rf):
    request = rf.get('/admin/testapp/upload/')
    request.user = User(is_superuser=True, is_staff=True, is_active=True)
    upload_admin = admin.site._registry[Upload]
    columns = upload_admin.get_list_display(request)
    assert columns[:2] == ['id', 'name']
    assert 'queue_scan_status_state' in columns and 'queue_publish_status_when' in columns
    parameters = [f.parameter_name for f in upload_admin.get_list_filter(request)]
    assert parameters == [
        'scan_status_queue', 'scan_status_failures', 'publish_status_queue', 'publish_status_failures'
    ]
    actions = upload_admin.get_actions(request)
    assert {'requeue_scan_status', 'cancel_publish_status'} <= set(actions)
    entry = actions['requeue_scan_status']  # an Action from Django 6.1, a tuple before
    description = entry.description if hasattr(entry, 'description') else entry[2]
    assert 'scan status' in str(description)


@pytest.mark.parametrize(
    ('fields', 'check_id', 'message'),
    [
        (['missing'], 'modelqueue.E002', "names 'missing', but testapp.Task has no such field"),
        (['data'], 'modelqueue.E003', "names 'data', but it is a TextField"),
        ('status', 'modelqueue.E001', 'expected a non-empty list'),
        ([], 'modelqueue.E001', 'expected a non-empty list'),
    ],
)
def test_misconfigured_queue_fields_are_reported_by_system_checks(fields, check_id, message):
    class BadAdmin(QueueAdminMixin, admin.ModelAdmin):
        queue_fields = fields

    bad = BadAdmin(Task, QueueAdminSite(name='bad'))  # loads: the checks speak
    errors = [error for error in bad.check() if error.id.startswith('modelqueue.')]
    assert [error.id for error in errors] == [check_id]
    assert message in errors[0].msg
    assert errors[0].obj is BadAdmin


def test_a_queue_admin_on_a_plain_site_is_warned_about_the_missing_overview():
    class PlainSiteAdmin(QueueAdminMixin, admin.ModelAdmin):
        pass

    plain = PlainSiteAdmin(Task, admin.AdminSite(name='plain'))
    assert [error.id for error in plain.check()] == ['modelqueue.W001']
    assert PlainSiteAdmin(Task, QueueAdminSite(name='queues')).check() == []


def test_manage_py_check_reports_a_misconfigured_queue_admin():
    class BadAdmin(QueueAdminMixin, admin.ModelAdmin):
        queue_fields = ['missing']

    site = QueueAdminSite(name='checked')
    site.register(Task, BadAdmin)
    with pytest.raises(SystemCheckError, match=r'modelqueue\.E002'):
        call_command('check')
    site.unregister(Task)


def test_queue_actions_follow_the_declared_ones_and_actions_none_turns_all_off(rf):
    class TaskAdmin(QueueAdminMixin, admin.ModelAdmin):
        actions = ['delete_selected']

    request = rf.get('/')
    request.user = User.objects.create(username='root', is_staff=True, is_superuser=True)
    names = list(TaskAdmin(Task, QueueAdminSite(name='one')).get_actions(request))
    assert names == [
        'delete_selected',
        'requeue_status',
        'cancel_status',
        'reprioritize_status',
        'reset_status_attempts',
    ]

    class NoActionsAdmin(QueueAdminMixin, admin.ModelAdmin):
        actions = None

    assert NoActionsAdmin(Task, QueueAdminSite(name='two')).get_actions(request) == {}


# Columns, filter and forms.


def test_changelist_shows_decoded_columns_and_escapes_data(superuser_client):
    make('<script>alert("x")</script>', Status.waiting(ago(minutes=3), 2))
    make('first', Status.waiting(12))
    response = superuser_client.get(CHANGELIST)
    content = response.content.decode()
    assert '<script>alert' not in content
    assert '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;' in content
    assert 'class="modelqueue-badge modelqueue-waiting"' in content
    assert re.search(r'title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC">3\xa0minutes ago', content)
    assert 'priority 12' in content
    assert '<td class="field-queue_status_attempts">2</td>' in content
    assert 'href="/admin/testapp/task/dashboard/"' in content


def test_state_column_sorts_by_the_raw_status(superuser_client):
    make('finished', Status.finished(ago(minutes=1)))
    make('waiting', Status.waiting(ago(minutes=1)))
    make('created', Status.created(ago(minutes=1)))
    response = superuser_client.get(CHANGELIST + '?o=4')  # the state column
    shown = [task.data for task in response.context['cl'].result_list]
    assert shown == ['created', 'waiting', 'finished']


@pytest.mark.parametrize(
    ('value', 'expected'),
    [
        ('waiting', {'due', 'later', 'integer'}),
        ('due', {'due', 'integer'}),
        ('scheduled', {'later'}),
        ('working', {'busy', 'stuck'}),
        ('stalled', {'stuck'}),
        ('finished', {'done'}),
        ('canceled', set()),
    ],
)
def test_state_filter(superuser_client, value, expected):
    make('due', Status.waiting(ago(minutes=1)))
    make('integer', Status.waiting(5))
    make('later', Status.waiting(ago(minutes=-30)))
    make('busy', Status.working(ago(minutes=5)))
    make('stuck', Status.working(ago(hours=2)))
    make('done', Status.finished(ago(minutes=1)))
    response = superuser_client.get(CHANGELIST, {'status_queue': value})
    assert {task.data for task in response.context['cl'].result_list} == expected


def test_unknown_filter_value_is_not_a_server_error(superuser_client):
    response = superuser_client.get(CHANGELIST, {'status_queue': '<paused>'})
    assert response.status_code == 302 and response.url.endswith('?e=1')


def test_change_form_shows_the_status_decoded_and_add_form_starts_waiting(superuser_client):
    task = make('one', Status.working(ago(minutes=2), 3))
    content = superuser_client.get(f'{CHANGELIST}{task.pk}/change/').content.decode()
    assert 'modelqueue-badge modelqueue-working' in content and '3 attempts' in content
    add_form = superuser_client.get(CHANGELIST + 'add/').context['adminform'].form
    assert Status(add_form['status'].value()).state == State.waiting
    upload_form = superuser_client.get('/admin/testapp/upload/add/').context['adminform'].form
    assert Status(upload_form['scan_status'].value()).state == State.waiting
    assert Status(upload_form['publish_status'].value()).state == State.created  # model default


def test_change_form_rejects_a_value_that_is_not_a_status(superuser_client):
    task = make('one', Status.waiting(ago(minutes=2)))
    response = superuser_client.post(
        f'{CHANGELIST}{task.pk}/change/', {'data': 'one', 'note': '', 'status': '6000000000000000000'}
    )
    assert response.status_code == 200
    assert 'invalid status 6000000000000000000' in response.content.decode()
    assert state_of(task) == State.waiting


# Bulk actions.


def test_requeue_is_one_update_and_reports_previous_states(superuser_client):
    tasks = [
        make('a', Status.finished(ago(minutes=1), 3)),
        make('b', Status.canceled(ago(minutes=1), 9)),
        make('c', Status.canceled(ago(minutes=1))),
    ]
    with CaptureQueriesContext(connection) as captured:
        response = post_action(superuser_client, 'requeue_status', tasks, follow=False)
    updates = [q['sql'] for q in captured if q['sql'].lstrip().upper().startswith('UPDATE')]
    assert len(updates) == 1
    response = superuser_client.get(response.url)
    assert 'Requeued 3 tasks (status), previously 1 finished, 2 canceled.' in texts(response)
    for task in tasks:
        status = Status(Task.objects.get(pk=task.pk).status)
        assert (status.state, status.attempts) == (State.waiting, 0)
        assert status.priority <= Status.waiting().priority


def test_select_across_applies_to_every_filtered_row(superuser_client):
    for number in range(5):
        make(f'done {number}', Status.finished(ago(minutes=number)))
    make('waiting', Status.waiting(ago(minutes=1), 4))
    visible = Task.objects.filter(data='done 0')
    response = post_action(
        superuser_client, 'reset_status_attempts', visible,
        url=CHANGELIST + '?status_queue=finished', select_across=1,
    )
    assert 'Reset the attempts of 5 tasks (status), previously 5 finished.' in texts(response)
    assert Status(Task.objects.get(data='waiting').status).attempts == 4


def test_cancel_shows_a_confirmation_with_counts_and_changes_nothing_yet(superuser_client):
    tasks = [
        make('w1', Status.waiting(ago(minutes=1))),
        make('w2', Status.waiting(ago(minutes=1))),
        make('busy', Status.working(ago(minutes=1))),
        make('done', Status.finished(ago(minutes=1))),
    ]
    response = post_action(superuser_client, 'cancel_status', tasks, follow=False)
    assert response.status_code == 200
    assert response.templates[0].name == 'modelqueue/cancel_confirmation.html'
    rows = {row['name']: (row['count'], row['changes']) for row in response.context['tally']}
    assert rows['waiting'] == (2, True) and rows['working'] == (1, True)
    assert rows['finished'] == (1, False)
    assert response.context['changing'] == 3
    assert all(state_of(task) != State.canceled for task in tasks)

    response = post_action(superuser_client, 'cancel_status', tasks, post='yes')
    assert 'Canceled 3 tasks (status), previously 2 waiting, 1 working.' in texts(response)
    assert 'Left as they were (status): 1 finished.' in texts(response)
    assert [state_of(task) for task in tasks] == [State.canceled] * 3 + [State.finished]
    canceled = Status(Task.objects.get(pk=tasks[0].pk).status)
    assert abs(canceled.parse()[1] - modelqueue.now()) < dt.timedelta(minutes=1)


def test_reprioritize_form_then_integer_priority(superuser_client):
    tasks = [make('w', Status.waiting(ago(days=1), 2)), make('done', Status.finished(ago(minutes=1)))]
    response = post_action(superuser_client, 'reprioritize_status', tasks, follow=False)
    assert response.templates[0].name == 'modelqueue/reprioritize.html'
    response = post_action(
        superuser_client, 'reprioritize_status', tasks,
        apply='1', **{'reprioritize-when': 'integer', 'reprioritize-priority': '42'},
    )
    assert 'Reprioritized 1 task (status), previously 1 waiting.' in texts(response)
    assert Status(Task.objects.get(data='w').status) == Status.waiting(42, 2)
    assert state_of(tasks[1]) == State.finished


def test_reprioritize_at_a_date_time_and_now(superuser_client):
    task = make('w', Status.created(5, 1))
    post_action(
        superuser_client, 'reprioritize_status', [task],
        apply='1', **{'reprioritize-when': 'at', 'reprioritize-at': '2031-02-03 04:05:06'},
    )
    assert Status(Task.objects.get(pk=task.pk).status) == Status.created(
        dt.datetime(2031, 2, 3, 4, 5, 6), 1
    )
    post_action(superuser_client, 'reprioritize_status', [task], apply='1', **{'reprioritize-when': 'now'})
    _state, priority, _attempts = Status(Task.objects.get(pk=task.pk).status).parse()
    assert abs(priority - modelqueue.now()) < dt.timedelta(minutes=1)


@pytest.mark.parametrize(
    ('data', 'error'),
    [
        ({'reprioritize-when': 'integer', 'reprioritize-priority': '123456789012345678'},
         '123456789012345678 is too large: expected an integer from 0 through 9999999999999'),
        ({'reprioritize-when': 'integer', 'reprioritize-priority': '-1'},
         '-1 is negative: expected an integer from 0 through'),
        ({'reprioritize-when': 'integer', 'reprioritize-priority': '9' * 5000}, 'Enter a whole number.'),
        ({'reprioritize-when': 'integer'}, 'Enter an integer priority.'),
        ({'reprioritize-when': 'at', 'reprioritize-at': '10000-01-01 00:00'}, 'Enter a valid date/time.'),
        ({'reprioritize-when': 'at', 'reprioritize-at': '0000-12-31 00:00'}, 'Enter a valid date/time.'),
        ({'reprioritize-when': 'at'}, 'Enter the date and time to run at.'),
        ({'reprioritize-when': 'soon'}, 'Select a valid choice.'),
    ],
)
def test_reprioritize_bad_input_shows_form_errors_and_changes_nothing(superuser_client, data, error):
    task = make('w', Status.waiting(ago(minutes=1)))
    before = Task.objects.get(pk=task.pk).status
    response = post_action(superuser_client, 'reprioritize_status', [task], follow=False, apply='1', **data)
    assert response.status_code == 200
    assert error in html.unescape(response.content.decode())
    assert Task.objects.get(pk=task.pk).status == before


def test_view_only_user_sees_columns_and_dashboard_but_no_actions(viewer_client):
    task = make('w', Status.finished(ago(minutes=1)))
    response = viewer_client.get(CHANGELIST)
    assert response.status_code == 200
    assert 'modelqueue-badge' in response.content.decode()
    assert 'requeue_status' not in response.content.decode()
    response = post_action(viewer_client, 'requeue_status', [task])
    assert state_of(task) == State.finished
    assert viewer_client.get(DASHBOARD).status_code == 200
    assert viewer_client.get(DATA).status_code == 200
    content = viewer_client.get(f'{CHANGELIST}{task.pk}/change/').content.decode()
    assert 'modelqueue-row-action' not in content
    response = viewer_client.post(f'{CHANGELIST}{task.pk}/queue/status/requeue/')
    assert response.status_code == 403
    assert state_of(task) == State.finished


# Change form buttons.


def test_row_buttons_requeue_and_cancel_one_row(superuser_client):
    task = make('one', Status.finished(ago(minutes=1), 4))
    other = make('two', Status.finished(ago(minutes=1)))
    change = f'{CHANGELIST}{task.pk}/change/'
    content = superuser_client.get(change).content.decode()
    assert f'action="{CHANGELIST}{task.pk}/queue/status/requeue/"' in content
    response = superuser_client.post(f'{CHANGELIST}{task.pk}/queue/status/requeue/', follow=True)
    assert response.redirect_chain[-1][0] == change
    assert 'Requeued 1 task (status), previously 1 finished.' in texts(response)
    assert Status(Task.objects.get(pk=task.pk).status).attempts == 0
    assert state_of(other) == State.finished
    superuser_client.post(f'{CHANGELIST}{task.pk}/queue/status/cancel/')
    assert state_of(task) == State.canceled


@pytest.mark.parametrize(
    ('method', 'path', 'status_code'),
    [
        ('get', '{pk}/queue/status/requeue/', 405),
        ('post', '{pk}/queue/note/requeue/', 404),
        ('post', '{pk}/queue/status/delete/', 404),
        ('post', '999999/queue/status/cancel/', 404),
        ('post', 'abc/queue/status/cancel/', 404),
    ],
)
def test_row_buttons_reject_bad_requests(superuser_client, method, path, status_code):
    task = make('one', Status.waiting(ago(minutes=1)))
    response = getattr(superuser_client, method)(CHANGELIST + path.format(pk=task.pk))
    assert response.status_code == status_code
    assert state_of(task) == State.waiting


def test_row_buttons_need_csrf(superuser_client):
    task = make('one', Status.waiting(ago(minutes=1)))
    superuser_client.handler.enforce_csrf_checks = True
    response = superuser_client.post(f'{CHANGELIST}{task.pk}/queue/status/cancel/')
    assert response.status_code == 403
    assert state_of(task) == State.waiting


# Dashboard, its JSON and the overview.


def test_dashboard_page_passes_data_by_json_script_without_inline_script(superuser_client):
    make('w', Status.waiting(ago(minutes=2)))
    response = superuser_client.get(DASHBOARD)
    assert response.status_code == 200
    content = response.content.decode()
    scripts = re.findall(r'<script\b[^>]*>', content)
    for tag in scripts:
        assert 'src=' in tag or 'type="application/json"' in tag, tag
    assert any('modelqueue/vendor/chart.umd.min.js' in tag for tag in scripts)
    assert any('modelqueue/dashboard.js' in tag for tag in scripts)
    assert not re.search(r'\son[a-z]+=', content)  # no inline event handlers
    match = re.search(
        r'<script id="modelqueue-dashboard-config" type="application/json">(.*?)</script>', content, re.S
    )
    config = json.loads(match.group(1))
    assert config['dataUrl'] == DATA
    (queue,) = config['queues']
    assert queue['tally']['waiting'] == 1 and queue['due'] == 1
    assert queue['filter_urls']['finished'] == CHANGELIST + '?status_queue=finished'


def test_dashboard_data_is_json_and_ignores_hostile_parameters(superuser_client):
    make('w', Status.waiting(ago(minutes=2)))
    make('done', Status.finished(ago(seconds=1)))
    for query in ('', '?field=<script>', '?timeout=-1&o=%00&status_queue=x', '?' + 'a=1&' * 500):
        response = superuser_client.get(DATA + query)
        assert response.status_code == 200
        assert response['Content-Type'] == 'application/json'
        (queue,) = response.json()['queues']
        assert queue['due'] == 1 and queue['finished_last_hour'] == 1
    assert superuser_client.post(DATA).status_code == 405


def test_upload_dashboard_has_both_queues(superuser_client):
    Upload.objects.create(name='u')
    response = superuser_client.get('/admin/testapp/upload/dashboard/data/')
    fields = [queue['field'] for queue in response.json()['queues']]
    assert fields == ['scan_status', 'publish_status']
    assert response.json()['queues'][1]['tally']['created'] == 1


@pytest.mark.parametrize('url', [DASHBOARD, DATA, OVERVIEW])
def test_pages_need_a_staff_login(client, url):
    response = client.get(url)
    assert response.status_code == 302 and '/admin/login/' in response.url


@pytest.mark.parametrize('url', [DASHBOARD, DATA, OVERVIEW])
def test_pages_need_the_view_permission(client, url):
    client.force_login(create_user('nobody'))
    assert client.get(url).status_code == 403


def test_overview_and_index_list_the_queues_the_user_may_view(client):
    client.force_login(create_user('tasks-only', 'view_task'))
    make('w', Status.waiting(ago(minutes=2)))
    index = client.get('/admin/').content.decode()
    assert f'href="{OVERVIEW}"' in index and f'href="{DASHBOARD}"' in index
    assert '/admin/testapp/upload/dashboard/' not in index
    response = client.get(OVERVIEW)
    assert [model['name'] for model in response.context['models']] == ['tasks']
    assert response.context['models'][0]['queues'][0]['due'] == 1


def test_index_has_no_queue_links_without_permission(client):
    client.force_login(create_user('nobody'))
    assert 'modelqueue-queues' not in client.get('/admin/').content.decode()


def test_superuser_overview_lists_every_queue(superuser_client):
    content = superuser_client.get(OVERVIEW).content.decode()
    assert 'data-queue="tasks:status"' in content
    assert 'data-queue="uploads:scan_status"' in content
    assert 'data-queue="uploads:publish_status"' in content


def test_cancel_confirmation_keeps_select_across_and_the_filter(superuser_client):
    waiting = [make(f'w{number}', Status.waiting(ago(minutes=number))) for number in range(4)]
    busy = make('busy', Status.working(ago(minutes=1)))
    url = CHANGELIST + '?status_queue=waiting'
    response = post_action(superuser_client, 'cancel_status', waiting[:1], url=url, follow=False, select_across=1)
    assert response.context['changing'] == 4
    content = response.content.decode()
    assert '<input type="hidden" name="select_across" value="1">' in content
    assert '<form method="post">' in content  # posts back to this URL, filter included
    response = post_action(
        superuser_client, 'cancel_status', waiting[:1], url=url, select_across=1, post='yes'
    )
    assert 'Canceled 4 tasks (status), previously 4 waiting.' in texts(response)
    assert [state_of(task) for task in waiting] == [State.canceled] * 4
    assert state_of(busy) == State.working


def test_a_value_that_is_not_a_status_shows_as_it_is(superuser_client):
    task = make('odd', 0)
    content = superuser_client.get(CHANGELIST).content.decode()
    assert '<span class="modelqueue-invalid" title="not a valid status">0</span>' in content
    assert superuser_client.get(f'{CHANGELIST}{task.pk}/change/').status_code == 200
    assert superuser_client.get(DATA).status_code == 200
