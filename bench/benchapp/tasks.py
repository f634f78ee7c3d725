"""The benchmark's task for django-tasks-db (Django's Tasks framework)."""

try:
    from django.tasks import task
except ImportError:  # Django < 6: the django-tasks backport
    from django_tasks import task

from . import actions


@task(takes_context=True)
def work(context):
    actions.perform(str(context.task_result.id))


@task
def scheduled(number):
    """The schedules benchmark's task (bench/schedules.py): nothing to do."""
    return number
