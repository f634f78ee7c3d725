"""``manage.py modelqueue_worker app_label.Model field dotted.path.to.action``,
or ``manage.py modelqueue_worker --tasks [--queue NAME ...] [--backend ALIAS]``
for the tasks of Django's Tasks framework stored by ModelQueueBackend, or
``manage.py modelqueue_worker --check [app_label.Model field | --tasks]``:
a health check of this host's workers (:mod:`modelqueue.worker.health`).

Parses and checks the arguments, then hands over to :mod:`modelqueue.worker`.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from argparse import ArgumentParser
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import router
from django.utils.module_loading import import_string

from ...conf import check_database_alias
from ...databases import DatabaseNotWritable
from ...retries import Backoff, Delay
from ...validation import check_count, check_seconds
from ...worker.batch import WAIT
from ...worker.health import check_health
from ...worker.limits import parse_memory
from ...worker.loop import MAX_CONCURRENCY, Worker, serve

if TYPE_CHECKING:
    from django.db.models import Model

    from ...tasks.worker import TaskWorker

LOG_LEVELS = {0: logging.WARNING, 1: logging.INFO}


class Command(BaseCommand):
    help = (
        'Process a queue: run ACTION on the due rows of the status FIELD of'
        ' MODEL until stopped (SIGTERM or SIGINT finishes the tasks in hand'
        ' first; a second signal stops at once).'
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument('model', nargs='?', help='the queue model, as app_label.ModelName')
        parser.add_argument('field', nargs='?', help='the status field of the queue')
        parser.add_argument(
            'action', nargs='?', help='dotted path of a callable that takes one model instance'
        )
        # Django's Tasks framework (modelqueue.tasks): no model, field or action.
        parser.add_argument(
            '--tasks',
            action='store_true',
            help="run the tasks of Django's Tasks framework that ModelQueueBackend stored"
            ' (retry, timeout and delay come from the backend\'s OPTIONS)',
        )
        parser.add_argument(
            '--queue',
            dest='queues',
            action='append',
            default=[],
            metavar='NAME',
            help='with --tasks: run only this queue (repeat for several; default all)',
        )
        parser.add_argument(
            '--backend',
            default='default',
            metavar='ALIAS',
            help='with --tasks: the TASKS backend alias (default "default")',
        )
        parser.add_argument(
            '--no-schedules',
            dest='schedules',
            action='store_false',
            help='with --tasks: fire none of the backend\'s MODELQUEUE_SCHEDULES (another worker does)',
        )
        parser.add_argument(
            '--retry',
            type=int,
            default=3,
            metavar='N',
            help='attempts before a row is canceled (0-8; default 3)',
        )
        parser.add_argument(
            '--timeout',
            type=float,
            default=3600,
            metavar='SECONDS',
            help='seconds after which a working row is given back (default 3600)',
        )
        parser.add_argument(
            '--delay',
            type=float,
            default=0,
            metavar='SECONDS',
            help='seconds before a retried or aborted row is due again (default 0)',
        )
        parser.add_argument(
            '--backoff',
            metavar='BASE,FACTOR,CAP[,JITTER]',
            help='in place of --delay, wait BASE seconds after the first failed attempt, FACTOR'
            ' times more after each next one, at most CAP seconds, less up to a JITTER share'
            " at random (default 0.5); 'exponential' is 1,2,300,0.5",
        )
        parser.add_argument(
            '--concurrency',
            type=int,
            default=1,
            metavar='N',
            help='number of worker processes, supervised by a parent when above 1 (default 1)',
        )
        parser.add_argument(
            '--threads',
            type=int,
            default=1,
            metavar='N',
            help='threads in each worker process, each with its own database connection (default 1)',
        )
        parser.add_argument(
            '--batch',
            type=int,
            default=1,
            metavar='N',
            help='claim up to N due rows at a time and write their outcomes together: two'
            ' commits per batch instead of one per task, for many short tasks (default 1, at most 1000)',
        )
        parser.add_argument(
            '--batch-wait',
            type=float,
            default=WAIT,
            metavar='SECONDS',
            help='with --batch: give back to the queue the rows of a batch that waited this long'
            f' behind a long task without starting (default {WAIT:g})',
        )
        parser.add_argument(
            '--sleep',
            type=float,
            default=1.0,
            metavar='SECONDS',
            help='seconds an idle worker waits before it looks again (default 1)',
        )
        parser.add_argument(
            '--burst', action='store_true', help='exit when nothing is due'
        )
        parser.add_argument(
            '--max-tasks',
            type=int,
            metavar='N',
            help='exit after this many tasks (in all processes and threads together)',
        )
        parser.add_argument(
            '--no-listen',
            dest='listen',
            action='store_false',
            help='on PostgreSQL, poll instead of waking on commit (LISTEN/NOTIFY)',
        )
        parser.add_argument(
            '--database',
            metavar='ALIAS',
            help='the DATABASES alias to claim, complete and beat through (default: the'
            " router's db_for_write for the model, which is \"default\" without a router)",
        )
        parser.add_argument(
            '--listen-database',
            metavar='ALIAS',
            help='on PostgreSQL, the DATABASES alias of the LISTEN connection: one that reaches'
            ' the server directly or through a session pool, when the queue\'s goes through a'
            ' transaction pooler (default: the MODELQUEUE_LISTEN_DATABASE setting, else the'
            " queue's database)",
        )
        parser.add_argument(
            '--max-tasks-per-child',
            type=int,
            metavar='N',
            help='replace a worker process after it ran N tasks (a supervising parent starts'
            ' another; --max-tasks still counts every process together)',
        )
        parser.add_argument(
            '--max-memory-per-child',
            metavar='KIB',
            help='replace a worker process once its resident memory reaches this after a task:'
            " KiB as Celery takes it, or a number with K, M or G ('300M')",
        )
        parser.add_argument(
            '--time-limit',
            type=float,
            metavar='SECONDS',
            help='stop an action that runs longer: it fails with modelqueue.time_limit (a SIGALRM'
            ' inside it), and a process stuck in C code is killed and replaced by its supervising'
            ' parent; the row follows the retry rules (default: MODELQUEUE_TIME_LIMITS for the'
            ' queue, else none). Threads cannot be stopped: refused with --threads above 1',
        )
        parser.add_argument(
            '--check',
            action='store_true',
            help='run no worker: exit 0 when every worker process of this host (of MODEL FIELD,'
            ' or --tasks, if given) beat within three heartbeat intervals, else 1 (a liveness probe)',
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._configure_logging(options['verbosity'])
        for name in ('database', 'listen_database'):
            try:
                check_database_alias('--' + name.replace('_', '-'), options[name])
            except ValueError as error:
                raise CommandError(error) from None
        if options['check']:
            self._check(options)
            return
        if options['tasks'] or options['queues'] or options['backend'] != 'default' or not options['schedules']:
            worker: Worker = _task_worker(options)
            _serve(worker, _concurrency(options))
            return
        if options['action'] is None:
            raise CommandError(
                'expected MODEL FIELD ACTION, or --tasks for the tasks of Django\'s Tasks framework'
            )
        manager = _model(options['model'])._default_manager
        queryset = manager.using(options['database']) if options['database'] else manager.all()
        action = _action(options['action'])
        try:
            delay: Delay = dt.timedelta(seconds=check_seconds('delay', options['delay']))
            if options['backoff'] is not None:
                if delay:
                    raise ValueError('--delay and --backoff exclude each other: give one')
                delay = Backoff.parse(options['backoff'])
            worker = Worker(
                queryset,
                options['field'],
                action,
                retry=options['retry'],
                timeout=dt.timedelta(
                    seconds=check_seconds('timeout', options['timeout'], above_zero=True)
                ),
                delay=delay,
                sleep=options['sleep'],
                burst=options['burst'],
                max_tasks=check_count('max-tasks', options['max_tasks'], allow_none=True),
                listen=options['listen'],
                threads=options['threads'],
                **_process_options(options),
            )
            concurrency = check_count('concurrency', options['concurrency'], MAX_CONCURRENCY)
        except ValueError as error:
            raise CommandError(error) from None
        _serve(worker, concurrency)

    def _check(self, options: dict[str, Any]) -> None:
        """``--check``: the health of this host's workers; exit 1 when unhealthy."""
        model: type[Model] | None = None
        if options['tasks']:
            from ...tasks.models import QueuedTask  # noqa: PLC0415 (the Tasks backend's table)

            model = QueuedTask
        elif options['model'] is not None:
            model = _model(options['model'])
        if model is None:
            from ...models import WorkerHeartbeat  # noqa: PLC0415 (needs the app registry)

            using = options['database'] or router.db_for_write(WorkerHeartbeat)
        else:
            using = options['database'] or router.db_for_write(model)
        field = 'status' if options['tasks'] else options['field']
        health = check_health(using, model, field)
        for line in health.lines:
            self.stdout.write(line)
        if not health.healthy:
            sys.exit(1)

    def _configure_logging(self, verbosity: int) -> None:
        """Show the worker's log lines on stderr unless logging is configured."""
        logger = logging.getLogger('modelqueue.worker')
        level = LOG_LEVELS.get(verbosity, logging.DEBUG)
        if not logger.hasHandlers():
            handler = logging.StreamHandler(self.stderr._out)  # type: ignore[call-overload]  # the wrapped stream
            handler.setFormatter(
                logging.Formatter('%(asctime)s %(levelname)s %(name)s: %(message)s')
            )
            logger.addHandler(handler)
            logger.setLevel(level)
        elif verbosity != 1:
            logger.setLevel(level)


def _serve(worker: Worker, concurrency: int) -> None:
    """Run `worker`; exit with its status when not 0."""
    try:
        status = serve(worker, concurrency)
    except DatabaseNotWritable as error:
        raise CommandError(error) from None
    if status:
        sys.exit(status)


def _process_options(options: dict[str, Any]) -> dict[str, Any]:
    """The worker's arguments about its database sessions and its process's limits, checked."""
    memory = options['max_memory_per_child']
    return {
        'listen_database': options['listen_database'],
        'max_tasks_per_child': check_count('max-tasks-per-child', options['max_tasks_per_child'], allow_none=True),
        'max_memory_per_child': None if memory is None else parse_memory(memory),
        'time_limit': options['time_limit'],
        'batch': options['batch'],
        'batch_wait': options['batch_wait'],
    }


def _concurrency(options: dict[str, Any]) -> int:
    try:
        return check_count('concurrency', options['concurrency'], MAX_CONCURRENCY)
    except ValueError as error:
        raise CommandError(error) from None


def _task_worker(options: dict[str, Any]) -> TaskWorker:
    """The worker of ``--tasks``, its arguments checked."""
    if not options['tasks']:
        raise CommandError('--queue, --backend and --no-schedules apply to --tasks only')
    if options['model'] is not None:
        raise CommandError(
            f"unexpected argument {options['model']!r}: --tasks takes no model, field or action"
        )
    if options['backoff'] is not None:
        raise CommandError(
            "--backoff applies to a model's queue: with --tasks, give the backend's OPTIONS a BACKOFF"
        )
    from ...tasks.worker import task_worker  # noqa: PLC0415 (needs Django's Tasks framework)

    try:
        return task_worker(
            options['backend'],
            options['queues'],
            sleep=options['sleep'],
            burst=options['burst'],
            max_tasks=check_count('max-tasks', options['max_tasks'], allow_none=True),
            listen=options['listen'],
            threads=options['threads'],
            database=options['database'],
            schedules=options['schedules'],
            **_process_options(options),
        )
    except ValueError as error:
        raise CommandError(error) from None


def _model(label: str) -> type[Model]:
    try:
        return apps.get_model(label)
    except (LookupError, ValueError) as error:
        raise CommandError(
            f'unknown model {label!r}: expected app_label.ModelName of an'
            f' installed app ({error})'
        ) from None


def _action(path: str) -> Callable[[Any], object]:
    try:
        action = import_string(path)
    except Exception as error:  # noqa: BLE001 (any import failure is the user's to fix)
        raise CommandError(
            f'invalid action {path!r}: expected the dotted path of a callable,'
            f' but it does not import ({type(error).__name__}: {error})'
        ) from None
    if not callable(action):
        raise CommandError(
            f'invalid action {path!r}: expected a callable, found'
            f' {type(action).__name__}'
        )
    return action
