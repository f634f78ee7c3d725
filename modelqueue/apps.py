from django.apps import AppConfig, apps
from django.utils.translation import gettext_lazy as _


class ModelQueueConfig(AppConfig):
    name = 'modelqueue'
    default_auto_field = 'django.db.models.BigAutoField'
    verbose_name = _('Model queue')

    def ready(self):
        # The task table of Django's Tasks framework, on the default admin
        # site, when a TASKS backend is ModelQueueBackend (modelqueue.tasks.admin).
        if apps.is_installed('django.contrib.admin'):
            from .tasks.admin import register  # noqa: PLC0415

            register()
