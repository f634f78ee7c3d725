"""The operations admin's pages: queue dashboard, its JSON, the overview, row buttons.

QueueAdminMixin routes these through ``admin_site.admin_view`` (staff login);
each view checks the model admin's permissions itself.
"""

from urllib.parse import urlencode

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.text import capfirst
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _

from .actions import CANCEL_FROM, REQUEUE_FROM, apply_update, report
from .dashboard import THROUGHPUT_MINUTES, queue_figures
from .expressions import with_state_and_priority
from .filters import STATE_LABELS
from .status import State, Status, now


def _url(model_admin, page, *args):
    opts = model_admin.model._meta
    return reverse(
        f'admin:{opts.app_label}_{opts.model_name}_{page}',
        args=args,
        current_app=model_admin.admin_site.name,
    )


def queues_figures(request, model_admin, current=None):
    """Figures of every queue field of `model_admin`, for what `request` may see."""
    queryset = model_admin.get_queryset(request)
    current = now() if current is None else current
    changelist = _url(model_admin, 'changelist')
    queues = []
    for field in model_admin.queue_fields:
        figures = queue_figures(queryset, field, model_admin.queue_timeout, current)
        parameter = f'{field}_queue'
        figures['label'] = str(model_admin.model._meta.get_field(field).verbose_name)
        figures['filter_urls'] = {
            name: f'{changelist}?{urlencode({parameter: name})}'
            for name in [*(state.name for state in Status.states), 'due', 'scheduled', 'stalled']
        }
        queues.append(figures)
    return queues


def _duration(delta):
    current = now()
    return timesince(current - delta, current, depth=2)


def _require_view(request, model_admin):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied


def dashboard(request, model_admin):
    """The queue dashboard of one model: figures, charts, live refresh."""
    _require_view(request, model_admin)
    if request.method not in ('GET', 'HEAD'):
        return HttpResponseNotAllowed(['GET', 'HEAD'])
    opts = model_admin.model._meta
    queues = queues_figures(request, model_admin)
    for figures in queues:
        figures['tally_rows'] = [
            {
                'name': name,
                'label': STATE_LABELS[name],
                'count': count,
                'url': figures['filter_urls'][name],
            }
            for name, count in figures['tally'].items()
        ]
    config = {
        'dataUrl': _url(model_admin, 'dashboard_data'),
        'refreshSeconds': model_admin.queue_refresh_seconds,
        'queues': [_public(figures) for figures in queues],
        'stateLabels': {name: str(label) for name, label in STATE_LABELS.items()},
        'texts': {
            'finished': str(_('finished')),
            'canceled': str(_('canceled')),
            'rows': str(_('rows')),
            'none': str(_('none')),
            'updated': str(_('Updated')),
            'failed': str(_('Refresh failed; retrying')),
        },
    }
    context = {
        **model_admin.admin_site.each_context(request),
        'title': _('Queue dashboard: %(name)s') % {'name': capfirst(opts.verbose_name_plural)},
        'subtitle': None,
        'opts': opts,
        'queues': queues,
        'config': config,
        'minutes': THROUGHPUT_MINUTES,
        'timeout': _duration(model_admin.queue_timeout),
        'changelist_url': _url(model_admin, 'changelist'),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, 'modelqueue/dashboard.html', context)


def _public(figures):
    return {key: value for key, value in figures.items() if key != 'tally_rows'}


def dashboard_data(request, model_admin):
    """The dashboard's figures as JSON; query parameters are ignored."""
    _require_view(request, model_admin)
    if request.method not in ('GET', 'HEAD'):
        return HttpResponseNotAllowed(['GET', 'HEAD'])
    current = now()
    return JsonResponse(
        {
            'generated': current.isoformat().replace('+00:00', 'Z'),
            'queues': queues_figures(request, model_admin, current),
        }
    )


def overview(request, admin_site, queue_admins):
    """Every queue of the site the user may view, with a link to its dashboard."""
    visible = [
        model_admin for model_admin in queue_admins if model_admin.has_view_permission(request)
    ]
    if not visible:
        raise PermissionDenied
    current = now()
    models = []
    for model_admin in visible:
        opts = model_admin.model._meta
        models.append(
            {
                'name': opts.verbose_name_plural,
                'dashboard_url': _url(model_admin, 'dashboard'),
                'changelist_url': _url(model_admin, 'changelist'),
                'queues': queues_figures(request, model_admin, current),
            }
        )
    context = {
        **admin_site.each_context(request),
        'title': _('Queues'),
        'subtitle': None,
        'models': models,
        'states': [STATE_LABELS[state.name] for state in Status.states],
        'timeout': _duration(visible[0].queue_timeout),
    }
    request.current_app = admin_site.name
    return TemplateResponse(request, 'modelqueue/overview.html', context)


ROW_OPERATIONS = {
    'requeue': (
        REQUEUE_FROM,
        lambda field: Status.waiting(now(), 0),
        _('Requeued %(count)s %(items)s (%(field)s), previously %(states)s.'),
    ),
    'cancel': (
        CANCEL_FROM,
        lambda field: with_state_and_priority(field, State.canceled, now()),
        _('Canceled %(count)s %(items)s (%(field)s), previously %(states)s.'),
    ),
}


def queue_row(request, model_admin, object_id, field, operation):
    """Requeue or cancel one row from its change form (POST only)."""
    if request.method != 'POST':
        return HttpResponseNotAllowed(['POST'])
    if field not in model_admin.queue_fields or operation not in ROW_OPERATIONS:
        raise Http404(f'no queue operation {operation!r} on field {field!r}')
    obj = model_admin.get_object(request, unquote(object_id))
    if obj is None:
        raise Http404(f'no {model_admin.model._meta.verbose_name} with id {object_id!r}')
    if not model_admin.has_change_permission(request, obj):
        raise PermissionDenied
    states, value, done = ROW_OPERATIONS[operation]
    row = model_admin.get_queryset(request).filter(pk=obj.pk)
    before, changed = apply_update(row, field, states, value(field))
    report(model_admin, request, row, field, done, before, changed, states)
    if changed:
        model_admin.log_change(
            request, obj, [{'changed': {'fields': [str(model_admin.model._meta.get_field(field).verbose_name)]}}]
        )
    return HttpResponseRedirect(_url(model_admin, 'change', obj.pk))
