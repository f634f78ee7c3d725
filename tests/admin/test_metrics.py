"""Metrics for Prometheus: the exposition's values against known rows, with and
without state counters, and who may read them (staff in the admin, a scraper
with the token)."""

import datetime as dt
import sys
from unittest import mock

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import override_settings
from django.urls import path, reverse
from prometheus_client.parser import text_string_to_metric_families

from modelqueue import Status, now
from modelqueue.admin import metrics
from modelqueue.admin.counts import state_counts
from modelqueue.counters import install_counters, uninstall_counters
from modelqueue.models import QueuePause, WorkerHeartbeat
from modelqueue.tasks.models import QueuedTask
from tests.support.users import create_user
from tests.testapp.models import Task
from tests.urls import urlpatterns

TOKEN = 'a-scraper-token-of-32-characters'
QUEUE = 'testapp.Task.status'

urlpatterns = [*urlpatterns, path('metrics/', metrics.token_view)]  # this module is the URLconf


@pytest.fixture(params=[
    pytest.param(False, id='counted'),
    pytest.param(True, id='with-state-counters', marks=pytest.mark.vendors('postgresql')),
])
def with_counters(request, db):
    """Whether the Task queue has state counters (uninstalled afterwards)."""
    if request.param:
        install_counters(Task, 'status')
    yield request.param
    if request.param:
        uninstall_counters(Task, 'status')


def known_rows():
    """Rows of every kind the metrics tell apart; returns when the oldest due row came due."""
    current = now()
    oldest_due = current - dt.timedelta(minutes=10)
    statuses = [
        Status.created(),
        Status.waiting(oldest_due),
        Status.waiting(current - dt.timedelta(minutes=1), 1),
        Status.waiting(current + dt.timedelta(hours=1)),  # scheduled
        Status.working(current - dt.timedelta(hours=2)),  # stalled: past the admin's hour
        Status.working(current),
        *[Status.finished(current)] * 4,
        *[Status.canceled(current)] * 2,
    ]
    Task.objects.bulk_create(Task(data='known', status=status) for status in statuses)
    return oldest_due


def samples(text):
    """{(metric sample name, its labels as a sorted tuple): value} of an exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


def of_queue(found, name, **labels):
    return found[name, tuple(sorted({'queue': QUEUE, **labels}.items()))]


@pytest.mark.django_db
def test_the_exposition_gives_each_figure_of_known_rows(superuser_client, with_counters):
    oldest_due = known_rows()
    content_type = ContentType.objects.get_for_model(Task)
    QueuePause.objects.create(content_type=content_type, field='status', paused_at=now())
    # One Tasks queue paused is not the task table's whole queue.
    tasks = ContentType.objects.get_for_model(QueuedTask)
    QueuePause.objects.create(content_type=tasks, field='status', queue_name='emails', paused_at=now())
    beat = dict(content_type=content_type, field='status', started=now(), interval=5.0)
    WorkerHeartbeat.objects.create(host='web1', pid=11, last_seen=now(), tasks_done=7, failures=2, **beat)
    WorkerHeartbeat.objects.create(host='web1', pid=12, last_seen=now() - dt.timedelta(minutes=5), **beat)  # lost

    before = now()
    response = superuser_client.get(reverse('admin:modelqueue_metrics'))
    after = now()
    assert response.status_code == 200
    assert response['Content-Type'].startswith('text/plain; version=')
    found = samples(response.content.decode())
    rows = {state: of_queue(found, 'modelqueue_rows', state=state) for state in
            ('created', 'waiting', 'working', 'finished', 'canceled')}
    assert rows == {'created': 1, 'waiting': 3, 'working': 2, 'finished': 4, 'canceled': 2}
    assert of_queue(found, 'modelqueue_due_rows') == 2
    assert of_queue(found, 'modelqueue_scheduled_rows') == 1
    assert of_queue(found, 'modelqueue_stalled_rows') == 1
    age = of_queue(found, 'modelqueue_oldest_due_age_seconds')
    ms = 0.001  # a status keeps milliseconds
    assert (before - oldest_due).total_seconds() - ms <= age <= (after - oldest_due).total_seconds() + ms
    assert of_queue(found, 'modelqueue_paused') == 1
    assert of_queue(found, 'modelqueue_live_workers') == 1
    assert of_queue(found, 'modelqueue_finished_total') == 4
    assert of_queue(found, 'modelqueue_canceled_total') == 2
    assert of_queue(found, 'modelqueue_worker_tasks_total', worker='web1:11') == 7
    assert of_queue(found, 'modelqueue_worker_failures_total', worker='web1:11') == 2
    assert ('modelqueue_worker_tasks_total', (('queue', QUEUE), ('worker', 'web1:12'))) not in found
    # Every queue of the site, each labelled: the other queues are empty and not paused.
    assert found['modelqueue_paused', (('queue', 'testapp.Upload.scan_status'),)] == 0
    assert found['modelqueue_paused', (('queue', 'modelqueue.QueuedTask.status'),)] == 0
    assert found['modelqueue_rows', (('queue', 'testapp.Upload.scan_status'), ('state', 'waiting'))] == 0
    # Where installed, the state counters gave them.
    assert state_counts(Task.objects.all(), 'status', now()).from_counters is with_counters


@pytest.mark.django_db
def test_an_empty_queue_has_no_oldest_due_row_and_is_not_paused(superuser_client):
    found = samples(superuser_client.get(reverse('admin:modelqueue_metrics')).content.decode())
    assert of_queue(found, 'modelqueue_oldest_due_age_seconds') == 0
    assert of_queue(found, 'modelqueue_paused') == 0
    assert of_queue(found, 'modelqueue_live_workers') == 0


@pytest.mark.django_db
def test_the_admin_page_is_for_staff_who_may_view_a_queue_and_shows_only_those(client):
    url = reverse('admin:modelqueue_metrics')
    response = client.get(url)
    assert response.status_code == 302 and '/login/' in response['Location']  # anonymous
    client.force_login(create_user('visitor', 'view_task', staff=False))
    response = client.get(url)
    assert response.status_code == 302 and '/login/' in response['Location']  # not staff
    client.force_login(create_user('clerk'))
    assert client.get(url).status_code == 403  # staff, but no queue to view
    client.force_login(create_user('viewer', 'view_task'))
    response = client.get(url)
    assert response.status_code == 200
    labels = {sample[1] for sample in samples(response.content.decode())}
    assert {dict(label)['queue'] for label in labels} == {QUEUE}


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_the_scraper_s_page_needs_the_setting_and_its_token(client):
    assert client.get('/metrics/').status_code == 404
    with override_settings(MODELQUEUE_METRICS_TOKEN=TOKEN):
        assert client.get('/metrics/').status_code == 401
        response = client.get('/metrics/', headers={'Authorization': f'Bearer {TOKEN}x'})
        assert response.status_code == 401
        assert response['WWW-Authenticate'] == 'Bearer'
        assert client.get('/metrics/', headers={'Authorization': f'Basic {TOKEN}'}).status_code == 401
        assert client.post('/metrics/', headers={'Authorization': f'Bearer {TOKEN}'}).status_code == 405
        with mock.patch.object(metrics.hmac, 'compare_digest', wraps=metrics.hmac.compare_digest) as compared:
            response = client.get('/metrics/', headers={'Authorization': f'Bearer {TOKEN}'})
        compared.assert_called_once_with(TOKEN.encode(), TOKEN.encode())
        assert response.status_code == 200
        assert ('modelqueue_paused', (('queue', QUEUE),)) in samples(response.content.decode())


@pytest.mark.parametrize('value', ['short', 42, ' a-token-with-a-space-before'])
def test_a_weak_or_malformed_token_is_refused_without_showing_it(value):
    from modelqueue.conf import check_settings  # noqa: PLC0415

    with override_settings(MODELQUEUE_METRICS_TOKEN=value):
        [error] = [e for e in check_settings() if 'MODELQUEUE_METRICS_TOKEN' in e.msg]
    assert 'expected None or a string of at least 16 characters' in error.msg
    assert str(value).strip() not in error.msg


@pytest.mark.django_db
def test_without_prometheus_client_the_page_says_what_to_install(superuser_client, monkeypatch):
    monkeypatch.setitem(sys.modules, 'prometheus_client', None)  # import raises ImportError
    response = superuser_client.get(reverse('admin:modelqueue_metrics'))
    assert response.status_code == 503
    assert response.content.decode() == metrics.INSTALL_HINT
    assert 'pip install modelqueue[prometheus]' in metrics.INSTALL_HINT
