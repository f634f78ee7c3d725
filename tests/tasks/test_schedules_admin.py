"""The Schedules page: what it shows, enable, disable and run now, their
permissions and LogEntries, and escaping."""

import datetime as dt

import pytest
from django.contrib.admin.models import LogEntry
from django.test import override_settings

from modelqueue.tasks.models import QueuedTask, ScheduleState
from modelqueue.tasks.worker import TaskWorker
from tests.support.users import create_user

pytestmark = pytest.mark.django_db

CHANGELIST = '/admin/modelqueue/schedulestate/'
SCHEDULES = {
    'report <b>nightly</b>': {
        'task': 'tests.testapp.tasks.add', 'cron': '0 3 * * *', 'timezone': 'Europe/Paris', 'args': [1, 2],
    },
    'tick': {'task': 'tests.testapp.tasks.add', 'every': dt.timedelta(minutes=5), 'args': [3, 4]},
}


@pytest.fixture(autouse=True)
def declared():
    with override_settings(MODELQUEUE_SCHEDULES=SCHEDULES):
        yield


def act(client, action, *names):
    ids = [ScheduleState.objects.get(name=name).pk for name in names]
    return client.post(CHANGELIST, {'action': action, '_selected_action': ids}, follow=True)


def test_the_page_lists_each_declared_schedule_with_its_next_run_escaped(superuser_client):
    page = superuser_client.get(CHANGELIST).content.decode()
    assert ScheduleState.objects.count() == 2  # opening the page gave each its row
    assert 'report &lt;b&gt;nightly&lt;/b&gt;' in page and '<b>nightly</b>' not in page
    assert '0 3 * * * (Europe/Paris)' in page and 'every 0:05:00' in page
    assert 'tests.testapp.tasks.add' in page
    assert superuser_client.get(f'{CHANGELIST}add/').status_code == 403


def test_the_last_run_s_outcome_links_to_its_task(superuser_client):
    superuser_client.get(CHANGELIST)
    act(superuser_client, 'run_now', 'tick')
    TaskWorker('default', burst=True, listen=False, schedules=False).run()
    task = QueuedTask.objects.get()
    page = superuser_client.get(CHANGELIST).content.decode()
    assert f'/admin/modelqueue/queuedtask/{task.pk}/change/' in page
    assert f'Successful (#{task.pk})' in page


def test_disable_and_enable_need_the_change_permission_and_leave_log_entries(client, superuser_client):
    superuser_client.get(CHANGELIST)
    viewer = create_user('viewer', 'view_schedulestate')
    client.force_login(viewer)
    assert client.get(CHANGELIST).status_code == 200
    act(client, 'disable', 'tick')
    assert ScheduleState.objects.get(name='tick').enabled  # the action is not offered to a viewer
    editor = create_user('editor', 'view_schedulestate', 'change_schedulestate')
    client.force_login(editor)
    response = act(client, 'disable', 'tick')
    assert '1 schedules disabled.' in response.content.decode()
    assert not ScheduleState.objects.get(name='tick').enabled
    before = ScheduleState.objects.get(name='tick').next_slot
    act(client, 'enable', 'tick')
    state = ScheduleState.objects.get(name='tick')
    assert state.enabled and state.next_slot >= before
    entries = LogEntry.objects.filter(object_repr='tick').order_by('pk')
    assert [(e.user.username, e.change_message) for e in entries] == [
        ('editor', 'Disabled the schedule.'), ('editor', 'Enabled the schedule.'),
    ]


def test_run_now_needs_its_permission_enqueues_the_task_and_leaves_a_log_entry(client, superuser_client):
    superuser_client.get(CHANGELIST)
    editor = create_user('editor', 'view_schedulestate', 'change_schedulestate')
    client.force_login(editor)
    act(client, 'run_now', 'tick')
    assert not QueuedTask.objects.exists()
    runner = create_user('runner', 'view_schedulestate', 'run_schedule')
    client.force_login(runner)
    response = act(client, 'run_now', 'tick')
    task = QueuedTask.objects.get()
    assert (task.task_path, task.args) == ('tests.testapp.tasks.add', [3, 4])
    assert f'Tick enqueued as task {task.pk}.' in response.content.decode()  # the admin's capfirst
    entry = LogEntry.objects.get(object_repr='tick')
    assert (entry.user.username, entry.change_message) == ('runner', f'Ran the schedule now: task {task.pk}.')


def test_a_schedule_no_longer_declared_is_shown_so_and_not_run(superuser_client):
    superuser_client.get(CHANGELIST)
    with override_settings(MODELQUEUE_SCHEDULES={'tick': SCHEDULES['tick']}):
        page = superuser_client.get(CHANGELIST).content.decode()
        assert '(no longer declared)' in page
        response = act(superuser_client, 'run_now', 'report <b>nightly</b>')
    assert 'is no longer declared: not run.' in response.content.decode()
    assert not QueuedTask.objects.exists()
