"""Quiet, Stop and Rescue now in the Workers panel: permission, confirmation,
LogEntry, escaping, and what each writes."""

import datetime as dt

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse

from modelqueue import State, Status, now
from modelqueue.models import FailureRecord, WorkerHeartbeat
from tests.support.admin import messages_of
from tests.support.users import create_user
from tests.testapp.models import Task, Upload

pytestmark = pytest.mark.django_db

WORKER = 'admin:testapp_task_queue_worker'
DASHBOARD = 'admin:testapp_task_dashboard'
ACTIVITY = 'admin:testapp_task_dashboard_activity'
PAYLOAD = '<script>alert("xss")</script>'
ESCAPED = '&lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt;'


def client_of(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def operator():
    return create_user('alice', 'view_task', 'control_worker')


def heartbeat(seen_ago=1, host='web-1', pid=100, held=(), model=Task, field='status'):
    current = now()
    return WorkerHeartbeat.objects.create(
        host=host,
        pid=pid,
        content_type=ContentType.objects.get_for_model(model),
        field=field,
        started=current - dt.timedelta(minutes=5),
        last_seen=current - dt.timedelta(seconds=seen_ago),
        interval=5.0,
        held=[[str(pk), str(status)] for pk, status in held],
    )


def url(beat, operation, field='status'):
    return reverse(WORKER, args=[field, beat.pk, operation])


def held_row(attempts=0):
    task = Task.objects.create(data='held')
    status = Status.working(now() - dt.timedelta(minutes=1), attempts)
    Task.objects.filter(pk=task.pk).update(status=status)
    return task, int(status)


def test_a_live_worker_has_quiet_and_stop_buttons_a_lost_one_rescue_now(operator):
    live, lost = heartbeat(seen_ago=1, pid=100), heartbeat(seen_ago=60, pid=200)
    page = client_of(operator).get(reverse(DASHBOARD)).text
    assert url(live, 'quiet') in page and url(live, 'stop') in page and url(live, 'rescue') not in page
    assert url(lost, 'rescue') in page and url(lost, 'quiet') not in page
    fragment = client_of(operator).get(reverse(ACTIVITY)).text
    assert url(lost, 'rescue') in fragment and 'Rescue now' in fragment


def test_quiet_asks_first_then_sets_the_command_and_logs_it_and_the_panel_shows_quiet(operator):
    beat = heartbeat()
    client = client_of(operator)
    page = client.get(url(beat, 'quiet'))
    assert page.status_code == 200
    assert 'Quiet the worker web-1:100 on the queue status of tasks?' in page.text
    assert 'csrfmiddlewaretoken' in page.text
    assert WorkerHeartbeat.objects.get().command == ''  # GET changes nothing
    response = client.post(url(beat, 'quiet'), follow=True)
    assert response.redirect_chain[-1][0] == reverse(DASHBOARD)
    assert WorkerHeartbeat.objects.get().command == 'quiet'
    message = (
        'Told the worker web-1:100 on the queue status of tasks to quiet:'
        ' it finishes the rows it holds and claims no more.'
    )
    assert messages_of(response) == [message]
    (entry,) = LogEntry.objects.all()
    assert (entry.user, entry.content_type.model_class(), entry.change_message) == (operator, Task, message)
    assert 'data-state="live"' in client.get(reverse(DASHBOARD)).text and '(quiet asked)' in response.text
    WorkerHeartbeat.objects.update(quiet=True)  # as the worker reports at its next beat
    page = client.get(reverse(DASHBOARD)).text
    assert 'data-state="quiet"' in page and 'modelqueue-quiet-button' not in page


def test_stop_sets_the_command_and_logs_it(operator):
    beat = heartbeat()
    response = client_of(operator).post(url(beat, 'stop'), follow=True)
    assert WorkerHeartbeat.objects.get().command == 'stop'
    assert 'to stop: it finishes the rows it holds, then exits.' in messages_of(response)[0]
    assert LogEntry.objects.count() == 1


def test_rescue_now_gives_back_the_rows_of_a_lost_worker_says_how_many_and_logs_it(operator):
    (first, first_status), (second, second_status) = held_row(), held_row(attempts=1)
    gone, gone_status = held_row()
    Task.objects.filter(pk=gone.pk).update(status=Status.finished(now(), 1))  # done before it was lost
    beat = heartbeat(seen_ago=60, held=[(first.pk, first_status), (second.pk, second_status), (gone.pk, gone_status)])
    client = client_of(operator)
    page = client.get(url(beat, 'rescue'))
    assert 'Rescue the rows of the lost worker web-1:100' in page.text and '3 rows in hand' in page.text
    assert Status(Task.objects.get(pk=first.pk).status).state == State.working  # GET changes nothing
    response = client.post(url(beat, 'rescue'), follow=True)
    message = 'Rescued 2 rows of the lost worker web-1:100 on the queue status of tasks.'
    assert messages_of(response) == [message]
    assert LogEntry.objects.get().change_message == message
    assert [Status(Task.objects.get(pk=task.pk).status).state for task in (first, second, gone)] == [
        State.waiting, State.waiting, State.finished
    ]
    assert not WorkerHeartbeat.objects.exists()
    records = FailureRecord.objects.order_by('object_id')
    assert {record.exception for record in records} == {FailureRecord.WORKER_LOST}
    assert all('worker web-1:100 lost' in r.message and 'rescued by alice in the admin' in r.message for r in records)
    # Pressed twice (two tabs): the second finds nothing to do and says so.
    again = client.post(url(beat, 'rescue'), follow=True)
    assert messages_of(again) == ['That worker has no heartbeat any more (it stopped, or was rescued).']
    assert LogEntry.objects.count() == 1


def test_a_live_worker_is_not_rescued_and_a_lost_one_is_not_told_to_quiet(operator):
    task, status = held_row()
    live, lost = heartbeat(seen_ago=1, held=[(task.pk, status)]), heartbeat(seen_ago=60, pid=200)
    client = client_of(operator)
    response = client.post(url(live, 'rescue'), follow=True)
    assert 'is not lost (it beat again), or was rescued already' in messages_of(response)[0]
    assert Task.objects.get(pk=task.pk).status == status and WorkerHeartbeat.objects.filter(pk=live.pk).exists()
    response = client.post(url(lost, 'quiet'), follow=True)
    assert messages_of(response) == ['The worker web-1:200 is lost: rescue its rows instead.']
    assert WorkerHeartbeat.objects.get(pk=lost.pk).command == ''
    assert not LogEntry.objects.exists()


def test_without_the_permission_there_is_no_button_and_a_forged_post_is_refused():
    beat = heartbeat(seen_ago=60)
    live = heartbeat(seen_ago=1, pid=300)
    viewer = client_of(create_user('viewer', 'view_task', 'change_task'))
    page = viewer.get(reverse(DASHBOARD)).text
    assert 'modelqueue-rescue-button' not in page and 'modelqueue-quiet-button' not in page
    for target, operation in ((beat, 'rescue'), (live, 'quiet'), (live, 'stop')):
        assert viewer.get(url(target, operation)).status_code == 403
        assert viewer.post(url(target, operation)).status_code == 403
    blind = client_of(create_user('blind', 'view_upload', 'control_worker'))
    assert blind.post(url(live, 'stop')).status_code == 403
    assert list(WorkerHeartbeat.objects.values_list('command', flat=True)) == ['', '']
    assert not LogEntry.objects.exists()


def test_controls_need_the_csrf_token(operator):
    beat = heartbeat()
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.post(url(beat, 'stop')).status_code == 403
    assert WorkerHeartbeat.objects.get().command == ''


def test_bad_operations_fields_and_workers_of_other_queues_are_not_found(operator):
    beat = heartbeat()
    other = heartbeat(model=Upload, field='scan_status', pid=400)
    client = client_of(operator)
    assert client.post(url(beat, 'restart')).status_code == 404
    assert client.post(url(beat, 'quiet', field='data')).status_code == 404
    assert client.get(url(other, 'quiet')).status_code == 404  # Upload's worker, through Task's admin
    response = client.post(url(other, 'quiet'), follow=True)
    assert 'no heartbeat any more' in messages_of(response)[0]
    assert WorkerHeartbeat.objects.get(pk=other.pk).command == ''
    assert client.get(reverse(WORKER, args=['status', 999999, 'quiet'])).status_code == 404


def test_worker_names_are_escaped_in_the_panel_and_the_confirmation(operator):
    beat = heartbeat(host=PAYLOAD)
    client = client_of(operator)
    for page in (client.get(reverse(DASHBOARD)).text, client.get(url(beat, 'quiet')).text):
        assert ESCAPED in page and PAYLOAD not in page
    response = client.post(url(beat, 'quiet'), follow=True)
    assert PAYLOAD not in response.text and ESCAPED in response.text
