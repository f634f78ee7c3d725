"""Pause and Resume in the admin: the banner, the buttons and their page.

Each queue field of a model admin shows, on its changelist and dashboard, a
banner while it is paused ("Paused since 10:42 by alice"), and on the
dashboard and the site's queue overview a Pause or Resume button. The
button leads to a confirmation page (GET); its form POSTs, with the CSRF
token, to the same URL, which pauses or resumes the queue
(:mod:`modelqueue.pauses`), leaves a ``LogEntry`` naming the user, and
returns to the page it came from.

Both the page and the action need the model admin's view permission and
``modelqueue.pause_queue``: a user without them gets 403, and sees no
button.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from .. import pauses
from .operations import field_label
from .templates import template_names

if TYPE_CHECKING:
    import datetime as dt

    from django.http import HttpRequest, HttpResponse

    from .protocol import QueueModelAdmin

#: The permission that pausing and resuming needs, besides viewing the model.
PERMISSION = 'modelqueue.pause_queue'
OPERATIONS = ('pause', 'resume')


def may_pause(model_admin: QueueModelAdmin, request: HttpRequest) -> bool:
    """Whether the user of `request` may pause and resume the queues of `model_admin`."""
    return bool(model_admin.has_view_permission(request) and request.user.has_perm(PERMISSION))


def since_text(paused_at: dt.datetime, current: dt.datetime) -> str:
    """When a pause began, as the banner says it: the time of day (in the
    current time zone) if today, else the date and time.

    >>> import datetime as dt
    >>> at = dt.datetime(2026, 12, 7, 10, 42, tzinfo=dt.timezone.utc)
    >>> since_text(at, at + dt.timedelta(hours=1))
    '10:42'
    >>> since_text(at, at + dt.timedelta(days=2))
    '2026-12-07 10:42'
    """
    if timezone.is_aware(paused_at):
        paused_at, current = timezone.localtime(paused_at), timezone.localtime(current)
    if paused_at.date() == current.date():
        return paused_at.strftime('%H:%M')
    return paused_at.strftime('%Y-%m-%d %H:%M')


def queue_pauses(model_admin: QueueModelAdmin, request: HttpRequest) -> list[dict[str, Any]]:
    """For each queue field of `model_admin` (in its order): whether it is
    paused, since when and by whom, and the URLs of its Pause and Resume
    pages (None without the permission); under ``named``, the pauses of parts
    of it by queue name (a Tasks queue of one backend,
    :mod:`modelqueue.tasks.pauses`), each with its Resume URL."""
    allowed = may_pause(model_admin, request)
    back = f'next={quote(request.get_full_path(), safe="/")}'
    current = timezone.now()
    found = []
    for field in model_admin.valid_queue_fields:
        label = field_label(model_admin.model, field)
        pause, named = None, []
        for row in pauses.pauses_of(model_admin.model, field, pauses.database(model_admin.model)).order_by(
            'queue_name'
        ):
            if not row.queue_name:
                pause = row
                continue
            query = urlencode({'queue': row.queue_name})
            named.append(
                {
                    'field': field,
                    'queue_name': row.queue_name,
                    'label': f'{label} ({row.queue_name})',
                    'paused': True,
                    'since': since_text(row.paused_at, current),
                    'by': row.paused_by,
                    'resume_url': f'{model_admin.queue_url("queue_resume", field)}?{query}&{back}'
                    if allowed
                    else None,
                }
            )
        urls = {
            operation: f'{model_admin.queue_url(f"queue_{operation}", field)}?{back}' if allowed else None
            for operation in OPERATIONS
        }
        found.append(
            {
                'field': field,
                'label': label,
                'paused': pause is not None,
                'since': None if pause is None else since_text(pause.paused_at, current),
                'by': '' if pause is None else pause.paused_by,
                'pause_url': urls['pause'],
                'resume_url': urls['resume'],
                'named': named,
            }
        )
    return found


def pause_view(
    model_admin: QueueModelAdmin, request: HttpRequest, field: str, operation: str
) -> HttpResponse:
    """The confirmation page (GET) and the pause or resume itself (POST)."""
    if request.method not in ('GET', 'HEAD', 'POST'):
        return HttpResponseNotAllowed(['GET', 'HEAD', 'POST'])
    if not may_pause(model_admin, request):
        raise PermissionDenied
    if field not in model_admin.valid_queue_fields or operation not in OPERATIONS:
        raise Http404(f'no queue {operation!r} on field {field!r}')
    model = model_admin.model
    opts = model._meta
    label = field_label(model, field)
    data = request.POST if request.method == 'POST' else request.GET
    back = data.get('next')
    # A part of the queue paused by name (a Tasks queue): resumed here, paused from code.
    queue_name = data.get('queue', '')
    if queue_name and operation != 'resume':
        raise Http404('a queue is paused by name from code, not here')
    if not back or not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = model_admin.queue_url('dashboard')
    if request.method == 'POST':
        who = request.user.get_username()
        if operation == 'pause':
            changed = pauses.pause(model, field, by=who)
            message = _('Paused the queue %(field)s of %(name)s.')
            unchanged = _('The queue %(field)s of %(name)s was already paused.')
        else:
            changed = pauses.resume(model, field, queue_name=queue_name)
            message = _('Resumed the queue %(field)s of %(name)s.')
            unchanged = _('The queue %(field)s of %(name)s was not paused.')
        names = {'field': f'{label} ({queue_name})' if queue_name else label, 'name': opts.verbose_name_plural}
        if changed:
            log_action(request, model_admin, message % names)
            model_admin.message_user(request, message % names)
        else:
            model_admin.message_user(request, unchanged % names)
        return HttpResponseRedirect(back)
    pause = pauses.pause_of(model, field, queue_name=queue_name)
    context = {
        **model_admin.admin_site.each_context(request),
        'title': (_('Pause the queue?') if operation == 'pause' else _('Resume the queue?')),
        'subtitle': None,
        'opts': opts,
        'operation': operation,
        'field_label': f'{label} ({queue_name})' if queue_name else label,
        'queue_name': queue_name,
        'objects_name': opts.verbose_name_plural,
        'paused': pause is not None,
        'since': None if pause is None else since_text(pause.paused_at, timezone.now()),
        'by': '' if pause is None else pause.paused_by,
        'next': back,
        'changelist_url': model_admin.queue_url('changelist'),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, template_names(opts, None, 'pause_confirmation'), context)


def log_action(request: HttpRequest, model_admin: QueueModelAdmin, message: str) -> None:
    """A LogEntry on the queue's model, naming the user (and, as every
    entry, the time): the history of the site's recent actions."""
    from django.contrib.admin.models import CHANGE, LogEntry  # noqa: PLC0415 (needs the app registry)
    from django.contrib.contenttypes.models import ContentType  # noqa: PLC0415 (needs the app registry)

    model = model_admin.model
    content_type = ContentType.objects.get_for_model(model, for_concrete_model=False)
    user_id: Any = request.user.pk  # a staff user's: never None
    LogEntry.objects.create(
        user_id=user_id,
        content_type_id=content_type.pk,
        object_id=None,
        object_repr=capfirst(str(model._meta.verbose_name_plural))[:200],
        action_flag=CHANGE,
        change_message=message,
    )
