"""A stand-in for ``modelqueue_worker`` until that command is on main.

Same arguments (model, field, action path, --concurrency, --sleep,
--burst); a loop over ``modelqueue.run()`` per thread. Delete this module
once ``manage.py modelqueue_worker`` exists.
"""

import logging
import signal
import threading

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import connections
from django.utils.module_loading import import_string

import modelqueue

logger = logging.getLogger('demo.worker')


class Command(BaseCommand):
    help = 'Process a queue with modelqueue.run() until stopped.'

    def add_arguments(self, parser):
        parser.add_argument('model', help='app_label.Model')
        parser.add_argument('field', help='the queue field')
        parser.add_argument('action', help='dotted.path.to.action')
        parser.add_argument('--concurrency', type=int, default=1)
        parser.add_argument('--sleep', type=float, default=1.0)
        parser.add_argument('--burst', action='store_true')

    def handle(self, model, field, action, concurrency, sleep, burst, **options):
        queryset = apps.get_model(model).objects.all()
        action = import_string(action)
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        threads = [
            threading.Thread(
                target=work, args=(queryset, field, action, sleep, burst, stopping)
            )
            for _ in range(concurrency)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)


def work(queryset, field, action, sleep, burst, stopping):
    try:
        while not stopping.is_set():
            try:
                task = modelqueue.run(queryset, field, action)
            except Exception:
                logger.exception('%s %s: the action failed', queryset.model.__name__, field)
                continue
            if task is not None:
                logger.info('%s pk=%s %s', queryset.model.__name__, task.pk, field)
            elif burst:
                break
            else:
                stopping.wait(sleep)
    finally:
        connections.close_all()
