"""QueueResource: export statuses decoded, import them back, refuse bad rows."""

import datetime as dt
import subprocess
import sys
import textwrap

import pytest
import pytz
import tablib
from django.core.exceptions import ImproperlyConfigured
from import_export.formats.base_formats import CSV, JSON, XLSX

from modelqueue import State, Status
from modelqueue.import_export.resources import QueueResource, queue_resource
from tests.support import ROOT
from tests.testapp.models import Task, Upload

FORMATS = [CSV, JSON, XLSX]
WHEN = dt.datetime(2018, 1, 2, 3, 4, 56, 789000, tzinfo=pytz.utc)
PRIORITIES = {'datetime': WHEN, 'integer': 123}
COLUMNS = ['status', 'status_state', 'status_when', 'status_attempts']


class TaskResource(QueueResource):
    class Meta:
        model = Task
        queue_fields = ['status']


def through(file_format, dataset):
    """Return `dataset` written in `file_format` and read back, as a user's file."""
    format_ = file_format()
    data = format_.export_data(dataset)
    if not format_.is_binary() and isinstance(data, bytes):
        data = data.decode()
    return format_.create_dataset(data)


def export(resource, file_format):
    """Export like the admin does: native types for binary formats (XLSX)."""
    return resource.export(force_native_type=file_format().is_binary())


def import_rows(headers, *rows, resource=None):
    dataset = tablib.Dataset(*rows, headers=headers)
    return (resource or TaskResource()).import_data(dataset)


def row_errors(result):
    """Return {row number: [messages]} of every invalid or failed row."""
    errors = {
        row.number: [m for ms in row.error_dict.values() for m in ms]
        for row in result.invalid_rows
    }
    for number, row_errors_ in result.row_errors():
        errors.setdefault(number, []).extend(str(e.error) for e in row_errors_)
    return errors


@pytest.mark.django_db
@pytest.mark.parametrize('file_format', FORMATS, ids=lambda f: f.__name__)
@pytest.mark.parametrize('priority_kind', list(PRIORITIES))
def test_round_trip_every_state(file_format, priority_kind):
    priority = PRIORITIES[priority_kind]
    statuses = [
        Status.combine(state, priority, attempts)
        for attempts, state in enumerate(Status.states)
    ]
    tasks = [Task.objects.create(data=f'task {s}', status=s) for s in statuses]
    resource = TaskResource(allow_working=True, allow_rerun=True)  # a deliberate restore
    dataset = through(file_format, export(resource, file_format))
    assert dataset.headers == ['id', 'data', 'note', *COLUMNS]

    decoded = [
        (row[3], row[4], row[5], str(row[6])) for row in dataset
    ]
    when = WHEN.isoformat(timespec='milliseconds') if priority == WHEN else '123'
    assert decoded == [
        (str(status), status.state.name, when, str(status.attempts))
        for status in statuses
    ]

    Task.objects.update(status=Status.canceled(0, 9))
    result = resource.import_data(dataset)
    assert not result.has_errors() and not result.has_validation_errors()
    assert [Task.objects.get(pk=task.pk).status for task in tasks] == statuses


@pytest.mark.django_db
@pytest.mark.parametrize('file_format', FORMATS, ids=lambda f: f.__name__)
def test_round_trip_decoded_columns_alone(file_format):
    """A file whose raw column was dropped imports to the same statuses."""
    statuses = [
        Status.finished(WHEN, 1),
        Status.waiting(7, 0),
        Status.canceled(dt.datetime(1999, 12, 31, 23, 59, 59, 999000), 9),
    ]
    for status in statuses:
        Task.objects.create(data='x', status=status)
    dataset = export(TaskResource(), file_format)
    del dataset['status']
    dataset = through(file_format, dataset)
    Task.objects.update(status=Status.created(0, 0))
    result = TaskResource().import_data(dataset)
    assert not result.has_validation_errors()
    imported = Task.objects.order_by('pk').values_list('status', flat=True)
    assert list(imported) == statuses


@pytest.mark.django_db
def test_new_rows_from_decoded_columns():
    result = import_rows(
        ['data', 'status_state', 'status_when', 'status_attempts'],
        ('a', 'canceled', '2018-01-02T04:04:56.789+01:00', '3'),
        ('b', 'Waiting', '42', ''),
        ('c', 'finished', '2018-01-02 03:04:56.789', 0),
    )
    assert not result.has_validation_errors()
    assert dict(Task.objects.values_list('data', 'status')) == {
        'a': Status.canceled(WHEN, 3),
        'b': Status.waiting(42, 0),
        'c': Status.finished(WHEN, 0),  # naive: taken as UTC
    }


@pytest.mark.django_db
def test_missing_status_means_waiting_due_now():
    before = Status.waiting(attempts=0)
    result = import_rows(
        ['data', 'status', 'status_state'], ('blank', '', ''), ('none', None, None)
    )
    result_without_columns = import_rows(['data'], ('absent',))
    after = Status.waiting(attempts=0)
    assert not result.has_validation_errors()
    assert not result_without_columns.has_validation_errors()
    statuses = list(Task.objects.values_list('status', flat=True))
    assert len(statuses) == 3
    assert all(before <= status <= after for status in statuses)


@pytest.mark.django_db
def test_blank_when_means_now_and_blank_attempts_zero():
    before = Status.canceled(attempts=0)
    import_rows(['data', 'status_state'], ('x', 'canceled'))
    assert before <= Task.objects.get().status <= Status.canceled(attempts=0)


@pytest.mark.django_db
def test_raw_and_decoded_columns_that_agree_are_accepted():
    status = Status.finished(WHEN, 2)
    result = import_rows(
        ['data', *COLUMNS], ('x', str(status), 'finished', '', 2)
    )
    assert not result.has_validation_errors()
    assert Task.objects.get().status == status


@pytest.mark.django_db
def test_raw_integer_number_is_accepted():
    """JSON and spreadsheets may give the raw status as a number."""
    status = Status.waiting(WHEN, 1)
    import_rows(['data', 'status'], ('x', int(status)))
    assert Task.objects.get().status == status


BAD_ROWS = [
    pytest.param(
        ['status_state'], ['paused'], 'status_state', "'paused'", 'unknown state',
        id='unknown-state',
    ),
    pytest.param(
        ['status_state', 'status_when'], ['waiting', '2018-13-45T00:00'],
        'status_when', "'2018-13-45T00:00'", 'expected an ISO 8601 datetime',
        id='malformed-date',
    ),
    pytest.param(
        ['status_state', 'status_when'], ['waiting', 'tomorrow'],
        'status_when', "'tomorrow'", 'expected an ISO 8601 datetime',
        id='date-word',
    ),
    pytest.param(
        ['status_state', 'status_when'], ['waiting', str(10**17)],
        'status_when', str(10**17), 'at most 17 digits', id='priority-too-big',
    ),
    pytest.param(
        ['status_state', 'status_attempts'], ['waiting', '10'],
        'status_attempts', "'10'", 'from 0 through 9', id='attempts-10',
    ),
    pytest.param(
        ['status_state', 'status_attempts'], ['waiting', '-1'],
        'status_attempts', "'-1'", 'from 0 through 9', id='attempts-negative',
    ),
    pytest.param(
        ['status_state', 'status_attempts'], ['waiting', 'two'],
        'status_attempts', "'two'", 'from 0 through 9', id='attempts-word',
    ),
    pytest.param(
        ['status'], ['6000000000000000000'], 'status', "'6000000000000000000'",
        'expected a 19-digit integer', id='raw-state-6',
    ),
    pytest.param(
        ['status'], ['2.2e18'], 'status', "'2.2e18'", 'expected a 19-digit integer',
        id='raw-float-text',
    ),
    pytest.param(
        ['status'], [2.2e18], 'status', '2.2e+18', 'expected a 19-digit integer',
        id='raw-float-number',
    ),
    pytest.param(
        ['status'], ['42'], 'status', "'42'", 'expected a 19-digit integer',
        id='raw-short',
    ),
    pytest.param(
        ['status_when'], ['2018-01-02T03:04:56'], 'status_state', 'missing;',
        'required when', id='missing-state-column',
    ),
    pytest.param(
        ['status_state', 'status_attempts'], ['', '1'], 'status_state', 'blank;',
        'required when', id='blank-state',
    ),
    pytest.param(
        ['status', 'status_state'], [str(Status.finished(WHEN, 0)), 'waiting'],
        'status_state', "'waiting'", 'disagrees', id='raw-and-decoded-disagree',
    ),
    pytest.param(
        ['status_state'], ['working'], 'status_state', "'working'",
        'allow working rows', id='working-decoded',
    ),
    pytest.param(
        ['status'], [str(Status.working(WHEN, 0))], 'status',
        repr(str(Status.working(WHEN, 0))), 'allow working rows', id='working-raw',
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize('headers, values, column, value, expected', BAD_ROWS)
def test_bad_row_names_row_column_value_and_saves_nothing(
    headers, values, column, value, expected
):
    kept = Task.objects.create(data='kept', status=Status.finished(WHEN, 0))
    result = import_rows(
        ['id', 'data', *headers],
        (kept.pk, 'changed', *[''] * len(headers)),  # a good row first
        ('', 'new', *values),
    )
    assert result.has_validation_errors()
    errors = row_errors(result)
    assert list(errors) == [2]
    (message,) = errors[2]
    assert message.startswith('row 2')
    assert repr(column) in message
    assert value in message
    assert expected in message
    assert list(Task.objects.values_list('data', 'status')) == [
        ('kept', Status.finished(WHEN, 0))
    ]


@pytest.mark.django_db(transaction=True)
def test_bad_row_rolls_back_the_whole_file_outside_a_test_transaction():
    """All or nothing with real commits, on every database the suite runs on."""
    rows = [(f'good {n}', 'waiting', '', '') for n in range(5)]
    rows.insert(3, ('bad', 'paused', '', ''))
    result = import_rows(
        ['data', 'status_state', 'status_when', 'status_attempts'], *rows
    )
    assert list(row_errors(result)) == [4]
    assert Task.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_errors_in_other_columns_also_roll_back():
    result = import_rows(['id', 'data'], ('1', 'good'), ('not-a-number', 'bad'))
    assert result.has_errors() or result.has_validation_errors()
    assert Task.objects.count() == 0


@pytest.mark.django_db
def test_working_rows_are_allowed_when_the_resource_says_so():
    status = Status.working(WHEN, 1)
    headers = ['data', 'status']
    import_rows(headers, ('a', str(status)), resource=TaskResource(allow_working=True))

    class Permissive(TaskResource):
        class Meta:
            allow_working = True

    import_rows(headers, ('b', str(status)), resource=Permissive())
    assert list(Task.objects.values_list('status', flat=True)) == [status, status]


@pytest.mark.django_db
def test_factory_with_usual_options():
    UploadResource = queue_resource(
        Upload,
        'scan_status',
        'publish_status',
        fields=['name', 'publish_status', 'scan_status'],
        import_id_fields=['name'],
    )
    upload = Upload.objects.create(
        name='a.txt',
        scan_status=Status.finished(WHEN, 1),
        publish_status=Status.canceled(5, 2),
    )
    dataset = UploadResource().export()
    assert dataset.headers == [
        'name',
        'publish_status', 'publish_status_state', 'publish_status_when',
        'publish_status_attempts',
        'scan_status', 'scan_status_state', 'scan_status_when', 'scan_status_attempts',
    ]
    assert dataset[0][1:5] == (str(upload.publish_status), 'canceled', '5', 2)

    Upload.objects.update(scan_status=0, publish_status=0)
    result = UploadResource().import_data(dataset)
    assert not result.has_validation_errors() and not result.has_errors()
    upload.refresh_from_db()
    assert upload.scan_status == Status.finished(WHEN, 1)
    assert upload.publish_status == Status.canceled(5, 2)


@pytest.mark.django_db
def test_excluded_queue_field_is_left_alone():
    TaskNoStatus = queue_resource(Task, 'status', exclude=['status'])
    assert TaskNoStatus().export().headers == ['id', 'data', 'note']


def test_resource_without_queue_fields_is_refused():
    class Forgetful(QueueResource):
        class Meta:
            model = Task

    with pytest.raises(ImproperlyConfigured, match="queue_fields = \\['status'\\]"):
        Forgetful()
    with pytest.raises(ImproperlyConfigured, match="'stat' is not a field of Task"):
        queue_resource(Task, 'stat')()


def test_state_stays_a_state():
    resource = TaskResource()
    field = resource.fields['status']
    row = {'status_state': 'finished', 'status_when': '5', 'status_attempts': '1'}
    assert field.clean(row, row_number=1) == Status.finished(5, 1)
    assert field.clean(row).state is State.finished


MISSING_MODULE = textwrap.dedent(
    """
    import sys
    sys.modules['import_export'] = None  # as if not installed
    import django
    django.setup()
    import modelqueue, modelqueue.admin.filters, modelqueue.admin.actions
    for module in ('modelqueue.import_export.resources', 'modelqueue.import_export.admin'):
        try:
            __import__(module)
        except ImportError as error:
            print(error)
        else:
            print(module, 'imported')
    """
)


@pytest.mark.processes  # a Python without django-import-export
def test_missing_import_export_says_what_to_install():
    completed = subprocess.run(
        [sys.executable, '-c', MISSING_MODULE],
        cwd=ROOT,
        env={'DJANGO_SETTINGS_MODULE': 'tests.settings', 'PATH': '/usr/bin:/bin'},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert 'needs django-import-export' in line
        assert 'pip install "modelqueue[import-export]"' in line


def test_queue_resource_takes_meta_options_and_decodes_the_queue_field():
    TaskResource = queue_resource(Task, 'status', exclude=['note'])
    assert TaskResource().get_export_headers() == [
        'id', 'data', 'status', 'status_state', 'status_when', 'status_attempts',
    ]


# An import never undoes a worker's result (docs/guarantees.rst).


@pytest.mark.django_db
@pytest.mark.parametrize('headers', [['id', 'note'], ['id', 'note', *COLUMNS]])
def test_a_file_without_status_keeps_the_status_of_existing_rows(headers):
    finished = Task.objects.create(data='sent', status=Status.finished(WHEN, 1))
    canceled = Task.objects.create(data='dropped', status=Status.canceled(WHEN, 3))
    blanks = [''] * (len(headers) - 2)
    result = import_rows(
        headers,
        (finished.pk, 'checked', *blanks),
        (canceled.pk, 'checked', *blanks),
        resource=queue_resource(Task, 'status', fields=['id', 'note', 'status'])(),
    )
    assert not result.has_errors() and not result.has_validation_errors(), row_errors(result)
    assert Task.objects.get(pk=finished.pk).status == Status.finished(WHEN, 1)
    assert Task.objects.get(pk=canceled.pk).status == Status.canceled(WHEN, 3)
    assert set(Task.objects.values_list('note', flat=True)) == {'checked'}


@pytest.mark.django_db
def test_a_new_row_without_status_is_waiting_due_now():
    before = Status.waiting(attempts=0)
    import_rows(['data'], ('fresh',))
    assert before <= Task.objects.get().status <= Status.waiting(attempts=0)


@pytest.mark.django_db
def test_changing_a_row_a_worker_holds_is_refused_and_saves_nothing():
    working = Task.objects.create(data='busy', status=Status.working(WHEN, 1))
    idle = Task.objects.create(data='idle', status=Status.waiting(WHEN, 0))
    result = import_rows(['id', 'note'], (idle.pk, 'edited'), (working.pk, 'edited'))
    errors = row_errors(result)
    assert list(errors) == [2]
    assert "row 2, column 'status': the row is working now (a worker holds it)" in errors[2][0]
    assert 'note' in errors[2][0] and 'allow_working' in errors[2][0]
    assert set(Task.objects.values_list('note', flat=True)) == {''}  # all or nothing


@pytest.mark.django_db
def test_a_row_a_worker_holds_may_be_changed_when_explicitly_allowed():
    working = Task.objects.create(data='busy', status=Status.working(WHEN, 1))
    result = import_rows(['id', 'note'], (working.pk, 'edited'), resource=TaskResource(allow_working=True))
    assert not result.has_validation_errors()
    assert Task.objects.get(pk=working.pk).note == 'edited'
    assert Task.objects.get(pk=working.pk).status == Status.working(WHEN, 1)


@pytest.mark.django_db
def test_an_unchanged_working_row_is_not_refused():
    working = Task.objects.create(data='busy', note='same', status=Status.working(WHEN, 1))
    result = import_rows(['id', 'note'], (working.pk, 'same'))
    assert not result.has_errors() and not result.has_validation_errors(), row_errors(result)


@pytest.mark.django_db
@pytest.mark.parametrize('was', [State.finished, State.canceled])
@pytest.mark.parametrize('to', [State.waiting, State.created])
def test_sending_a_finished_or_canceled_row_back_to_the_queue_is_refused(was, to):
    task = Task.objects.create(data='done', status=Status.combine(was, WHEN, 2))
    new = Status.combine(to, WHEN, 0)
    result = import_rows(['id', 'status'], (task.pk, str(new)))
    (messages,) = row_errors(result).values()
    assert f"row 1, column 'status': {new} would send this {was.name} row back to {to.name}" in messages[0]
    assert 'allow_rerun' in messages[0]
    assert Task.objects.get(pk=task.pk).status == Status.combine(was, WHEN, 2)

    result = import_rows(['id', 'status'], (task.pk, str(new)), resource=TaskResource(allow_rerun=True))
    assert not result.has_validation_errors()
    assert Task.objects.get(pk=task.pk).status == new


@pytest.mark.django_db
def test_a_row_a_worker_claims_while_it_is_imported_fails_the_whole_import():
    claimed = Task.objects.create(data='claimed', status=Status.waiting(WHEN, 0))
    other = Task.objects.create(data='other', status=Status.waiting(WHEN, 0))

    class RacedResource(TaskResource):
        def import_instance(self, instance, row, **kwargs):
            super().import_instance(instance, row, **kwargs)
            if instance.pk == claimed.pk:  # a worker claims it after the import read it
                Task.objects.filter(pk=claimed.pk).update(status=Status.working(WHEN, 0))

    result = import_rows(['id', 'note'], (other.pk, 'x'), (claimed.pk, 'x'), resource=RacedResource())
    assert 'changed while it was being imported' in row_errors(result)[2][0]
    assert set(Task.objects.values_list('note', flat=True)) == {''}  # rolled back whole


@pytest.mark.django_db
def test_an_import_writes_only_the_columns_it_changes():
    task = Task.objects.create(data='old', note='', status=Status.waiting(WHEN, 0))

    class StaleResource(TaskResource):
        def import_instance(self, instance, row, **kwargs):
            super().import_instance(instance, row, **kwargs)
            # Another writer changes a column the file does not touch.
            Task.objects.filter(pk=task.pk).update(note='by the worker')

    import_rows(['id', 'data'], (task.pk, 'new'), resource=StaleResource())
    task.refresh_from_db()
    assert (task.data, task.note) == ('new', 'by the worker')


@pytest.mark.django_db
@pytest.mark.parametrize('column', ['status_when', 'status'])
def test_spreadsheet_numbers_beyond_two_to_the_53_are_refused(column):
    value = 12345678901234567.0 if column == 'status_when' else 2.2e18
    headers = ['data', 'status_state', column] if column == 'status_when' else ['data', column]
    row = ('x', 'waiting', value) if column == 'status_when' else ('x', value)
    (messages,) = row_errors(import_rows(headers, row)).values()
    assert 'invalid' in messages[0] and column in messages[0]
    assert not Task.objects.exists()


@pytest.mark.django_db
def test_spreadsheet_numbers_within_two_to_the_53_import_exactly():
    import_rows(['data', 'status_state', 'status_when'], ('x', 'waiting', float(2**53)))
    assert Status(Task.objects.get().status).priority == 2**53


def test_bulk_saving_is_refused_since_rows_are_saved_fenced():
    with pytest.raises(ImproperlyConfigured, match='use_bulk is not supported'):
        queue_resource(Task, 'status', use_bulk=True)()
