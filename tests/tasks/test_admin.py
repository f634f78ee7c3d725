"""The task table in the admin: the queue operations plus task path, queue,
arguments, return value and errors."""

import pytest

from modelqueue import State, Status
from modelqueue.tasks.models import QueuedTask
from modelqueue.tasks.worker import TaskWorker
from tests.support.users import create_user
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

CHANGELIST = '/admin/modelqueue/queuedtask/'


def run_tasks():
    return TaskWorker('default', burst=True, listen=False).run()


def ids_listed(response):
    return sorted(row.pk for row in response.context['cl'].result_list)


def test_the_changelist_filters_by_queue_and_task_path_and_searches(superuser_client):
    email = tasks.send_email.enqueue('a@example.com')
    added = tasks.add.enqueue(1, 2)
    response = superuser_client.get(CHANGELIST, {'queue_name': 'emails'})
    assert ids_listed(response) == [int(email.id)]
    response = superuser_client.get(CHANGELIST, {'task_path': 'tests.testapp.tasks.add'})
    assert ids_listed(response) == [int(added.id)]
    response = superuser_client.get(CHANGELIST, {'q': 'send_email'})
    assert ids_listed(response) == [int(email.id)]
    page = superuser_client.get(CHANGELIST).content.decode()
    assert 'tests.testapp.tasks.send_email' in page and 'Ready' in page


def test_the_state_filter_requeue_and_dashboard_of_the_queue_admin_apply(superuser_client):
    failed = tasks.fail.enqueue('boom')
    tasks.add.enqueue(1, 2)
    run_tasks()
    response = superuser_client.get(CHANGELIST, {'status_queue': 'canceled'})
    assert ids_listed(response) == [int(failed.id)]
    response = superuser_client.post(
        CHANGELIST, {'action': 'requeue_status', '_selected_action': [failed.id]}
    )
    assert response.status_code == 302
    assert Status(QueuedTask.objects.get(pk=failed.id).status).state == State.waiting
    assert superuser_client.get(CHANGELIST + 'dashboard/').status_code == 200


def test_the_change_form_shows_arguments_return_value_and_errors_escaped(superuser_client):
    ok = tasks.remember.enqueue('<b>label</b>')
    failed = tasks.fail.enqueue('<script>alert(1)</script>')
    run_tasks()
    page = superuser_client.get(f'{CHANGELIST}{ok.id}/change/').content.decode()
    assert '&lt;b&gt;label&lt;/b&gt;' in page and '<b>label</b>' not in page
    assert 'Successful' in page
    page = superuser_client.get(f'{CHANGELIST}{failed.id}/change/').content.decode()
    assert 'builtins.ValueError' in page
    assert 'ValueError: &lt;script&gt;alert(1)&lt;/script&gt;' in page
    assert '<script>alert(1)</script>' not in page


def test_tasks_are_not_added_in_the_admin(superuser_client):
    assert superuser_client.get(CHANGELIST + 'add/').status_code == 403


def test_the_task_pages_need_the_view_permission(client):
    tasks.add.enqueue(1, 2)
    client.force_login(create_user('nobody', 'view_task'))  # the test app's Task, not this one
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(CHANGELIST + 'dashboard/').status_code == 403
    client.force_login(create_user('viewer', 'view_queuedtask'))
    assert client.get(CHANGELIST).status_code == 200
