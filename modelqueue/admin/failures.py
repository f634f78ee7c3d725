"""What the admin shows of failure records and worker heartbeats.

The queries behind the change form's failure history, the changelist's
*last error* column (one query per page) and failures filter, and the
dashboard's *Failures* and *Workers* panels. When the modelqueue tables are
not migrated yet, every figure here is empty and the pages still work.

Each shows only what concerns the rows the model admin's ``get_queryset``
gives the request (`rows_records`, `shown_row_ids`): in a multi-tenant
admin, nothing of another tenant's rows (their failures' messages and
classes, their ids, links to them) and no count of them.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import connections, router
from django.db.models import BigIntegerField, Count, Max
from django.db.models.functions import Cast, TruncMinute
from django.urls import NoReverseMatch
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from .. import ranges
from ..rescue import held_rows
from ..status import ONE_HOUR, State, Status, now, priority_to_datetime
from .counts import whole_table
from .display import natural_time
from .figures import THROUGHPUT_MINUTES
from .workers import control_urls

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin
    from django.contrib.admin.views.main import ChangeList
    from django.contrib.contenttypes.models import ContentType
    from django.db.models import Field, Model, QuerySet
    from django.http import HttpRequest
    from django.utils.functional import _StrOrPromise

    from ..models import FailureRecord, WorkerHeartbeat
    from .protocol import QueueModelAdmin

#: How a worker is woken, as the Workers panel says it (the heartbeat row's
#: ``wakeup``: the states of modelqueue.worker.waiters).
WAKEUP_TEXTS = {
    'listening': _('woken on commit'),
    'unreachable': _('polling: notifications do not reach this worker; set --listen-database'),
    'broken': _('polling: it cannot LISTEN (it tries again)'),
    'polling': _('polling'),
    'connecting': _('connecting'),
    '': '',
}
#: The states in which a worker polls although the database could wake it.
POLLING_STATES = ('unreachable', 'broken')

#: Failure records the change form shows, newest first.
HISTORY_LIMIT = 50
#: Exception classes and stalled rows the dashboard lists.
PANEL_LIMIT = 10
LAST_ERROR_CHARS = 80


def _models() -> tuple[type[ContentType], type[FailureRecord], type[WorkerHeartbeat]]:
    """The modelqueue models, imported when first used: this module is
    imported with modelqueue.admin, before the app registry is ready."""
    from django.contrib.contenttypes.models import ContentType  # noqa: PLC0415 (needs the app registry)

    from ..models import FailureRecord, WorkerHeartbeat  # noqa: PLC0415 (needs the app registry)

    return ContentType, FailureRecord, WorkerHeartbeat


def records_available(model: type[Model], using: str | None = None) -> bool:
    """Whether the modelqueue tables exist in `model`'s database (`using`,
    by default the one the router reads it from).

    Asked once while they do; while they do not, again after a minute, so
    a site migrated while it runs finds them.
    """
    _content_type, FailureRecord, WorkerHeartbeat = _models()
    using = using or router.db_for_read(model)
    known, asked = _available.get(using, (None, 0.0))
    if known is None or (not known and time.monotonic() - asked > 60):
        tables = set(connections[using].introspection.table_names())
        known = {FailureRecord._meta.db_table, WorkerHeartbeat._meta.db_table} <= tables
        _available[using] = (known, time.monotonic())
    return known


_available: dict[str, tuple[bool, float]] = {}  # database alias -> (whether the tables exist, when asked)


def records_of(model: type[Model], field: str, using: str | None = None) -> QuerySet[FailureRecord]:
    """The failure records of the queue `field` of `model`, read from
    `using` (by default where the router reads `model`: the records live
    beside their rows)."""
    ContentType, FailureRecord, _heartbeat = _models()
    content_type = ContentType.objects.get_for_model(model)
    return FailureRecord.objects.using(using or router.db_for_read(model)).filter(
        content_type=content_type, field=field
    )


def history(model: type[Model], field: str, pk: Any, using: str | None = None) -> list[FailureRecord]:
    """The failure records of one row, newest first (at most HISTORY_LIMIT),
    read from `using` (by default where the router reads `model`).

    The caller has the row from the model admin's ``get_queryset``.
    """
    if not records_available(model, using):
        return []
    records = list(records_of(model, field, using).filter(object_id=str(pk)).order_by('-pk')[:HISTORY_LIMIT])
    current = now()
    for record in records:
        record.ago = natural_time(record.ended, current)  # type: ignore[attr-defined]  # for the template
    return records


def attach_last_errors(model: type[Model], fields: Iterable[str], rows: Iterable[Any]) -> None:
    """Give each of `rows` its last failure record per queue field, one
    query per field for the whole page (``row.modelqueue_last_errors``)."""
    rows = list(rows)
    for row in rows:
        row.modelqueue_last_errors = {}
    using = rows[0]._state.db if rows else None  # where the page read its rows
    if not rows or not records_available(model, using):
        return
    by_id = {str(row.pk): row for row in rows}
    for field in fields:
        latest = (
            records_of(model, field, using)
            .filter(object_id__in=list(by_id))
            .order_by('object_id', '-pk')
            .only('pk', 'object_id', 'exception', 'message', 'ended')
        )
        for record in latest:
            by_id[record.object_id].modelqueue_last_errors.setdefault(field, record)


def last_error_column(field: str, several: bool = False) -> Callable[[Model], object]:
    """The changelist column of the last failure of each row (see attach_last_errors)."""
    label = _('last error')

    @admin.display(description=label if not several else f'{field} {label}')
    def last_error(obj: Model) -> object:
        record = getattr(obj, 'modelqueue_last_errors', {}).get(field)
        if record is None:
            return '–'
        return format_html(
            '<span class="modelqueue-last-error" title="{}"><strong>{}</strong> {}</span>',
            record.message,
            record.exception_name,
            Truncator(record.message).chars(LAST_ERROR_CHARS),
        )

    return last_error


def key_field(model: type[Model]) -> Field[Any, Any]:  # the key's own type, or BigIntegerField
    """A field of the type of `model`'s primary key, to cast object ids to.

    An integer key (``AutoField``, ``BigAutoField``, ``SmallAutoField``) is
    cast to a 64-bit integer: an ``IntegerField`` is PostgreSQL's 32-bit
    ``integer``, which fails past 2**31 (``BigAutoField``, Django's default,
    gets there).
    """
    pk: Any = model._meta.pk  # then the field a relation's key points to
    while pk.is_relation:
        pk = pk.target_field
    if pk.get_internal_type().endswith('AutoField'):
        return BigIntegerField()
    return pk.clone()


def row_ids(model: type[Model], records: QuerySet[FailureRecord]) -> QuerySet[Any]:
    """`records`' object ids as the row's primary key type, for ``pk__in``."""
    return records.order_by().annotate(modelqueue_row=Cast('object_id', key_field(model))).values('modelqueue_row')


def rows_records(records: QuerySet[FailureRecord], rows: QuerySet[Any]) -> QuerySet[FailureRecord]:
    """The records of `records` whose row is one of `rows` (a queryset of
    the records' model): all of them when `rows` is the whole table."""
    if whole_table(rows):
        return records
    return records.alias(modelqueue_row=Cast('object_id', key_field(rows.model))).filter(
        modelqueue_row__in=rows.order_by().values('pk')
    )


def shown_row_ids(rows: QuerySet[Any], object_ids: Iterable[str]) -> set[str]:
    """Those of `object_ids` (text) that are rows of the queryset `rows`:
    one query, or none when `rows` is the whole table (then every
    well-formed id is shown, as before a row is deleted)."""
    pk = rows.model._meta.pk
    keys = {}
    for object_id in object_ids:
        try:
            keys[object_id] = pk.to_python(object_id)
        except ValidationError:
            continue
    if not keys or whole_table(rows):
        return set(keys)
    found = {str(key) for key in rows.filter(pk__in=list(keys.values())).values_list('pk', flat=True)}
    return {object_id for object_id, key in keys.items() if str(key) in found}


def failure_filter(field: str) -> type[admin.SimpleListFilter]:
    """A changelist filter of the queue `field` by its failure records.

    Its parameter is ``<field>_failures``: ``last_hour`` (rows that failed
    in the last hour), ``canceled_after_failures`` (canceled rows whose
    canceling was a recorded failure), ``canceled_by_operator`` (canceled
    rows without one), or ``error:<exception class path>`` (rows that
    failed with it in the last hour; the dashboard links to these).
    """

    class FailureFilter(admin.SimpleListFilter):
        title = _('failures')
        parameter_name = f'{field}_failures'

        def lookups(
            self, request: HttpRequest, model_admin: ModelAdmin[Any]
        ) -> list[tuple[str, _StrOrPromise]]:
            choices: list[tuple[str, _StrOrPromise]] = [
                ('last_hour', _('Failed in the last hour')),
                ('canceled_after_failures', _('Canceled after failures')),
                ('canceled_by_operator', _('Canceled by an operator')),
            ]
            using = model_admin.get_queryset(request).db  # where the page reads
            if records_available(model_admin.model, using):
                since = _hour_ago()
                recent = records_of(model_admin.model, field, using).filter(ended__gte=since)
                classes = (
                    rows_records(recent, model_admin.get_queryset(request))
                    .order_by('exception')
                    .values_list('exception', flat=True)
                    .distinct()[:PANEL_LIMIT]
                )
                choices += [(f'error:{name}', name.rpartition('.')[2]) for name in classes]
            return choices

        def get_facet_queryset(self, changelist: ChangeList) -> dict[str, int]:
            """The count of each choice (*Show counts*), one query each. The
            choices pick rows by their failure records, a small table, which
            Django's generic facets would test against every row of the queue."""
            rows = changelist.get_queryset(self.request, exclude_parameters=self.expected_parameters())
            counts = {value: self.rows_of(rows, value).count() for value, _title in self.lookup_choices
                      if value != 'canceled_by_operator'}
            if records_available(rows.model, rows.db):
                # Canceled less canceled after failures: NOT IN over every
                # canceled row would test each against the records.
                canceled = rows.filter(ranges.in_states(field, State.canceled)).count()
                counts['canceled_by_operator'] = canceled - counts['canceled_after_failures']
            else:
                counts['canceled_by_operator'] = rows.count()
            return {f'{index}__c': counts[value] for index, (value, _title) in enumerate(self.lookup_choices)}

        def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
            return self.rows_of(queryset, self.value())

        def rows_of(self, queryset: QuerySet[Any], value: str | None) -> QuerySet[Any]:
            """The rows of `queryset` that the choice `value` selects."""
            if value is None or not records_available(queryset.model, queryset.db):
                return queryset
            records = records_of(queryset.model, field, queryset.db)
            canceled = ranges.in_states(field, State.canceled)
            if value == 'last_hour':
                return queryset.filter(pk__in=row_ids(queryset.model, records.filter(ended__gte=_hour_ago())))
            if value.startswith('error:'):
                recent = records.filter(exception=value[len('error:') :], ended__gte=_hour_ago())
                return queryset.filter(pk__in=row_ids(queryset.model, recent))
            ids = row_ids(queryset.model, records.filter(outcome='canceled'))
            if value == 'canceled_after_failures':
                return queryset.filter(canceled, pk__in=ids)
            if value == 'canceled_by_operator':
                return queryset.filter(canceled).exclude(pk__in=ids)
            return queryset

    FailureFilter.__name__ = FailureFilter.__qualname__ = f'{field.title()}FailureFilter'
    return FailureFilter


def _hour_ago() -> dt.datetime:
    return now() - ONE_HOUR


def failure_figures(
    queryset: QuerySet[Any],
    field: str,
    current: dt.datetime,
    changelist_url: str,
    minutes: int = THROUGHPUT_MINUTES,
    using: str | None = None,
) -> dict[str, Any]:
    """The dashboard's failure figures of one queue over the last hour, for
    the rows of `queryset` (the model admin's ``get_queryset``).

    ``failed`` (records per minute over the last `minutes`, as the
    dashboard's throughput),
    ``failed_last_hour`` and ``failure_groups``: per exception class, the
    count, the latest message and time, and the changelist URL of its rows.
    Three queries, from `using` (by default where `queryset` reads).
    """
    _content_type, FailureRecord, _heartbeat = _models()
    model = queryset.model
    using = queryset.db if using is None else using
    last = current.replace(second=0, microsecond=0)
    slots = [last - dt.timedelta(minutes=minutes - 1 - index) for index in range(minutes)]
    if not records_available(model, using):
        return {'failed': [0] * minutes, 'failed_last_hour': 0, 'failure_groups': []}
    records = rows_records(records_of(model, field, using), queryset)
    recent = records.filter(ended__gte=slots[0])
    per_minute = dict(
        recent.order_by()
        .annotate(minute=TruncMinute('ended', tzinfo=dt.timezone.utc))
        .values('minute')
        .annotate(count=Count('pk'))
        .values_list('minute', 'count')
    )
    failed = [per_minute.get(minute, 0) for minute in slots]
    hour = records.filter(ended__gte=current - ONE_HOUR)
    every_group = list(
        hour.order_by().values('exception').annotate(count=Count('pk'), latest=Max('pk'))
    )
    every_group.sort(key=lambda group: (-group['count'], group['exception']))
    groups = every_group[:PANEL_LIMIT]
    latest = {
        record.pk: record
        for record in FailureRecord.objects.using(hour.db).filter(pk__in=[group['latest'] for group in groups])
    }
    return {
        'failed': failed,
        'failed_last_hour': sum(group['count'] for group in every_group),
        'failure_groups': [
            {
                'exception': group['exception'],
                'name': group['exception'].rpartition('.')[2],
                'count': group['count'],
                'message': latest[group['latest']].message,
                'ended': latest[group['latest']].ended,
                'ago': natural_time(latest[group['latest']].ended, current),
                'url': failure_url(changelist_url, field, group['exception']),
            }
            for group in groups
        ],
    }


def failure_url(changelist_url: str, field: str, exception: str) -> str:
    """The changelist of the rows that failed with `exception` (a class path)
    in the last hour, the path URL-encoded: a class's qualified name may hold
    ``<locals>``, and a made-up one ``&``, ``#`` or ``%``.

    >>> failure_url('/admin/app/task/', 'status', 'app.f.<locals>.A&B')
    '/admin/app/task/?status_failures=error%3Aapp.f.%3Clocals%3E.A%26B'
    """
    return f'{changelist_url}?{urlencode({f"{field}_failures": f"error:{exception}"})}'


def worker_figures(
    model_admin: QueueModelAdmin,
    queryset: QuerySet[Any],
    field: str,
    current: dt.datetime,
    timeout: dt.timedelta,
    lag: float | None = None,
    controls: bool = False,
) -> dict[str, Any]:
    """The live (and lost) workers of one queue, and its stalled rows with
    the worker that held each, read where `queryset` is read. Two queries,
    three with stalled rows, and one more when `queryset` (the model admin's
    ``get_queryset``) is not the whole table: a worker's row in hand is
    shown only when it is one of its rows. A worker is lost when it missed
    three beats by `current`, less the `lag` (seconds) of a replica read: a
    replica behind the primary shows every heartbeat that much older.
    With `controls` (the user may control workers: see
    :mod:`modelqueue.admin.workers`), each worker has the URLs of its
    buttons: Quiet and Stop when live, Rescue now when lost."""
    ContentType, _record, WorkerHeartbeat = _models()
    model = model_admin.model
    if not records_available(model, queryset.db):
        return {'workers': [], 'workers_live': 0, 'workers_lost': 0, 'stalled_rows': []}
    content_type = ContentType.objects.get_for_model(model)
    as_of = current - dt.timedelta(seconds=lag or 0)
    heartbeats = list(
        WorkerHeartbeat.objects.using(queryset.db)
        .filter(content_type=content_type, field=field)
        .order_by('host', 'pid')
    )
    shown = shown_row_ids(queryset, {beat.object_id for beat in heartbeats if beat.object_id})
    workers: list[dict[str, Any]] = [
        {
            'name': beat.name,
            'host': beat.host,
            'pid': beat.pid,
            'started': beat.started,
            'last_seen': beat.last_seen,
            'last_seen_ago': natural_time(beat.last_seen, current),
            'started_ago': natural_time(beat.started, current),
            'held_for': beat.held_since and natural_time(beat.held_since, current),
            'lost': beat.is_lost(as_of),
            'quiet': beat.quiet,
            'command': beat.command,
            'rows_held': len(held_rows(beat.held)),
            'controls': control_urls(model_admin, field, beat.pk, beat.is_lost(as_of)) if controls else {},
            'wakeup': beat.wakeup,
            'wakeup_text': WAKEUP_TEXTS.get(beat.wakeup, beat.wakeup),
            'polls': beat.wakeup in POLLING_STATES,
            'object_id': beat.object_id if beat.object_id in shown else '',
            'row_hidden': bool(beat.object_id) and beat.object_id not in shown,
            'row_url': _change_url(model_admin, beat.object_id) if beat.object_id in shown else None,
            'held_since': beat.held_since,
            'tasks_done': beat.tasks_done,
            'failures': beat.failures,
        }
        for beat in heartbeats
    ]
    holders = {beat.object_id: worker for beat, worker in zip(heartbeats, workers) if beat.object_id}
    stalled = queryset.filter(ranges.stalled(field, current, timeout))
    stalled_rows = [
        {
            'pk': str(pk),
            'url': _change_url(model_admin, pk),
            'since': natural_time(priority_to_datetime(Status(value).priority) or current, current),
            'worker': holders.get(str(pk), {}).get('name'),
            'lost': holders.get(str(pk), {}).get('lost'),
        }
        for pk, value in stalled.order_by(field).values_list('pk', field)[:PANEL_LIMIT]
    ]
    lost = sum(worker['lost'] for worker in workers)
    return {
        'workers': workers,
        'workers_live': len(workers) - lost,
        'workers_lost': lost,
        'stalled_rows': stalled_rows,
    }


def _change_url(model_admin: QueueModelAdmin, pk: Any) -> str | None:
    if pk in (None, ''):
        return None
    try:
        return model_admin.queue_url('change', pk)
    except NoReverseMatch:
        return None
