"""The modelqueue app: its tables, its checks, and the task table's admin.

This is where the parts meet, so it may import any of them: the core's
tables (``models``), the Tasks backend's table (``tasks.models``), the
settings' checks (``conf``) and the task table's admin (``tasks.admin``).
"""

from __future__ import annotations

from django.apps import AppConfig, apps
from django.core import checks
from django.utils.translation import gettext_lazy as _

from . import conf


class ModelQueueConfig(AppConfig):
    name = 'modelqueue'
    default_auto_field = 'django.db.models.BigAutoField'
    verbose_name = _('Model queue')

    def import_models(self) -> None:
        """The app's tables: ``models``, and the task table of the Tasks
        backend, defined beside the backend in ``tasks.models``."""
        super().import_models()
        from .tasks import models  # noqa: F401, PLC0415 (registers the task table)

    def ready(self) -> None:
        checks.register(conf.check_settings)
        # The task table of Django's Tasks framework, on the default admin
        # site, when a TASKS backend is ModelQueueBackend (modelqueue.tasks.admin).
        if apps.is_installed('django.contrib.admin'):
            from .tasks.admin import register  # noqa: PLC0415 (loads django.contrib.admin)

            register()
