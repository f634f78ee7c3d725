"""The operations admin: a ModelAdmin mixin, an AdminSite mixin, list filters, actions.

Laid out like ``django.contrib.admin``: ``options`` (the ModelAdmin mixin),
``sites`` (the site-level overview), ``operations`` (requeue, cancel,
reprioritize and reset attempts, defined once), ``actions``, ``filters``,
``figures`` (the dashboard's queries), ``display`` (columns), ``forms``,
``checks`` and ``templates`` (overridable template names).
"""

from .actions import admin_actions, queue_actions
from .filters import admin_list_filter, queue_list_filter
from .options import QueueAdminMixin
from .sites import QueueAdminSite, QueueAdminSiteMixin

__all__ = [
    'QueueAdminMixin',
    'QueueAdminSite',
    'QueueAdminSiteMixin',
    'admin_actions',
    'admin_list_filter',
    'queue_actions',
    'queue_list_filter',
]
