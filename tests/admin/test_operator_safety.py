"""What an operator's admin paths may and may not do to queue rows.

Each test pins one promise of "what an operator can and cannot overwrite"
(docs/guarantees.rst): per-row permissions, ids that do not leak, forged
selections, the admin history, working rows left to their worker, invalid
statuses left alone, and the dashboard's oldest due row.
"""

import datetime as dt
import html
import re
import zlib

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.core import signing
from django.urls import reverse

from modelqueue import State, Status, now
from modelqueue.admin import figures
from modelqueue.admin.history import ROWS_LOGGED_ONE_BY_ONE
from tests.support.admin import CHANGELIST, messages_of, post_action
from tests.support.users import create_superuser, create_user
from tests.testapp.models import Task

pytestmark = pytest.mark.django_db

BULK_ACTIONS = [
    ('requeue_status', {}),
    ('cancel_status', {'post': 'yes'}),
    ('reprioritize_status', {'apply': '1', 'reprioritize-when': 'now'}),
    ('reset_status_attempts', {}),
]


def ago(**delta):
    return now() - dt.timedelta(**delta)


def status_of(task):
    return Status(Task.objects.get(pk=task.pk).status)


@pytest.fixture
def superuser_client(client):
    client.force_login(create_superuser())
    return client


@pytest.fixture
def guarded(monkeypatch):
    """The task admin refuses changes to rows whose data starts with 'locked'."""
    task_admin = admin.site._registry[Task]

    def has_change_permission(request, obj=None):
        allowed = admin.ModelAdmin.has_change_permission(task_admin, request, obj)
        return allowed and not (obj is not None and obj.data.startswith('locked'))

    monkeypatch.setattr(task_admin, 'has_change_permission', has_change_permission)
    # The check looks at the admin's class, as Django's default ignores the row.
    monkeypatch.setattr(type(task_admin), 'has_change_permission', staticmethod(has_change_permission))
    return task_admin


# 5. Bulk actions check every selected row's permission.


@pytest.mark.parametrize(('action', 'extra'), BULK_ACTIONS)
def test_a_bulk_action_refuses_a_selection_with_a_row_the_user_may_not_change(
    superuser_client, guarded, action, extra
):
    free = Task.objects.create(data='free', status=Status.finished(ago(minutes=1), 2))
    locked = Task.objects.create(data='locked row', status=Status.finished(ago(minutes=1), 2))
    before = {task.pk: status_of(task) for task in (free, locked)}
    response = post_action(superuser_client, action, [free, locked], **extra)
    assert {task.pk: status_of(task) for task in (free, locked)} == before
    assert any(
        'Nothing was changed: you may not change 1 of the selected task' in text
        and 'locked row' in text
        for text in messages_of(response)
    ), messages_of(response)


def test_a_bulk_action_runs_when_every_selected_row_is_allowed(superuser_client, guarded):
    free = Task.objects.create(data='free', status=Status.finished(ago(minutes=1), 2))
    post_action(superuser_client, 'requeue_status', [free])
    assert status_of(free).state == State.waiting


@pytest.mark.parametrize(('action', 'extra'), BULK_ACTIONS)
def test_a_queryset_of_changeable_rows_refuses_a_selection_in_one_query_without_loading_rows(
    superuser_client, guarded, monkeypatch, action, extra
):
    asked = []
    check_row = guarded.has_change_permission

    def has_change_permission(request, obj=None):
        asked.append(obj)
        return check_row(request, obj)

    monkeypatch.setattr(type(guarded), 'has_change_permission', staticmethod(has_change_permission))
    monkeypatch.setattr(guarded, 'has_change_permission', has_change_permission)
    monkeypatch.setattr(
        guarded, 'get_queue_changeable',
        lambda request, queryset: queryset.exclude(data__startswith='locked'), raising=False,
    )
    free = Task.objects.create(data='free', status=Status.finished(ago(minutes=1), 2))
    locked = Task.objects.create(data='locked row', status=Status.finished(ago(minutes=1), 2))
    before = {task.pk: status_of(task) for task in (free, locked)}
    response = post_action(superuser_client, action, [free, locked], **extra)
    assert {task.pk: status_of(task) for task in (free, locked)} == before
    assert any(
        'Nothing was changed: you may not change 1 of the selected task (locked row)' in text
        for text in messages_of(response)
    ), messages_of(response)
    assert [obj for obj in asked if obj is not None] == []  # no row was asked about
    post_action(superuser_client, 'requeue_status', [free])
    assert status_of(free).state == State.waiting


# 6. Row buttons do not tell which ids exist.


@pytest.mark.parametrize('operation', ['requeue', 'cancel'])
def test_row_buttons_answer_403_for_existing_and_missing_ids_without_change_permission(client, operation):
    client.force_login(create_user('viewer', 'view_task'))
    task = Task.objects.create(data='exists', status=Status.waiting(ago(minutes=1)))
    codes = [
        client.post(reverse('admin:testapp_task_queue_row', args=[pk, 'status', operation])).status_code
        for pk in (task.pk, task.pk + 1000, 'abc')
    ]
    assert codes == [403, 403, 403]
    assert status_of(task).state == State.waiting


def test_row_buttons_still_answer_404_for_a_missing_id_to_an_operator(superuser_client):
    url = reverse('admin:testapp_task_queue_row', args=[123456, 'status', 'cancel'])
    assert superuser_client.post(url).status_code == 404


# 7. Out-of-range ids are a clean error.


@pytest.mark.parametrize('action', ['requeue_status', 'cancel_status', 'reset_status_attempts'])
@pytest.mark.parametrize('forged', [str(2**63), str(-(2**63) - 1), '9' * 30])
def test_ids_beyond_the_key_column_are_refused_with_a_message(superuser_client, action, forged):
    task = Task.objects.create(data='kept', status=Status.finished(ago(minutes=1), 1))
    response = post_action(superuser_client, action, [task.pk, forged], post='yes')
    assert response.status_code == 200
    assert any('is not a list of row ids' in text for text in messages_of(response))
    assert status_of(task) == Status(Task.objects.get(pk=task.pk).status)
    assert status_of(task).state == State.finished


def test_a_row_button_with_an_id_beyond_the_key_column_is_404(superuser_client):
    url = reverse('admin:testapp_task_queue_row', args=[str(2**64), 'status', 'cancel'])
    assert superuser_client.post(url).status_code == 404


# 8. Every operation leaves an admin history entry.


@pytest.mark.parametrize(('action', 'extra'), BULK_ACTIONS)
def test_a_bulk_action_logs_each_changed_row(superuser_client, action, extra):
    changed = Task.objects.create(data='changed', status=Status.waiting(ago(minutes=1), 2))
    post_action(superuser_client, action, [changed], **extra)
    (entry,) = LogEntry.objects.filter(object_id=str(changed.pk))
    assert entry.is_change() and entry.object_repr == 'changed'
    message = entry.get_change_message()
    assert 'status' in message and 'previously waiting' in message, message


def test_a_row_button_logs_the_row(superuser_client):
    task = Task.objects.create(data='one', status=Status.finished(ago(minutes=1)))
    superuser_client.post(reverse('admin:testapp_task_queue_row', args=[task.pk, 'status', 'requeue']))
    (entry,) = LogEntry.objects.filter(object_id=str(task.pk))
    assert entry.get_change_message() == 'Requeued status, previously finished.'


def test_a_large_bulk_action_logs_one_summary(superuser_client):
    Task.objects.bulk_create(
        Task(data=f'row {number}', status=Status.finished(ago(minutes=1)))
        for number in range(ROWS_LOGGED_ONE_BY_ONE + 1)
    )
    post_action(superuser_client, 'requeue_status', Task.objects.all()[:1], select_across=1)
    (entry,) = LogEntry.objects.all()
    assert entry.object_id is None and entry.object_repr == 'Tasks'
    assert f'Requeued {ROWS_LOGGED_ONE_BY_ONE + 1} tasks (status)' in entry.change_message


def test_rows_left_as_they_were_are_not_logged(superuser_client):
    done = Task.objects.create(data='done', status=Status.finished(ago(minutes=1)))
    post_action(superuser_client, 'cancel_status', [done], post='yes')
    assert not LogEntry.objects.exists()


# 3. Reset attempts leaves a working row to its worker.


def test_reset_attempts_leaves_working_rows_alone_and_says_so(superuser_client):
    working = Task.objects.create(data='busy', status=Status.working(ago(minutes=1), 2))
    waiting = Task.objects.create(data='idle', status=Status.waiting(ago(minutes=1), 2))
    response = post_action(superuser_client, 'reset_status_attempts', [working, waiting])
    assert status_of(working) == Task.objects.get(pk=working.pk).status
    assert status_of(working).attempts == 2 and status_of(working).state == State.working
    assert status_of(waiting).attempts == 0
    assert 'Left as they were (status): 1 working.' in messages_of(response)


# 12. The 2.2.1 actions leave values that are not statuses alone.


@pytest.mark.parametrize(
    'action',
    [f'make_status_state_{state.name}' for state in Status.states]
    + ['make_status_priority_now', 'make_status_attempts_zero'],
)
@pytest.mark.parametrize('stored', [-5, 7, 6000000000000000003, 999])
def test_legacy_actions_leave_invalid_statuses_untouched(superuser_client, action, stored):
    invalid = Task.objects.create(data='hand-written', status=stored)
    valid = Task.objects.create(data='valid', status=Status.finished(ago(minutes=1), 3))
    post_action(superuser_client, action, [invalid, valid])
    assert Task.objects.get(pk=invalid.pk).status == stored
    if not action.endswith('_finished'):  # the valid row is changed as before
        assert Task.objects.get(pk=valid.pk).status != valid.status


# 13. The 2.2.1 actions follow the queue actions' rules: per-row permission,
# history, and a row a worker holds left to it unless the operator cancels it
# or sends it back to waiting (as cancel and requeue do).

LEGACY_ACTIONS = [f'make_status_state_{state.name}' for state in Status.states] + [
    'make_status_priority_now',
    'make_status_attempts_zero',
]
#: Legacy actions that leave a working row to its worker, as reset attempts
#: and reprioritize do: a row made created or finished, or its attempts or
#: priority rewritten, would drop the worker's result without running again.
LEAVE_WORKING = [
    'make_status_state_created',
    'make_status_state_working',
    'make_status_state_finished',
    'make_status_priority_now',
    'make_status_attempts_zero',
]
#: Legacy actions that take a working row, as cancel and requeue do.
TAKE_WORKING = {'make_status_state_waiting': State.waiting, 'make_status_state_canceled': State.canceled}


def changed_by(action):
    """A status that `action` rewrites: waiting, but finished for the waiting action."""
    if action == 'make_status_state_waiting':
        return Status.finished(ago(minutes=1), 2)
    return Status.waiting(ago(minutes=1), 2)


@pytest.mark.parametrize('action', LEGACY_ACTIONS)
def test_a_legacy_action_refuses_a_selection_with_a_row_the_user_may_not_change(
    superuser_client, guarded, action
):
    free = Task.objects.create(data='free', status=changed_by(action))
    locked = Task.objects.create(data='locked row', status=changed_by(action))
    before = {task.pk: status_of(task) for task in (free, locked)}
    response = post_action(superuser_client, action, [free, locked])
    assert {task.pk: status_of(task) for task in (free, locked)} == before
    assert any(
        'Nothing was changed: you may not change 1 of the selected task' in text
        and 'locked row' in text
        for text in messages_of(response)
    ), messages_of(response)
    assert not LogEntry.objects.exists()
    post_action(superuser_client, action, [free])  # the allowed row alone is changed
    assert status_of(free) != before[free.pk]


@pytest.mark.parametrize('action', LEGACY_ACTIONS)
def test_a_legacy_action_logs_each_changed_row_and_says_what_it_did(superuser_client, action):
    changed = Task.objects.create(data='changed', status=changed_by(action))
    previous = changed_by(action).state.name
    response = post_action(superuser_client, action, [changed])
    assert status_of(changed) != changed.status
    (entry,) = LogEntry.objects.filter(object_id=str(changed.pk))
    assert entry.is_change() and entry.object_repr == 'changed'
    message = entry.get_change_message()
    assert 'status' in message and f'previously {previous}' in message, message
    assert any('(status)' in text and f'previously 1 {previous}' in text for text in messages_of(response)), (
        messages_of(response)
    )


@pytest.mark.parametrize('action', LEAVE_WORKING)
def test_legacy_actions_leave_working_rows_to_their_worker_and_say_so(superuser_client, action):
    working = Task.objects.create(data='busy', status=Status.working(ago(minutes=1), 2))
    other = Task.objects.create(data='idle', status=changed_by(action))
    response = post_action(superuser_client, action, [working, other])
    assert Task.objects.get(pk=working.pk).status == working.status
    assert Task.objects.get(pk=other.pk).status != other.status
    assert 'Left as they were (status): 1 working.' in messages_of(response), messages_of(response)
    assert not LogEntry.objects.filter(object_id=str(working.pk)).exists()


@pytest.mark.parametrize(('action', 'state'), TAKE_WORKING.items())
def test_legacy_cancel_and_waiting_take_a_working_row_as_cancel_and_requeue_do(
    superuser_client, action, state
):
    working = Task.objects.create(data='busy', status=Status.working(ago(minutes=1), 2))
    post_action(superuser_client, action, [working])
    assert (status_of(working).state, status_of(working).attempts) == (state, 2)
    (entry,) = LogEntry.objects.filter(object_id=str(working.pk))
    assert 'previously working' in entry.get_change_message()


#: The rows in each state that each legacy action rewrites.
LEGACY_CHANGES = {
    'make_status_state_created': {'waiting', 'finished', 'canceled'},
    'make_status_state_waiting': {'created', 'working', 'finished', 'canceled'},
    'make_status_state_working': {'created', 'waiting', 'finished', 'canceled'},
    'make_status_state_finished': {'created', 'waiting', 'canceled'},
    'make_status_state_canceled': {'created', 'waiting', 'working', 'finished'},
    'make_status_priority_now': {'created', 'waiting', 'finished', 'canceled'},
    'make_status_attempts_zero': {'created', 'waiting', 'finished', 'canceled'},
}


@pytest.mark.parametrize('action', LEGACY_ACTIONS)
def test_which_rows_each_legacy_action_rewrites(superuser_client, action):
    rows = {
        state.name: Task.objects.create(data=state.name, status=Status.combine(state, ago(minutes=5), 2))
        for state in Status.states
    }
    post_action(superuser_client, action, rows.values())
    changed = {name for name, task in rows.items() if status_of(task) != task.status}
    assert changed == LEGACY_CHANGES[action]
    assert {entry.object_repr for entry in LogEntry.objects.all()} == changed


@pytest.mark.parametrize('state', Status.states)
def test_a_legacy_state_action_leaves_rows_already_in_its_state_and_says_so(superuser_client, state):
    already = Task.objects.create(data='there', status=Status.combine(state, ago(minutes=1), 2))
    response = post_action(superuser_client, f'make_status_state_{state.name}', [already])
    assert Task.objects.get(pk=already.pk).status == already.status
    assert f'Left as they were (status): 1 {state.name}.' in messages_of(response), messages_of(response)
    assert not LogEntry.objects.exists()


# 9. The dashboard's oldest due row has a real timestamp.


@pytest.mark.parametrize(
    'integer_priority',
    [20260000000000000, 20251301000000000, 20260230000000000, 20260101250000000, 20260101006000000],
)
def test_oldest_due_skips_integer_priorities_that_look_like_timestamps(integer_priority):
    current = dt.datetime(2026, 11, 29, 12, tzinfo=dt.timezone.utc)
    oldest = current - dt.timedelta(hours=5)
    Task.objects.create(data='integer', status=Status.waiting(integer_priority))
    Task.objects.create(data='oldest', status=Status.waiting(oldest))
    Task.objects.create(data='newer', status=Status.waiting(current - dt.timedelta(hours=1)))
    due, oldest_due = figures.backlog(Task.objects.all(), 'status', current)
    assert due == 3
    assert oldest_due == oldest.replace(microsecond=0)


def test_oldest_due_is_none_when_only_integer_priorities_are_due():
    Task.objects.create(data='integer', status=Status.waiting(20260000000000000))
    Task.objects.create(data='small', status=Status.waiting(7))
    assert figures.backlog(Task.objects.all(), 'status', now()) == (2, None)


def test_the_changelist_is_not_affected(superuser_client):
    assert superuser_client.get(CHANGELIST).status_code == 200


# 4. The change form saves what the operator changed, never over what changed meanwhile.


def open_change_form(client, task):
    """GET the change form; return the data a browser would post back unchanged."""
    response = client.get(reverse('admin:testapp_task_change', args=[task.pk]))
    form = response.context['adminform'].form
    data = {name: form[name].value() or '' for name in form.fields}
    data['_modelqueue_opened'] = response.context['modelqueue_opened']
    assert 'name="_modelqueue_opened"' in response.content.decode()
    return data


def save_change_form(client, task, data):
    return client.post(reverse('admin:testapp_task_change', args=[task.pk]), data, follow=True)


def test_a_stale_form_saves_the_operators_fix_and_keeps_the_workers_result(superuser_client):
    task = Task.objects.create(data='helo', status=Status.waiting(ago(minutes=1), 0))
    data = open_change_form(superuser_client, task)
    finished = Status.finished(now(), 1)
    Task.objects.filter(pk=task.pk).update(status=finished, note='sent by the worker')
    response = save_change_form(superuser_client, task, {**data, 'data': 'hello'})
    task.refresh_from_db()
    assert (task.data, task.note, task.status) == ('hello', 'sent by the worker', finished)
    assert any('was changed successfully' in text for text in messages_of(response))


def test_changing_the_status_of_a_row_that_moved_on_is_a_form_error(superuser_client):
    task = Task.objects.create(data='x', status=Status.waiting(ago(minutes=1), 0))
    data = open_change_form(superuser_client, task)
    finished = Status.finished(now(), 1)
    Task.objects.filter(pk=task.pk).update(status=finished)
    response = save_change_form(superuser_client, task, {**data, 'status': str(Status.canceled(now()))})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'Nothing was saved: status (now' in page and 'changed since you opened this form' in page
    assert Task.objects.get(pk=task.pk).status == finished


def test_a_field_the_worker_also_changed_is_a_form_error(superuser_client):
    task = Task.objects.create(data='x', note='', status=Status.waiting(ago(minutes=1), 0))
    data = open_change_form(superuser_client, task)
    Task.objects.filter(pk=task.pk).update(note='the worker wrote this')
    save_change_form(superuser_client, task, {**data, 'note': 'the operator wrote this'})
    assert Task.objects.get(pk=task.pk).note == 'the worker wrote this'


def test_the_operator_may_change_the_status_of_a_row_that_did_not_move(superuser_client):
    task = Task.objects.create(data='x', status=Status.finished(ago(minutes=1), 1))
    data = open_change_form(superuser_client, task)
    waiting = Status.waiting(now(), 0)
    save_change_form(superuser_client, task, {**data, 'status': str(waiting)})
    assert Task.objects.get(pk=task.pk).status == waiting


def test_a_row_that_changes_between_the_check_and_the_save_is_not_saved(superuser_client, monkeypatch):
    from modelqueue.admin import changeform  # noqa: PLC0415

    waiting = Status.waiting(ago(minutes=1), 0)
    task = Task.objects.create(data='x', status=waiting)
    data = open_change_form(superuser_client, task)
    claimed = Status.working(now(), 0)
    original = changeform.save_edited

    def worker_claims_first(obj, form):
        Task.objects.filter(pk=obj.pk).update(status=claimed)
        original(obj, form)

    monkeypatch.setattr('modelqueue.admin.options.save_edited', worker_claims_first)
    response = save_change_form(superuser_client, task, {**data, 'status': str(Status.canceled(now()))})
    assert any('changed while it was being saved' in text for text in messages_of(response))
    task.refresh_from_db()
    # The request's transaction was rolled back (the simulated claim ran inside it, so it went
    # too): nothing of the form was written.
    assert task.status == waiting
    assert not LogEntry.objects.filter(object_id=str(task.pk)).exists()


def test_a_post_without_the_opened_copy_saves_as_django_would(superuser_client):
    task = Task.objects.create(data='x', note='kept', status=Status.finished(ago(minutes=1), 1))
    data = open_change_form(superuser_client, task)
    del data['_modelqueue_opened']
    Task.objects.filter(pk=task.pk).update(note='newer')
    save_change_form(superuser_client, task, {**data, 'data': 'y'})
    task.refresh_from_db()
    assert (task.data, task.note) == ('y', 'kept')  # without the copy, the posted values win


def test_a_forged_opened_copy_is_a_form_error(superuser_client):
    task = Task.objects.create(data='x', status=Status.finished(ago(minutes=1), 1))
    data = open_change_form(superuser_client, task)
    response = save_change_form(superuser_client, task, {**data, '_modelqueue_opened': 'forged', 'data': 'y'})
    assert 'could not be checked against the row' in response.content.decode()
    assert Task.objects.get(pk=task.pk).data == 'x'


# The change form's copy of the row is signed, not encrypted: it carries no
# value of the row, only what tells the save whether a value changed.

SECRETS = {'data': 'secret data 7391', 'note': 'secret note 4410'}


def readable(token):
    """What anyone can read of a signed value: its payload, decoded (and
    decompressed); a signature hides nothing."""
    payload = token.split(':')[0]
    data = signing.b64_decode(payload.lstrip('.').encode())
    if payload.startswith('.'):
        data = zlib.decompress(data)
    return data.decode(errors='replace')


def opened_tokens(page):
    return [html.unescape(value) for value in re.findall(r'name="_modelqueue_opened" value="([^"]*)"', page)]


def secret_row():
    return Task.objects.create(**SECRETS, status=Status.waiting(dt.datetime(2021, 3, 4, 5, 6, 7), 3))


def assert_no_value_readable(page, task, hidden=()):
    """No value of `task` can be read from the page's copy of the row, and
    no value of the `hidden` fields from anywhere on the page."""
    values = [task.data, task.note, str(task.status), str(Status(task.status).priority)]
    for token in opened_tokens(page):
        text = readable(token)
        for value in values:
            assert value not in text, (value, text)
    for name in hidden:
        assert SECRETS[name] not in page, name


def test_a_view_only_user_reads_no_value_of_the_row_from_the_change_form(client):
    task = secret_row()
    client.force_login(create_user('viewer', 'view_task'))
    response = client.get(reverse('admin:testapp_task_change', args=[task.pk]))
    assert response.status_code == 200
    assert_no_value_readable(response.content.decode(), task)


@pytest.mark.parametrize('role', ['viewer', 'operator'])
def test_a_field_the_admin_excludes_cannot_be_read_from_the_change_form(client, monkeypatch, role):
    monkeypatch.setattr(admin.site._registry[Task], 'exclude', ['note'])
    task = secret_row()
    user = create_user('viewer', 'view_task') if role == 'viewer' else create_superuser()
    client.force_login(user)
    response = client.get(reverse('admin:testapp_task_change', args=[task.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert SECRETS['data'] in page  # the page shows the row, so the check can fail
    assert_no_value_readable(page, task, hidden=['note'])
    if role == 'operator':
        assert opened_tokens(page), 'the form carries its copy of the row'


def test_with_an_excluded_field_the_fenced_save_keeps_what_changed_meanwhile(superuser_client, monkeypatch):
    monkeypatch.setattr(admin.site._registry[Task], 'exclude', ['note'])
    task = Task.objects.create(data='helo', note='', status=Status.waiting(ago(minutes=1), 0))
    data = open_change_form(superuser_client, task)
    assert 'note' not in data
    finished = Status.finished(now(), 1)
    Task.objects.filter(pk=task.pk).update(status=finished, note='sent by the worker')
    response = save_change_form(superuser_client, task, {**data, 'data': 'hello'})
    task.refresh_from_db()
    assert (task.data, task.note, task.status) == ('hello', 'sent by the worker', finished)
    assert any('was changed successfully' in text for text in messages_of(response))


def test_the_copy_of_one_row_does_not_pass_for_another(superuser_client):
    first = Task.objects.create(data='same', status=Status.finished(ago(minutes=1), 1))
    second = Task.objects.create(data='same', status=first.status)
    data = open_change_form(superuser_client, second)
    data['_modelqueue_opened'] = open_change_form(superuser_client, first)['_modelqueue_opened']
    response = save_change_form(superuser_client, second, {**data, 'data': 'edited'})
    assert 'changed since you opened this form' in response.content.decode()
    assert Task.objects.get(pk=second.pk).data == 'same'
