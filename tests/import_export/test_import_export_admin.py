"""QueueImportExportMixin through the test client: buttons, files, permissions."""

import csv
import datetime as dt
import html
import io
import re

import pytest
import pytz
from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured

from modelqueue import Status
from modelqueue.import_export import admin as import_export_admin_module
from modelqueue.import_export.admin import QueueImportExportMixin
from tests.support.imports import confirm, format_index, preview, url
from tests.support.users import create_user
from tests.testapp import import_export_admin
from tests.testapp.models import Task, Upload

WHEN = dt.datetime(2018, 1, 2, 3, 4, 56, 789000, tzinfo=pytz.utc)
TASK_ADMIN = import_export_admin.site._registry[Task]






@pytest.fixture
def tasks(db):
    return {
        state.name: Task.objects.create(
            data=state.name, status=Status.combine(state, WHEN, int(state))
        )
        for state in Status.states
    }


def staff_client(client, *codenames):
    client.force_login(create_user('staff', *codenames))
    return client


def export_post_data(response, file_format='csv'):
    """The export form's data as the browser would send it: every field ticked."""
    form = response.context['form']
    data = {'format': format_index(file_format, import_=False), 'resource': '0'}
    for name, field in form.fields.items():
        if getattr(field, 'is_selectable_field', False):
            data[name] = 'on'
    return data


def object_tools(response):
    """Return {'import': href, 'export': href, ...} of the changelist's tool links."""
    links = re.findall(
        r'<a href=["\']([^"\']*)["\'] class="(\w+)_link"', response.content.decode()
    )
    return {name: html.unescape(href) for href, name in links}


def read_csv(response):
    return list(csv.DictReader(io.StringIO(response.content.decode('utf-8-sig'))))








def test_changelist_shows_import_and_export_keeping_filters(superuser_client, tasks):
    response = superuser_client.get(url('changelist') + '?status_queue=canceled')
    assert response.status_code == 200
    assert object_tools(response) == {
        'import': url('import'),
        'export': url('export') + '?status_queue=canceled',
    }


def test_export_respects_the_filter_and_decodes(superuser_client, tasks):
    export_url = url('export') + '?status_queue=canceled'
    form_page = superuser_client.get(export_url)
    assert form_page.status_code == 200
    response = superuser_client.post(export_url, export_post_data(form_page))
    assert response.status_code == 200
    assert response['Content-Disposition'].startswith('attachment;')
    canceled = tasks['canceled'].status
    assert read_csv(response) == [
        {
            'id': str(tasks['canceled'].pk),
            'data': 'canceled',
            'note': '',
            'status': str(canceled),
            'status_state': 'canceled',
            'status_when': '2018-01-02T03:04:56.789+00:00',
            'status_attempts': '5',
        }
    ]


@pytest.mark.parametrize('file_format', ['xlsx', 'json'])
def test_export_other_formats(superuser_client, tasks, file_format):
    export_url = url('export') + '?status_queue=finished'
    response = superuser_client.post(
        export_url, export_post_data(superuser_client.get(export_url), file_format)
    )
    assert response.status_code == 200
    resource = TASK_ADMIN.queue_resource_class()
    format_ = TASK_ADMIN.get_export_formats()[
        int(format_index(file_format, import_=False))
    ]()
    content = response.content if format_.is_binary() else response.content.decode()
    dataset = format_.create_dataset(content)
    assert [row[dataset.headers.index('status')] for row in dataset] == [
        str(tasks['finished'].status)
    ]
    assert resource.get_export_headers() == dataset.headers


def test_import_previews_decoded_then_saves_on_confirmation(superuser_client, tasks):
    task = tasks['canceled']
    text = (
        'id,data,status,status_state,status_when,status_attempts\n'
        f'{task.pk},fixed,,waiting,2018-01-02T03:04:56.789Z,0\n'
        ',new,,finished,7,1\n'
    )
    response = preview(superuser_client, text, allow_rerun='on')  # the canceled row runs again
    assert response.status_code == 200
    page = response.content.decode()
    assert 'status_state' in page and 'waiting' in page and 'finished' in page
    assert response.context['confirm_form'] is not None
    task.refresh_from_db()
    assert task.status == Status.canceled(WHEN, 5)  # nothing saved yet

    response = confirm(superuser_client, response)
    assert response.status_code == 302
    task.refresh_from_db()
    assert (task.data, task.status) == ('fixed', Status.waiting(WHEN, 0))
    assert Task.objects.get(data='new').status == Status.finished(7, 1)


def test_import_bad_rows_shows_errors_and_saves_nothing(superuser_client, tasks):
    text = (
        'data,status_state,status_when,status_attempts\n'
        'good,waiting,,0\n'
        'bad,waiting,2018-02-30,0\n'
        'worse,waiting,,12\n'
    )
    response = preview(superuser_client, text)
    assert response.status_code == 200
    assert 'confirm_form' not in response.context
    page = html.unescape(response.content.decode())
    assert "row 2, column 'status_when': invalid when '2018-02-30'" in page
    assert "row 3, column 'status_attempts': invalid attempts '12'" in page
    assert Task.objects.count() == len(tasks)


def test_import_escapes_values_in_errors(superuser_client, db):
    response = preview(superuser_client, 'data,status_state\nx,<b>paused</b>\n')
    page = response.content.decode()
    assert '<b>paused</b>' not in page
    assert '&lt;b&gt;paused&lt;/b&gt;' in page


def test_working_rows_need_the_opt_in(superuser_client, db):
    text = 'data,status_state,status_when\nx,working,2018-01-02T03:04:56.789Z\n'
    refused = preview(superuser_client, text)
    assert 'confirm_form' not in refused.context
    assert 'is a working status, refused' in refused.content.decode()

    allowed = preview(superuser_client, text, allow_working='on')
    assert allowed.context['confirm_form'].initial['allow_working'] is True
    assert confirm(superuser_client, allowed).status_code == 302
    assert Task.objects.get().status == Status.working(WHEN, 0)


def test_confirmation_without_opt_in_still_refuses_working(superuser_client, db):
    """A forged confirmation cannot skip the check: the import reruns it."""
    text = 'data,status_state\nx,working\n'
    allowed = preview(superuser_client, text, allow_working='on')
    form = allowed.context['confirm_form']
    data = {name: form.initial.get(name, '') for name in form.fields}
    data['allow_working'] = ''
    response = superuser_client.post(url('process_import'), data, follow=True)
    assert Task.objects.count() == 0
    assert [str(m) for m in response.context['messages']] == [
        "Nothing was imported: row 1, column 'status_state': 'working' is a"
        ' working status, refused: no worker holds this row, so it would look'
        ' stalled. Import it as waiting, or explicitly allow working rows'
        ' (allow_working)'
    ]


def test_confirming_twice_imports_once(superuser_client, db):
    response = preview(superuser_client, 'data,status_state\nx,waiting\n')
    assert confirm(superuser_client, response).status_code == 302
    again = superuser_client.post(
        url('process_import'),
        {n: v or '' for n, v in response.context['confirm_form'].initial.items()},
        follow=True,
    )
    assert again.redirect_chain == [(url('import'), 302)]
    assert 'the file to import is gone' in str(list(again.context['messages'])[-1])
    assert Task.objects.count() == 1


@pytest.mark.parametrize(
    'codenames, can_import, can_export',
    [
        ([], False, False),
        (['view_task'], False, True),
        (['add_task'], False, False),
        (['change_task'], False, True),
        (['add_task', 'change_task'], True, True),
    ],
)
def test_permissions(client, db, codenames, can_import, can_export):
    client = staff_client(client, *codenames)
    statuses = {True: {200}, False: {403}}
    assert client.get(url('import')).status_code in statuses[can_import]
    assert client.get(url('export')).status_code in statuses[can_export]
    assert client.post(url('process_import'), {}).status_code in (
        {200} if can_import else {403}
    )
    response = preview(client, 'data,status_state\nx,waiting\n')
    assert response.status_code in statuses[can_import]
    assert Task.objects.count() == 0
    if can_export:
        tools = object_tools(client.get(url('changelist')))
        assert ('import' in tools) is can_import
        assert 'export' in tools


def test_combined_with_the_queue_admin(superuser_client, db):
    Upload.objects.create(
        name='a',
        scan_status=Status.canceled(WHEN, 1),
        publish_status=Status.created(3, 0),
    )
    Upload.objects.create(name='b')
    response = superuser_client.get(url('changelist', 'upload'))
    assert set(object_tools(response)) == {'import', 'export'}
    page = response.content.decode()
    dashboard = url('dashboard', 'upload')
    assert f'href="{dashboard}" class="modelqueue-dashboard-link"' in page
    assert superuser_client.get(url('dashboard', 'upload')).status_code == 200
    assert 'value="requeue_scan_status"' in page  # QueueAdminMixin's actions

    export_url = url('export', 'upload') + '?scan_status_queue=canceled'
    form_page = superuser_client.get(export_url)
    rows = read_csv(superuser_client.post(export_url, export_post_data(form_page)))
    assert [
        (row['name'], row['scan_status_state'], row['publish_status_when'])
        for row in rows
    ] == [('a', 'canceled', '3')]


def test_check_asks_for_import_export_in_installed_apps(monkeypatch):
    assert TASK_ADMIN.check() == []
    installed = import_export_admin_module.apps.is_installed
    monkeypatch.setattr(
        import_export_admin_module.apps,
        'is_installed',
        lambda name: name != 'import_export' and installed(name),
    )
    (error,) = TASK_ADMIN.check()
    assert error.id == 'modelqueue.E101'
    assert "Add 'import_export' to INSTALLED_APPS." == error.hint


def test_queue_fields_are_required():
    class Forgetful(QueueImportExportMixin, admin.ModelAdmin):
        queue_fields = []

    model_admin = Forgetful(Task, import_export_admin.site)
    with pytest.raises(ImproperlyConfigured, match="queue_fields = \\['status'\\]"):
        model_admin.get_resource_classes(None)


def test_the_mixin_makes_a_queue_resource_of_the_queue_fields():
    from django.contrib import admin  # noqa: PLC0415

    import modelqueue  # noqa: PLC0415

    class TaskAdmin(QueueImportExportMixin, admin.ModelAdmin):
        list_filter = [modelqueue.admin_list_filter('status')]

    headers = TaskAdmin(Task, admin.site).queue_resource_class().get_export_headers()
    assert headers == [
        'id', 'data', 'note', 'status', 'status_state', 'status_when', 'status_attempts',
    ]


def test_the_preview_says_plainly_when_a_finished_row_would_run_again(superuser_client, tasks):
    finished = tasks['finished']
    text = f'id,data,status_state\n{finished.pk},again,waiting\n'
    response = preview(superuser_client, text)
    assert 'confirm_form' not in response.context
    page = html.unescape(response.content.decode())
    assert "would send this finished row back to waiting, so it would run again: refused" in page
    form = superuser_client.get(url('import')).content.decode()
    assert 'Allow finished and canceled rows to run again' in form

    allowed = preview(superuser_client, text, allow_rerun='on')
    assert allowed.context['confirm_form'].initial['allow_rerun'] is True
    confirm(superuser_client, allowed)
    assert Status(Task.objects.get(pk=finished.pk).status).state.name == 'waiting'


def test_the_preview_refuses_to_change_a_row_a_worker_holds(superuser_client, tasks):
    working = tasks['working']
    response = preview(superuser_client, f'id,note\n{working.pk},edited\n')
    assert 'confirm_form' not in response.context
    assert 'the row is working now (a worker holds it)' in html.unescape(response.content.decode())
    assert Task.objects.get(pk=working.pk).note == ''
