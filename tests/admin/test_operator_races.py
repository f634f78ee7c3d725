"""Every operator path that writes a row, raced against a worker mid-action.

A real worker process (``modelqueue_worker --burst``) claims the row and
runs an action that writes the row's ``note``; while it runs, the operator
acts through the admin (the test client, in this process). The worker's
outcome and its field changes must survive, unless the operator explicitly
canceled or requeued the row; either way nothing is lost: a canceled row
stays canceled, a requeued row runs again.

The action waits at a gate (tests.support.gates) until the operator's
request has returned, so the request lands mid-action on any machine: the
race each test means is the one it runs, never a worker that finished first.
"""

import pytest
from django.urls import reverse

from modelqueue import State, Status, now
from tests.support.admin import post_action
from tests.support.gates import ACTION as WAITS_AT_THE_GATE
from tests.support.imports import confirm, preview
from tests.support.processes import finish, start_worker
from tests.support.waits import wait_until
from tests.testapp.models import Execution, Task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.processes]


def start_mid_action(spawn, gate, data='job', attempts=0):
    """A due row, and a worker that holds it in the middle of its action,
    waiting at `gate`."""
    task = Task.objects.create(data=data, status=Status.waiting(now(), attempts))
    worker = start_worker(spawn, '--burst', '--sleep=0.1', action=WAITS_AT_THE_GATE, env=gate.env)
    wait_until(
        lambda: Execution.objects.filter(task=task).exists(), 30, 'the worker to start the action',
        child=worker,
    )
    assert Status(Task.objects.get(pk=task.pk).status).state == State.working
    return task, worker


def done(worker, gate):
    """Let the action finish (the operator's requests have landed mid-action),
    and wait for the burst worker to run out of due rows; return its log."""
    assert worker.poll() is None, 'the worker ended before the gate opened'
    gate.open()
    code, log = finish(worker, timeout=60)
    assert code == 0, log
    return log


def final(task):
    row = Task.objects.get(pk=task.pk)
    return Status(row.status), row.data, row.note, Execution.objects.filter(task=task).count()


def assert_worker_result_kept(task, data='job'):
    status, row_data, note, runs = final(task)
    assert (status.state, row_data, runs) == (State.finished, data, 1), final(task)
    assert note.startswith('done by '), note


# Paths that leave a working row to its worker.


@pytest.mark.parametrize(
    ('action', 'extra'),
    [
        ('reset_status_attempts', {}),
        ('reprioritize_status', {'apply': '1', 'reprioritize-when': 'now'}),
        # The 2.2.1 actions (modelqueue.admin_actions) that leave working rows.
        ('make_status_attempts_zero', {}),
        ('make_status_priority_now', {}),
        ('make_status_state_created', {}),
        ('make_status_state_finished', {}),
    ],
)
def test_bulk_actions_that_skip_working_rows_keep_the_workers_result(
    spawn, gate, superuser_client, action, extra
):
    task, worker = start_mid_action(spawn, gate, attempts=2)  # so that a reset would change it
    response = post_action(superuser_client, action, [task], **extra)
    messages = [str(message) for message in response.context['messages']]
    assert 'Left as they were (status): 1 working.' in messages, messages
    done(worker, gate)
    assert_worker_result_kept(task)
    assert Status(Task.objects.get(pk=task.pk).status).attempts == 3


def test_editing_a_row_mid_action_keeps_the_workers_result_and_the_edit(spawn, gate, superuser_client):
    task, worker = start_mid_action(spawn, gate)
    url = reverse('admin:testapp_task_change', args=[task.pk])
    page = superuser_client.get(url)
    form = page.context['adminform'].form
    data = {name: form[name].value() or '' for name in form.fields}
    data['_modelqueue_opened'] = page.context['modelqueue_opened']
    response = superuser_client.post(url, {**data, 'data': 'edited'})
    assert response.status_code == 302, response.content[:2000]
    done(worker, gate)
    assert_worker_result_kept(task, data='edited')


def test_a_form_opened_before_the_claim_and_saved_after_the_finish(spawn, superuser_client):
    task = Task.objects.create(data='helo', status=Status.waiting(now(), 0))
    url = reverse('admin:testapp_task_change', args=[task.pk])
    page = superuser_client.get(url)  # the operator opens the row while it waits
    form = page.context['adminform'].form
    data = {name: form[name].value() or '' for name in form.fields}
    data['_modelqueue_opened'] = page.context['modelqueue_opened']
    worker = start_worker(
        spawn, '--burst', '--sleep=0.1', action='record_and_note',
        env={'MODELQUEUE_TEST_ACTION_SECONDS': '0.2'},
    )
    code, log = finish(worker, timeout=60)  # the worker claims and finishes it meanwhile
    assert code == 0, log
    response = superuser_client.post(url, {**data, 'data': 'hello'})  # then fixes a typo
    assert response.status_code == 302, response.content[:2000]
    assert_worker_result_kept(task, data='hello')


def test_importing_over_a_row_mid_action_is_refused_and_the_worker_wins(spawn, gate, superuser_client):
    task, worker = start_mid_action(spawn, gate)
    response = preview(superuser_client, f'id,note\n{task.pk},imported\n')
    assert 'confirm_form' not in response.context
    assert 'the row is working now (a worker holds it)' in response.content.decode()
    done(worker, gate)
    assert_worker_result_kept(task)


def test_importing_after_the_worker_finished_keeps_its_status_and_fields(spawn, gate, superuser_client):
    task, worker = start_mid_action(spawn, gate)
    response = preview(superuser_client, f'id,data\n{task.pk},fixed\n')  # read while working:
    assert 'confirm_form' not in response.context  # refused, the row would change
    done(worker, gate)
    response = preview(superuser_client, f'id,data\n{task.pk},fixed\n')
    assert confirm(superuser_client, response).status_code == 302
    assert_worker_result_kept(task, data='fixed')


def test_an_import_confirmed_while_a_worker_claims_saves_nothing(spawn, gate, superuser_client):
    task = Task.objects.create(data='job', status=Status.waiting(now(), 0))
    response = preview(superuser_client, f'id,data\n{task.pk},fixed\n')  # the preview reads it waiting
    worker = start_worker(spawn, '--burst', '--sleep=0.1', action=WAITS_AT_THE_GATE, env=gate.env)
    wait_until(lambda: Execution.objects.filter(task=task).exists(), 30, 'the claim', child=worker)
    confirm(superuser_client, response)  # confirmed while the worker holds it: refused
    done(worker, gate)
    assert_worker_result_kept(task)


# Paths where the operator explicitly decides: the decision wins, and nothing is lost.


@pytest.mark.parametrize('path', ['bulk', 'button', 'form'])
def test_canceling_mid_action_stays_canceled(spawn, gate, superuser_client, path):
    task, worker = start_mid_action(spawn, gate)
    if path == 'bulk':
        post_action(superuser_client, 'cancel_status', [task], post='yes')
    elif path == 'button':
        superuser_client.post(reverse('admin:testapp_task_queue_row', args=[task.pk, 'status', 'cancel']))
    else:
        url = reverse('admin:testapp_task_change', args=[task.pk])
        page = superuser_client.get(url)
        form = page.context['adminform'].form
        data = {name: form[name].value() or '' for name in form.fields}
        data['_modelqueue_opened'] = page.context['modelqueue_opened']
        response = superuser_client.post(url, {**data, 'status': str(Status.canceled(now()))})
        assert response.status_code == 302, response.content[:2000]
    log = done(worker, gate)
    status, data, note, runs = final(task)
    assert (status.state, note, runs) == (State.canceled, '', 1), (final(task), log)
    assert 'changed while its action ran' in log


@pytest.mark.parametrize('path', ['bulk', 'button'])
def test_requeueing_mid_action_runs_the_row_again(spawn, gate, superuser_client, path):
    task, worker = start_mid_action(spawn, gate)
    if path == 'bulk':
        post_action(superuser_client, 'requeue_status', [task])
    else:
        superuser_client.post(reverse('admin:testapp_task_queue_row', args=[task.pk, 'status', 'requeue']))
    log = done(worker, gate)
    status, data, note, runs = final(task)
    assert (status.state, runs) == (State.finished, 2), (final(task), log)
    assert note.startswith('done by ') and 'changed while its action ran' in log


def test_retrying_all_failed_leaves_the_row_a_worker_took_since_the_page_and_retries_the_rest(
    spawn, gate, superuser_client
):
    # Three failed rows, all on the confirmation page the operator reads.
    taken, *others = [Task.objects.create(data='job', status=Status.canceled(now(), 1)) for _ in range(3)]
    url = reverse('admin:testapp_task_queue_retry_failed', args=['status'])
    page = superuser_client.get(url, {'q': 'job'})
    assert page.context['count'] == 3
    # Meanwhile another operator requeues one, and a worker takes it: mid-action at the gate.
    post_action(superuser_client, 'requeue_status', [taken])
    worker = start_worker(spawn, '--burst', '--sleep=0.1', action=WAITS_AT_THE_GATE, env=gate.env)
    wait_until(
        lambda: Execution.objects.filter(task=taken).exists(), 30, 'the worker to start the action', child=worker
    )
    response = superuser_client.post(f'{url}?q=job', {'seen': page.context['seen']}, follow=True)
    assert [str(message) for message in response.context['messages']] == [
        'Retried 2 tasks (status), previously 2 canceled.'
    ]
    assert Status(Task.objects.get(pk=taken.pk).status).state == State.working  # still the worker's
    log = done(worker, gate)
    # The worker's result kept, not run again; the retried rows ran, once each.
    assert_worker_result_kept(taken)
    assert 'changed while its action ran' not in log
    for row in others:
        status, _data, note, runs = final(row)
        assert (status.state, runs) == (State.finished, 1), (final(row), log)
        assert note.startswith('done by ')
