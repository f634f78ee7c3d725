"""Metrics for Prometheus: a collector of every queue's figures, and its pages.

:class:`QueueCollector` is a collector for ``prometheus_client`` (the
``prometheus`` extra: ``pip install modelqueue[prometheus]``). Each scrape
reads, per queue (label ``queue``: ``app_label.Model.field``):

==============================================  =======  ===============================================
metric                                          type     what it is
==============================================  =======  ===============================================
``modelqueue_rows{state}``                      gauge    rows in each state (created, waiting, working,
                                                         finished, canceled)
``modelqueue_due_rows``                         gauge    waiting rows due now
``modelqueue_scheduled_rows``                   gauge    waiting rows due later
``modelqueue_stalled_rows``                     gauge    working rows past the admin's ``queue_timeout``
``modelqueue_oldest_due_age_seconds``           gauge    how long the oldest due row has been due (0: none)
``modelqueue_paused``                           gauge    1 while the queue is paused (a ``QueuePause`` row)
``modelqueue_live_workers``                     gauge    worker processes whose heartbeat is current
``modelqueue_finished_total``                   counter  finished rows (falls when rows are deleted, which
                                                         Prometheus reads as a counter reset)
``modelqueue_canceled_total``                   counter  canceled rows (likewise)
``modelqueue_worker_tasks_total{worker}``       counter  tasks each live worker (``host:pid``) ran
``modelqueue_worker_failures_total{worker}``    counter  of those, the failed ones
==============================================  =======  ===============================================

The state figures are :func:`modelqueue.admin.counts.state_counts`, the
dashboard's: from the queue's state counters where they are installed
(PostgreSQL, :mod:`modelqueue.counters`), so a scrape costs a few index
probes at ten million rows as at ten; elsewhere range counts on the status
index, exact. The queues are those of an admin site's queue admins
(:class:`~modelqueue.admin.QueueAdminMixin`), with their ``queue_timeout``.

Two pages serve the text exposition format:

- :meth:`QueueAdminSiteMixin.queue_metrics_view
  <modelqueue.admin.sites.QueueAdminSiteMixin>` at ``<admin>/queues/metrics/``
  (URL name ``admin:modelqueue_metrics``), for staff, with the queues they
  may view;
- :func:`token_view`, for a scraper: mount it in the project's URLs, and it
  answers a request that carries ``Authorization: Bearer <token>`` with the
  token of the setting ``MODELQUEUE_METRICS_TOKEN`` (compared in constant
  time), with every queue of the default admin site.

Without ``prometheus_client``, both answer 503 saying what to install.

>>> collector = QueueCollector([])
>>> list(collector.collect())[0].name
'modelqueue_rows'
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from .. import conf, ranges
from ..status import ONE_HOUR, State, Status, now, priority_to_datetime
from .counts import state_counts

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite
    from django.db.models import QuerySet

    from .options import QueueAdminMixin

__all__ = ['INSTALL_HINT', 'Queue', 'QueueCollector', 'exposition', 'metrics_response', 'queues_of', 'token_view']

#: What the pages say when prometheus_client is missing.
INSTALL_HINT = (
    'The metrics need the prometheus_client package: pip install modelqueue[prometheus]'
    ' (or pip install prometheus-client).\n'
)
#: How many of the first due rows are looked at for one with a timestamp.
_OLDEST_LOOKS = 5


@dataclass(frozen=True)
class Queue:
    """One queue a collector reads: its rows, status field and timeout."""

    queryset: QuerySet[Any]
    field: str
    timeout: dt.timedelta = ONE_HOUR

    @property
    def label(self) -> str:
        """The ``queue`` label: ``app_label.Model.field``."""
        return f'{self.queryset.model._meta.label}.{self.field}'


def queues_of(model_admins: Iterable[QueueAdminMixin]) -> list[Queue]:
    """The queues of `model_admins`: each of their queue fields, with their timeout."""
    return [
        Queue(model_admin.model._default_manager.all(), field, model_admin.queue_timeout)
        for model_admin in model_admins
        for field in model_admin.valid_queue_fields
    ]


class QueueCollector:
    """A ``prometheus_client`` collector of `queues` (see the module's text),
    for a registry of your own::

        from prometheus_client import REGISTRY

        REGISTRY.register(QueueCollector(queues_of(admin.site.queue_admins())))
    """

    def __init__(self, queues: Sequence[Queue]) -> None:
        self.queues = list(queues)

    def describe(self) -> list[Any]:
        """Nothing: the registry must not scrape at registration."""
        return []

    def collect(self) -> Iterator[Any]:
        from django.contrib.contenttypes.models import ContentType  # noqa: PLC0415 (needs the app registry)
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily  # noqa: PLC0415 (an optional extra)

        from ..models import QueuePause, WorkerHeartbeat  # noqa: PLC0415 (needs the app registry)

        current = now()
        rows = GaugeMetricFamily('modelqueue_rows', 'Rows in each state', labels=['queue', 'state'])
        gauges = {
            name: GaugeMetricFamily(f'modelqueue_{name}', text, labels=['queue'])
            for name, text in [
                ('due_rows', 'Waiting rows due now'),
                ('scheduled_rows', 'Waiting rows due later'),
                ('stalled_rows', 'Working rows past the timeout'),
                ('oldest_due_age_seconds', 'Seconds since the oldest due row came due (0: none due)'),
                ('paused', '1 while the queue is paused'),
                ('live_workers', 'Worker processes whose heartbeat is current'),
            ]
        }
        totals = {
            state: CounterMetricFamily(
                f'modelqueue_{state}', f'Rows {state} (deleted rows are no longer counted)', labels=['queue']
            )
            for state in ('finished', 'canceled')
        }
        worker_tasks = CounterMetricFamily(
            'modelqueue_worker_tasks', 'Tasks each live worker process ran', labels=['queue', 'worker']
        )
        worker_failures = CounterMetricFamily(
            'modelqueue_worker_failures', 'Failed tasks of each live worker process', labels=['queue', 'worker']
        )
        paused: dict[str, set[tuple[int, str]]] = {}  # database: (content type, field) of paused queues
        workers: dict[str, dict[tuple[int, str], list[WorkerHeartbeat]]] = {}  # database: queue: heartbeats
        for queue in self.queues:
            label = queue.label
            counts = state_counts(queue.queryset, queue.field, current, queue.timeout)
            for state in Status.states:
                rows.add_metric([label, state.name], counts[state.name])
            gauges['due_rows'].add_metric([label], counts['due'])
            gauges['scheduled_rows'].add_metric([label], counts['scheduled'])
            gauges['stalled_rows'].add_metric([label], counts['stalled'])
            gauges['oldest_due_age_seconds'].add_metric([label], oldest_due_age(queue, current))
            using = queue.queryset.db
            key = (ContentType.objects.db_manager(using).get_for_model(queue.queryset.model).pk, queue.field)
            if using not in paused:  # one query per database for every queue's pause and workers
                paused[using] = set(
                    QueuePause.objects.using(using).filter(queue_name='').values_list('content_type_id', 'field')
                )
                workers[using] = {}
                for beat in WorkerHeartbeat.objects.using(using).order_by('host', 'pid'):
                    workers[using].setdefault((beat.content_type_id, beat.field), []).append(beat)
            gauges['paused'].add_metric([label], int(key in paused[using]))
            live = [beat for beat in workers[using].get(key, []) if not beat.is_lost(current)]
            gauges['live_workers'].add_metric([label], len(live))
            for beat in live:
                worker_tasks.add_metric([label, beat.name], beat.tasks_done)
                worker_failures.add_metric([label, beat.name], beat.failures)
            for name, family in totals.items():
                family.add_metric([label], counts[name])
        yield rows
        yield from gauges.values()
        yield from totals.values()
        yield worker_tasks
        yield worker_failures


def oldest_due_age(queue: Queue, current: dt.datetime) -> float:
    """Seconds since the oldest due row with a timestamp came due; 0.0 when
    none is due (an index probe: the first rows of the due range)."""
    first = (
        queue.queryset.order_by()
        .filter(ranges.due_with_timestamp(queue.field, current))
        .order_by(queue.field)
        .values_list(queue.field, flat=True)[:_OLDEST_LOOKS]
    )
    for value in first:
        due = priority_to_datetime(Status(value).priority)
        if due is not None and Status(value).state == State.waiting:
            return max(0.0, (current - due).total_seconds())
    return 0.0


def exposition(queues: Sequence[Queue]) -> tuple[bytes, str] | None:
    """The text exposition of `queues` and its content type; None without
    ``prometheus_client``."""
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest  # noqa: PLC0415 (an optional extra)
    except ImportError:
        return None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(queues))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def metrics_response(queues: Sequence[Queue]) -> HttpResponse:
    """The page of `queues`' metrics, or a 503 saying what to install."""
    found = exposition(queues)
    if found is None:
        return _text(INSTALL_HINT, 503)
    body, content_type = found
    response = HttpResponse(body, content_type=content_type)
    response['Cache-Control'] = 'no-store'
    return response


@require_GET
def token_view(request: HttpRequest) -> HttpResponse:
    """The metrics of every queue of the default admin site, for a scraper
    that sends ``Authorization: Bearer <MODELQUEUE_METRICS_TOKEN>``.

    Mount it in the project's URLs::

        from modelqueue.admin.metrics import token_view
        urlpatterns += [path('metrics/', token_view)]

    Without the setting it answers 404 (the page is off); with a missing or
    wrong token, 401.
    """
    from django.contrib import admin  # noqa: PLC0415 (the default site, set up by the admin app)

    token = conf.get('MODELQUEUE_METRICS_TOKEN')
    if token is None:
        return _text('Not found: set MODELQUEUE_METRICS_TOKEN to serve the metrics.\n', 404)
    scheme, _, given = request.headers.get('Authorization', '').partition(' ')
    if scheme.lower() != 'bearer' or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = _text('Unauthorized: expected Authorization: Bearer <token>.\n', 401)
        response['WWW-Authenticate'] = 'Bearer'
        return response
    return metrics_response(queues_of(_queue_admins(admin.site)))


def _text(text: str, status: int) -> HttpResponse:
    return HttpResponse(text, status=status, content_type='text/plain; charset=utf-8')


def _queue_admins(site: AdminSite) -> list[QueueAdminMixin]:
    from .options import QueueAdminMixin  # noqa: PLC0415 (options imports the admin's pages)

    return [model_admin for model_admin in site._registry.values() if isinstance(model_admin, QueueAdminMixin)]
