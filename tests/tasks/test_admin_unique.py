"""Requeueing tasks in the admin when a unique key is held (issue 25, unique
tasks): a FAILED or SUCCESSFUL task whose unique key another READY or
RUNNING task holds is left as it is, named in a message, and every other
row of the operation changes; the database's unique index is never what
says no (it would end the request in a server error)."""

import pytest
from django.contrib.admin.models import LogEntry

from modelqueue import State, Status, now
from modelqueue.admin.history import ROWS_LOGGED_ONE_BY_ONE
from modelqueue.tasks import admin as task_admin
from modelqueue.tasks import enqueue_unique
from modelqueue.tasks.models import QueuedTask
from tests.support.admin import messages_of, post_action
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

CHANGELIST = '/admin/modelqueue/queuedtask/'


def failed(result):
    """Make the task of `result` FAILED (canceled, one attempt); return its id."""
    QueuedTask.objects.filter(pk=result.id).update(status=Status.canceled(now(), 1))
    return int(result.id)


def state_of(pk):
    return Status(QueuedTask.objects.get(pk=pk).status).state


@pytest.fixture
def held():
    """A FAILED task keyed 'report', the READY task that holds the key now,
    and a FAILED task with no key and one with a free key."""
    old = failed(enqueue_unique(tasks.add, 'report', 1, 2))
    holder = int(enqueue_unique(tasks.add, 'report', 3, 4).id)
    plain = failed(tasks.add.enqueue(5, 6))
    free = failed(enqueue_unique(tasks.add, 'free', 7, 8))
    return old, holder, plain, free


def left_text(pk, key, holder):
    return f"task {pk} (its unique key '{key}' is held by the READY or RUNNING task {holder})"


def test_requeue_leaves_a_task_whose_key_a_ready_task_holds_and_requeues_the_rest(superuser_client, held):
    old, holder, plain, free = held
    response = post_action(superuser_client, 'requeue_status', [old, plain, free], url=CHANGELIST)
    assert response.status_code == 200
    assert state_of(old) == State.canceled
    assert (state_of(plain), state_of(free), state_of(holder)) == (State.waiting,) * 3
    assert messages_of(response) == [
        'Requeued 2 tasks (status), previously 2 canceled.',
        f'Left 1 task as they were (status): {left_text(old, "report", holder)}.',
    ]
    # The history names the rows that changed, not the one left.
    assert sorted(int(pk) for pk in LogEntry.objects.values_list('object_id', flat=True)) == [plain, free]


def test_of_failed_tasks_sharing_a_free_key_the_newest_is_requeued_and_holds_it(superuser_client):
    first = failed(enqueue_unique(tasks.add, 'nightly', 1, 1))
    second = failed(enqueue_unique(tasks.add, 'nightly', 2, 2))
    third = failed(enqueue_unique(tasks.add, 'nightly', 3, 3))
    response = post_action(superuser_client, 'requeue_status', [first, second, third], url=CHANGELIST)
    assert [state_of(pk) for pk in (first, second, third)] == [State.canceled, State.canceled, State.waiting]
    assert messages_of(response)[1] == (
        f'Left 2 tasks as they were (status): {left_text(second, "nightly", third)};'
        f' {left_text(first, "nightly", third)}.'
    )


def test_requeue_over_many_rows_in_chunks_leaves_only_the_held_one(superuser_client, held):
    old, holder, plain, free = held
    many = QueuedTask.objects.bulk_create(
        [
            QueuedTask(
                status=Status.canceled(now(), 1), task_path='tests.testapp.tasks.add', queue_name='default',
                backend_name='default', args=[n, n], kwargs={}, enqueued_at=now(),
            )
            for n in range(ROWS_LOGGED_ONE_BY_ONE + 10)
        ]
    )
    assert len(many) > ROWS_LOGGED_ONE_BY_ONE  # past the rows logged one by one: the chunked rewrite
    # Select all: the page posts the ids it shows, and select_across.
    response = post_action(superuser_client, 'requeue_status', [plain], url=CHANGELIST, select_across=1)
    assert state_of(old) == State.canceled
    waiting = QueuedTask.objects.filter(status__lt=Status.minimum(State.working)).count()
    assert waiting == len(many) + 3  # the holder, the plain and the free tasks, and the many
    assert messages_of(response)[0] == (
        f'Requeued {len(many) + 3} tasks (status), previously 1 waiting, {len(many) + 2} canceled.'
    )
    assert messages_of(response)[1] == f'Left 1 task as they were (status): {left_text(old, "report", holder)}.'
    assert LogEntry.objects.get().object_id is None  # one entry for the whole operation


def test_the_change_form_s_requeue_button_leaves_a_held_task_and_says_why(superuser_client, held):
    old, holder, _plain, _free = held
    response = superuser_client.post(f'{CHANGELIST}{old}/queue/status/requeue/', follow=True)
    assert response.status_code == 200
    assert state_of(old) == State.canceled
    assert messages_of(response) == [f'Left 1 task as they were (status): {left_text(old, "report", holder)}.']


def change_form_data(client, pk):
    page = client.get(f'{CHANGELIST}{pk}/change/')
    form = page.context['adminform'].form
    data = {name: form[name].value() or '' for name in form.fields}
    data['_modelqueue_opened'] = page.context['modelqueue_opened']
    return data


def test_the_change_form_refuses_a_ready_status_while_another_task_holds_the_key(superuser_client, held):
    old, holder, _plain, _free = held
    data = change_form_data(superuser_client, old)
    response = superuser_client.post(f'{CHANGELIST}{old}/change/', {**data, 'status': str(Status.waiting())})
    assert response.status_code == 200  # the form again, with the error
    assert f"the task {holder}, READY or RUNNING, holds the unique key &#x27;report&#x27;" in response.content.decode()
    assert state_of(old) == State.canceled


def test_a_key_taken_between_the_form_s_check_and_its_save_is_a_message_not_a_server_error(
    superuser_client, held, monkeypatch
):
    old, _holder, _plain, _free = held
    data = change_form_data(superuser_client, old)
    # As if the holder had been enqueued after the check: the index refuses the save.
    monkeypatch.setattr(task_admin.TaskForm, 'clean', lambda form: form.cleaned_data)
    response = superuser_client.post(
        f'{CHANGELIST}{old}/change/', {**data, 'status': str(Status.waiting())}, follow=True
    )
    assert response.status_code == 200
    assert messages_of(response) == [
        "Nothing was saved: another task took the unique key 'report' meanwhile. Here the task is as it is now."
    ]
    assert state_of(old) == State.canceled


def test_a_key_taken_after_the_look_is_looked_at_again_and_nothing_else_is_lost(superuser_client, held, monkeypatch):
    old, holder, plain, free = held
    calls, held_keys = [], task_admin.held_keys

    def late(using, pks):  # the first look misses the holder, as if it were enqueued just after
        calls.append(pks)
        return {} if len(calls) == 1 else held_keys(using, pks)

    monkeypatch.setattr(task_admin, 'held_keys', late)
    response = post_action(superuser_client, 'requeue_status', [old, plain, free], url=CHANGELIST)
    assert len(calls) == 2
    assert state_of(old) == State.canceled
    assert (state_of(plain), state_of(free)) == (State.waiting, State.waiting)
    assert messages_of(response)[1] == f'Left 1 task as they were (status): {left_text(old, "report", holder)}.'


def test_a_key_the_database_keeps_refusing_changes_nothing_and_says_so(superuser_client, held, monkeypatch):
    old, _holder, plain, free = held
    monkeypatch.setattr(task_admin, 'held_keys', lambda using, pks: {})
    response = post_action(superuser_client, 'requeue_status', [old, plain, free], url=CHANGELIST)
    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith('Nothing was changed: the database refused it (') and message.endswith('Try again.')
    assert [state_of(pk) for pk in (old, plain, free)] == [State.canceled] * 3
    assert not LogEntry.objects.exists()
