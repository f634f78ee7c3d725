"""Retry every failed row that matches the changelist's filters.

A selection is one page of rows; "select all" is the whole filtered set, but
as a selection. This is the whole filtered set, however large: the
changelist's *Retry all failed matching these filters* link (one per queue
field, for users with the change permission) carries the page's filters
and search to a confirmation page (GET), which counts the failed (canceled)
rows among them, or estimates them where the changelist does, and remembers
the highest status among them. Its form POSTs, with the CSRF token, to the
same URL, which:

- checks the change permission (403 without it) and, as the bulk actions
  do, the model admin's permission on every row (one refusal changes
  nothing);
- rewrites them to waiting, due now, attempts reset, in chunks of
  `CHUNK_ROWS` rows in the order of the status then the primary key, each
  chunk in a transaction of its own: a chunk's keys are read by one query
  from past the last one, so no more than a chunk is ever in memory, and
  each chunk is claimable by the workers as soon as it is written;
- fences every UPDATE on the state: only rows still canceled change, so a
  row a worker claimed meanwhile (requeued by someone else) is left to it;
  and on the status the operator saw: a row that failed after the
  confirmation page was shown is not retried unseen;
- leaves the rows the model admin's ``queue_rows_to_leave`` names (the
  Tasks admin: a task whose unique key another READY or RUNNING task holds)
  and names them;
- reports how many rows were retried, writes one ``LogEntry`` saying so,
  and returns to the changelist with its filters. After about `SECONDS` it
  stops at the end of a chunk and says so: what it wrote stays written,
  and confirming again goes on from there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import TYPE_CHECKING, Any, cast

from django.contrib import messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import model_ngettext
from django.contrib.admin.views.main import ERROR_FLAG, PAGE_VAR
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _

from .. import ranges
from ..databases import for_writes
from ..status import State, Status
from .actions import may_change_each
from .counts import request_state_counts
from .history import log_operation
from .operations import ATTEMPTS, CHUNK_ROWS, LEFT_NAMED, RETRY_FAILED, field_label
from .templates import template_names

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin
    from django.db.models import QuerySet
    from django.http import HttpRequest, HttpResponse

    from .operations import Leave, Left
    from .protocol import QueueModelAdmin

#: The state this retries: a failed row is a canceled one (a Tasks task: FAILED).
FAILED = State.canceled
#: How long one request retries, about: past it, the request stops after the
#: chunk in hand and says so, well within a proxy's usual 60 s timeout.
SECONDS = 20


def retry_failed_url(model_admin: QueueModelAdmin, request: HttpRequest, field: str) -> str | None:
    """The URL of the confirmation page for `field`, with the filters of the
    changelist `request` shows; None when the user may not change rows."""
    if not model_admin.has_change_permission(request):
        return None
    filters = request.GET.copy()
    for name in (PAGE_VAR, ERROR_FLAG):  # the whole filtered set, not a page of it
        filters.pop(name, None)
    query = filters.urlencode()
    url = model_admin.queue_url('queue_retry_failed', field)
    return f'{url}?{query}' if query else url


def failed_rows(model_admin: QueueModelAdmin, request: HttpRequest, field: str) -> QuerySet[Any]:
    """The failed rows of the changelist that `request`'s query string
    filters, as a queryset (nothing read yet).

    :raises IncorrectLookupParameters: a filter the changelist refuses
    """
    changelist = model_admin.get_changelist_instance(request)
    return changelist.get_queryset(request).filter(ranges.in_states(field, FAILED))


def _counted(model_admin: QueueModelAdmin, request: HttpRequest, field: str, rows: QuerySet[Any]) -> int:
    """How many `rows` there are, estimated as the changelist's count is
    where its filters are the queue's state filters alone."""
    above = model_admin.queue_estimate_for(request)
    state = request.GET.get(f'{field}_queue')
    if above is not None and state in (None, FAILED.name):
        queryset = model_admin.get_queryset(request)
        return request_state_counts(request, queryset, field, model_admin.queue_timeout, above)[FAILED.name]
    return rows.count()


def _seen(value: str | None) -> int:
    """The highest status the confirmation page saw, from its form.

    :raises ValueError: naming `value` when it is not a failed row's status
    """
    try:
        status = int(value or '')
    except ValueError:
        status = 0
    if not Status.minimum(FAILED) <= status <= Status.maximum(FAILED):
        raise ValueError(
            _('invalid seen %(value)r: expected the status of a %(state)s row (from the confirmation page)')
            % {'value': value, 'state': FAILED.name}
        )
    return status


@dataclass
class Retried:
    """What :func:`retry_failed` did."""

    changed: int = 0  #: rows retried
    left: int = 0  #: rows left as they were, in all
    named: dict[Any, Left] = dataclass_field(default_factory=dict)  #: the first `LEFT_NAMED` of them, with why
    refused: IntegrityError | None = None  #: the error that stopped it, if one did
    unfinished: bool = False  #: stopped at the time budget, with rows still to read


def retry_failed(
    rows: QuerySet[Any], field: str, seen: int, leave: Leave | None, seconds: float | None = None
) -> Retried:
    """Rewrite the failed `rows` up to the status `seen` to waiting, chunk
    by chunk (see the module's docstring), for at most about `seconds`
    (then it stops after the chunk in hand: the chunks written stay written,
    and a second run goes on from there, its fences unchanged)."""
    rows = for_writes(rows)
    using = rows.db
    failed = ranges.in_states(field, FAILED) & Q(**{f'{field}__lte': seen})
    base = rows.model._base_manager.using(using)
    ordered = rows.filter(failed).order_by(field, 'pk')
    value = RETRY_FAILED.new_status(field)
    done = Retried()
    deadline = None if seconds is None else time.monotonic() + seconds
    last: tuple[int, Any] | None = None
    while True:
        after = ordered
        if last is not None:
            # Past (status, pk) of the last row: the first condition alone starts
            # the status index's range there (an OR alone would read the rest).
            after = ordered.filter(
                Q(**{f'{field}__gte': last[0]}), Q(**{f'{field}__gt': last[0]}) | Q(pk__gt=last[1])
            )
        for attempt in range(ATTEMPTS):
            try:
                with transaction.atomic(using=using):
                    chunk = list(after.values_list(field, 'pk')[:CHUNK_ROWS])
                    left = leave(using, [pk for _status, pk in chunk]) if leave is not None and chunk else {}
                    kept = [pk for _status, pk in chunk if pk not in left]
                    written = base.filter(failed, pk__in=kept).update(**{field: value}) if kept else 0
                break
            except IntegrityError as error:  # a key taken after the look: look again
                if leave is None or attempt == ATTEMPTS - 1:
                    done.refused = error
                    return done
        if not chunk:
            return done
        done.changed += written
        done.left += len(left)
        for pk, why in left.items():
            if len(done.named) < LEFT_NAMED:
                done.named[pk] = why
        last = chunk[-1]
        if deadline is not None and time.monotonic() >= deadline and len(chunk) == CHUNK_ROWS:
            done.unfinished = True
            return done


def retry_failed_view(model_admin: QueueModelAdmin, request: HttpRequest, field: str) -> HttpResponse:
    """The confirmation page (GET) and the retry itself (POST)."""
    if request.method not in ('GET', 'HEAD', 'POST'):
        return HttpResponseNotAllowed(['GET', 'HEAD', 'POST'])
    if not model_admin.has_change_permission(request):
        raise PermissionDenied
    if field not in model_admin.valid_queue_fields:
        raise Http404(f'no queue field {field!r}')
    model = model_admin.model
    opts = model._meta
    query = request.GET.urlencode()
    back = model_admin.queue_url('changelist') + (f'?{query}' if query else '')
    try:
        rows = failed_rows(model_admin, request, field)
    except IncorrectLookupParameters as error:
        model_admin.message_user(
            request,
            _('Nothing was retried: the filters %(query)r are not valid (%(error)s).')
            % {'query': query, 'error': error},
            messages.ERROR,
        )
        return HttpResponseRedirect(model_admin.queue_url('changelist'))
    label = field_label(model, field)
    if request.method == 'POST':
        try:
            seen = _seen(request.POST.get('seen'))
        except ValueError as error:
            model_admin.message_user(request, _('Nothing was retried: %(error)s.') % {'error': error}, messages.ERROR)
            return HttpResponseRedirect(back)
        admin = cast('ModelAdmin[Any]', model_admin)  # a QueueAdminMixin's
        if not may_change_each(admin, request, rows.filter(**{f'{field}__lte': seen})):
            return HttpResponseRedirect(back)
        chooser = getattr(model_admin, 'queue_rows_to_leave', None)
        leave = chooser(field, RETRY_FAILED) if chooser is not None else None
        done = retry_failed(rows, field, seen, leave, SECONDS)
        changed, left_count, named, refused = done.changed, done.left, done.named, done.refused
        summary = RETRY_FAILED.done % {
            'count': changed,
            'items': model_ngettext(opts, changed),
            'field': label,
            'states': f'{changed} {FAILED.name}' if changed else '0',
        }
        if changed or not left_count:  # not 'Retried 0' when every row was left, and said why
            model_admin.message_user(request, summary, messages.SUCCESS)
        if left_count:
            more = left_count - len(named)
            model_admin.message_user(
                request,
                _('Left %(count)s %(items)s as they were (%(field)s): %(reasons)s%(more)s.')
                % {
                    'count': left_count,
                    'items': model_ngettext(opts, left_count),
                    'field': label,
                    'reasons': '; '.join(why for _status, why in named.values()),
                    'more': _(' and %(count)s more') % {'count': more} if more else '',
                },
                messages.WARNING,
            )
        if refused is not None:
            model_admin.message_user(
                request,
                _('The rest was not retried: the database refused it (%(error)s). Try again.') % {'error': refused},
                messages.ERROR,
            )
        if done.unfinished:
            model_admin.message_user(
                request,
                _(
                    'Stopped after %(seconds)s seconds, so that the page answers: the other failed'
                    ' %(items)s are not retried yet. Retry all failed again to go on.'
                )
                % {'seconds': SECONDS, 'items': opts.verbose_name_plural},
                messages.WARNING,
            )
        if changed:
            log_operation(request, model, field, RETRY_FAILED, None, summary)
        return HttpResponseRedirect(back)
    seen = rows.aggregate(seen=Max(field))['seen']
    context = {
        **model_admin.admin_site.each_context(request),
        'title': _('Retry failed rows?'),
        'subtitle': None,
        'opts': opts,
        'media': model_admin.media,
        'field_label': label,
        'objects_name': opts.verbose_name_plural,
        'count': _counted(model_admin, request, field, rows) if seen is not None else 0,
        'seen': seen,
        'query': query,
        'changelist_url': back,
    }
    request.current_app = model_admin.admin_site.name
    declared = getattr(model_admin, 'queue_retry_failed_template', None)
    return TemplateResponse(request, template_names(opts, declared, 'retry_failed'), context)
