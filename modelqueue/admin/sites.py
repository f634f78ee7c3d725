"""The site-level pages of the queue admin: the overview and the index links.

A page about every queue belongs to the admin site, not to one model admin::

    from django.contrib import admin
    from modelqueue.admin import QueueAdminSiteMixin

    class SiteAdmin(QueueAdminSiteMixin, admin.AdminSite):
        pass

or ``modelqueue.admin.QueueAdminSite`` as it is. For Django's default site,
put ``'modelqueue.admin.apps.QueueAdminConfig'`` in ``INSTALLED_APPS`` in
place of ``'django.contrib.admin'`` (Django's way of replacing the default
site). The site then serves ``queues/`` (URL name ``admin:modelqueue_overview``),
``queues/metrics/`` (``admin:modelqueue_metrics``: the queues' figures for
Prometheus, :mod:`modelqueue.admin.metrics`) and its index lists the dashboards of the queues the user may view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext_lazy as _

from ..status import Status, now
from .display import STATE_LABELS, duration_text
from .metrics import metrics_response, queues_of
from .options import QueueAdminMixin
from .pauses import queue_pauses
from .replica import Reads

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse
    from django.urls import URLPattern, URLResolver

    # The mixin is used with AdminSite (its methods call AdminSite's); type
    # checkers see it as one, at run time it adds no base.
    _AdminSite = AdminSite
else:
    _AdminSite = object


class QueueAdminSiteMixin(_AdminSite):
    """An AdminSite with an overview of every queue and links on its index.

    ``queue_overview_template`` names the overview's template (default
    ``modelqueue/overview.html``). The index template becomes
    ``modelqueue/index.html`` unless the site names its own; a custom index
    can show the links with
    ``{% include "modelqueue/includes/queue_links.html" %}``. The failure
    records and worker heartbeats are registered on it, read-only.
    """

    index_template = 'modelqueue/index.html'
    queue_overview_template = 'modelqueue/overview.html'
    #: What the queue admins' system check looks for (modelqueue.W001).
    serves_queue_overview = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from .records import register_records  # noqa: PLC0415 (needs the app registry)

        register_records(self)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        return [
            path('queues/', self.admin_view(self.queue_overview_view), name='modelqueue_overview'),
            path('queues/metrics/', self.admin_view(self.queue_metrics_view), name='modelqueue_metrics'),
            *super().get_urls(),
        ]

    def queue_admins(self) -> list[QueueAdminMixin]:
        """The registered model admins that use QueueAdminMixin."""
        return [
            model_admin
            for model_admin in self._registry.values()
            if isinstance(model_admin, QueueAdminMixin)
        ]

    def visible_queue_admins(self, request: HttpRequest) -> list[QueueAdminMixin]:
        """The queue admins whose rows `request`'s user may view."""
        return [
            model_admin
            for model_admin in self.queue_admins()
            if model_admin.has_view_permission(request)
        ]

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        queues = [
            {
                'name': model_admin.model._meta.verbose_name_plural,
                'url': model_admin.queue_url('dashboard'),
            }
            for model_admin in self.visible_queue_admins(request)
        ]
        context = {'modelqueue_queues': queues, **(extra_context or {})}
        return super().index(request, extra_context=context)

    def queue_overview_view(self, request: HttpRequest) -> HttpResponse:
        """Every queue of the site the user may view, with a link to its dashboard."""
        visible = self.visible_queue_admins(request)
        if not visible:
            raise PermissionDenied
        current = now()
        models = [
            {
                'name': model_admin.model._meta.verbose_name_plural,
                'dashboard_url': model_admin.queue_url('dashboard'),
                'changelist_url': model_admin.queue_url('changelist'),
                'queues': [
                    {**figures, 'pause': pause}
                    for figures, pause in zip(
                        model_admin.get_queue_figures(request, current), queue_pauses(model_admin, request)
                    )
                ],
            }
            for model_admin in visible
        ]
        notes: dict[tuple[str, str | None], Reads] = {}
        for model_admin in visible:  # one note per database read, where a replica is in play
            reads = model_admin.queue_reads(request)
            if reads.note() is not None:
                notes.setdefault((reads.alias, reads.replica), reads)
        context = {
            **self.each_context(request),
            'title': _('Queues'),
            'subtitle': None,
            'models': models,
            'reads_notes': list(notes.values()),
            'states': [STATE_LABELS[state.name] for state in Status.states],
            'timeout': duration_text(visible[0].queue_timeout),
        }
        request.current_app = self.name
        return TemplateResponse(request, self.queue_overview_template, context)


    def queue_metrics_view(self, request: HttpRequest) -> HttpResponse:
        """The queues the user may view, in Prometheus's text format
        (:mod:`modelqueue.admin.metrics`); staff only, as every admin page."""
        visible = self.visible_queue_admins(request)
        if not visible:
            raise PermissionDenied
        return metrics_response(queues_of(visible))


class QueueAdminSite(QueueAdminSiteMixin, AdminSite):
    """Django's AdminSite with the queue overview and index links."""
