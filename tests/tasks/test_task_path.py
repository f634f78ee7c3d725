"""What a task row's ``task_path`` may make a process import: nothing.

A row's path is read from the database, where anyone who can write a row
(an operator, an SQL console, another service) can put any text. The worker
and ``get_result()`` find the task only among the modules already imported
(the worker imports each installed app's ``tasks`` module and those of
``MODELQUEUE_TASK_MODULES`` when it starts), and only a task of Django's
Tasks framework (a function decorated with ``@task``) is taken. A row naming
anything else is FAILED by the worker, and ``get_result()`` raises
``UnknownTaskPath``; no module is imported on the row's say-so.
"""

import sys
import uuid

import pytest
from django.test import override_settings

from modelqueue import State, Status, conf
from modelqueue.tasks.compat import InvalidTask, TaskResultStatus, task_backends
from modelqueue.tasks.models import QueuedTask as TaskRow
from modelqueue.tasks.models import ready_status
from modelqueue.tasks.paths import UnknownTaskPath, find_task
from modelqueue.tasks.worker import TaskWorker
from tests.support import ROOT
from tests.support.processes import finish
from tests.testapp import tasks

pytestmark = pytest.mark.django_db

SIDE_EFFECT = """\
import pathlib
pathlib.Path({marker!r}).write_text('imported by ' + __name__)
"""

GETATTR = """\
import pathlib


def __getattr__(name):
    pathlib.Path({marker!r}).write_text('__getattr__ ' + name)
    return 1
"""

TASK_MODULE = """\
from modelqueue.tasks.compat import task

@task
def job(value):
    return ['ran', value]
"""


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """Write modules on a path Python imports from; return (make, marker).

    ``make(source, package=False)`` writes a module (or a package) of a
    name no other test uses and returns its name; every module written has
    `marker` in scope as ``{marker}``, and is forgotten afterwards.
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    marker = tmp_path / 'imported.txt'
    names = []

    def make(source, package=False):
        name = f'mq_path_{uuid.uuid4().hex[:12]}'
        path = tmp_path / name / '__init__.py' if package else tmp_path / f'{name}.py'
        path.parent.mkdir(exist_ok=True)
        path.write_text(source.format(marker=str(marker)))
        names.append(name)
        return name

    yield make, marker
    for name in list(sys.modules):
        if name.split('.')[0] in names:
            del sys.modules[name]


def run_tasks(alias='default'):
    return TaskWorker(alias, burst=True, listen=False).run()


def row_naming(path, args=()):
    """A READY task row whose path is `path`, as written by someone else than enqueue()."""
    return TaskRow.objects.create(
        status=ready_status(0), task_path=path, queue_name='default', backend_name='default',
        args=list(args), kwargs={},
    )


def assert_failed_naming(row, *words):
    row.refresh_from_db()
    assert Status(row.status).state == State.canceled
    (error,) = row.errors
    assert error['exception_class_path'] == 'modelqueue.tasks.paths.UnknownTaskPath'
    for word in words:
        assert word in error['traceback'], error['traceback']
    assert row.return_value is None


@pytest.mark.parametrize(
    'shape', ['module.task', 'module.missing', 'package.module.task', 'package.module']
)
def test_a_row_naming_a_module_not_imported_fails_and_the_module_is_never_imported(modules, shape):
    make, marker = modules
    module = make(SIDE_EFFECT + TASK_MODULE)
    package = make(SIDE_EFFECT, package=True)
    path = {
        'module.task': f'{module}.job',
        'module.missing': f'{module}.missing',
        'package.module.task': f'{package}.sub.job',
        'package.module': f'{package}.sub',
    }[shape]
    row = row_naming(path, ['x'])
    assert run_tasks() == 1
    assert not marker.exists(), marker.read_text()
    assert module not in sys.modules and package not in sys.modules
    assert_failed_naming(row, path, 'not imported')


def test_get_result_of_such_a_row_raises_unknown_task_path_and_imports_nothing(modules):
    make, marker = modules
    module = make(SIDE_EFFECT + TASK_MODULE)
    row = row_naming(f'{module}.job')
    with pytest.raises(UnknownTaskPath) as raised:
        try:
            task_backends['default'].get_result(str(row.pk))
        finally:
            assert not marker.exists(), marker.read_text()
    assert isinstance(raised.value, InvalidTask)
    assert f'{module}.job' in str(raised.value) and 'MODELQUEUE_TASK_MODULES' in str(raised.value)
    assert not marker.exists()
    assert module not in sys.modules


def test_a_module_level_getattr_of_an_imported_module_is_never_called(modules):
    make, marker = modules
    module = make(GETATTR)
    __import__(module)  # imported by the application
    assert not marker.exists()
    row = row_naming(f'{module}.anything')
    run_tasks()
    assert not marker.exists(), marker.read_text()
    assert_failed_naming(row, f'{module}.anything', 'no task')


@pytest.mark.parametrize(
    'path, found',
    [
        ('os.system', 'builtin_function_or_method'),
        ('subprocess.call', 'function'),
        ('tests.testapp.tasks.RAN', 'list'),
        ('tests.testapp.tasks.task', 'function'),
        ('tests.testapp.tasks', None),
        ('', None),
        ('add', None),
    ],
)
def test_a_row_naming_something_imported_that_is_not_a_task_fails_and_nothing_is_called(path, found, tmp_path):
    marker = tmp_path / 'called'
    row = row_naming(path, [f'touch {marker}'])
    run_tasks()
    assert_failed_naming(row, repr(path), *([found] if found else []))
    assert not marker.exists()


def test_a_task_of_a_module_in_modelqueue_task_modules_runs(modules):
    make, marker = modules
    module = make(TASK_MODULE)
    row = row_naming(f'{module}.job', ['x'])
    with override_settings(MODELQUEUE_TASK_MODULES=[module]):
        assert run_tasks() == 1
        result = task_backends['default'].get_result(str(row.pk))
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert result.return_value == ['ran', 'x']


def test_get_result_imports_the_task_modules_the_application_names(modules):
    make, marker = modules
    module = make(SIDE_EFFECT + TASK_MODULE)
    row = row_naming(f'{module}.job')
    with override_settings(MODELQUEUE_TASK_MODULES=[module]):
        result = task_backends['default'].get_result(str(row.pk))
    assert result.task.module_path == f'{module}.job'
    assert marker.exists()  # imported because the settings name it


def test_tasks_of_installed_apps_resolve():
    assert find_task('tests.testapp.tasks.add') is tasks.add
    result = tasks.add.enqueue(1, 2)
    run_tasks()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 3


def test_a_bad_modelqueue_task_modules_setting_is_refused_naming_it():
    for value in ['tests.testapp.tasks', [1], ['not a module'], None]:
        with override_settings(MODELQUEUE_TASK_MODULES=value), pytest.raises(ValueError) as refused:
            conf.get('MODELQUEUE_TASK_MODULES')
        assert str(refused.value).startswith(f'MODELQUEUE_TASK_MODULES = {value!r}: expected'), refused.value


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_a_worker_process_never_imports_a_module_a_row_names(spawn, modules, tmp_path):
    make, marker = modules
    module = make(SIDE_EFFECT + TASK_MODULE)
    poisoned = row_naming(f'{module}.job', ['x'])
    fine = tasks.add.enqueue(2, 3)  # tests.testapp.tasks: imported by the worker as an app's tasks module
    child = spawn(
        '-m', 'django', 'modelqueue_worker', '--tasks', '--burst', '--verbosity=2',
        env={'DJANGO_SETTINGS_MODULE': 'tests.settings', 'PYTHONPATH': f'{ROOT}:{tmp_path}'},
    )
    status, log = finish(child)
    assert status == 0, log
    assert not marker.exists(), marker.read_text()
    assert_failed_naming(poisoned, f'{module}.job', 'not imported')
    fine.refresh()
    assert fine.status == TaskResultStatus.SUCCESSFUL and fine.return_value == 5, log
