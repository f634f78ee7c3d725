"""Pausing a queue of the Tasks backend by name: ``modelqueue.tasks.pause``."""

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

import modelqueue
import modelqueue.tasks
from modelqueue.models import QueuePause
from modelqueue.tasks.compat import TaskResultStatus
from modelqueue.tasks.models import QueuedTask
from tests.support.processes import finish
from tests.support.users import create_user
from tests.testapp import tasks

TASKS_WORKER = ('-m', 'django', 'modelqueue_worker', '--tasks', '--burst', '--verbosity=2')
ENV = {'DJANGO_SETTINGS_MODULE': 'tests.settings'}


def states(results):
    for result in results:
        result.refresh()
    return [result.status for result in results]


@pytest.mark.django_db
def test_a_tasks_queue_is_paused_and_resumed_by_name_for_one_backend():
    assert modelqueue.tasks.pause('emails', backend='default', by='alice') is True
    assert modelqueue.tasks.is_paused('emails', backend='default')
    assert modelqueue.tasks.pause('emails') is False
    assert not modelqueue.tasks.is_paused('default', backend='default')
    assert not modelqueue.tasks.is_paused('default', backend='retrying')
    (row,) = QueuePause.objects.all()
    assert (row.field, row.queue_name, row.paused_by) == ('status', 'default/emails', 'alice')
    assert modelqueue.tasks.resume('emails', backend='default') is True
    assert modelqueue.tasks.resume('emails', backend='default') is False
    assert not modelqueue.tasks.is_paused('emails')


@pytest.mark.django_db
@pytest.mark.parametrize(
    ('call', 'message'),
    [
        (lambda: modelqueue.tasks.pause('emails', backend='nowhere'), "invalid backend 'nowhere'"),
        (lambda: modelqueue.tasks.pause('emails', backend='dummy'), "invalid backend 'dummy': expected a TASKS alias"),
        (lambda: modelqueue.tasks.resume('spam'), r"invalid queue 'spam': expected one of the QUEUES of TASKS\["),
        (lambda: modelqueue.tasks.is_paused(7), 'invalid queue 7'),
    ],
)
def test_a_bad_backend_or_queue_is_refused_naming_it(call, message, settings):
    tasks_module = TaskResultStatus.__module__.split('.')[0]  # django.tasks, or the backport
    dummy = 'django.tasks' if tasks_module == 'django' else tasks_module
    settings.TASKS = {**settings.TASKS, 'dummy': {'BACKEND': f'{dummy}.backends.dummy.DummyBackend'}}
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.processes
def test_a_worker_runs_nothing_of_a_paused_tasks_queue_and_the_rest_goes_on(spawn):
    """'default' of the backend 'default' is paused; its 'emails', and the
    queue 'default' of the backend 'retrying' (in the same table), go on."""
    paused = [tasks.add.enqueue(n, 1) for n in range(3)]
    emails = tasks.send_email.enqueue('a@example.com')
    elsewhere = tasks.add.using(backend='retrying').enqueue(3, 4)
    modelqueue.tasks.pause('default', backend='default')
    for backend in ('default', 'retrying'):
        status, log = finish(spawn(*TASKS_WORKER, f'--backend={backend}', env=ENV))
        assert status == 0, log
    assert states([*paused, emails, elsewhere]) == [TaskResultStatus.READY] * 3 + [
        TaskResultStatus.SUCCESSFUL
    ] * 2
    modelqueue.tasks.resume('default', backend='default')
    status, log = finish(spawn(*TASKS_WORKER, env=ENV))
    assert status == 0, log
    assert states(paused) == [TaskResultStatus.SUCCESSFUL] * 3


@pytest.mark.processes
def test_pausing_the_task_table_pauses_every_queue_of_every_backend(spawn):
    email = tasks.send_email.enqueue('a@example.com')
    other = tasks.add.enqueue(1, 2)
    modelqueue.pause(QueuedTask, 'status')
    assert modelqueue.tasks.is_paused('emails') and modelqueue.tasks.is_paused('default')
    status, log = finish(spawn(*TASKS_WORKER, env=ENV))
    assert status == 0, log
    assert states([email, other]) == [TaskResultStatus.READY] * 2


@pytest.mark.django_db
def test_the_task_tables_admin_shows_a_paused_tasks_queue_and_resumes_it():
    modelqueue.tasks.pause('emails', backend='default', by='<b>alice</b>')
    client = Client()
    client.force_login(create_user('operator', 'view_queuedtask', 'pause_queue'))
    for name in ('changelist', 'dashboard'):
        page = client.get(reverse(f'admin:modelqueue_queuedtask_{name}')).text
        assert 'default/emails: Paused since' in page and 'by &lt;b&gt;alice&lt;/b&gt;' in page, name
    resume = reverse('admin:modelqueue_queuedtask_queue_resume', args=['status'])
    assert f'href="{resume}?queue=default%2Femails&amp;next=' in page
    confirmation = client.get(resume, {'queue': 'default/emails'}).text
    assert 'Resume the queue status (default/emails) of tasks?' in confirmation
    assert 'name="queue" value="default/emails"' in confirmation
    pause = reverse('admin:modelqueue_queuedtask_queue_pause', args=['status'])
    assert client.post(pause, {'queue': 'default/reports'}).status_code == 404  # by name: from code
    assert not modelqueue.tasks.is_paused('reports')
    response = client.post(resume, {'queue': 'default/emails'}, follow=True)
    assert 'Resumed the queue status (default/emails) of tasks.' in [str(m) for m in response.context['messages']]
    assert not modelqueue.tasks.is_paused('emails')
    assert LogEntry.objects.get().change_message == 'Resumed the queue status (default/emails) of tasks.'
    viewer = Client()
    viewer.force_login(create_user('viewer', 'view_queuedtask'))
    modelqueue.tasks.pause('emails')
    assert 'modelqueue-resume-button' not in viewer.get(reverse('admin:modelqueue_queuedtask_changelist')).text
    assert viewer.post(resume, {'queue': 'default/emails'}).status_code == 403
    assert modelqueue.tasks.is_paused('emails')
