"""Django's Tasks framework under one set of names, on Django 6 and on 5.2.

Django 6 ships it as ``django.tasks``; on Django 5.2 the ``django-tasks``
backport (``pip install modelqueue[tasks]``) provides it as ``django_tasks``,
where two exceptions and ``normalize_json`` have other names or homes. The
rest of :mod:`modelqueue.tasks` imports them from here only.

>>> TaskResultStatus.SUCCESSFUL.value
'SUCCESSFUL'
"""

try:
    from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus, task, task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TaskError
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json
except ImportError:  # Django < 6
    try:
        from django_tasks import TaskContext, TaskResult, TaskResultStatus, task, task_backends
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import Task, TaskError
        from django_tasks.exceptions import InvalidTaskError as InvalidTask
        from django_tasks.exceptions import TaskResultDoesNotExist
        from django_tasks.signals import task_enqueued, task_finished, task_started
        from django_tasks.utils import normalize_json
    except ImportError as error:
        raise ImportError(
            "ModelQueue's Tasks backend needs Django 6 or the django-tasks backport"
            ' on Django 5.2 (pip install "modelqueue[tasks]")'
        ) from error

__all__ = [
    'BaseTaskBackend',
    'InvalidTask',
    'Task',
    'TaskContext',
    'TaskError',
    'TaskResult',
    'TaskResultDoesNotExist',
    'TaskResultStatus',
    'normalize_json',
    'task',
    'task_backends',
    'task_enqueued',
    'task_finished',
    'task_started',
]
