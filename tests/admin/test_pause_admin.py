"""Pause and Resume in the admin: permission, confirmation, LogEntry, banner."""

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

import modelqueue
from modelqueue.models import QueuePause
from tests.support.admin import messages_of
from tests.support.users import create_user
from tests.testapp.models import Task, Upload

pytestmark = pytest.mark.django_db

PAUSE = 'admin:testapp_task_queue_pause'
RESUME = 'admin:testapp_task_queue_resume'
DASHBOARD = 'admin:testapp_task_dashboard'
CHANGELIST = 'admin:testapp_task_changelist'
OVERVIEW = 'admin:modelqueue_overview'
PAYLOAD = '<script>alert("xss")</script>'
ESCAPED = '&lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt;'


def client_of(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def operator():
    return create_user('alice', 'view_task', 'pause_queue')


def test_pausing_asks_first_then_pauses_names_the_user_and_logs_it(operator):
    client = client_of(operator)
    url = reverse(PAUSE, args=['status'])
    page = client.get(url, {'next': reverse(CHANGELIST)})
    assert page.status_code == 200
    assert 'Pause the queue status of tasks?' in page.text
    assert 'csrfmiddlewaretoken' in page.text
    assert not modelqueue.is_paused(Task, 'status')  # GET changes nothing
    response = client.post(url, {'next': reverse(CHANGELIST)}, follow=True)
    assert response.redirect_chain[-1][0] == reverse(CHANGELIST)
    assert modelqueue.is_paused(Task, 'status')
    assert QueuePause.objects.get().paused_by == 'alice'
    assert messages_of(response) == ['Paused the queue status of tasks.']
    (entry,) = LogEntry.objects.all()
    assert (entry.user, entry.content_type.model_class(), entry.change_message) == (
        operator, Task, 'Paused the queue status of tasks.'
    )
    response = client.post(reverse(RESUME, args=['status']), follow=True)
    assert response.redirect_chain[-1][0] == reverse(DASHBOARD)
    assert not modelqueue.is_paused(Task, 'status')
    assert LogEntry.objects.latest('pk').change_message == 'Resumed the queue status of tasks.'


def test_without_the_pause_permission_there_is_no_button_and_a_forged_post_is_refused():
    viewer = client_of(create_user('viewer', 'view_task', 'change_task'))
    assert 'modelqueue-pause-button' not in viewer.get(reverse(DASHBOARD)).text
    for name in (PAUSE, RESUME):
        url = reverse(name, args=['status'])
        assert viewer.get(url).status_code == 403
        assert viewer.post(url).status_code == 403
    modelqueue.pause(Task, 'status')
    assert 'modelqueue-resume-button' not in viewer.get(reverse(DASHBOARD)).text
    assert viewer.post(reverse(RESUME, args=['status'])).status_code == 403
    assert modelqueue.is_paused(Task, 'status')
    assert not LogEntry.objects.exists()


def test_the_pause_permission_without_viewing_the_model_is_refused():
    client = client_of(create_user('blind', 'view_upload', 'pause_queue'))
    assert client.post(reverse(PAUSE, args=['status'])).status_code == 403
    assert not modelqueue.is_paused(Task, 'status')


def test_pausing_needs_the_csrf_token(operator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.post(reverse(PAUSE, args=['status'])).status_code == 403
    assert not modelqueue.is_paused(Task, 'status')


def test_a_field_that_is_no_queue_is_not_found_and_next_may_not_leave_the_site(operator):
    client = client_of(operator)
    assert client.post(reverse(PAUSE, args=['data'])).status_code == 404
    response = client.post(reverse(PAUSE, args=['status']), {'next': 'https://evil.example/'})
    assert response['Location'] == reverse(DASHBOARD)


def test_a_paused_queue_has_a_banner_on_its_pages_with_the_name_escaped(operator):
    modelqueue.pause(Task, 'status', by=PAYLOAD)
    client = client_of(operator)
    for url in (reverse(CHANGELIST), reverse(DASHBOARD), reverse(RESUME, args=['status'])):
        page = client.get(url).text
        assert 'Paused since ' in page and f' by {ESCAPED}' in page, url
        assert PAYLOAD not in page, url
    assert 'modelqueue-resume-button' in client.get(reverse(DASHBOARD)).text
    modelqueue.resume(Task, 'status')
    for url in (reverse(CHANGELIST), reverse(DASHBOARD)):
        assert 'Paused since' not in client.get(url).text


def test_the_overview_pauses_and_resumes_each_queue_field(operator):
    operator.user_permissions.add(*create_user('x', 'view_upload').user_permissions.all())
    client = client_of(operator)
    page = client.get(reverse(OVERVIEW)).text
    assert page.count('modelqueue-pause-button') == 3  # Task.status, Upload's two fields
    modelqueue.pause(Upload, 'publish_status', by='bob')
    page = client.get(reverse(OVERVIEW)).text
    assert page.count('modelqueue-pause-button') == 2
    assert 'Paused since' in page and 'by bob' in page
    resume = reverse('admin:testapp_upload_queue_resume', args=['publish_status'])
    assert f'href="{resume}?next=' in page
    assert client.post(resume).status_code == 302
    assert not modelqueue.is_paused(Upload, 'publish_status')
    assert modelqueue.is_paused(Upload, 'scan_status') is False
