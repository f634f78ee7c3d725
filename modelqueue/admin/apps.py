"""Django's admin app with a queue-aware default site.

In ``INSTALLED_APPS``, ``'modelqueue.admin.apps.QueueAdminConfig'`` takes
the place of ``'django.contrib.admin'``: ``admin.site`` is then a
:class:`~modelqueue.admin.QueueAdminSite`, as Django documents for
overriding the default admin site.
"""

from django.contrib.admin.apps import AdminConfig


class QueueAdminConfig(AdminConfig):
    default_site = 'modelqueue.admin.sites.QueueAdminSite'
