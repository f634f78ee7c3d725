"""Quiet, Stop and Rescue now in the admin's Workers panel.

Each live worker in a queue's Workers panel has a Quiet and a Stop button,
each lost worker a *Rescue now* button. A button leads to a confirmation
page (GET); its form POSTs, with the CSRF token, to the same URL:

- *Quiet* and *Stop* set the worker's ``WorkerHeartbeat.command``; the
  worker reads it at its next beat (:mod:`modelqueue.worker.heartbeat`):
  quiet, it finishes the rows it holds and claims no more (the panel then
  shows it *quiet*); stopped, it also exits as on SIGTERM;
- *Rescue now* gives back the rows the lost worker held
  (:func:`modelqueue.rescue.rescue`, as another worker would at its next
  beat), and says how many.

Each leaves a ``LogEntry`` naming the user and the worker. The page and the
action need the model admin's view permission and
``modelqueue.control_worker``: a user without them gets 403 and sees no
button. A worker is named by its heartbeat row's id; a row of another
queue, or one gone, is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .. import pauses
from ..rescue import held_rows, rescue
from .operations import field_label
from .pauses import log_action
from .templates import template_names

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

    from ..models import WorkerHeartbeat
    from .protocol import QueueModelAdmin

#: The permission that quieting, stopping and rescuing need, besides viewing the model.
PERMISSION = 'modelqueue.control_worker'
#: The operations on a live worker, and the one on a lost worker.
COMMANDS = ('quiet', 'stop')
RESCUE = 'rescue'
OPERATIONS = (*COMMANDS, RESCUE)


def may_control(model_admin: QueueModelAdmin, request: HttpRequest | None) -> bool:
    """Whether the user of `request` may quiet, stop and rescue the workers of `model_admin`."""
    return request is not None and bool(
        model_admin.has_view_permission(request) and request.user.has_perm(PERMISSION)
    )


def control_urls(model_admin: QueueModelAdmin, field: str, pk: int, lost: bool) -> dict[str, str]:
    """The URLs of the buttons a worker's row shows: Rescue now for a lost
    worker, Quiet and Stop for a live one."""
    operations = (RESCUE,) if lost else COMMANDS
    return {operation: model_admin.queue_url('queue_worker', field, pk, operation) for operation in operations}


def _heartbeat(model_admin: QueueModelAdmin, field: str, pk: int, using: str) -> WorkerHeartbeat | None:
    """The heartbeat row `pk` of a worker on the queue `field`, or None."""
    from django.contrib.contenttypes.models import ContentType  # noqa: PLC0415 (needs the app registry)

    from ..models import WorkerHeartbeat  # noqa: PLC0415 (needs the app registry)

    content_type = ContentType.objects.db_manager(using).get_for_model(model_admin.model)
    return WorkerHeartbeat.objects.using(using).filter(pk=pk, content_type=content_type, field=field).first()


def worker_view(
    model_admin: QueueModelAdmin, request: HttpRequest, field: str, pk: int, operation: str
) -> HttpResponse:
    """The confirmation page (GET) and the quiet, stop or rescue itself (POST)."""
    if request.method not in ('GET', 'HEAD', 'POST'):
        return HttpResponseNotAllowed(['GET', 'HEAD', 'POST'])
    if not may_control(model_admin, request):
        raise PermissionDenied
    if field not in model_admin.valid_queue_fields or operation not in OPERATIONS:
        raise Http404(f'no worker operation {operation!r} on field {field!r}')
    model = model_admin.model
    opts = model._meta
    using = pauses.database(model)  # the primary: heartbeats are written there
    back = model_admin.queue_url('dashboard')
    beat = _heartbeat(model_admin, field, pk, using)
    current = timezone.now()
    if request.method == 'POST':
        if beat is None:
            model_admin.message_user(
                request, _('That worker has no heartbeat any more (it stopped, or was rescued).'), messages.WARNING
            )
            return HttpResponseRedirect(back)
        names = {'worker': beat.name, 'field': field_label(model, field), 'name': opts.verbose_name_plural}
        if operation == RESCUE:
            given = rescue(beat, model, using, by=f'{request.user.get_username()} in the admin', current=current)
            if given is None:
                model_admin.message_user(
                    request,
                    _(
                        'The worker %(worker)s is not lost (it beat again), or was rescued already:'
                        ' nothing was given back.'
                    )
                    % names,
                    messages.WARNING,
                )
                return HttpResponseRedirect(back)
            message = ngettext(
                'Rescued %(count)d row of the lost worker %(worker)s on the queue %(field)s of %(name)s.',
                'Rescued %(count)d rows of the lost worker %(worker)s on the queue %(field)s of %(name)s.',
                given,
            ) % {**names, 'count': given}
        else:
            if beat.is_lost(current):
                model_admin.message_user(
                    request, _('The worker %(worker)s is lost: rescue its rows instead.') % names, messages.WARNING
                )
                return HttpResponseRedirect(back)
            beat.__class__.objects.using(using).filter(pk=beat.pk).update(command=operation)
            message = (
                _(
                    'Told the worker %(worker)s on the queue %(field)s of %(name)s to quiet:'
                    ' it finishes the rows it holds and claims no more.'
                )
                if operation == 'quiet'
                else _(
                    'Told the worker %(worker)s on the queue %(field)s of %(name)s to stop:'
                    ' it finishes the rows it holds, then exits.'
                )
            ) % names
        log_action(request, model_admin, message)
        model_admin.message_user(request, message)
        return HttpResponseRedirect(back)
    if beat is None:
        raise Http404('no such worker on this queue')
    titles = {
        'quiet': _('Quiet the worker?'),
        'stop': _('Stop the worker?'),
        RESCUE: _('Rescue the rows of the lost worker?'),
    }
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        'title': titles[operation],
        'subtitle': None,
        'opts': opts,
        'operation': operation,
        'worker': beat.name,
        'lost': beat.is_lost(current),
        'held': len(held_rows(beat.held)),
        'field_label': field_label(model, field),
        'objects_name': opts.verbose_name_plural,
        'next': back,
        'changelist_url': model_admin.queue_url('changelist'),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, template_names(opts, None, 'worker_confirmation'), context)
