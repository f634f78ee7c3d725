"""The demo's task of Django's Tasks framework, run by ModelQueue.

``build_report.enqueue('sales', rows=120)`` stores a row in ModelQueue's task
table; ``modelqueue_worker --tasks`` (started by demo/run) runs it, and the
admin's *Model queue > Tasks* page and its dashboard show it: the task path,
the queue, the arguments, the return value, or the error of a failed run.
"""

import random
import time

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import task


@task(queue_name='reports')
def build_report(name, rows):
    """Pretend to total `rows` rows; one report in ten fails."""
    time.sleep(random.uniform(0.05, 0.4))
    if random.random() < 0.1:
        raise RuntimeError(f'the {name} export timed out')
    return {'report': name, 'rows': rows, 'total': round(rows * random.uniform(9.5, 10.5), 2)}
