"""Attacking the operations admin: permissions, CSRF, escaping, hostile input.

- Permission matrix over every page, endpoint and action of the queue admin:
  anonymous and active non-staff users go to the login page; staff without
  permission get 403; view-only staff see everything but cannot act (no
  actions offered, forged POSTs change nothing); staff with the change
  permission act.
- CSRF is enforced on every POST.
- Task data holding HTML/JS is escaped on every page and in the JSON.
- Hostile parameters get a 4xx or an admin error message, never a 500, and
  change nothing.
"""

import datetime as dt
import json

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from modelqueue import State, Status, now
from tests.support.users import create_superuser, create_user
from tests.testapp.models import Task, Upload

pytestmark = pytest.mark.django_db

CHANGELIST = 'admin:testapp_task_changelist'
PAYLOAD = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
ESCAPED = '&lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt;'


ROLES = {
    'anonymous': None,
    'active non-staff': lambda: create_user('outsider', 'view_task', 'change_task', staff=False),
    'inactive staff': lambda: create_user('former', 'view_task', 'change_task', active=False),
    'staff without permission': lambda: create_user('nobody'),
    'view-only staff': lambda: create_user('viewer', 'view_task', 'view_upload'),
    'change staff': lambda: create_user('operator', 'view_task', 'change_task'),
}
LOGIN = {'anonymous', 'active non-staff', 'inactive staff'}


def client_as(role, **kwargs):
    client = Client(**kwargs)
    if ROLES[role] is not None:
        client.force_login(ROLES[role]())
    return client


@pytest.fixture
def rows():
    """One row in each state, all holding the payload."""
    return [
        Task.objects.create(data=PAYLOAD, note=PAYLOAD, status=Status.combine(state, now(), 1))
        for state in Status.states
    ]


def statuses():
    return dict(Task.objects.values_list('pk', 'status'))


def pages(task):
    return {
        'changelist': reverse(CHANGELIST),
        'filtered changelist': reverse(CHANGELIST) + '?status_queue=waiting',
        'change form': reverse('admin:testapp_task_change', args=[task.pk]),
        'history': reverse('admin:testapp_task_history', args=[task.pk]),
        'dashboard': reverse('admin:testapp_task_dashboard'),
        'dashboard data': reverse('admin:testapp_task_dashboard_data'),
        'dashboard activity': reverse('admin:testapp_task_dashboard_activity'),
        'failures filter': reverse(CHANGELIST) + '?status_failures=canceled_by_operator',
        'overview': reverse('admin:modelqueue_overview'),
    }


def action_posts(task):
    """Every state-changing POST: (url, data). Each changes the row `task`."""
    changelist = reverse(CHANGELIST)
    selected = {'_selected_action': [task.pk], 'index': 0, 'select_across': 0}
    posts = {
        'requeue': (changelist, {**selected, 'action': 'requeue_status'}),
        'cancel': (changelist, {**selected, 'action': 'cancel_status', 'post': 'yes'}),
        'reprioritize': (
            changelist,
            {
                **selected,
                'action': 'reprioritize_status',
                'apply': '1',
                'reprioritize-when': 'integer',
                'reprioritize-priority': '7',
            },
        ),
        'reset attempts': (changelist, {**selected, 'action': 'reset_status_attempts'}),
        'legacy: state canceled': (
            changelist,
            {**selected, 'action': 'make_status_state_canceled'},
        ),
        'legacy: priority now': (changelist, {**selected, 'action': 'make_status_priority_now'}),
    }
    for operation in ('requeue', 'cancel'):
        url = reverse('admin:testapp_task_queue_row', args=[task.pk, 'status', operation])
        posts[f'row button: {operation}'] = (url, {})
    return posts


def changeable_row():
    """A waiting row with one attempt: every action above changes it."""
    return Task.objects.create(data='target', status=Status.waiting(dt.datetime(2020, 1, 1), 1))


def assert_login_redirect(response):
    assert response.status_code == 302, response.status_code
    assert response.url.startswith(reverse('admin:login')), response.url


@pytest.mark.parametrize('role', ROLES)
def test_every_page_by_role(role, rows):
    client = client_as(role)
    for name, url in pages(rows[0]).items():
        response = client.get(url)
        if role in LOGIN:
            assert_login_redirect(response)
        elif role == 'staff without permission':
            assert response.status_code == 403, name
        else:
            assert response.status_code == 200, (name, response.status_code)


ACTIONS = list(action_posts(Task(pk=1)))


@pytest.mark.parametrize('role', ROLES)
def test_every_action_by_role(role):
    client = client_as(role)
    for name in ACTIONS:
        target = changeable_row()
        url, data = action_posts(target)[name]
        before = statuses()
        response = client.post(url, data)
        if role == 'change staff':
            assert response.status_code == 302, (name, response.status_code)
            assert Task.objects.get(pk=target.pk).status != before[target.pk], name
            continue
        if role in LOGIN:
            assert_login_redirect(response)
        elif role == 'staff without permission' or 'row button' in name:
            assert response.status_code == 403, (name, response.status_code)
        else:  # view-only: the changelist ignores an action it does not offer
            assert response.status_code in (200, 403), (name, response.status_code)
        assert statuses() == before, name


def test_view_only_staff_are_offered_no_action_and_no_row_button(rows):
    client = client_as('view-only staff')
    changelist = client.get(reverse(CHANGELIST)).content.decode()
    change_form = client.get(
        reverse('admin:testapp_task_change', args=[rows[1].pk])
    ).content.decode()
    for action in ('requeue_status', 'cancel_status', 'reprioritize_status', 'make_status_'):
        assert action not in changelist
    assert 'modelqueue-row-action' not in change_form
    assert 'modelqueue-dashboard-link' in changelist  # the dashboard is for viewers too
    # The change staff see them, so the checks above can fail.
    operator = client_as('change staff')
    assert 'cancel_status' in operator.get(reverse(CHANGELIST)).content.decode()
    assert 'modelqueue-row-action' in operator.get(
        reverse('admin:testapp_task_change', args=[rows[1].pk])
    ).content.decode()


def test_pages_of_a_model_need_its_own_permission():
    """Viewing tasks gives nothing of uploads."""
    upload = Upload.objects.create(name=PAYLOAD)
    client = client_as('change staff')  # tasks only
    for url in (
        reverse('admin:testapp_upload_changelist'),
        reverse('admin:testapp_upload_dashboard'),
        reverse('admin:testapp_upload_dashboard_data'),
        reverse('admin:testapp_upload_change', args=[upload.pk]),
    ):
        assert client.get(url).status_code == 403, url
    url = reverse('admin:testapp_upload_queue_row', args=[upload.pk, 'scan_status', 'cancel'])
    before = Upload.objects.get().scan_status
    assert client.post(url).status_code == 403
    assert Upload.objects.get().scan_status == before


def test_csrf_is_enforced_on_every_post():
    operator = ROLES['change staff']()
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    for name in ACTIONS:
        target = changeable_row()
        url, data = action_posts(target)[name]
        before = statuses()
        response = client.post(url, data)
        assert response.status_code == 403, name
        assert statuses() == before, name
        # With the token the same request goes through, so the check above can fail.
        client.get(reverse(CHANGELIST))
        token = client.cookies['csrftoken'].value
        response = client.post(url, {**data, 'csrfmiddlewaretoken': token})
        assert response.status_code == 302, name
        assert Task.objects.get(pk=target.pk).status != before[target.pk], name


def assert_escaped(content, where, shown=True):
    assert '<script>alert' not in content, where
    assert 'onerror=alert(1)>' not in content.replace('&gt;', ''), where
    if shown:
        assert ESCAPED in content, where


def test_payloads_are_escaped_on_every_page(rows):
    client = client_as('change staff')
    changelist = reverse(CHANGELIST)
    for name, url in pages(rows[1]).items():
        response = client.get(url)
        assert response.status_code == 200, name
        content = response.content.decode()
        assert_escaped(content, name, shown=name in ('changelist', 'filtered changelist', 'change form'))
    selected = {'_selected_action': [task.pk for task in rows], 'index': 0}
    for action in ('cancel_status', 'reprioritize_status'):
        response = client.post(changelist, {**selected, 'action': action})
        assert response.status_code == 200 and 'modelqueue' in response.content.decode(), action
        assert_escaped(response.content.decode(), action, shown=False)
    response = client.post(changelist, {**selected, 'action': 'requeue_status'}, follow=True)
    assert_escaped(response.content.decode(), 'after an action')
    # Reflected parameters: the search box and a bad filter value.
    for query in ({'q': PAYLOAD}, {'status_queue': PAYLOAD}, {'o': PAYLOAD}):
        response = client.get(changelist, query, follow=True)
        assert response.status_code == 200, query
        assert_escaped(response.content.decode(), query, shown=False)


def test_dashboard_json_carries_no_markup_and_is_json(rows):
    Upload.objects.create(name=PAYLOAD)
    client = client_as('change staff')
    client.force_login(create_superuser())
    for url in (
        reverse('admin:testapp_task_dashboard_data'),
        reverse('admin:testapp_upload_dashboard_data'),
    ):
        response = client.get(url, {'field': PAYLOAD, 'callback': PAYLOAD})
        assert response.status_code == 200
        assert response['Content-Type'] == 'application/json'
        assert '<' not in response.content.decode()
        json.loads(response.content)
    for url in (
        reverse('admin:testapp_task_dashboard'),
        reverse('admin:testapp_upload_dashboard'),
        reverse('admin:modelqueue_overview'),
    ):
        content = client.get(url, {'x': PAYLOAD}).content.decode()
        assert_escaped(content, url, shown=False)


# Hostile parameters: a 4xx or an admin message, never a 500, nothing changed.


@pytest.fixture
def operator_client():
    return client_as('change staff')


@pytest.mark.parametrize(
    'value',
    ['garbage', '', 'WAITING', '2', '9' * 200, 'waiting\x00', 'wäiting', 'waiting;drop table', PAYLOAD],
)
def test_garbage_in_the_state_filter(operator_client, rows, value):
    response = operator_client.get(reverse(CHANGELIST), {'status_queue': value})
    assert response.status_code in (200, 302, 400), response.status_code
    if response.status_code == 302:
        assert '?e=1' in response.url  # the admin's "invalid filter" page
        assert operator_client.get(response.url).status_code == 200


@pytest.mark.parametrize(
    'query',
    [
        {'status_queue': ['waiting', 'finished']},
        {'status__gte': 'abc'},
        {'status__lte': '99999999999999999999999'},
        {'status': '-1'},
        {'o': '99.-1.abc'},
        {'p': '-1'},
        {'p': '99999999999999999999'},
        {'all': '1', 'status_queue': 'stalled'},
    ],
)
def test_hostile_changelist_parameters(operator_client, rows, query):
    before = statuses()
    response = operator_client.get(reverse(CHANGELIST), query)
    assert response.status_code in (200, 302, 400), (query, response.status_code)
    assert statuses() == before


@pytest.mark.parametrize(
    'query',
    [
        {'field': 'data'},
        {'field': PAYLOAD},
        {'minutes': '-1'},
        {'minutes': '1e308'},
        {'since': '0000-00-00'},
        {'timeout': 'NaN'},
        {'queue': ['status', 'status']},
    ],
)
def test_hostile_dashboard_parameters(operator_client, rows, query):
    for name in ('admin:testapp_task_dashboard', 'admin:testapp_task_dashboard_data'):
        response = operator_client.get(reverse(name), query)
        assert response.status_code in (200, 400), (name, query, response.status_code)


def test_dashboard_endpoints_refuse_writes(operator_client, rows):
    before = statuses()
    for name in ('admin:testapp_task_dashboard', 'admin:testapp_task_dashboard_data'):
        for method in ('post', 'put', 'delete', 'patch'):
            response = getattr(operator_client, method)(reverse(name))
            assert response.status_code in (403, 405), (name, method, response.status_code)
    assert statuses() == before


REPRIORITIZE = {'action': 'reprioritize_status', 'index': 0, 'apply': '1'}


@pytest.mark.parametrize(
    'fields',
    [
        {'reprioritize-when': 'at', 'reprioritize-at': '99999-01-01 00:00'},
        {'reprioritize-when': 'at', 'reprioritize-at': '2030-13-45 10:00'},
        {'reprioritize-when': 'at', 'reprioritize-at': '2030-01-01 25:00'},
        {'reprioritize-when': 'at', 'reprioritize-at': 'tomorrow'},
        {'reprioritize-when': 'integer', 'reprioritize-priority': '-5'},
        {'reprioritize-when': 'integer', 'reprioritize-priority': '1' * 18},
        {'reprioritize-when': 'integer', 'reprioritize-priority': '99999999999999999'},
        {'reprioritize-when': 'integer', 'reprioritize-priority': '1e5'},
        {'reprioritize-when': 'integer', 'reprioritize-priority': 'NaN'},
        {'reprioritize-when': 'integer', 'reprioritize-priority': '0x10'},
        {'reprioritize-when': ['integer', 'at'], 'reprioritize-priority': '5'},
        {'reprioritize-when': PAYLOAD},
        {},
    ],
)
def test_hostile_reprioritize_form(operator_client, rows, fields):
    before = statuses()
    response = operator_client.post(
        reverse(CHANGELIST), {**REPRIORITIZE, '_selected_action': [rows[1].pk], **fields}
    )
    assert response.status_code == 200, response.status_code
    assert response.context['form'].errors, fields
    assert_escaped(response.content.decode(), fields, shown=False)
    assert statuses() == before


@pytest.mark.parametrize(
    ('zone', 'at'),
    [
        ('Asia/Tokyo', '0001-01-01 00:00'),  # before year 1 in UTC
        ('America/New_York', '9999-12-31 23:00'),  # after year 9999 in UTC
    ],
)
def test_reprioritize_dates_that_leave_the_range_in_utc(operator_client, rows, zone, at):
    before = statuses()
    with override_settings(TIME_ZONE=zone):
        response = operator_client.post(
            reverse(CHANGELIST),
            {
                **REPRIORITIZE,
                '_selected_action': [rows[1].pk],
                'reprioritize-when': 'at',
                'reprioritize-at': at,
            },
        )
    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 200:
        assert response.context['form'].errors
    assert statuses() == before


def test_reprioritize_to_the_edges_that_fit(operator_client, rows):
    """The form's own limits are exact: these are accepted and stored right."""
    waiting = rows[1]
    for fields, expected in (
        ({'reprioritize-when': 'integer', 'reprioritize-priority': '9999999999999'}, 9999999999999),
        ({'reprioritize-when': 'integer', 'reprioritize-priority': '0'}, 0),
        (
            {'reprioritize-when': 'at', 'reprioritize-at': '9999-12-31 23:59:59'},
            99991231235959000,
        ),
    ):
        response = operator_client.post(
            reverse(CHANGELIST), {**REPRIORITIZE, '_selected_action': [waiting.pk], **fields}
        )
        assert response.status_code == 302, fields
        status = Status(Task.objects.get(pk=waiting.pk).status)
        assert (status.state, status.priority, status.attempts) == (State.waiting, expected, 1)


SELECTING_ACTIONS = ['requeue_status', 'cancel_status', 'reprioritize_status', 'reset_status_attempts']


def post_selection(client, action, selection):
    """POST `action` on `selection`, as the first step and as the confirmed one."""
    codes = []
    for extra in ({}, {'post': 'yes'}, {'apply': '1', 'reprioritize-when': 'now'}):
        response = client.post(
            reverse(CHANGELIST),
            {'action': action, 'index': 0, '_selected_action': selection, **extra},
        )
        codes.append(response.status_code)
    return codes


@pytest.mark.parametrize('action', SELECTING_ACTIONS)
@pytest.mark.parametrize('selection', [[], ['999999'], ['-1']], ids=repr)
def test_actions_on_empty_or_vanished_selections(operator_client, rows, action, selection):
    before = statuses()
    for code in post_selection(operator_client, action, selection):
        assert code in (200, 302), code
    assert statuses() == before


def test_actions_on_forged_non_integer_selections(operator_client, rows):
    """A forged selection that is no primary key: a 4xx or a message, not a 500.

    Django's own ModelAdmin.response_action filters pk__in=selection and
    raises ValueError on such values; the queue admin must not let it out.
    """
    before = statuses()
    for action in SELECTING_ACTIONS:
        for selection in (['abc'], ['1e3'], ['']):
            for code in post_selection(operator_client, action, selection):
                assert code in (200, 302, 400), (action, selection, code)
    assert statuses() == before


def test_vanished_rows_between_confirmation_and_cancel(operator_client, rows):
    """The confirmation was shown; the rows were deleted before 'Yes'."""
    doomed = Task.objects.create(data='doomed', status=Status.waiting(now(), 0))
    data = {'action': 'cancel_status', 'index': 0, '_selected_action': [doomed.pk]}
    assert operator_client.post(reverse(CHANGELIST), data).status_code == 200
    doomed.delete()
    before = statuses()
    response = operator_client.post(reverse(CHANGELIST), {**data, 'post': 'yes'}, follow=True)
    assert response.status_code == 200
    assert statuses() == before


@pytest.mark.parametrize(
    ('method', 'path_args', 'expected'),
    [
        ('post', ['999999', 'status', 'cancel'], 404),
        ('post', ['abc', 'status', 'cancel'], 404),
        ('post', ['{pk}', 'data', 'cancel'], 404),
        ('post', ['{pk}', 'status', 'explode'], 404),
        ('post', ['{pk}', '<img src=x onerror=alert(1)>', 'cancel'], 404),
        ('get', ['{pk}', 'status', 'cancel'], 405),
    ],
)
def test_hostile_row_buttons(operator_client, rows, method, path_args, expected):
    args = [arg.format(pk=rows[1].pk) for arg in path_args]
    url = reverse('admin:testapp_task_changelist') + '/'.join([args[0], 'queue', *args[1:]]) + '/'
    before = statuses()
    response = getattr(operator_client, method)(url)
    assert response.status_code == expected, response.status_code
    assert PAYLOAD not in response.content.decode()
    assert statuses() == before
